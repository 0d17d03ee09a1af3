/*
 * cmd_proof.c: `iotguard proof` writes a C2SP tlog-proof that a record is in
 * the cluster's log, and `iotguard proof verify` checks one offline.
 *
 * Why this exists: an auditor, a device vendor or a court should not have to
 * take the cluster head's word that a device was enrolled (or revoked) at a
 * given point, nor hold the whole ledger to check it. A tlog-proof is one
 * small text file: the record's frame (in `extra`), its index, the RFC 6962
 * inclusion path, and the checkpoint it leads to, signed by the cluster head
 * and cosigned by witnesses once those are configured. It checks with the
 * cluster head's public key alone, here or with any C2SP tool.
 *
 * The proof is built from the tiles (docs/LEDGER.md section 14), so it needs
 * no lock and works while the broker writes; it is checked before it is
 * printed, against the checkpoint the tiles were written for.
 */
#include "cli.h"
#include "ig_checkpoint.h"
#include "ig_cosig.h"
#include "ig_ledger.h"
#include "ig_merkle.h"
#include "ig_proof.h"
#include "ig_record.h"
#include "ig_tiles.h"
#include "ig_tlogproof.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* Reads a whole small file (at most cap - 1 bytes) into buf, NUL-terminated. */
static int read_small(const char *path, char *buf, size_t cap, size_t *len)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		cli_error("cannot open %s: %s", path, strerror(errno));
		return CLI_EXIT_ERR;
	}
	size_t n = fread(buf, 1, cap, f);
	bool err = ferror(f) != 0;
	fclose(f);
	if (err) {
		cli_error("cannot read %s", path);
		return CLI_EXIT_ERR;
	}
	if (n == cap) {
		cli_error("%s is larger than %zu bytes: not a proof or checkpoint", path, cap - 1);
		return CLI_EXIT_ERR;
	}
	buf[n] = '\0';
	*len = n;
	return CLI_EXIT_OK;
}

/* ---- which record -------------------------------------------------------- */

typedef struct pick {
	const char *id;
	uint16_t type;            /* IG_REC_ENROLL, IG_REC_REVOKE, IG_REC_JOIN_USED */
	uint64_t found;           /* index of the last match */
	bool any;
} pick;

/* Whether rec is about p->id with p->type. */
static bool record_matches(const pick *p, const ig_record *rec)
{
	if (rec->type != p->type)
		return false;
	ig_error e = { 0 };
	switch (rec->type) {
	case IG_REC_ENROLL: {
		ig_enroll en;
		return ig_record_enroll_decode(rec->body, rec->body_len, &en, &e) == IG_OK && !strcmp(en.id, p->id);
	}
	case IG_REC_REVOKE: {
		ig_revoke r;
		return ig_record_revoke_decode(rec->body, rec->body_len, &r, &e) == IG_OK && !strcmp(r.id, p->id);
	}
	case IG_REC_JOIN_USED: {
		ig_join_used j;
		return ig_record_join_used_decode(rec->body, rec->body_len, &j, &e) == IG_OK && !strcmp(j.id, p->id);
	}
	default:
		return false;
	}
}

/* Finds the last record of p->type about p->id among the first `size`
 * records of DIR/ledger.log. Frames are only decoded here (their crc
 * checked), not verified: the proof built from the index is checked against
 * the signed checkpoint before it is printed. */
static int find_record(const char *dir, uint64_t size, pick *p)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s", dir, IG_LEDGER_LOG);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat sb;
	if (fd < 0 || fstat(fd, &sb) != 0) {
		cli_error("cannot open %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return CLI_EXIT_ERR;
	}
	if (sb.st_size == 0) {
		close(fd);
		cli_error("%s is empty", path);
		return CLI_EXIT_BAD_LEDGER;
	}
	const uint8_t *map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (map == MAP_FAILED) {
		cli_error("cannot map %s: %s", path, strerror(errno));
		return CLI_EXIT_ERR;
	}
	size_t off = 0, total = (size_t)sb.st_size;
	for (uint64_t i = 0; i < size && off < total; i++) {
		ig_record rec;
		if (ig_record_decode(map + off, total - off, &rec) != IG_FRAME_OK)
			break;
		if (record_matches(p, &rec)) {
			p->found = rec.index;
			p->any = true;
		}
		off += rec.frame_len;
	}
	munmap((void *)map, total);
	return CLI_EXIT_OK;
}

/* ---- proof ----------------------------------------------------------------- */

static int proof_help(void)
{
	printf("Usage: iotguard proof --ledger DIR (--index N | --id ID [--record enroll|revoke|join])\n"
	       "                      [--out FILE]\n"
	       "       iotguard proof verify FILE --ch-key HEX [--cluster NAME]\n"
	       "                      [--witness-key VKEY]... [--quorum K]\n\n"
	       "Writes a C2SP tlog-proof (c2sp.org/tlog-proof@v1) that one ledger record is\n"
	       "in the cluster's log: the record's whole frame (base64, on the `extra`\n"
	       "line), its index, the RFC 6962 inclusion path and the checkpoint the\n"
	       "ledger's tiles were last written for (DIR/tlog/checkpoint, with any\n"
	       "witness cosignatures). Needs a format-2 ledger and no lock: it runs while\n"
	       "the broker writes. The proof is checked before it is written.\n\n"
	       "  --ledger DIR      the ledger directory\n"
	       "  --index N         the record with index N\n"
	       "  --id ID           the last record about identity ID, of the kind --record\n"
	       "                    names: enroll (default: the key it holds now), revoke, or\n"
	       "                    join (the join_used record of a device that joined)\n"
	       "  --out FILE        write the proof there (default: standard output)\n\n"
	       "`proof verify` checks a proof file offline: the cluster head's signature\n"
	       "(--ch-key, 64 hex, as `iotguard init` printed it), the inclusion of the\n"
	       "record, and with --quorum K at least K valid cosignatures from the\n"
	       "--witness-key vkeys (C2SP vkey text, as `iotguard witness` prints it).\n"
	       "Exit status 0 if it holds, 2 if it does not, 1 on usage errors.\n");
	return CLI_EXIT_OK;
}

/* Loads the published checkpoint (the tiles' own copy, else the ledger's),
 * verified against the genesis record's key. */
static int load_checkpoint(const char *dir, char *text, size_t cap, size_t *len, ig_checkpoint *cp)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/%s/%s", dir, IG_TILES_SUBDIR, IG_LEDGER_CHECKPOINT);
	if (access(path, F_OK) != 0) {
		cli_error("%s has no tiles (%s is missing): proofs need a format-2 ledger that a writer has opened "
		          "(move a format-1 ledger with `iotguard upgrade`)",
		          dir, path);
		return CLI_EXIT_ERR;
	}
	int rc = read_small(path, text, cap, len);
	if (rc != CLI_EXIT_OK)
		return rc;
	/* The genesis record names the key and the origin. */
	char lpath[4096];
	snprintf(lpath, sizeof lpath, "%s/%s", dir, IG_LEDGER_LOG);
	uint8_t head[512];
	FILE *f = fopen(lpath, "rb");
	size_t n = f ? fread(head, 1, sizeof head, f) : 0;
	if (f)
		fclose(f);
	ig_record rec;
	ig_genesis g;
	ig_error err = { 0 };
	if (ig_record_decode(head, n, &rec) != IG_FRAME_OK || rec.type != IG_REC_GENESIS ||
	    ig_record_genesis_decode(rec.body, rec.body_len, &g, &err) != IG_OK) {
		cli_error("%s does not start with a genesis record", lpath);
		return CLI_EXIT_BAD_LEDGER;
	}
	char origin[IG_CLUSTER_MAX + 16];
	ig_checkpoint_origin(origin, sizeof origin, g.cluster);
	if (ig_checkpoint_verify(text, *len, origin, g.ch_pk, cp, &err) != IG_OK) {
		cli_error("%s: %s", path, err.msg);
		return CLI_EXIT_BAD_LEDGER;
	}
	return CLI_EXIT_OK;
}

static int proof_write(const char *dir, uint64_t index, bool by_index, const char *id, const char *kind,
                       const char *out_path)
{
	static char cp_text[IG_CHECKPOINT_MAX + 1];
	size_t cp_len;
	ig_checkpoint cp;
	int rc = load_checkpoint(dir, cp_text, sizeof cp_text, &cp_len, &cp);
	if (rc != CLI_EXIT_OK)
		return rc;
	if (!by_index) {
		pick p = { .id = id, .type = IG_REC_ENROLL };
		if (kind && !strcmp(kind, "revoke"))
			p.type = IG_REC_REVOKE;
		else if (kind && !strcmp(kind, "join"))
			p.type = IG_REC_JOIN_USED;
		else if (kind && strcmp(kind, "enroll") != 0) {
			cli_error("--record must be enroll, revoke or join, not '%s'", kind);
			return CLI_EXIT_ERR;
		}
		rc = find_record(dir, cp.size, &p);
		if (rc != CLI_EXIT_OK)
			return rc;
		if (!p.any) {
			cli_error("no %s record of '%s' among the %" PRIu64 " records of the checkpoint", ig_record_type_name(p.type),
			          id, cp.size);
			return CLI_EXIT_ERR;
		}
		index = p.found;
	}
	if (index >= cp.size) {
		cli_error("record %" PRIu64 " is not covered by the published checkpoint (size %" PRIu64 "); try again "
		          "once it is",
		          index, cp.size);
		return CLI_EXIT_ERR;
	}

	ig_error err = { 0 };
	ig_tiles_reader *r;
	if (ig_tiles_reader_open(&r, dir, cp.size, &err) != IG_OK) {
		cli_error("%s", err.msg);
		return CLI_EXIT_ERR;
	}
	static uint8_t frame[IG_FORMAT_V2_MAX_FRAME];
	size_t flen = 0, n = 0;
	uint8_t path[IG_PROOF_MAX][IG_HASH_BYTES];
	rc = ig_tiles_reader_entry(r, index, frame, sizeof frame, &flen, &err);
	if (rc == IG_OK)
		rc = ig_proof_inclusion(path, IG_PROOF_MAX, &n, IG_MERKLE_SHA256, index, cp.size, ig_tiles_reader_node, r,
		                        &err);
	ig_tiles_reader_close(r);
	if (rc != IG_OK) {
		cli_error("reading the tiles of %s: %s", dir, err.msg);
		return CLI_EXIT_BAD_LEDGER;
	}
	uint8_t leaf[IG_HASH_BYTES];
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, frame, flen);
	if (ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, index, cp.size, (const uint8_t(*)[IG_HASH_BYTES])path, n,
	                              cp.root) != IG_OK) {
		cli_error("the tiles of %s do not prove record %" PRIu64 " under the signed checkpoint (damaged tiles: "
		          "reopen the ledger with a writer to rebuild them)",
		          dir, index);
		return CLI_EXIT_BAD_LEDGER;
	}
	static char text[IG_TLOGPROOF_TEXT_MAX + 1];
	int tlen = ig_tlogproof_format(text, sizeof text, frame, flen, index, (const uint8_t(*)[IG_HASH_BYTES])path, n,
	                               cp_text, cp_len);
	if (tlen < 0) {
		cli_error("cannot format the proof (code %d)", tlen);
		return CLI_EXIT_ERR;
	}
	FILE *out = stdout;
	if (out_path && !(out = fopen(out_path, "w"))) {
		cli_error("cannot create %s: %s", out_path, strerror(errno));
		return CLI_EXIT_ERR;
	}
	bool ok = fwrite(text, 1, (size_t)tlen, out) == (size_t)tlen;
	if (out != stdout)
		ok = fclose(out) == 0 && ok;
	else
		ok = fflush(out) == 0 && ok;
	if (!ok) {
		cli_error("cannot write the proof");
		return CLI_EXIT_ERR;
	}
	return CLI_EXIT_OK;
}

/* ---- proof verify ------------------------------------------------------------ */

enum { WITNESS_KEYS_MAX = 32 };

static int proof_verify(int argc, char **argv)
{
	const char *file = NULL, *ch_hex = NULL, *cluster = NULL;
	const char *vkeys[WITNESS_KEYS_MAX];
	size_t nvkeys = 0;
	uint64_t quorum = 0;
	if (argc > 1 && argv[1][0] != '-') {
		file = argv[1];
		argv[1] = argv[0];
		argc--;
		argv++;
	}
	const cli_option opts[] = {
		CLI_TEXT("proof", 0, &file),
		CLI_REQUIRED("ch-key", 0, &ch_hex, "HEX"),
		CLI_TEXT("cluster", 0, &cluster),
		CLI_LIST("witness-key", 0, vkeys, &nvkeys, WITNESS_KEYS_MAX),
		CLI_NUMBER("quorum", 0, &quorum, 0, WITNESS_KEYS_MAX),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? proof_help() : rc;
	if (!file)
		return cli_missing("the proof FILE");
	uint8_t ch_pk[IG_PK_BYTES];
	if (strlen(ch_hex) != 2 * IG_PK_BYTES || ig_hex_decode(ch_pk, sizeof ch_pk, ch_hex, strlen(ch_hex)) != IG_OK) {
		cli_error("--ch-key must be the cluster head's public key, 64 hex characters");
		return CLI_EXIT_ERR;
	}
	if (quorum > nvkeys) {
		cli_error("--quorum %" PRIu64 " needs at least that many --witness-key", quorum);
		return CLI_EXIT_ERR;
	}
	ig_cosig_vkey keys[WITNESS_KEYS_MAX];
	ig_error err = { 0 };
	for (size_t i = 0; i < nvkeys; i++)
		if (ig_cosig_vkey_parse(&keys[i], vkeys[i], strlen(vkeys[i]), &err) != IG_OK) {
			cli_error("--witness-key %s: %s", vkeys[i], err.msg);
			return CLI_EXIT_ERR;
		}

	static char text[IG_TLOGPROOF_TEXT_MAX + 2];
	size_t len;
	rc = read_small(file, text, sizeof text, &len);
	if (rc != CLI_EXIT_OK)
		return rc;
	static uint8_t frame[IG_TLOGPROOF_EXTRA_MAX];
	ig_tlogproof p;
	if (ig_tlogproof_parse(&p, frame, sizeof frame, text, len, &err) != IG_OK) {
		cli_error("%s: %s", file, err.msg);
		return CLI_EXIT_BAD_LEDGER;
	}
	/* The origin comes from the checkpoint itself unless pinned; the key
	 * decides whose log it is either way. */
	char origin[IG_CLUSTER_MAX + 16];
	const char *nl = memchr(p.checkpoint, '\n', p.checkpoint_len);
	size_t olen = nl ? (size_t)(nl - p.checkpoint) : 0;
	if (cluster)
		ig_checkpoint_origin(origin, sizeof origin, cluster);
	else if (olen > 0 && olen < sizeof origin)
		snprintf(origin, sizeof origin, "%.*s", (int)olen, p.checkpoint);
	else
		origin[0] = '\0';
	ig_checkpoint cp;
	if (ig_checkpoint_verify(p.checkpoint, p.checkpoint_len, origin, ch_pk, &cp, &err) != IG_OK) {
		cli_error("%s: the checkpoint: %s", file, err.msg);
		return CLI_EXIT_BAD_LEDGER;
	}
	if (!p.has_extra) {
		cli_error("%s: no extra line, so no record to check (iotguard proofs carry the record's frame there)", file);
		return CLI_EXIT_BAD_LEDGER;
	}
	ig_record rec;
	if (ig_record_decode(frame, p.extra_len, &rec) != IG_FRAME_OK || rec.frame_len != p.extra_len ||
	    rec.index != p.index) {
		cli_error("%s: the extra data is not ledger record %" PRIu64 "'s frame", file, p.index);
		return CLI_EXIT_BAD_LEDGER;
	}
	uint8_t leaf[IG_HASH_BYTES];
	ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf, frame, p.extra_len);
	if (p.index >= cp.size || ig_proof_inclusion_verify(IG_MERKLE_SHA256, leaf, p.index, cp.size,
	                                                    (const uint8_t(*)[IG_HASH_BYTES])p.path, p.n,
	                                                    cp.root) != IG_OK) {
		cli_error("%s: record %" PRIu64 " is NOT included in the signed tree of size %" PRIu64
		          " (the proof or the record was altered, or they belong to another log)",
		          file, p.index, cp.size);
		return CLI_EXIT_BAD_LEDGER;
	}
	size_t valid = 0;
	if (nvkeys > 0 &&
	    ig_cosig_count(&valid, p.checkpoint, p.checkpoint_len, keys, nvkeys, (size_t)quorum, &err) != IG_OK) {
		cli_error("%s: witnesses: %s", file, err.msg);
		return CLI_EXIT_BAD_LEDGER;
	}
	char *json = ig_record_to_json(&rec);
	printf("proof OK: record %" PRIu64 " is in %s at size %" PRIu64 ", signed by the cluster head", p.index,
	       origin, cp.size);
	if (nvkeys > 0)
		printf(", cosigned by %zu of %zu witnesses (quorum %" PRIu64 ")", valid, nvkeys, quorum);
	printf("\n%s\n", json ? json : "(record not shown: out of memory)");
	free(json);
	return CLI_EXIT_OK;
}

int cmd_proof(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "verify"))
		return proof_verify(argc - 1, argv + 1);
	const char *dir = NULL, *id = NULL, *kind = NULL, *out = NULL;
	uint64_t index = UINT64_MAX;
	const cli_option opts[] = {
		CLI_REQUIRED("ledger", 'l', &dir, "DIR"),
		CLI_NUMBER("index", 0, &index, 0, UINT64_MAX - 1),
		CLI_TEXT("id", 0, &id),
		CLI_TEXT("record", 0, &kind),
		CLI_TEXT("out", 'o', &out),
		CLI_HELP_OPTION('h'),
		CLI_OPTIONS_END,
	};
	int rc = cli_parse(argc, argv, opts);
	if (rc != CLI_PARSED)
		return rc == CLI_HELP ? proof_help() : rc;
	bool by_index = index != UINT64_MAX;
	if (by_index == (id != NULL)) {
		cli_error("give exactly one of --index N and --id ID");
		return cli_usage_hint();
	}
	if (id && !cli_check_id("--id", id))
		return CLI_EXIT_ERR;
	if (kind && by_index) {
		cli_error("--record goes with --id");
		return cli_usage_hint();
	}
	return proof_write(dir, index, by_index, id, kind, out);
}
