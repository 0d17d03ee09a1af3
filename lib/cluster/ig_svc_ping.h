/*
 * ig_svc_ping.h: the ping service, a liveness check on the ch topic.
 *
 * Why this exists: a device (or an operator with mosquitto_pub) checks that
 * the cluster head is there and answers on its inbox, and reads the cluster
 * head's clock. It is also the smallest service, the model for the others.
 */
#ifndef IG_SVC_PING_H
#define IG_SVC_PING_H

#include "ig_decision.h"

struct cJSON;

/* {"type":"ping","nonce"?:string<=128} -> {"type":"pong","nonce","ts"} */
void ig_svc_ping_request(ig_decision *out, const char *id, const struct cJSON *req, uint64_t now_ms);

#endif
