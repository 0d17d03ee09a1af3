/* record.c: being written. */
