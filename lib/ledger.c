/* ledger.c: being written. */
