/*
 * duty_ping.c: the ping duty, an end-to-end check of the device's path.
 *
 * Why this exists: a successful CONNECT proves the token, but not that the
 * cluster head is consuming requests and can reach this device's inbox. A
 * ping with a fresh random nonce, answered by a pong carrying the same
 * nonce, proves the whole round trip (publish ACL, plugin, inbox ACL) and
 * cannot be satisfied by a stale retained or replayed message.
 */
#include "duties.h"

#include <cJSON.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static void ping_on_connect(ig_agent *a, void *state)
{
	ig_ping_state *p = state;
	uint8_t raw[16];
	char request[96];

	randombytes_buf(raw, sizeof raw);
	ig_hex_encode(p->nonce, raw, sizeof raw);
	int n = snprintf(request, sizeof request, "{\"type\":\"ping\",\"nonce\":\"%s\"}", p->nonce);
	if (n < 0 || (size_t)n >= sizeof request || ig_agent_request(a, request, (size_t)n) != IG_OK) {
		p->nonce[0] = '\0';
		return;
	}
	p->sent_us = ig_mono_us();
	ig_log(IG_LOG_INFO, "ping sent (nonce %s)", p->nonce);
}

static bool ping_on_inbox(ig_agent *a, void *state, const char *type, const cJSON *msg)
{
	ig_ping_state *p = state;
	(void)a;
	if (strcmp(type, "pong") != 0)
		return false;
	const cJSON *nonce = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	if (!p->nonce[0] || !cJSON_IsString(nonce) || strcmp(nonce->valuestring, p->nonce) != 0) {
		ig_log(IG_LOG_WARN, "pong ignored: its nonce does not match the outstanding ping");
		return true;
	}
	uint64_t rtt_us = ig_mono_us() - p->sent_us;
	p->pongs++;
	ig_log(IG_LOG_INFO, "pong received: nonce %s matches, round trip %.1f ms", p->nonce,
	       (double)rtt_us / 1000.0);
	p->nonce[0] = '\0';
	return true;
}

const ig_duty_ops ig_duty_ping = {
	.name = "ping",
	.on_connect = ping_on_connect,
	.on_inbox = ping_on_inbox,
};
