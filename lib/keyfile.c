/* keyfile.c: being written. */
