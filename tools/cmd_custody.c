/*
 * cmd_custody.c: `iotguard custody status|seal|rotate|recover|approve`
 * through the broker's admin API (docs/PROTOCOL.md, "Custody").
 *
 * Why this exists: custody is the cluster head's running state (who holds
 * shares, whether the key is sealed), so it is asked of the broker, online,
 * exactly as the other online commands ask: the same options, the same
 * admin session (cmd_online.c). `seal` is the one step an operator takes
 * deliberately: it removes ch.key from the disk, so it is refused until an
 * epoch is active and ch.key.sealed is durable.
 */
#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ig_custody.h"
#include "ig_custody_approve.h"
#include "ig_keyfile.h"
#include "ig_durable.h"
#include "ig_vss.h"

enum { OPT_HOST = 256, OPT_PORT, OPT_CLUSTER, OPT_USER, OPT_KEY, OPT_TIMEOUT, OPT_TLS_CA, OPT_JSON, OPT_HELP, OPT_OUT,
       OPT_CH_KEY };

static int custody_help(void)
{
	printf("Usage: iotguard custody status|seal|rotate --host HOST [--port PORT] --cluster C --user ADMIN_ID\n"
	       "                        --key FILE [--tls-ca FILE] [--timeout S] [--json]\n"
	       "       iotguard custody recover ... --out FILE [--ch-key HEX]\n"
	       "       iotguard custody approve ...\n"
	       "Device-quorum custody of the cluster-head key, through the broker's admin API.\n\n"
	       "  status   sealed or unsealed, the epoch, k and n, each holder with its zone and whether it is\n"
	       "           online, the shares collected while sealed, and when the next rotation is due\n"
	       "  seal     remove ch.key from the broker's disk (kept only as ch.key.sealed; from then on the\n"
	       "           broker starts sealed until k holders connect). Refused until an epoch is active\n"
	       "  rotate   deal a new epoch now (a fresh polynomial for the same secret)\n"
	       "  recover  disaster recovery: the online holders release their shares to this tool's one-time key;\n"
	       "           it checks each against the epoch's commitments, rebuilds the custody secret, opens\n"
	       "           ch.key.sealed and writes the cluster-head key file to --out (byte-identical to the\n"
	       "           original ch.key, mode 0600; an existing file is not overwritten). It refuses a key\n"
	       "           that is not the cluster head's: --ch-key HEX (as 'iotguard init' printed it) pins it,\n"
	       "           else the broker's word is taken. In admin unseal mode it signs its own approval with --key\n"
	       "  approve  (plugin_opt_custody_unseal admin) sign, with --key, the request for shares the sealed\n"
	       "           cluster head is waiting with (its id, one-time key, and the ledger size and root shown by\n"
	       "           status), so the holders release their shares to it\n\n"
	       "  --json   print the broker's answer as JSON\n");
	return CLI_EXIT_OK;
}

static void print_status(const cJSON *r)
{
	bool sealed = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "sealed"));
	printf("state:            %s (%s)\n", cli_json_str(r, "state", "?"), sealed ? "sealed" : "unsealed");
	printf("ch.key on disk:   %s\n",
	       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "key_on_disk")) ? "yes" : "no (only ch.key.sealed)");
	printf("epoch:            %llu\n", (unsigned long long)cli_json_uint(r, "epoch"));
	if (cJSON_GetObjectItemCaseSensitive(r, "dealing_epoch"))
		printf("dealing epoch:    %llu\n", (unsigned long long)cli_json_uint(r, "dealing_epoch"));
	printf("k of n:           %llu of %llu\n", (unsigned long long)cli_json_uint(r, "k"),
	       (unsigned long long)cli_json_uint(r, "n"));
	printf("shares collected: %llu\n", (unsigned long long)cli_json_uint(r, "shares_collected"));
	const cJSON *next = cJSON_GetObjectItemCaseSensitive(r, "next_rotation_at");
	if (cJSON_IsNumber(next) && next->valuedouble > 0) {
		char ts[40];
		cli_format_ts(ts, sizeof ts, (uint64_t)next->valuedouble * 1000u);
		printf("next rotation:    %s\n", ts);
	} else {
		printf("next rotation:    -\n");
	}
	const char *msg = cli_json_str(r, "message", NULL);
	if (msg)
		printf("note:             %s\n", msg);
	const cJSON *pa = cJSON_GetObjectItemCaseSensitive(r, "pending_approval");
	if (cJSON_IsObject(pa))
		printf("waits for approval: request %s of epoch %llu (pk %s), ledger size %llu, root %s; run "
		       "'iotguard custody approve'\n", cli_json_str(pa, "request", "?"),
		       (unsigned long long)cli_json_uint(pa, "epoch"), cli_json_str(pa, "pk", "?"),
		       (unsigned long long)cli_json_uint(pa, "size"), cli_json_str(pa, "root", "?"));
	const char *bad = cli_json_str(r, "last_bad_holder", NULL);
	if (bad)
		printf("last bad share:   from %s\n", bad);
	const cJSON *hs = cJSON_GetObjectItemCaseSensitive(r, "holders");
	printf("holders:          %d\n", cJSON_GetArraySize(hs));
	const cJSON *h;
	cJSON_ArrayForEach(h, hs) {
		printf("  %3llu  %-32s zone %-16s %-8s %s\n", (unsigned long long)cli_json_uint(h, "index"),
		       cli_json_str(h, "id", "?"), cli_json_str(h, "zone", "-"),
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "online")) ? "online" : "offline",
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "acked")) ? "acked" : "not acked");
	}
}

/* One holder's released share, checked as the cluster head checks it. */
static bool open_share(uint8_t share[32], const cJSON *h, const uint8_t request[16], uint64_t epoch, unsigned k,
                       const uint8_t C[][32], const uint8_t xsk[32], unsigned *index)
{
	uint8_t pk[32], nonce[24], box[IG_CUSTODY_RELEASE_BOX_BYTES];
	const char *holder = cli_json_str(h, "holder", "?");
	const char *pk_hex = cli_json_str(h, "pk", ""), *nonce_hex = cli_json_str(h, "box_nonce", "");
	const char *b64 = cli_json_str(h, "box", "");
	size_t len = 0;
	*index = (unsigned)cli_json_uint(h, "index");
	if (ig_hex_decode(pk, 32, pk_hex, strlen(pk_hex)) != IG_OK || ig_hex_decode(nonce, 24, nonce_hex,
	                                                                            strlen(nonce_hex)) != IG_OK ||
	    sodium_base642bin(box, sizeof box, b64, strlen(b64), NULL, &len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    len != sizeof box || *index < 1 || *index > 255) {
		cli_warn("the share from %s is malformed; skipping it", holder);
		return false;
	}
	ig_custody_release r;
	bool ok = ig_custody_release_open(&r, box, len, nonce, pk, xsk) == IG_OK;
	if (!ok)
		cli_warn("the share from %s does not open with its key; skipping it", holder);
	else if (sodium_memcmp(r.request, request, 16) != 0 || r.epoch != epoch || r.index != *index)
		ok = false, cli_warn("the share from %s names another request, epoch or index; skipping it", holder);
	else if (ig_vss_verify(r.share, *index, C, k) != IG_OK)
		ok = false, cli_warn("the share from %s does not match epoch %llu's commitments (a bad share); skipping it",
		                     holder, (unsigned long long)epoch);
	if (ok)
		memcpy(share, r.share, 32);
	sodium_memzero(&r, sizeof r);
	return ok;
}

/* Checks, combines and unseals what the broker passed on; writes out. */
static int recover_write(const cJSON *r, const uint8_t xsk[32], const char *out, const char *ch_key_hex)
{
	uint64_t epoch = cli_json_uint(r, "epoch");
	unsigned k = (unsigned)cli_json_uint(r, "k");
	uint8_t request[16], ch_pk[32];
	const char *req_hex = cli_json_str(r, "request", ""), *ch_hex = ch_key_hex ? ch_key_hex : cli_json_str(r, "ch_pk", "");
	const cJSON *cs = cJSON_GetObjectItemCaseSensitive(r, "commitments");
	if (k < 2 || k > IG_VSS_MAX || cJSON_GetArraySize(cs) != (int)k ||
	    ig_hex_decode(request, 16, req_hex, strlen(req_hex)) != IG_OK ||
	    ig_hex_decode(ch_pk, 32, ch_hex, strlen(ch_hex)) != IG_OK) {
		cli_error("the broker's answer is malformed (k, commitments, request or ch_pk)%s",
		          ch_key_hex ? "; check --ch-key (64 hex)" : "");
		return CLI_EXIT_ERR;
	}
	uint8_t (*C)[32] = calloc(k, 32);
	uint8_t *sec = sodium_malloc(IG_VSS_MAX * 33 + 32 + 4096);
	if (!C || !sec) {
		free(C);
		if (sec)
			sodium_free(sec);
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	uint8_t (*shares)[32] = (uint8_t(*)[32])sec, *indices = sec + IG_VSS_MAX * 32, *S = indices + IG_VSS_MAX;
	uint8_t *plain = S + 32;
	int rc = CLI_EXIT_ERR;
	for (unsigned j = 0; j < k; j++) {
		const char *h = cJSON_GetArrayItem(cs, (int)j)->valuestring;
		if (!h || ig_hex_decode(C[j], 32, h, strlen(h)) != IG_OK) {
			cli_error("commitment %u in the broker's answer is not 64 hex", j);
			goto done;
		}
	}
	unsigned m = 0;
	const cJSON *h;
	cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(r, "shares")) {
		unsigned index;
		if (m < k && open_share(shares[m], h, request, epoch, k, (const uint8_t(*)[32])C, xsk, &index))
			indices[m++] = (uint8_t)index;
	}
	if (m < k) {
		cli_error("only %u good shares of the %u needed; bring more holders of epoch %llu online and run recover "
		          "again", m, k, (unsigned long long)epoch);
		goto done;
	}
	if (ig_vss_combine(S, indices, (const uint8_t(*)[32])shares, m) != IG_OK || ig_vss_check_secret(S, C[0]) != IG_OK) {
		cli_error("the checked shares do not combine to the epoch's secret; nothing was written");
		goto done;
	}
	const char *b64 = cli_json_str(r, "sealed", "");
	size_t sealed_cap = strlen(b64) / 4 * 3 + 3, sealed_len = 0, plain_len = 0;
	uint8_t *sealed = malloc(sealed_cap);
	ig_error err = {0};
	if (!sealed || sodium_base642bin(sealed, sealed_cap, b64, strlen(b64), NULL, &sealed_len, NULL,
	                                 sodium_base64_VARIANT_ORIGINAL) != 0) {
		free(sealed);
		cli_error("the broker's copy of ch.key.sealed is not base64");
		goto done;
	}
	int urc = ig_custody_unseal_file(plain, 4096, &plain_len, S, ch_pk, sealed, sealed_len, &err);
	free(sealed);
	if (urc != IG_OK) {
		cli_error("%s; nothing was written", err.msg);
		goto done;
	}
	int fd = open(out, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		cli_error("cannot create --out %s: %s%s", out, strerror(errno),
		          errno == EEXIST ? " (it exists: recover never overwrites a file; choose another path)" : "");
		goto done;
	}
	bool wrote = write(fd, plain, plain_len) == (ssize_t)plain_len && fsync(fd) == 0;
	int saved = errno;
	close(fd);
	if (!wrote || ig_durable_sync_parent(out, "the --out directory", &err) != IG_OK) {
		unlink(out);
		cli_error("cannot write %s: %s", out, wrote ? err.msg : strerror(saved));
		goto done;
	}
	printf("recovered the cluster-head key of epoch %llu from %u shares into %s\n", (unsigned long long)epoch, m,
	       out);
	rc = CLI_EXIT_OK;
done:
	free(C);
	sodium_free(sec);
	return rc;
}

/* The broker's custody_status answer in *resp (NULL after saying why). */
static int fetch_status(const cli_online *on, cJSON **resp)
{
	*resp = NULL;
	cJSON *cmd = cJSON_CreateObject();
	if (!cmd || !cJSON_AddStringToObject(cmd, "command", "custody_status")) {
		cJSON_Delete(cmd);
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	int rc = cli_online_json(on, cmd, resp);
	cJSON_Delete(cmd);
	if (!*resp)
		return rc == CLI_EXIT_OK ? CLI_EXIT_ERR : rc;
	return CLI_EXIT_OK;
}

/* Admin unseal mode: recover's own approval. The ledger size and root come
 * from custody_status; the request id is this tool's. Adds "request" and
 * "approval" to cmd. CLI_EXIT_OK also when the broker is in auto mode (then
 * nothing is added). */
static int recover_approval(const cli_online *on, cJSON *cmd, const uint8_t xpk[32])
{
	cJSON *resp = NULL;
	int rc = fetch_status(on, &resp);
	if (!resp)
		return rc;
	const cJSON *lg = cJSON_GetObjectItemCaseSensitive(resp, "ledger");
	if (strcmp(cli_json_str(resp, "unseal", "auto"), "admin") != 0) {
		cJSON_Delete(resp);
		return CLI_EXIT_OK;
	}
	uint8_t request[16], root[32], sig[IG_CUSTODY_SIG_BYTES], sk[IG_SK_BYTES], pk[IG_PK_BYTES];
	const char *root_b64 = cli_json_str(lg, "root", "");
	uint64_t size = cli_json_uint(lg, "size");
	size_t root_len = 0;
	if (!cJSON_IsObject(lg) || sodium_base642bin(root, sizeof root, root_b64, strlen(root_b64), NULL, &root_len, NULL,
	                                             sodium_base64_VARIANT_ORIGINAL) != 0 || root_len != 32) {
		cli_error("the broker's custody_status has no ledger size and root to approve the recover against");
		cJSON_Delete(resp);
		return CLI_EXIT_ERR;
	}
	cJSON_Delete(resp);
	char root_text[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(root_text, sizeof root_text, root, sizeof root, sodium_base64_VARIANT_ORIGINAL);
	root_b64 = root_text;
	ig_error err = {0};
	if (ig_keyfile_read(on->key_path, sk, pk, &err) != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	randombytes_buf(request, sizeof request);
	rc = ig_custody_approve_sign(sig, on->cluster, request, xpk, size, root, sk);
	sodium_memzero(sk, sizeof sk);
	char req_hex[33], sig_b64[sodium_base64_ENCODED_LEN(IG_CUSTODY_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	ig_hex_encode(req_hex, request, sizeof request);
	sodium_bin2base64(sig_b64, sizeof sig_b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
	cJSON *ap = rc == IG_OK && cJSON_AddStringToObject(cmd, "request", req_hex) ? cJSON_AddObjectToObject(cmd, "approval")
	                                                                            : NULL;
	if (!ap || !cJSON_AddStringToObject(ap, "sig", sig_b64) || !cJSON_AddNumberToObject(ap, "size", (double)size) ||
	    !cJSON_AddStringToObject(ap, "root", root_b64)) {
		cli_error("cannot build the approval (error %d)", rc);
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

/* approve: the pending request from custody_status, signed with the admin's
 * key (ig_custody_approve.h), sent back as custody_approve. */
static int approve(const cli_online *on, bool as_json)
{
	cJSON *cmd = NULL, *resp = NULL;
	int rc = fetch_status(on, &resp);
	if (!resp)
		return rc;
	const cJSON *pa = cJSON_GetObjectItemCaseSensitive(resp, "pending_approval");
	uint8_t request[16], xpk[32], root[32], sig[IG_CUSTODY_SIG_BYTES], sk[IG_SK_BYTES], pk[IG_PK_BYTES];
	uint64_t size = 0, epoch = 0;
	size_t root_len = 0;
	const char *req_hex = cli_json_str(pa, "request", ""), *pk_hex = cli_json_str(pa, "pk", "");
	const char *root_b64 = cli_json_str(pa, "root", "");
	if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok")) || !cJSON_IsObject(pa)) {
		cli_error("nothing waits for approval (custody state %s%s%s)", cli_json_str(resp, "state", "?"),
		          cJSON_IsObject(pa) ? "" : "; approval is for a cluster head started with "
		                                    "plugin_opt_custody_unseal admin that is asking for shares",
		          "");
		cJSON_Delete(resp);
		return CLI_EXIT_ERR;
	}
	epoch = cli_json_uint(pa, "epoch");
	size = cli_json_uint(pa, "size");
	bool ok = ig_hex_decode(request, 16, req_hex, strlen(req_hex)) == IG_OK &&
	          ig_hex_decode(xpk, 32, pk_hex, strlen(pk_hex)) == IG_OK &&
	          sodium_base642bin(root, sizeof root, root_b64, strlen(root_b64), NULL, &root_len, NULL,
	                            sodium_base64_VARIANT_ORIGINAL) == 0 && root_len == 32;
	if (!ok) {
		cli_error("the broker's pending_approval is malformed (request 32 hex, pk 64 hex, root base64 of 32 bytes)");
		cJSON_Delete(resp);
		return CLI_EXIT_ERR;
	}
	printf("approving request %s for the shares of epoch %llu, to key %s, at ledger size %llu root %s\n", req_hex,
	       (unsigned long long)epoch, pk_hex, (unsigned long long)size, root_b64);
	cJSON_Delete(resp);
	resp = NULL;
	ig_error err = {0};
	if (ig_keyfile_read(on->key_path, sk, pk, &err) != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	rc = ig_custody_approve_sign(sig, on->cluster, request, xpk, size, root, sk);
	sodium_memzero(sk, sizeof sk);
	char sig_b64[sodium_base64_ENCODED_LEN(IG_CUSTODY_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	sodium_bin2base64(sig_b64, sizeof sig_b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);
	cmd = cJSON_CreateObject();
	if (rc != IG_OK || !cmd || !cJSON_AddStringToObject(cmd, "command", "custody_approve") ||
	    !cJSON_AddStringToObject(cmd, "sig", sig_b64)) {
		cJSON_Delete(cmd);
		cli_error("cannot sign the approval (error %d)", rc);
		return CLI_EXIT_ERR;
	}
	rc = cli_online_json(on, cmd, &resp);
	cJSON_Delete(cmd);
	if (!resp)
		return rc == CLI_EXIT_OK ? CLI_EXIT_ERR : rc;
	return cli_print_answer(resp, "custody_approve", as_json, NULL, "approved");
}

int cmd_custody(int argc, char **argv)
{
	if (argc < 2 || argv[1][0] == '-') {
		if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0))
			return custody_help();
		cli_error("say what to do: status, seal, rotate, recover or approve");
		return cli_usage_hint();
	}
	const char *what = argv[1];
	const char *command = !strcmp(what, "status") ? "custody_status"
	                      : !strcmp(what, "seal") ? "custody_seal"
	                      : !strcmp(what, "rotate") ? "custody_rotate"
	                      : !strcmp(what, "recover") ? "custody_recover"
	                      : !strcmp(what, "approve") ? "custody_approve" : NULL;
	if (!command) {
		cli_error("unknown custody command '%s': use status, seal, rotate, recover or approve", what);
		return cli_usage_hint();
	}
	cli_online on = {0};
	bool as_json = false, recover = !strcmp(what, "recover");
	const char *out = NULL, *ch_key = NULL;
	uint64_t port = 1883, timeout_s = recover ? 40 : 10;
	const cli_option opts[] = {
		CLI_TEXT("host", OPT_HOST, &on.host),
		CLI_NUMBER("port", OPT_PORT, &port, 1, 65535),
		CLI_TEXT("cluster", OPT_CLUSTER, &on.cluster),
		CLI_TEXT("user", OPT_USER, &on.user),
		CLI_TEXT("key", OPT_KEY, &on.key_path),
		CLI_NUMBER("timeout", OPT_TIMEOUT, &timeout_s, 1, 3600),
		CLI_TEXT("tls-ca", OPT_TLS_CA, &on.tls_ca),
		CLI_FLAG("json", OPT_JSON, &as_json),
		CLI_TEXT("out", OPT_OUT, &out),
		CLI_TEXT("ch-key", OPT_CH_KEY, &ch_key),
		CLI_HELP_OPTION(OPT_HELP),
		CLI_OPTIONS_END,
	};
	int parsed = cli_parse(argc - 1, argv + 1, opts);
	if (parsed != CLI_PARSED)
		return parsed == CLI_HELP ? custody_help() : parsed;
	int ready = cli_online_ready(&on, "custody", port, timeout_s);
	if (ready != CLI_EXIT_OK)
		return ready;
	if (recover && !out)
		return cli_missing("--out FILE (where to write the recovered key)");
	if (!recover && (out || ch_key)) {
		cli_error("--out and --ch-key are for recover only");
		return cli_usage_hint();
	}
	if (!strcmp(what, "approve"))
		return approve(&on, as_json);

	cJSON *cmd = cJSON_CreateObject();
	if (!cmd || !cJSON_AddStringToObject(cmd, "command", command)) {
		cJSON_Delete(cmd);
		cli_error("out of memory");
		return CLI_EXIT_ERR;
	}
	/* recover: a one-time X25519 key; the broker never sees its secret half. */
	uint8_t xpk[32], *xsk = recover ? sodium_malloc(32) : NULL;
	if (recover) {
		char hex[65];
		if (!xsk) {
			cJSON_Delete(cmd);
			cli_error("out of memory");
			return CLI_EXIT_ERR;
		}
		crypto_box_keypair(xpk, xsk);
		ig_hex_encode(hex, xpk, 32);
		cJSON_AddStringToObject(cmd, "pk", hex);
		int arc = recover_approval(&on, cmd, xpk);
		if (arc != CLI_EXIT_OK) {
			cJSON_Delete(cmd);
			sodium_free(xsk);
			return arc;
		}
	}
	cJSON *resp = NULL;
	int rc = cli_online_json(&on, cmd, &resp);
	cJSON_Delete(cmd);
	if (recover) {
		if (resp && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok")))
			rc = recover_write(resp, xsk, out, ch_key);
		else if (resp)
			cli_error("custody_recover refused (%s): %s", cli_json_str(resp, "error", "?"), cli_json_str(resp, "message", ""));
		sodium_free(xsk);
		bool ok = resp && rc == CLI_EXIT_OK && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(resp, "ok"));
		cJSON_Delete(resp);
		return ok ? CLI_EXIT_OK : CLI_EXIT_ERR;
	}
	if (!resp)
		return rc == CLI_EXIT_OK ? CLI_EXIT_ERR : rc;
	return cli_print_answer(resp, command, as_json, !strcmp(what, "status") ? print_status : NULL, "done");
}
