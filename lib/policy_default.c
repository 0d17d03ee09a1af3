/* policy_default.c: being written. */
