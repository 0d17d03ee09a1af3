/* auth.c: being written. */
