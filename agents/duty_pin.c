/*
 * duty_pin.c: knowing, and keeping, the cluster head's public key.
 *
 * Why this exists: entropy is sealed to the cluster head and session keys
 * arrive in boxes only the cluster head can make, both under its key. A
 * device that learnt that key from whoever answered last could be fed keys
 * by an impostor broker, so the key is pinned once (from the join welcome,
 * or trusted on first use from the retained ledger head, whose signed
 * checkpoint must verify under it), kept in FILE.ch, and every later head
 * must agree with it. The shared key those boxes open with is derived here
 * too, once per pinned key, for every duty that receives them.
 */
#include "duties.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_checkpoint.h"
#include "ig_durable.h"

#define PIN_SUFFIX ".ch"
#define PIN_LINE_LEN (2 * IG_PK_BYTES + 1)

int ig_pin_read(const char *path, uint8_t pk[IG_PK_BYTES], ig_error *err)
{
	char buf[PIN_LINE_LEN + 8];
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return ig_error_set(err, errno == ENOENT ? IG_ERR_NOTFOUND : IG_ERR_IO, "cannot read %s: %s", path,
		                    strerror(errno));
	ssize_t n = read(fd, buf, sizeof buf - 1);
	int saved = errno;
	close(fd);
	if (n < 0)
		return ig_error_set(err, IG_ERR_IO, "cannot read %s: %s", path, strerror(saved));
	size_t len = (size_t)n;
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
		len--;
	if (len != 2 * IG_PK_BYTES || ig_hex_decode(pk, IG_PK_BYTES, buf, len) != IG_OK)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "%s does not hold a 64-hex-digit cluster-head public key; delete it to re-pin the key",
		                    path);
	return IG_OK;
}

int ig_pin_init(ig_pin_state *p, const char *key_path, ig_error *err)
{
	memset(p, 0, sizeof *p);
	int n = snprintf(p->path, sizeof p->path, "%s%s", key_path, PIN_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof p->path)
		return ig_error_set(err, IG_ERR_RANGE, "key file path %s is too long", key_path);
	int rc = ig_pin_read(p->path, p->pk, err);
	if (rc == IG_ERR_NOTFOUND)
		return IG_OK;
	if (rc != IG_OK)
		return rc;
	p->known = true;
	return IG_OK;
}

int ig_pin_store(ig_pin_state *p, const uint8_t pk[IG_PK_BYTES], ig_error *err)
{
	char line[PIN_LINE_LEN + 1];
	ig_hex_encode(line, pk, IG_PK_BYTES);
	line[2 * IG_PK_BYTES] = '\n';
	line[PIN_LINE_LEN] = '\0';
	int rc = ig_durable_replace(p->path, line, PIN_LINE_LEN, "pinned cluster-head key", err);
	if (rc != IG_OK)
		return rc;
	memcpy(p->pk, pk, IG_PK_BYTES);
	p->known = true;
	return IG_OK;
}

int ig_pin_from_head(ig_pin_state *p, const char *cluster, const uint8_t *payload, size_t len, ig_error *err)
{
	char origin[IG_CLUSTER_MAX + 16];
	uint8_t pk[IG_PK_BYTES];
	ig_checkpoint cp;
	int rc = IG_OK;

	cJSON *head = cJSON_ParseWithLength((const char *)payload, len);
	const cJSON *pk_hex = cJSON_GetObjectItemCaseSensitive(head, "ch_pubkey");
	const cJSON *note = cJSON_GetObjectItemCaseSensitive(head, "checkpoint");
	if (!cJSON_IsString(pk_hex) || !cJSON_IsString(note) ||
	    ig_hex_decode(pk, sizeof pk, pk_hex->valuestring, strlen(pk_hex->valuestring)) != IG_OK) {
		rc = ig_error_set(err, IG_ERR_INVAL, "ledger head lacks a valid \"ch_pubkey\" or \"checkpoint\"");
		goto out;
	}
	if (ig_checkpoint_origin(origin, sizeof origin, cluster) < 0) {
		rc = ig_error_set(err, IG_ERR_INVAL, "cannot form the checkpoint origin for cluster %s", cluster);
		goto out;
	}
	rc = ig_checkpoint_verify(note->valuestring, strlen(note->valuestring), origin, pk, &cp, err);
	if (rc != IG_OK) {
		ig_error_prefix(err, "ledger head checkpoint does not verify under its own ch_pubkey: ");
		goto out;
	}
	if (p->known) {
		if (sodium_memcmp(pk, p->pk, sizeof pk) != 0)
			rc = ig_error_set(err, IG_ERR_CRYPTO,
			                  "ledger head names cluster-head key %.16s..., not the pinned key in %s: not "
			                  "trusting it (if the cluster was re-initialised on purpose, delete %s)",
			                  pk_hex->valuestring, p->path, p->path);
		goto out;
	}
	rc = ig_pin_store(p, pk, err);
out:
	cJSON_Delete(head);
	return rc;
}

bool ig_pin_trusted(const ig_pin_state *p) { return p->known && !p->refused; }

const char *ig_pin_untrusted_why(const ig_pin_state *p, char *out, size_t cap)
{
	if (p->refused)
		snprintf(out, cap, "this cluster head's log was refused (see %s)", p->refused_path);
	else if (!p->known)
		snprintf(out, cap, "no cluster-head key pinned (no %s, no ledger head seen)", p->path);
	else
		snprintf(out, cap, "the cluster head is trusted");
	return out;
}

/* ---- the duty ------------------------------------------------------------- */

static void head_topic(char *out, size_t cap, const ig_agent *a)
{
	snprintf(out, cap, "iotguard/%s/ledger/head", ig_agent_cluster(a));
}

static void pin_on_connect(ig_agent *a, void *state)
{
	char topic[IG_CLUSTER_MAX + 32];
	(void)state;
	head_topic(topic, sizeof topic, a);
	ig_agent_subscribe(a, topic, 1);
}

static bool pin_on_message(ig_agent *a, void *state, const char *topic, const uint8_t *payload, size_t len)
{
	ig_pin_state *p = state;
	char want[IG_CLUSTER_MAX + 32];
	ig_error err = {0};
	head_topic(want, sizeof want, a);
	if (strcmp(topic, want) != 0)
		return false;
	bool was_known = p->known;
	int rc = ig_pin_from_head(p, ig_agent_cluster(a), payload, len, &err);
	if (rc == IG_OK && !was_known) {
		char hex[2 * IG_PK_BYTES + 1];
		ig_hex_encode(hex, p->pk, sizeof p->pk);
		ig_log(IG_LOG_INFO, "pinned cluster-head key %s from %s (trust on first use); saved to %s", hex, topic,
		       p->path);
	} else if (rc == IG_OK) {
		ig_log(IG_LOG_DEBUG, "ledger head agrees with the pinned cluster-head key");
		p->mismatch_logged = false;
	} else if (rc == IG_ERR_CRYPTO && p->known) {
		if (!p->mismatch_logged)
			ig_log(IG_LOG_ERR, "%s", err.msg);
		p->mismatch_logged = true;
	} else {
		ig_log(IG_LOG_WARN, "%s", err.msg);
	}
	return true;
}

const ig_duty_ops ig_duty_pin = {
	.name = "pin",
	.on_connect = pin_on_connect,
	.on_message = pin_on_message,
};

/* ---- the shared key with the pinned cluster head ------------------------- */

struct box_ctx {
	ig_box_key *bk;
	const uint8_t *ch_pk;
};

static int derive_box_key(void *ctx, const uint8_t sk[IG_SK_BYTES])
{
	struct box_ctx *c = ctx;
	return ig_keybox_key_for_ch(c->bk, sk, c->ch_pk);
}

bool ig_ch_box_ensure(ig_agent *a, ig_ch_box *b, const ig_pin_state *pin)
{
	if (!ig_pin_trusted(pin))
		return false;
	if (b->have && sodium_memcmp(b->for_pk, pin->pk, IG_PK_BYTES) == 0)
		return true;
	struct box_ctx c = {.bk = &b->bk, .ch_pk = pin->pk};
	if (ig_agent_with_key(a, derive_box_key, &c) != IG_OK) {
		ig_log(IG_LOG_ERR, "cannot derive the box key for the pinned cluster-head key");
		b->have = false;
		return false;
	}
	memcpy(b->for_pk, pin->pk, IG_PK_BYTES);
	b->have = true;
	return true;
}

void ig_ch_box_wipe(ig_ch_box *b) { sodium_memzero(b, sizeof *b); }
