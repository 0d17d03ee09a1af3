/*
 * duties.h: the duties a device agent can take on.
 *
 * Why this exists: main() picks duties from the command line; keeping their
 * declarations together shows at a glance what an agent can do. Each duty
 * lives in its own duty_<name>.c.
 */
#ifndef IG_DUTIES_H
#define IG_DUTIES_H

#include "agent.h"

/* ping: after each connect, asks the cluster head for a pong with a fresh
 * random nonce and logs the round trip when the matching pong arrives. */
typedef struct ig_ping_state {
	char nonce[33];       /* 16 random bytes, hex; "" when none outstanding */
	uint64_t sent_us;     /* monotonic time the ping went out */
	uint64_t pongs;       /* matching pongs seen, for tests and logs */
} ig_ping_state;
extern const ig_duty_ops ig_duty_ping;

#endif
