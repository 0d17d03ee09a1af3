/* merkle.c: being written. */
