/* tests/fuzz/fuzz_custody_agent.c: fuzzes the holder's inbox handling
 * (ig_custody_handle, agents/duty_custody.c) of custody_deal,
 * custody_request and custody_active, through its public entry point on a
 * real, never connected agent, as tests/agents/test_agent_custody.c drives
 * it.
 *
 * Why this exists: these messages reach the device's inbox from whoever
 * controls the broker. The decoders are static and interleaved with the
 * checks, so the entry point is fuzzed with a fixed holder: the docs'
 * holder 2 (`dev-02`, its documented seed), pinned to the docs' cluster
 * head, holding deal A's share 2 of epoch 7, active (docs/PROTOCOL.md
 * "Custody test vectors"), reset before every input. Each input (JSON) is
 * handled as a deal, a request, an activation and a request again. Its
 * placeholders let the fuzzer past the crypto: "commitments":["<commitments>"]
 * become the commitments of a fixed k = 2, n = 3 deal, "box":"BOX" a deal
 * box (the message's epoch and index, that deal's share and hash) under the
 * documented box key, "pk":"PK" the documented requester key, "request":
 * "REQUEST" the documented request id. Invariants: every answer is a
 * custody_ack or custody_share naming the message's epoch, with a nonce; an
 * ack without error means the share verifies against the message's
 * commitments and KEY.shares holds it; a release opens for the requester
 * as holder 2's and carries the share held for that epoch; the store never
 * holds more than two entries or an entry the layout forbids, and the file
 * says what memory says whenever no write is pending; no log line carries
 * a share. */
#include <cJSON.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "duties.h"
#include "fuzz_custody_vectors.h"
#include "ig_custody.h"
#include "ig_json.h"
#include "ig_keybox.h"
#include "ig_keyfile.h"
#include "ig_vss.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define REPLY_MAX 2048

static uint8_t ch_pk[32], ch_sk[64], h_pk[32], h_sk[64], req_xsk[32], req_xpk[32], request[16];
static uint8_t a_share2[32], a_commit[3][32];
static uint8_t f_shares[3][32], f_commit[2][32];   /* the fixed deal the placeholders use */
static char dir[128], key_path[256], shares_path[300];
static ig_agent *agent;
static ig_pin_state pin;
static ig_custody_state cs;
static uint8_t *preset_file;
static size_t preset_len;

/* No log line may carry a share (hex, either case, of any share in play). */
static char share_hex[3 + 1][65];
static void log_sink(void *ctx, ig_log_level level, const char *msg)
{
	(void)ctx;
	(void)level;
	for (size_t i = 0; i < sizeof share_hex / sizeof share_hex[0]; i++)
		FUZZ_ASSERT(strstr(msg, share_hex[i]) == NULL);
}

/* libFuzzer ends a timed run with exit(): leave no key behind. */
static void cleanup(void)
{
	ig_agent_free(agent);
	unlink(shares_path);
	unlink(key_path);
	rmdir(dir);
}

static void setup(void)
{
	fuzz_seed_keypair(ch_pk, ch_sk, V_CH_SEED);
	fuzz_seed_keypair(h_pk, h_sk, V_HOLDER2_SEED);
	fuzz_unhex(req_xsk, 32, V_REQUESTER_XSK);
	fuzz_unhex(req_xpk, 32, V_REQUESTER_XPK);
	fuzz_unhex(request, 16, "ea69c76d04cef9f93db9ac49c8413ac2");
	fuzz_unhex(a_share2, 32, V_SHARE2);
	fuzz_unhex(a_commit[0], 32, V_COMMIT0);
	fuzz_unhex(a_commit[1], 32, V_COMMIT1);
	fuzz_unhex(a_commit[2], 32, V_COMMIT2);
	uint8_t coeffs[2][32] = {{0x21, 0x43, 0x65}, {0x87, 0xa9, 0xcb}};
	FUZZ_ASSERT(ig_vss_deal_coeffs(f_shares, f_commit, (const uint8_t(*)[32])coeffs, 2, 3) == IG_OK);
	ig_hex_encode(share_hex[0], a_share2, 32);
	for (int i = 0; i < 3; i++)
		ig_hex_encode(share_hex[i + 1], f_shares[i], 32);

	/* tmpfs when there is one: every good deal is written and fsync'd. */
	snprintf(dir, sizeof dir, "%s/fuzz-custody-agent.XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
	FUZZ_ASSERT(mkdtemp(dir));
	atexit(cleanup);
	snprintf(key_path, sizeof key_path, "%s/dev-02.key", dir);
	snprintf(shares_path, sizeof shares_path, "%s.shares", key_path);
	ig_error err;
	memset(&err, 0, sizeof err);
	FUZZ_ASSERT(ig_keyfile_write(key_path, h_sk, false, &err) == IG_OK);
	ig_agent_config cfg = {.host = "127.0.0.1", .port = 1, .cluster = "c1", .id = V_STORE_ID, .key_path = key_path,
	                       .heartbeat_s = 30, .ttl_s = 300};
	FUZZ_ASSERT(ig_agent_new(&agent, &cfg, &err) == IG_OK);
	memset(&pin, 0, sizeof pin);
	snprintf(pin.path, sizeof pin.path, "%s.ch", key_path);
	pin.known = true;
	memcpy(pin.pk, ch_pk, 32);

	/* The preset store: deal A's share 2 of epoch 7, active. */
	ig_custody_held *h = calloc(1, sizeof *h);
	FUZZ_ASSERT(h);
	memcpy(h->ch_pk, ch_pk, 32);
	h->epoch = 7;
	h->index = 2;
	h->k = 3;
	h->n = 5;
	h->active = true;
	memcpy(h->share, a_share2, 32);
	memcpy(h->commitments, a_commit, sizeof a_commit);
	preset_file = malloc(IG_CUSTODY_STORE_MAX);
	FUZZ_ASSERT(preset_file);
	FUZZ_ASSERT(ig_custody_store_encode(preset_file, IG_CUSTODY_STORE_MAX, &preset_len, h, 1, h_sk, V_STORE_ID) ==
	            IG_OK);
	free(h);
	ig_log_set(log_sink, NULL);
}

/* KEY.shares and the duty as they were before any input. */
static void reset(void)
{
	FILE *f = fopen(shares_path, "wb");
	FUZZ_ASSERT(f && fwrite(preset_file, 1, preset_len, f) == preset_len && fclose(f) == 0);
	FUZZ_ASSERT(chmod(shares_path, 0600) == 0);
	ig_error err;
	memset(&err, 0, sizeof err);
	FUZZ_ASSERT(ig_custody_duty_init(&cs, agent, &pin, key_path, NULL, &err) == IG_OK);
	FUZZ_ASSERT(cs.count == 1 && cs.held[0].epoch == 7 && cs.held[0].active);
}

static const ig_custody_held *held_epoch(uint64_t epoch)
{
	for (size_t i = 0; i < cs.count; i++)
		if (cs.held[i].epoch == epoch && memcmp(cs.held[i].ch_pk, ch_pk, 32) == 0)
			return &cs.held[i];
	return NULL;
}

/* Memory and KEY.shares agree (when no write is pending), and both are sane. */
static void check_store(void)
{
	FUZZ_ASSERT(cs.count <= IG_CUSTODY_HELD_MAX);
	int active = 0;
	for (size_t i = 0; i < cs.count; i++) {
		const ig_custody_held *h = &cs.held[i];
		FUZZ_ASSERT(h->epoch >= 1 && h->k >= 2 && h->n >= h->k && h->index >= 1 && h->index <= h->n);
		FUZZ_ASSERT(ig_vss_verify(h->share, h->index, (const uint8_t(*)[32])h->commitments, h->k) == IG_OK);
		active += h->active;
		for (size_t j = 0; j < i; j++)
			FUZZ_ASSERT(cs.held[j].epoch != h->epoch);
	}
	FUZZ_ASSERT(active <= 1);
	if (cs.dirty)
		return;
	static uint8_t buf[IG_CUSTODY_STORE_MAX + 1];
	static ig_custody_held disk[IG_CUSTODY_HELD_MAX];
	FILE *f = fopen(shares_path, "rb");
	FUZZ_ASSERT(f);
	size_t len = fread(buf, 1, sizeof buf, f);
	fclose(f);
	size_t count = 0;
	ig_error err;
	memset(&err, 0, sizeof err);
	FUZZ_ASSERT(ig_custody_store_decode(disk, IG_CUSTODY_HELD_MAX, &count, buf, len, h_sk, V_STORE_ID, &err) == IG_OK);
	FUZZ_ASSERT(count == cs.count);
	for (size_t i = 0; i < count; i++)
		FUZZ_ASSERT(disk[i].epoch == cs.held[i].epoch && disk[i].index == cs.held[i].index &&
		            disk[i].active == cs.held[i].active && memcmp(disk[i].share, cs.held[i].share, 32) == 0);
	sodium_memzero(disk, sizeof disk);
}

static void set_item(cJSON *o, const char *name, cJSON *v)
{
	FUZZ_ASSERT(v);
	if (!cJSON_ReplaceItemInObjectCaseSensitive(o, name, v))
		cJSON_Delete(v);
}

static bool is_str(const cJSON *o, const char *name, const char *value)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) && strcmp(v->valuestring, value) == 0;
}

/* Fills the placeholders of a copy of msg. */
static void fill(cJSON *m)
{
	char hex[65];
	const cJSON *cm = cJSON_GetObjectItemCaseSensitive(m, "commitments");
	if (cJSON_IsArray(cm) && cJSON_GetArraySize(cm) == 1 && cJSON_IsString(cJSON_GetArrayItem(cm, 0)) &&
	    strcmp(cJSON_GetArrayItem(cm, 0)->valuestring, "<commitments>") == 0) {
		cJSON *arr = cJSON_CreateArray();
		FUZZ_ASSERT(arr);
		for (int j = 0; j < 2; j++) {
			ig_hex_encode(hex, f_commit[j], 32);
			cJSON_AddItemToArray(arr, cJSON_CreateString(hex));
		}
		set_item(m, "commitments", arr);
	}
	if (is_str(m, "box", "BOX")) {
		uint64_t epoch = 1, index = 1;
		if (ig_json_uint_field(&epoch, m, "epoch", 1, IG_JSON_UINT_MAX) != IG_OK)
			epoch = 1;
		if (ig_json_uint_field(&index, m, "index", 1, 3) != IG_OK)
			index = 1;
		ig_custody_deal d = {.epoch = epoch, .index = (uint8_t)index, .k = 2, .n = 3};
		memcpy(d.share, f_shares[index - 1], 32);
		ig_custody_commitments_hash(d.commitments_hash, epoch, (const uint8_t(*)[32])f_commit, 2);
		ig_box_key bk;
		FUZZ_ASSERT(ig_keybox_key_for_device(&bk, ch_sk, h_pk) == IG_OK);
		uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
		FUZZ_ASSERT(ig_custody_deal_seal(box, nonce, &d, &bk) == IG_OK);
		char b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)], nhex[49];
		sodium_bin2base64(b64, sizeof b64, box, sizeof box, sodium_base64_VARIANT_ORIGINAL);
		ig_hex_encode(nhex, nonce, sizeof nonce);
		set_item(m, "box", cJSON_CreateString(b64));
		if (cJSON_GetObjectItemCaseSensitive(m, "box_nonce"))
			set_item(m, "box_nonce", cJSON_CreateString(nhex));
	}
	if (is_str(m, "pk", "PK")) {
		ig_hex_encode(hex, req_xpk, 32);
		set_item(m, "pk", cJSON_CreateString(hex));
	}
	if (is_str(m, "request", "REQUEST")) {
		ig_hex_encode(hex, request, 16);
		set_item(m, "request", cJSON_CreateString(hex));
	}
}

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One message as `type`; checks the answer against the store. */
static void handle(const char *type, const cJSON *m)
{
	static char reply[REPLY_MAX];
	uint64_t epoch = 0;
	bool has_epoch = ig_json_uint_field(&epoch, m, "epoch", 1, IG_JSON_UINT_MAX) == IG_OK;
	int n = ig_custody_handle(&cs, agent, type, m, reply, sizeof reply);
	FUZZ_ASSERT(n >= 0);
	check_store();
	if (n == 0)
		return;
	FUZZ_ASSERT(strcmp(type, "custody_active") != 0 && has_epoch && (size_t)n == strlen(reply));
	cJSON *r = cJSON_Parse(reply);
	FUZZ_ASSERT(r);
	uint64_t r_epoch = 0, r_index = 0;
	FUZZ_ASSERT(ig_json_uint_field(&r_epoch, r, "epoch", 1, IG_JSON_UINT_MAX) == IG_OK && r_epoch == epoch);
	FUZZ_ASSERT(str(r, "nonce") && strlen(str(r, "nonce")) > 0);
	const char *error = str(r, "error");
	if (strcmp(type, "custody_deal") == 0) {
		FUZZ_ASSERT(str(r, "type") && strcmp(str(r, "type"), "custody_ack") == 0);
		FUZZ_ASSERT(ig_json_uint_field(&r_index, r, "index", 1, IG_VSS_MAX) == IG_OK);
		if (error) {
			FUZZ_ASSERT(strcmp(error, "bad_share") == 0 && str(r, "message"));
		} else {
			/* Acknowledged: held, durable (check_store compared the file). */
			const ig_custody_held *h = held_epoch(epoch);
			FUZZ_ASSERT(h && h->index == r_index);
			FUZZ_ASSERT(!cs.dirty);
		}
	} else {
		FUZZ_ASSERT(str(r, "type") && strcmp(str(r, "type"), "custody_share") == 0);
		const char *req_hex = str(r, "request");
		uint8_t req_id[16];
		FUZZ_ASSERT(req_hex && ig_hex_decode(req_id, 16, req_hex, strlen(req_hex)) == IG_OK);
		if (error) {
			FUZZ_ASSERT((strcmp(error, "no_share") == 0 && !held_epoch(epoch)) || strcmp(error, "old_epoch") == 0);
		} else {
			/* A release: holder 2's box to the key in the request. */
			const ig_custody_held *h = held_epoch(epoch);
			FUZZ_ASSERT(h);
			const char *pk_hex = str(m, "pk"), *nonce_hex = str(r, "box_nonce"), *b64 = str(r, "box");
			uint8_t pk[32], nonce[24], box[IG_CUSTODY_RELEASE_BOX_BYTES];
			size_t blen = 0;
			FUZZ_ASSERT(pk_hex && nonce_hex && b64 && ig_hex_decode(nonce, 24, nonce_hex, strlen(nonce_hex)) == IG_OK);
			FUZZ_ASSERT(sodium_base642bin(box, sizeof box, b64, strlen(b64), NULL, &blen, NULL,
			                              sodium_base64_VARIANT_ORIGINAL) == 0 && blen == sizeof box);
			FUZZ_ASSERT(ig_hex_decode(pk, 32, pk_hex, strlen(pk_hex)) == IG_OK);
			if (memcmp(pk, req_xpk, 32) == 0) {
				ig_custody_release rel;
				FUZZ_ASSERT(ig_custody_release_open(&rel, box, blen, nonce, h_pk, req_xsk) == IG_OK);
				FUZZ_ASSERT(rel.epoch == epoch && rel.index == h->index && memcmp(rel.share, h->share, 32) == 0 &&
				            memcmp(rel.request, req_id, 16) == 0);
				sodium_memzero(&rel, sizeof rel);
			}
		}
	}
	cJSON_Delete(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!agent)
		setup();
	cJSON *msg = cJSON_ParseWithLength((const char *)data, size);
	if (!msg)
		return 0;
	cJSON *m = cJSON_Duplicate(msg, 1);
	cJSON_Delete(msg);
	if (!m)
		return 0;
	if (cJSON_IsObject(m))
		fill(m);
	reset();
	handle("custody_deal", m);
	handle("custody_request", m);
	handle("custody_active", m);
	handle("custody_request", m);
	ig_duty_custody.on_stop(agent, &cs);
	FUZZ_ASSERT(fuzz_is_zero((const uint8_t *)cs.held, sizeof cs.held));
	cJSON_Delete(m);
	return 0;
}
