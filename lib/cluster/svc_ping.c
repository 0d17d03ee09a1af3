/*
 * svc_ping.c: the ping service (ig_svc_ping.h; docs/PROTOCOL.md, "ping").
 */
#include "ig_svc_ping.h"

#include <cJSON.h>
#include <string.h>

#define PING_NONCE_MAX 128

void ig_svc_ping_request(ig_decision *out, const char *id, const cJSON *req, uint64_t now_ms)
{
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(req, "nonce");
	if (nonce && (!cJSON_IsString(nonce) || strlen(nonce->valuestring) > PING_NONCE_MAX)) {
		ig_decision_refuse(out, "ping", NULL, "malformed", "\"nonce\" must be a string of at most 128 characters");
		return;
	}
	cJSON *o = cJSON_CreateObject();
	if (o) {
		cJSON_AddStringToObject(o, "type", "pong");
		cJSON_AddStringToObject(o, "nonce", nonce ? nonce->valuestring : "");
		cJSON_AddNumberToObject(o, "ts", (double)now_ms);
	}
	ig_decision_reply(out, id, o);
}
