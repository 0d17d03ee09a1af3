/*
 * duty_custody.c: the device as a custody holder of the cluster head's key.
 *
 * Why this exists: the cluster head keeps its key only sealed under a
 * custody secret S, split k-of-n among devices (docs/PROTOCOL.md,
 * "Custody: the holder"). A holder is what makes that work or fail: it must
 * check every share it is dealt against the public commitments before it
 * says yes (a holder that acknowledges a bad share leaves the key
 * unrecoverable without anyone knowing), keep it across restarts and crashes
 * (so an acknowledgement is sent only once KEY.shares holds the share),
 * forget older epochs once a newer one is active (so a stolen old disk
 * cannot collect them), and hand its share only to the requester named in
 * a request, boxed so that only that requester can open it and so that the
 * box proves which holder sent it. Shares come only from the pinned,
 * trusted cluster head, and no share ever reaches a log line. The holder
 * also reports the device's power, which the cluster head weighs when it
 * chooses holders.
 */
#include "duties.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_durable.h"
#include "ig_json.h"
#include "ig_vss.h"

#define SHARES_SUFFIX ".shares"
#define STORE_WHAT "custody share store"
#define ADMINS_SUFFIX ".custody-admins"
#define ADMINS_WHAT "custody admin lists"
#define ADMINS_FILE_MAX (IG_CUSTODY_HELD_MAX * (IG_CUSTODY_ADMINS_MAX * 67 + 256) + 16)
#define RETRY_WRITE_US 10000000u
#define NONCE_HEX 24                     /* box nonce, hex */
#define BOX_B64_MAX 160                  /* base64 of the largest box (95 bytes) and its NUL */
#define EPOCHS_TEXT_MAX (IG_CUSTODY_HELD_MAX * 24 + 8)

/* ---- helpers ------------------------------------------------------------- */

static bool for_pin(const ig_custody_state *c, const ig_custody_held *h)
{
	return c->pin->known && memcmp(h->ch_pk, c->pin->pk, IG_PK_BYTES) == 0;
}

/* The active entry for the pinned cluster head (at most one: activation
 * wipes every other epoch). */
static ig_custody_held *find_active(ig_custody_state *c)
{
	for (size_t i = 0; i < c->count; i++)
		if (c->held[i].active && for_pin(c, &c->held[i]))
			return &c->held[i];
	return NULL;
}

static ig_custody_held *find_epoch(ig_custody_state *c, uint64_t epoch)
{
	for (size_t i = 0; i < c->count; i++)
		if (c->held[i].epoch == epoch && for_pin(c, &c->held[i]))
			return &c->held[i];
	return NULL;
}

/* "3, 4" for log lines (epoch numbers are not secret). */
static const char *epochs_text(char *out, size_t cap, const ig_custody_held *h, size_t count)
{
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < count && n < cap; i++) {
		int w = snprintf(out + n, cap - n, "%s%" PRIu64, i ? ", " : "", h[i].epoch);
		if (w < 0)
			break;
		n += (size_t)w;
	}
	return out;
}

static void wipe_entries(ig_custody_held *h, size_t count)
{
	sodium_memzero(h, count * sizeof *h);
}

static void new_nonce(char out[20])
{
	uint8_t r[6];
	char hex[13];
	randombytes_buf(r, sizeof r);
	ig_hex_encode(hex, r, sizeof r);
	snprintf(out, 20, "cus-%s", hex);
}

/* Prints obj (then deletes it) into out: the length, or IG_ERR_RANGE. */
static int print_reply(char *out, size_t cap, cJSON *obj)
{
	char *text = obj ? cJSON_PrintUnformatted(obj) : NULL;
	cJSON_Delete(obj);
	if (!text)
		return IG_ERR_NOMEM;
	size_t n = strlen(text);
	int rc = n < cap && n <= INT32_MAX ? (int)n : IG_ERR_RANGE;
	if (rc > 0)
		memcpy(out, text, n + 1);
	cJSON_free(text);
	return rc;
}

/* {"type":T,"nonce":..,"epoch":E,"index":I} with optional "error" and "message". */
static cJSON *reply_base(const char *type, uint64_t epoch, unsigned index)
{
	char nonce[20];
	cJSON *o = cJSON_CreateObject();
	new_nonce(nonce);
	if (!o || !cJSON_AddStringToObject(o, "type", type) || !cJSON_AddStringToObject(o, "nonce", nonce) ||
	    !cJSON_AddNumberToObject(o, "epoch", (double)epoch) || !cJSON_AddNumberToObject(o, "index", (double)index)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

static cJSON *with_error(cJSON *o, const char *code, const char *message)
{
	if (o && (!cJSON_AddStringToObject(o, "error", code) || !cJSON_AddStringToObject(o, "message", message))) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Why the pinned cluster head is not trusted, in words for its own ears
 * (the local files are named in the pin and log duties' own lines). */
static const char *untrusted_why(const ig_pin_state *pin)
{
	return pin->refused ? "this device does not trust the cluster head: its log was refused by this device"
	                    : "this device does not trust the cluster head: no cluster-head key pinned";
}

static bool hex_field(uint8_t *out, size_t len, const cJSON *msg, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, name);
	return cJSON_IsString(v) && ig_hex_decode(out, len, v->valuestring, strlen(v->valuestring)) == IG_OK;
}

static bool b64_field(uint8_t *out, size_t want, const cJSON *msg, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, name);
	size_t n = 0;
	return cJSON_IsString(v) &&
	       sodium_base642bin(out, want, v->valuestring, strlen(v->valuestring), NULL, &n, NULL,
	                         sodium_base64_VARIANT_ORIGINAL) == 0 &&
	       n == want;
}

/* ---- the share store (KEY.shares) ------------------------------------------ */

struct store_ctx {
	ig_custody_held *h;
	size_t count;
	size_t *out_count;
	uint8_t *buf;
	size_t cap;
	size_t *len;
	const char *id;
	ig_error *err;
};

static int encode_fn(void *ctx, const uint8_t sk[IG_SK_BYTES])
{
	struct store_ctx *s = ctx;
	return ig_custody_store_encode(s->buf, s->cap, s->len, s->h, s->count, sk, s->id);
}

static int decode_fn(void *ctx, const uint8_t sk[IG_SK_BYTES])
{
	struct store_ctx *s = ctx;
	return ig_custody_store_decode(s->h, IG_CUSTODY_HELD_MAX, s->out_count, s->buf, *s->len, sk, s->id, s->err);
}

/* Encrypts h[0..count) and replaces KEY.shares with it, durably. */
static int store_write(ig_custody_state *c, ig_agent *a, ig_custody_held *h, size_t count, ig_error *err)
{
	size_t len = 0;
	uint8_t *buf = malloc(IG_CUSTODY_STORE_MAX);
	if (!buf)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the %s", STORE_WHAT);
	struct store_ctx s = {.h = h, .count = count, .buf = buf, .cap = IG_CUSTODY_STORE_MAX, .len = &len,
	                      .id = ig_agent_id(a)};
	int rc = ig_agent_with_key(a, encode_fn, &s);
	if (rc != IG_OK)
		ig_error_set(err, rc, "cannot encrypt the %s %s (error %d)", STORE_WHAT, c->path, rc);
	else
		rc = ig_durable_replace(c->path, buf, len, STORE_WHAT, err);
	sodium_memzero(buf, IG_CUSTODY_STORE_MAX);
	free(buf);
	return rc;
}

/* What a decoded store must look like beyond its AEAD: sane numbers, and at
 * most one active epoch per cluster head. */
static bool store_sane(const ig_custody_held *h, size_t count)
{
	for (size_t i = 0; i < count; i++) {
		if (h[i].epoch < 1 || h[i].k < 2 || h[i].n < h[i].k || h[i].index < 1 || h[i].index > h[i].n)
			return false;
		for (size_t j = 0; j < i; j++)
			if (!memcmp(h[i].ch_pk, h[j].ch_pk, IG_PK_BYTES) &&
			    (h[i].epoch == h[j].epoch || (h[i].active && h[j].active)))
				return false;
	}
	return true;
}

static int store_load(ig_custody_state *c, ig_agent *a, ig_error *err)
{
	static const char fix[] = "move it aside to start without shares (the cluster head then deals its next "
	                          "epoch to other holders), or restore this device's own copy";
	struct stat st;
	if (lstat(c->path, &st) != 0) {
		if (errno == ENOENT)
			return IG_OK;
		return ig_error_set(err, IG_ERR_IO, "cannot read the %s %s: %s", STORE_WHAT, c->path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return ig_error_set(err, IG_ERR_CORRUPT, "the %s %s is not a regular file: %s", STORE_WHAT, c->path, fix);
	if (st.st_mode & 077)
		return ig_error_set(err, IG_ERR_INVAL, "the %s %s is readable by group or others: chmod 600 %s", STORE_WHAT,
		                    c->path, c->path);
	size_t len = 0, count = 0;
	char *buf = malloc(IG_CUSTODY_STORE_MAX + 1);
	if (!buf)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the %s", STORE_WHAT);
	int rc = ig_durable_read(buf, IG_CUSTODY_STORE_MAX + 1, &len, c->path, STORE_WHAT, err);
	if (rc == IG_ERR_RANGE) {
		ig_error_set(err, IG_ERR_CORRUPT, "the %s %s is damaged (longer than any store): %s", STORE_WHAT, c->path,
		             fix);
	} else if (rc == IG_OK) {
		ig_error derr = {0};
		struct store_ctx s = {.h = c->held, .out_count = &count, .buf = (uint8_t *)buf, .len = &len,
		                      .id = ig_agent_id(a), .err = &derr};
		rc = ig_agent_with_key(a, decode_fn, &s);
		if (rc == IG_OK && !store_sane(c->held, count))
			rc = ig_error_set(&derr, IG_ERR_CORRUPT, "its entries contradict each other");
		if (rc != IG_OK) {
			wipe_entries(c->held, IG_CUSTODY_HELD_MAX);
			count = 0;
			rc = ig_error_set(err, IG_ERR_CORRUPT,
			                  "the %s %s is damaged or not this identity's (%s): %s", STORE_WHAT, c->path,
			                  derr.msg[0] ? derr.msg : "it does not decrypt with this key", fix);
		}
	}
	sodium_memzero(buf, IG_CUSTODY_STORE_MAX + 1);
	free(buf);
	c->count = count;
	return rc;
}

static int admins_load(ig_custody_state *c, ig_error *err);

int ig_custody_duty_init(ig_custody_state *c, ig_agent *a, const ig_pin_state *pin, const char *key_path,
                         const char *battery_file, ig_error *err)
{
	memset(c, 0, sizeof *c);
	c->pin = pin;
	int n = snprintf(c->path, sizeof c->path, "%s%s", key_path, SHARES_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof c->path)
		return ig_error_set(err, IG_ERR_RANGE, "key file path %s is too long", key_path);
	if (battery_file) {
		n = snprintf(c->battery_file, sizeof c->battery_file, "%s", battery_file);
		if (n < 0 || (size_t)n >= sizeof c->battery_file)
			return ig_error_set(err, IG_ERR_RANGE, "--battery-file path %s is too long", battery_file);
	}
	snprintf(c->power_dir, sizeof c->power_dir, "%s", IG_CUSTODY_POWER_DIR);
	n = snprintf(c->admins_path, sizeof c->admins_path, "%s%s", key_path, ADMINS_SUFFIX);
	if (n < 0 || (size_t)n >= sizeof c->admins_path)
		return ig_error_set(err, IG_ERR_RANGE, "key file path %s is too long", key_path);
	int rc = store_load(c, a, err);
	if (rc == IG_OK)
		rc = admins_load(c, err);
	if (rc != IG_OK)
		return rc;
	if (c->count) {
		char list[EPOCHS_TEXT_MAX];
		const ig_custody_held *act = NULL;
		for (size_t i = 0; i < c->count; i++)
			if (c->held[i].active && for_pin(c, &c->held[i]))
				act = &c->held[i];
		if (act)
			ig_log(IG_LOG_INFO, "custody: holding the shares of epochs %s (active: %" PRIu64 ") in %s",
			       epochs_text(list, sizeof list, c->held, c->count), act->epoch, c->path);
		else
			ig_log(IG_LOG_INFO, "custody: holding the shares of epochs %s (none active yet) in %s",
			       epochs_text(list, sizeof list, c->held, c->count), c->path);
	}
	return IG_OK;
}

/* ---- the signed admin lists (admin unseal mode) -------------------------------- */

static const ig_custody_admin_list *find_admins(const ig_custody_state *c, uint64_t epoch)
{
	for (size_t i = 0; i < c->n_admins; i++)
		if (c->admins[i].epoch == epoch)
			return &c->admins[i];
	return NULL;
}

/* {"epoch":E,"admins":[hex...],"sig":b64} into l. False when malformed. */
static bool admins_from_json(ig_custody_admin_list *l, const cJSON *o, const char *list_name, const char *sig_name)
{
	const cJSON *as = cJSON_GetObjectItemCaseSensitive(o, list_name);
	const cJSON *sig = cJSON_GetObjectItemCaseSensitive(o, sig_name);
	size_t len = 0, n = 0;
	if (!cJSON_IsArray(as) || !cJSON_IsString(sig) || cJSON_GetArraySize(as) < 1 ||
	    cJSON_GetArraySize(as) > IG_CUSTODY_ADMINS_MAX)
		return false;
	const cJSON *it;
	cJSON_ArrayForEach(it, as) {
		if (!cJSON_IsString(it) || ig_hex_decode(l->pks[n], 32, it->valuestring, strlen(it->valuestring)) != IG_OK)
			return false;
		n++;
	}
	l->count = n;
	return sodium_base642bin(l->sig, sizeof l->sig, sig->valuestring, strlen(sig->valuestring), NULL, &len, NULL,
	                         sodium_base64_VARIANT_ORIGINAL) == 0 && len == sizeof l->sig;
}

/* KEY.custody-admins: a JSON array, one {"epoch","admins","sig"} per held
 * epoch dealt in admin mode, written with ig_durable_replace (0600). */
static int admins_write(const ig_custody_state *c, const ig_custody_admin_list *l, size_t n, ig_error *err)
{
	cJSON *arr = cJSON_CreateArray();
	char hex[65], sig_b64[sodium_base64_ENCODED_LEN(IG_CUSTODY_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	for (size_t i = 0; arr && i < n; i++) {
		cJSON *o = cJSON_CreateObject(), *as = o ? cJSON_AddArrayToObject(o, "admins") : NULL;
		if (!as) {
			cJSON_Delete(o);
			cJSON_Delete(arr);
			arr = NULL;
			break;
		}
		cJSON_AddItemToArray(arr, o);
		cJSON_AddNumberToObject(o, "epoch", (double)l[i].epoch);
		for (size_t j = 0; j < l[i].count; j++) {
			ig_hex_encode(hex, l[i].pks[j], 32);
			cJSON_AddItemToArray(as, cJSON_CreateString(hex));
		}
		sodium_bin2base64(sig_b64, sizeof sig_b64, l[i].sig, sizeof l[i].sig, sodium_base64_VARIANT_ORIGINAL);
		cJSON_AddStringToObject(o, "sig", sig_b64);
	}
	char *text = arr ? cJSON_PrintUnformatted(arr) : NULL;
	cJSON_Delete(arr);
	if (!text)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the %s", ADMINS_WHAT);
	int rc = ig_durable_replace(c->admins_path, text, strlen(text), ADMINS_WHAT, err);
	free(text);
	return rc;
}

static int admins_load(ig_custody_state *c, ig_error *err)
{
	static const char fix[] = "restore this device's own copy, or move it aside together with the share store";
	struct stat st;
	c->n_admins = 0;
	if (lstat(c->admins_path, &st) != 0) {
		if (errno == ENOENT)
			return IG_OK;
		return ig_error_set(err, IG_ERR_IO, "cannot read the %s %s: %s", ADMINS_WHAT, c->admins_path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return ig_error_set(err, IG_ERR_CORRUPT, "the %s %s is not a regular file: %s", ADMINS_WHAT, c->admins_path,
		                    fix);
	if (st.st_mode & 022)
		return ig_error_set(err, IG_ERR_INVAL, "the %s %s is writable by group or others: chmod 600 %s",
		                    ADMINS_WHAT, c->admins_path, c->admins_path);
	char *buf = malloc(ADMINS_FILE_MAX + 1);
	size_t len = 0;
	if (!buf)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the %s", ADMINS_WHAT);
	int rc = ig_durable_read(buf, ADMINS_FILE_MAX + 1, &len, c->admins_path, ADMINS_WHAT, err);
	cJSON *arr = rc == IG_OK ? cJSON_ParseWithLength(buf, len) : NULL;
	free(buf);
	if (rc != IG_OK && rc != IG_ERR_RANGE)
		return rc;
	bool ok = cJSON_IsArray(arr) && cJSON_GetArraySize(arr) <= IG_CUSTODY_HELD_MAX;
	for (const cJSON *o = ok ? arr->child : NULL; o; o = o->next) {
		ig_custody_admin_list *l = &c->admins[c->n_admins];
		uint64_t epoch = 0;
		if (!cJSON_IsObject(o) || ig_json_uint_field(&epoch, o, "epoch", 1, IG_JSON_UINT_MAX) != IG_OK ||
		    !admins_from_json(l, o, "admins", "sig") || find_admins(c, epoch)) {
			ok = false;
			break;
		}
		l->epoch = epoch;
		c->n_admins++;
	}
	cJSON_Delete(arr);
	if (!ok) {
		c->n_admins = 0;
		return ig_error_set(err, IG_ERR_CORRUPT, "the %s %s is damaged: %s", ADMINS_WHAT, c->admins_path, fix);
	}
	return IG_OK;
}

/* The deal's "admins" and "admins_sig", checked with the pinned cluster-head
 * key, into c->cand_admins. NULL when good or absent (auto mode), else why
 * not. */
static const char *check_deal_admins(ig_custody_state *c, ig_agent *a, const cJSON *msg, uint64_t epoch)
{
	c->cand_has_admins = false;
	if (!cJSON_GetObjectItemCaseSensitive(msg, "admins") && !cJSON_GetObjectItemCaseSensitive(msg, "admins_sig"))
		return NULL;
	ig_custody_admin_list *l = &c->cand_admins;
	memset(l, 0, sizeof *l);
	if (!admins_from_json(l, msg, "admins", "admins_sig"))
		return "admins (1..64 keys of 64 hex digits) or admins_sig (base64 of 64 bytes) malformed";
	if (ig_custody_approve_admins_verify(l->sig, ig_agent_cluster(a), epoch, (const uint8_t(*)[32])l->pks, l->count,
	                             c->pin->pk) != IG_OK)
		return "the admin list is not signed by the pinned cluster-head key (or its keys are not in ascending order)";
	l->epoch = epoch;
	c->cand_has_admins = true;
	return NULL;
}

/* The admin lists of the epochs in held[0..count), plus extra when given;
 * written only when that changes the file. */
static int admins_keep(ig_custody_state *c, const ig_custody_held *held, size_t count,
                       const ig_custody_admin_list *extra, ig_error *err)
{
	ig_custody_admin_list next[IG_CUSTODY_HELD_MAX];
	size_t m = 0;
	for (size_t i = 0; i < c->n_admins; i++) {
		bool keep = false;
		for (size_t j = 0; j < count; j++)
			keep = keep || (held[j].epoch == c->admins[i].epoch && for_pin(c, &held[j]));
		if (keep && (!extra || extra->epoch != c->admins[i].epoch) && m < IG_CUSTODY_HELD_MAX)
			memcpy(&next[m++], &c->admins[i], sizeof next[0]);
	}
	if (extra && m < IG_CUSTODY_HELD_MAX)
		memcpy(&next[m++], extra, sizeof next[0]);
	bool same = m == c->n_admins;
	for (size_t i = 0; same && i < m; i++)
		same = memcmp(&next[i], &c->admins[i], sizeof next[i]) == 0;
	if (same)
		return IG_OK;
	int rc = admins_write(c, next, m, err);
	if (rc == IG_OK) {
		memcpy(c->admins, next, m * sizeof next[0]);
		c->n_admins = m;
	}
	return rc;
}

/* ---- custody_deal ------------------------------------------------------------ */

struct box_ctx {
	ig_box_key *bk;
	const uint8_t *ch_pk;
};

static int box_key_fn(void *ctx, const uint8_t sk[IG_SK_BYTES])
{
	struct box_ctx *b = ctx;
	return ig_keybox_key_for_ch(b->bk, sk, b->ch_pk);
}

static bool same_share(const ig_custody_held *x, const ig_custody_held *y)
{
	return x->index == y->index && x->k == y->k && x->n == y->n &&
	       sodium_memcmp(x->share, y->share, sizeof x->share) == 0 &&
	       memcmp(x->commitments, y->commitments, (size_t)x->k * 32u) == 0;
}

/* Checks the deal in msg and fills c->cand. NULL when it is good, else why
 * not (for the log and the refusal's message; never the share's value). */
static const char *check_deal(ig_custody_state *c, ig_agent *a, const cJSON *msg, uint64_t epoch, unsigned index)
{
	ig_custody_held *h = &c->cand;
	uint64_t k = 0, n = 0;
	uint8_t nonce[24], box[IG_CUSTODY_DEAL_BOX_BYTES], hash[32];
	ig_box_key bk;
	ig_custody_deal d;
	memset(h, 0, sizeof *h);
	if (!ig_pin_trusted(c->pin))
		return untrusted_why(c->pin);
	if (ig_json_uint_field(&k, msg, "k", 2, IG_VSS_MAX) != IG_OK ||
	    ig_json_uint_field(&n, msg, "n", k, IG_VSS_MAX) != IG_OK || index > n)
		return "k, n or index out of range (2 <= k <= n <= 255, 1 <= index <= n)";
	const cJSON *cm = cJSON_GetObjectItemCaseSensitive(msg, "commitments");
	if (!cJSON_IsArray(cm) || (uint64_t)cJSON_GetArraySize(cm) != k)
		return "commitments is not an array of k points";
	size_t j = 0;
	const cJSON *it;
	cJSON_ArrayForEach(it, cm) {
		if (!cJSON_IsString(it) || ig_hex_decode(h->commitments[j], 32, it->valuestring, strlen(it->valuestring)) != IG_OK)
			return "a commitment is not 64 hex digits";
		j++;
	}
	if (!hex_field(nonce, sizeof nonce, msg, "box_nonce") || !b64_field(box, sizeof box, msg, "box"))
		return "box_nonce or box malformed (48 hex digits; the base64 of a 95-byte box)";
	struct box_ctx b = {.bk = &bk, .ch_pk = c->pin->pk};
	if (ig_agent_with_key(a, box_key_fn, &b) != IG_OK)
		return "cannot derive the box key for the pinned cluster-head key";
	int rc = ig_custody_deal_open(&d, box, sizeof box, nonce, &bk);
	sodium_memzero(&bk, sizeof bk);
	if (rc != IG_OK)
		return "the box does not open with this device's key and the pinned cluster-head key";
	const char *bad = NULL;
	if (d.epoch != epoch || d.index != index || d.k != k || d.n != n) {
		bad = "the epoch, index, k or n in the box differ from the message";
	} else {
		ig_custody_commitments_hash(hash, epoch, (const uint8_t(*)[32])h->commitments, (unsigned)k);
		if (sodium_memcmp(hash, d.commitments_hash, sizeof hash) != 0)
			bad = "the commitments do not match the hash the cluster head boxed with the share";
		else if (ig_vss_verify(d.share, index, (const uint8_t(*)[32])h->commitments, (unsigned)k) != IG_OK)
			bad = "the share does not verify against the commitments (share*G != sum of index^j*C_j)";
	}
	if (!bad) {
		memcpy(h->ch_pk, c->pin->pk, IG_PK_BYTES);
		h->epoch = epoch;
		h->index = (uint8_t)index;
		h->k = (uint8_t)k;
		h->n = (uint8_t)n;
		h->active = false;
		memcpy(h->share, d.share, sizeof h->share);
	}
	sodium_memzero(&d, sizeof d);
	return bad;
}

/* Where the new share goes against what is held. NULL to store it; else why not. */
static const char *place_deal(ig_custody_state *c, char *why, size_t cap, bool *again)
{
	const ig_custody_held *h = &c->cand, *act = find_active(c), *same = find_epoch(c, h->epoch);
	*again = false;
	if (same && same_share(same, h)) {
		*again = true;   /* a deal sent again (its ack was lost): already durable */
		return NULL;
	}
	if (same && same->active) {
		snprintf(why, cap, "epoch %" PRIu64 " is already active here with another share", h->epoch);
		return why;
	}
	if (act && h->epoch < act->epoch) {
		snprintf(why, cap, "epoch %" PRIu64 " is older than the active epoch %" PRIu64, h->epoch, act->epoch);
		return why;
	}
	for (size_t i = 0; i < c->count; i++) {
		if (!c->held[i].active && for_pin(c, &c->held[i]) && c->held[i].epoch > h->epoch) {
			snprintf(why, cap, "epoch %" PRIu64 " is older than epoch %" PRIu64 " being dealt", h->epoch,
			         c->held[i].epoch);
			return why;
		}
	}
	return NULL;
}

/* c->next = the active share, the new one, then other cluster heads' shares
 * while there is room. Returns the count. */
static size_t next_with_deal(ig_custody_state *c)
{
	size_t m = 0;
	char list[EPOCHS_TEXT_MAX];
	ig_custody_held *act = find_active(c);
	if (act)
		memcpy(&c->next[m++], act, sizeof *act);
	memcpy(&c->next[m++], &c->cand, sizeof c->cand);
	for (size_t i = 0; i < c->count; i++) {
		ig_custody_held *h = &c->held[i];
		if (h == act)
			continue;
		if (for_pin(c, h))
			ig_log(IG_LOG_INFO, "custody: the share of epoch %" PRIu64 ", which never became active, is replaced by "
			                    "epoch %" PRIu64, h->epoch, c->cand.epoch);
		else if (m < IG_CUSTODY_HELD_MAX)
			memcpy(&c->next[m++], h, sizeof *h);
		else
			ig_log(IG_LOG_WARN, "custody: dropping the share of epoch %s held for another cluster-head key, to make "
			                    "room", epochs_text(list, sizeof list, h, 1));
	}
	return m;
}

static void commit_next(ig_custody_state *c, size_t m)
{
	wipe_entries(c->held, IG_CUSTODY_HELD_MAX);
	memcpy(c->held, c->next, m * sizeof c->next[0]);
	c->count = m;
	wipe_entries(c->next, IG_CUSTODY_HELD_MAX);
	c->dirty = false;
}

static int on_deal(ig_custody_state *c, ig_agent *a, const cJSON *msg, char *reply, size_t cap)
{
	uint64_t epoch = 0, index = 0;
	char why[160];
	ig_error err = {0};
	if (ig_json_uint_field(&epoch, msg, "epoch", 1, IG_JSON_UINT_MAX) != IG_OK ||
	    ig_json_uint_field(&index, msg, "index", 1, IG_VSS_MAX) != IG_OK) {
		ig_log(IG_LOG_WARN, "custody: a deal without a valid epoch (>= 1) and index (1..255) ignored");
		return 0;
	}
	const char *bad = check_deal(c, a, msg, epoch, (unsigned)index);
	bool again = false;
	if (!bad)
		bad = check_deal_admins(c, a, msg, epoch);
	if (!bad)
		bad = place_deal(c, why, sizeof why, &again);
	if (bad) {
		sodium_memzero(&c->cand, sizeof c->cand);
		c->refused++;
		ig_log(IG_LOG_WARN, "custody: refused the share %" PRIu64 " of epoch %" PRIu64 ": %s", index, epoch, bad);
		return print_reply(reply, cap, with_error(reply_base("custody_ack", epoch, (unsigned)index), "bad_share", bad));
	}
	if (again) {
		sodium_memzero(&c->cand, sizeof c->cand);
		ig_log(IG_LOG_INFO, "custody: share %" PRIu64 " of epoch %" PRIu64 " is already held; acknowledged again",
		       index, epoch);
		return print_reply(reply, cap, reply_base("custody_ack", epoch, (unsigned)index));
	}
	size_t m = next_with_deal(c);
	unsigned k = c->cand.k, n = c->cand.n;
	sodium_memzero(&c->cand, sizeof c->cand);
	/* The admin list first: a share on disk without the list it was dealt
	 * with would be released without approval. */
	if (admins_keep(c, c->next, m, c->cand_has_admins ? &c->cand_admins : NULL, &err) != IG_OK) {
		wipe_entries(c->next, IG_CUSTODY_HELD_MAX);
		ig_log(IG_LOG_ERR, "custody: cannot keep the admin list of epoch %" PRIu64 " (share %" PRIu64
		                   " not acknowledged): %s", epoch, index, err.msg);
		return 0;
	}
	if (store_write(c, a, c->next, m, &err) != IG_OK) {
		/* Not durable, so not acknowledged: the cluster head deals again or
		 * chooses another holder. */
		wipe_entries(c->next, IG_CUSTODY_HELD_MAX);
		ig_log(IG_LOG_ERR, "custody: cannot keep the share %" PRIu64 " of epoch %" PRIu64
		                   " (not acknowledged): %s", index, epoch, err.msg);
		return 0;
	}
	commit_next(c, m);
	c->dealt++;
	ig_log(IG_LOG_INFO, "custody: holding share %" PRIu64 " of epoch %" PRIu64 " (k=%u, n=%u) in %s", index, epoch, k,
	       n, c->path);
	return print_reply(reply, cap, reply_base("custody_ack", epoch, (unsigned)index));
}

/* ---- custody_active --------------------------------------------------------- */

static void write_held(ig_custody_state *c, ig_agent *a)
{
	ig_error err = {0};
	if (store_write(c, a, c->held, c->count, &err) == IG_OK) {
		if (c->dirty)
			ig_log(IG_LOG_INFO, "custody: %s is up to date again", c->path);
		c->dirty = false;
		return;
	}
	/* The old shares are gone from memory, so they are never released; the
	 * file still has them until a write succeeds. */
	ig_log(IG_LOG_ERR, "custody: cannot rewrite %s (retrying every %u s): %s", c->path, RETRY_WRITE_US / 1000000u,
	       err.msg);
	c->dirty = true;
	c->retry_us = ig_mono_us() + RETRY_WRITE_US;
}

static int on_active(ig_custody_state *c, ig_agent *a, const cJSON *msg)
{
	uint64_t epoch = 0;
	char wiped[EPOCHS_TEXT_MAX], why[PATH_MAX + 64];
	if (ig_json_uint_field(&epoch, msg, "epoch", 1, IG_JSON_UINT_MAX) != IG_OK) {
		ig_log(IG_LOG_WARN, "custody: custody_active without a valid epoch (>= 1) ignored");
		return 0;
	}
	if (!ig_pin_trusted(c->pin)) {
		ig_log(IG_LOG_WARN, "custody: custody_active for epoch %" PRIu64 " ignored: %s", epoch,
		       ig_pin_untrusted_why(c->pin, why, sizeof why));
		return 0;
	}
	ig_custody_held *act = find_active(c), *h = find_epoch(c, epoch);
	if (act && act->epoch > epoch) {
		ig_log(IG_LOG_INFO, "custody: custody_active for epoch %" PRIu64 " ignored: epoch %" PRIu64 " is active",
		       epoch, act->epoch);
		return 0;
	}
	size_t m = 0, w = 0, wn = 0;
	wiped[0] = '\0';
	for (size_t i = 0; i < c->count; i++) {
		ig_custody_held *e = &c->held[i];
		/* Every older epoch of this cluster head is void now, held or
		 * not; a newer one being dealt stays (an activation sent again
		 * must not cut a deal in progress short). */
		bool keep = e == h || !for_pin(c, e) || e->epoch > epoch;
		if (keep) {
			memcpy(&c->next[m++], e, sizeof *e);
			continue;
		}
		int n = snprintf(wiped + w, sizeof wiped - w, "%s%" PRIu64, wn ? ", " : "", e->epoch);
		if (n > 0 && (size_t)n < sizeof wiped - w)
			w += (size_t)n;
		wn++;
	}
	if (h && h->active && wn == 0) {
		wipe_entries(c->next, IG_CUSTODY_HELD_MAX);
		ig_log(IG_LOG_DEBUG, "custody: epoch %" PRIu64 " is active already", epoch);
		return 0;
	}
	if (!h && wn == 0) {
		wipe_entries(c->next, IG_CUSTODY_HELD_MAX);
		ig_log(IG_LOG_INFO, "custody: epoch %" PRIu64 " is active; this device holds no share of it", epoch);
		return 0;
	}
	unsigned index = h ? h->index : 0;
	for (size_t i = 0; i < m; i++)
		if (c->next[i].epoch == epoch && for_pin(c, &c->next[i]))
			c->next[i].active = true;
	commit_next(c, m);
	write_held(c, a);
	ig_error aerr = {0};
	if (admins_keep(c, c->held, c->count, NULL, &aerr) != IG_OK)
		ig_log(IG_LOG_WARN, "custody: cannot drop the admin lists of wiped epochs from %s (harmless: they guard no "
		                    "share): %s", c->admins_path, aerr.msg);
	if (index)
		ig_log(IG_LOG_INFO, "custody: epoch %" PRIu64 " is active (holding share %u)%s%s", epoch, index,
		       wn ? "; wiped the shares of epochs " : "", wiped);
	else
		ig_log(IG_LOG_INFO, "custody: epoch %" PRIu64 " is active; this device holds no share of it; wiped the "
		                    "shares of epochs %s", epoch, wiped);
	return 0;
}

/* ---- custody_request ---------------------------------------------------------- */

struct release_ctx {
	uint8_t *box;
	uint8_t *nonce;
	const ig_custody_release *r;
	const uint8_t *xpk;
};

static int release_fn(void *ctx, const uint8_t sk[IG_SK_BYTES])
{
	struct release_ctx *x = ctx;
	return ig_custody_release_seal(x->box, x->nonce, x->r, x->xpk, sk);
}

/* Admin unseal mode: the request's "approval" must be by an admin of the
 * epoch's signed list, over this request's own id and pk. NULL when it is,
 * else why not. */
static const char *check_approval(const ig_custody_admin_list *l, ig_agent *a, const cJSON *msg,
                                  const uint8_t request[16], const uint8_t xpk[32], char *why, size_t cap)
{
	const cJSON *ap = cJSON_GetObjectItemCaseSensitive(msg, "approval");
	uint8_t admin_pk[32], sig[IG_CUSTODY_SIG_BYTES], root[32];
	uint64_t size = 0;
	if (!cJSON_IsObject(ap)) {
		snprintf(why, cap, "epoch %" PRIu64 " was dealt in admin unseal mode and the request carries no admin "
		         "approval", l->epoch);
		return why;
	}
	if (!hex_field(admin_pk, sizeof admin_pk, ap, "admin_pk") || !b64_field(sig, sizeof sig, ap, "sig") ||
	    !b64_field(root, sizeof root, ap, "root") || ig_json_uint_field(&size, ap, "size", 0, IG_JSON_UINT_MAX) != IG_OK) {
		snprintf(why, cap, "the approval is malformed (admin_pk: 64 hex; sig: base64 of 64 bytes; size; root: "
		         "base64 of 32 bytes)");
		return why;
	}
	bool listed = false;
	for (size_t i = 0; i < l->count; i++)
		listed = listed || memcmp(l->pks[i], admin_pk, 32) == 0;
	if (!listed) {
		snprintf(why, cap, "the approving key is not in the admin list signed for epoch %" PRIu64, l->epoch);
		return why;
	}
	if (ig_custody_approve_verify(sig, ig_agent_cluster(a), request, xpk, size, root, admin_pk) != IG_OK) {
		snprintf(why, cap, "the approval's signature does not verify over this request's id and pk");
		return why;
	}
	return NULL;
}

static int on_request(ig_custody_state *c, ig_agent *a, const cJSON *msg, char *reply, size_t cap)
{
	uint64_t epoch = 0;
	uint8_t request[16], xpk[32], nonce[24], box[IG_CUSTODY_RELEASE_BOX_BYTES];
	char request_hex[33], why[200], nonce_hex[2 * sizeof nonce + 1], box_b64[BOX_B64_MAX];
	if (ig_json_uint_field(&epoch, msg, "epoch", 1, IG_JSON_UINT_MAX) != IG_OK ||
	    !hex_field(request, sizeof request, msg, "request") || !hex_field(xpk, sizeof xpk, msg, "pk")) {
		ig_log(IG_LOG_WARN, "custody: a share request without a valid epoch, request (32 hex) and pk (64 hex) "
		                    "ignored");
		return 0;
	}
	ig_hex_encode(request_hex, request, sizeof request);
	ig_custody_held *act = find_active(c), *h = find_epoch(c, epoch);
	const char *code = NULL;
	if (!ig_pin_trusted(c->pin)) {
		code = "no_share";
		snprintf(why, sizeof why, "%s", untrusted_why(c->pin));
	} else if (act && epoch < act->epoch) {
		code = "old_epoch";
		snprintf(why, sizeof why, "epoch %" PRIu64 " is older than the active epoch %" PRIu64, epoch, act->epoch);
	} else if (!h) {
		code = "no_share";
		snprintf(why, sizeof why, "this device holds no share of epoch %" PRIu64, epoch);
	} else if (find_admins(c, epoch) &&
	           check_approval(find_admins(c, epoch), a, msg, request, xpk, why, sizeof why)) {
		code = "not_approved";
	}
	if (!code) {
		ig_custody_release r = {.epoch = epoch, .index = h->index};
		memcpy(r.request, request, sizeof r.request);
		memcpy(r.share, h->share, sizeof r.share);
		struct release_ctx x = {.box = box, .nonce = nonce, .r = &r, .xpk = xpk};
		int rc = ig_agent_with_key(a, release_fn, &x);
		sodium_memzero(&r, sizeof r);
		if (rc != IG_OK) {
			ig_log(IG_LOG_WARN, "custody: cannot box the share of epoch %" PRIu64 " to the key of request %s "
			                    "(error %d): not an X25519 public key?", epoch, request_hex, rc);
			return 0;
		}
	}
	cJSON *o = reply_base("custody_share", epoch, code ? 0 : h->index);
	if (o && !cJSON_AddStringToObject(o, "request", request_hex)) {
		cJSON_Delete(o);
		o = NULL;
	}
	if (code) {
		c->refused++;
		ig_log(IG_LOG_INFO, "custody: no share for request %s (%s): %s", request_hex, code, why);
		cJSON_DeleteItemFromObjectCaseSensitive(o, "index");
		return print_reply(reply, cap, with_error(o, code, why));
	}
	ig_hex_encode(nonce_hex, nonce, sizeof nonce);
	sodium_bin2base64(box_b64, sizeof box_b64, box, sizeof box, sodium_base64_VARIANT_ORIGINAL);
	if (o && (!cJSON_AddStringToObject(o, "box_nonce", nonce_hex) || !cJSON_AddStringToObject(o, "box", box_b64))) {
		cJSON_Delete(o);
		o = NULL;
	}
	int n = print_reply(reply, cap, o);
	if (n > 0) {
		c->released++;
		ig_log(IG_LOG_INFO, "custody: released share of epoch %" PRIu64 " to request %s (index %u)", epoch,
		       request_hex, h->index);
	}
	return n;
}

int ig_custody_handle(ig_custody_state *c, ig_agent *a, const char *type, const cJSON *msg, char *reply, size_t cap)
{
	if (strcmp(type, "custody_deal") == 0)
		return on_deal(c, a, msg, reply, cap);
	if (strcmp(type, "custody_active") == 0)
		return on_active(c, a, msg);
	if (strcmp(type, "custody_request") == 0)
		return on_request(c, a, msg, reply, cap);
	return 0;
}

/* ---- power ------------------------------------------------------------------ */

static bool read_small(const char *path, char *buf, size_t cap, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	ssize_t n = read(fd, buf, cap - 1);
	close(fd);
	if (n < 0)
		return false;
	buf[n] = '\0';
	*len = (size_t)n;
	return true;
}

static const char *trim(const char *s, size_t len, size_t *out_len)
{
	while (len && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r'))
		s++, len--;
	while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\n' || s[len - 1] == '\r'))
		len--;
	*out_len = len;
	return s;
}

/* A whole number 0..100 in s[0..len), nothing else. */
static bool parse_percent(const char *s, size_t len, unsigned *out)
{
	unsigned v = 0;
	if (len == 0 || len > 3)
		return false;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10u + (unsigned)(s[i] - '0');
	}
	if (v > 100)
		return false;
	*out = v;
	return true;
}

int ig_battery_parse(ig_battery *b, const char *text, size_t len)
{
	size_t n = 0;
	const char *s = trim(text, len, &n);
	memset(b, 0, sizeof *b);
	if (n == 5 && memcmp(s, "mains", 5) == 0) {
		b->known = true;
		b->mains = true;
		return IG_OK;
	}
	if (!parse_percent(s, n, &b->percent))
		return IG_ERR_INVAL;
	b->known = true;
	b->has_percent = true;
	return IG_OK;
}

/* Reads <dir>/<name>/<file>, trimmed, into buf. */
static bool read_attr(const char *dir, const char *name, const char *file, char *buf, size_t cap, size_t *len)
{
	char path[PATH_MAX];
	size_t n = 0;
	int w = snprintf(path, sizeof path, "%s/%s/%s", dir, name, file);
	if (w < 0 || (size_t)w >= sizeof path || !read_small(path, buf, cap, &n))
		return false;
	const char *s = trim(buf, n, len);
	memmove(buf, s, *len);
	buf[*len] = '\0';
	return true;
}

int ig_battery_read(ig_battery *b, const char *battery_file, const char *power_dir)
{
	char buf[64];
	size_t len = 0;
	memset(b, 0, sizeof *b);
	if (battery_file && battery_file[0]) {
		if (!read_small(battery_file, buf, sizeof buf, &len))
			return errno == ENOENT ? IG_ERR_NOTFOUND : IG_ERR_IO;
		return ig_battery_parse(b, buf, len);
	}
	DIR *d = opendir(power_dir);
	if (!d)
		return IG_ERR_NOTFOUND;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		unsigned pct = 0;
		if (e->d_name[0] == '.' || !read_attr(power_dir, e->d_name, "type", buf, sizeof buf, &len))
			continue;
		if (strcmp(buf, "Mains") == 0) {
			if (read_attr(power_dir, e->d_name, "online", buf, sizeof buf, &len) && strcmp(buf, "1") == 0)
				b->mains = b->known = true;
		} else if (strcmp(buf, "Battery") == 0) {
			if (read_attr(power_dir, e->d_name, "present", buf, sizeof buf, &len) && strcmp(buf, "0") == 0)
				continue;
			if (!read_attr(power_dir, e->d_name, "capacity", buf, sizeof buf, &len) || !parse_percent(buf, len, &pct))
				continue;
			b->known = true;
			if (!b->has_percent || pct < b->percent)
				b->percent = pct;   /* the emptiest battery is the one that runs out */
			b->has_percent = true;
		}
	}
	closedir(d);
	return IG_OK;
}

/* ---- status ------------------------------------------------------------------- */

size_t ig_custody_status(const ig_custody_state *c, const ig_battery *b, char *out, size_t cap)
{
	size_t n = 0;
	int w;
	if (cap == 0)
		return 0;
	out[0] = '\0';
	if (b->known) {
		if (b->has_percent)
			w = snprintf(out, cap, ",\"battery\":{\"percent\":%u,\"mains\":%s}", b->percent,
			             b->mains ? "true" : "false");
		else
			w = snprintf(out, cap, ",\"battery\":{\"mains\":%s}", b->mains ? "true" : "false");
		if (w < 0 || (size_t)w >= cap)
			return cap;
		n = (size_t)w;
	}
	/* Epochs held for the pinned cluster head, ascending. */
	uint64_t epochs[IG_CUSTODY_HELD_MAX], active = 0;
	size_t m = 0;
	for (size_t i = 0; i < c->count; i++) {
		if (!for_pin(c, &c->held[i]))
			continue;
		size_t j = m++;
		for (; j > 0 && epochs[j - 1] > c->held[i].epoch; j--)
			epochs[j] = epochs[j - 1];
		epochs[j] = c->held[i].epoch;
		if (c->held[i].active)
			active = c->held[i].epoch;
	}
	if (m == 0)
		return n;
	w = snprintf(out + n, cap - n, ",\"custody\":{\"epochs\":[");
	for (size_t i = 0; w >= 0 && (size_t)w < cap - n && i < m; i++) {
		n += (size_t)w;
		w = snprintf(out + n, cap - n, "%s%" PRIu64, i ? "," : "", epochs[i]);
	}
	if (w >= 0 && (size_t)w < cap - n) {
		n += (size_t)w;
		w = active ? snprintf(out + n, cap - n, "],\"active\":%" PRIu64 "}", active) : snprintf(out + n, cap - n, "]}");
	}
	if (w < 0 || (size_t)w >= cap - n)
		return cap;
	return n + (size_t)w;
}

/* ---- the duty --------------------------------------------------------------- */

static bool custody_on_inbox(ig_agent *a, void *state, const char *type, const cJSON *msg)
{
	ig_custody_state *c = state;
	char reply[1024];   /* the largest answer (a custody_share) is about 330 bytes */
	if (strcmp(type, "custody_deal") != 0 && strcmp(type, "custody_active") != 0 &&
	    strcmp(type, "custody_request") != 0)
		return false;
	int n = ig_custody_handle(c, a, type, msg, reply, sizeof reply);
	if (n < 0)
		ig_log(IG_LOG_ERR, "custody: cannot build the answer to %s (error %d)", type, n);
	else if (n > 0 && ig_agent_request(a, reply, (size_t)n) != IG_OK)
		ig_log(IG_LOG_WARN, "custody: cannot send the answer to %s (the connection is down); the cluster head asks "
		                    "again", type);
	return true;
}

static void custody_on_tick(ig_agent *a, void *state, uint64_t now_us)
{
	ig_custody_state *c = state;
	if (c->dirty && now_us >= c->retry_us)
		write_held(c, a);
}

static void custody_on_stop(ig_agent *a, void *state)
{
	ig_custody_state *c = state;
	(void)a;
	if (c->dirty)
		ig_log(IG_LOG_ERR, "custody: stopping while %s still holds shares this device has wiped from memory; "
		                   "they are wiped from it at the next activation", c->path);
	wipe_entries(c->held, IG_CUSTODY_HELD_MAX);
	wipe_entries(c->next, IG_CUSTODY_HELD_MAX);
	sodium_memzero(&c->cand, sizeof c->cand);
	c->count = 0;
}

static size_t custody_status_fields(ig_agent *a, void *state, char *out, size_t cap)
{
	ig_custody_state *c = state;
	ig_battery b;
	(void)a;
	int rc = ig_battery_read(&b, c->battery_file, c->power_dir);
	if (c->battery_file[0] && rc != c->battery_problem) {
		if (rc == IG_ERR_NOTFOUND)
			ig_log(IG_LOG_WARN, "--battery-file %s does not exist; the status says nothing about power until it "
			                    "does", c->battery_file);
		else if (rc == IG_ERR_INVAL)
			ig_log(IG_LOG_WARN, "--battery-file %s holds neither \"mains\" nor a percentage 0..100; the status says "
			                    "nothing about power until it does", c->battery_file);
		else if (rc != IG_OK)
			ig_log(IG_LOG_WARN, "cannot read --battery-file %s (check its permissions); the status says nothing "
			                    "about power until it can", c->battery_file);
		else
			ig_log(IG_LOG_INFO, "--battery-file %s is readable again", c->battery_file);
		c->battery_problem = rc;
	}
	return ig_custody_status(c, &b, out, cap);
}

const ig_duty_ops ig_duty_custody = {
	.name = "custody",
	.on_inbox = custody_on_inbox,
	.on_tick = custody_on_tick,
	.on_stop = custody_on_stop,
	.status_fields = custody_status_fields,
};
