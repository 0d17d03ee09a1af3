/* admin.c: being written. */
