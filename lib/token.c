/* token.c: being written. */
