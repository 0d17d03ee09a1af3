/*
 * test_ledger_pg.c: the ledger object in shared mode (ledger_pg.c) against a
 * real PostgreSQL: two ig_ledger objects on one database are two brokers.
 *
 * What must hold: each sees the other's records through on_follow, in index
 * order with its own completions, exactly once; a record the shadow state
 * refuses after catching up completes IG_ERR_CONFLICT and the next record
 * takes its index; an unreachable database refuses appends at once
 * (IG_ERR_UNAVAILABLE) and appends resume by themselves once it is back;
 * a forged record or a head that went backwards stops appends; reopening
 * checks every record, and a tampered frame fails the open naming it.
 */
#include <criterion/criterion.h>

#include <poll.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_checkpoint.h"
#include "ig_custody.h"
#include "ig_keyfile.h"
#include "ig_ledger.h"
#include "ig_pg.h"
#include "ig_record.h"
#include "pg_fixture.h"
#include "testutil.h"

static char logbuf[32768];
static char own_pg_dir[256];   /* a private server (the outage test), stopped in teardown */

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_log_capture(logbuf, sizeof logbuf);
}

static void teardown(void)
{
	if (own_pg_dir[0]) {
		char cmd[700];
		snprintf(cmd, sizeof cmd, "'%s/tests/pg/pgctl.sh' stop '%s/pg' immediate >/dev/null 2>&1; rm -rf '%s'",
		         IG_SOURCE_ROOT, own_pg_dir, own_pg_dir);
		if (system(cmd) != 0)
			fprintf(stderr, "stopping the server in %s failed\n", own_pg_dir);
		own_pg_dir[0] = '\0';
	}
}

TestSuite(ledger_pg, .init = setup, .fini = teardown, .timeout = 90);

/* ---- a cluster: one database, the key copied into each broker's DIR ---- */

typedef struct cluster {
	char dsn[512];
	char root[256];
	char made[300];   /* where `init` made the ledger (and the key) */
} cluster;

static void cluster_make(cluster *c, const char *dsn, unsigned format)
{
	memset(c, 0, sizeof *c);
	snprintf(c->dsn, sizeof c->dsn, "%s", dsn);
	tu_tempdir(c->root, sizeof c->root, "lpg", 1);
	snprintf(c->made, sizeof c->made, "%s/made", c->root);
	uint8_t pk[IG_PK_BYTES];
	ig_error err = {0};
	cr_assert_eq(ig_ledger_init_format(c->made, "pgc", format, pk, &err), IG_OK, "%s", err.msg);
	char path[400];
	size_t log_len, cp_len;
	snprintf(path, sizeof path, "%s/" IG_LEDGER_LOG, c->made);
	uint8_t *log = (uint8_t *)tu_read_file(path, &log_len);
	snprintf(path, sizeof path, "%s/" IG_LEDGER_CHECKPOINT, c->made);
	char *cp = tu_read_file(path, &cp_len);
	ig_pg *pg = NULL;
	cr_assert_eq(ig_pg_connect(&pg, dsn, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_pg_import(pg, log, log_len, cp, cp_len, "cli:test", &err), IG_OK, "%s", err.msg);
	ig_pg_close(pg);
	free(log);
	free(cp);
}

/* A cluster in a fresh database of the suite's server, named after tag. */
static void cluster_fresh(cluster *c, const char *tag, unsigned format)
{
	char dsn[512];
	pgfx_fresh_db(dsn, sizeof dsn, tag);
	cluster_make(c, dsn, format);
}

/* DIR for broker `name`: a fresh directory holding a copy of ch.key. */
static void keydir(const cluster *c, const char *name, char *out, size_t cap)
{
	snprintf(out, cap, "%s/%s", c->root, name);
	cr_assert_eq(mkdir(out, 0700), 0);
	char path[600];
	size_t len;
	snprintf(path, sizeof path, "%s/" IG_LEDGER_KEY, c->made);
	char *key = tu_read_file(path, &len);
	snprintf(path, sizeof path, "%s/" IG_LEDGER_KEY, out);
	tu_write_file(path, key, len);
	free(key);
}

/* The shadow: enrolled ids; an enroll of an id already there is refused,
 * and a refusal changes nothing (as ig_state_apply must). */
typedef struct shadow {
	char ids[512][IG_ID_MAX + 1];
	size_t n;
	unsigned resets;
} shadow;

static int sh_apply(void *ctx, const ig_record *rec, ig_error *err)
{
	shadow *s = ctx;
	if (rec->type != IG_REC_ENROLL)
		return IG_OK;
	ig_enroll e;
	if (ig_record_enroll_decode(rec->body, rec->body_len, &e, err) != IG_OK)
		return IG_ERR_INVAL;
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->ids[i], e.id) == 0)
			return ig_error_set(err, IG_ERR_EXISTS, "%s is enrolled already", e.id);
	cr_assert_lt(s->n, 512u);
	snprintf(s->ids[s->n++], IG_ID_MAX + 1, "%s", e.id);
	return IG_OK;
}

static void sh_reset(void *ctx)
{
	shadow *s = ctx;
	s->n = 0;
	s->resets++;
}

/* One broker: its ledger, shadow, and everything ig_ledger_poll delivered. */
typedef struct broker {
	ig_ledger *l;
	shadow sh;
	char dir[400];
	uint64_t next;           /* the index the next delivered record must have */
	unsigned followed, own_ok, conflicts, other;
	uint64_t last_own_index;
	int last_status;
} broker;

static int on_follow(void *ctx, const ig_record *rec, ig_error *err)
{
	(void)err;
	broker *b = ctx;
	cr_assert_eq(rec->index, b->next, "followed record %llu delivered, expected %llu",
	             (unsigned long long)rec->index, (unsigned long long)b->next);
	b->next++;
	b->followed++;
	return IG_OK;
}

static void on_done(void *ctx, int status, const ig_record *rec)
{
	broker *b = ctx;
	b->last_status = status;
	if (status == IG_OK) {
		cr_assert_not_null(rec);
		cr_assert_eq(rec->index, b->next, "own record %llu completed, expected %llu",
		             (unsigned long long)rec->index, (unsigned long long)b->next);
		b->next++;
		b->own_ok++;
		b->last_own_index = rec->index;
	} else if (status == IG_ERR_CONFLICT) {
		cr_assert_null(rec);
		b->conflicts++;
	} else {
		b->other++;
	}
}

static int broker_open_rc(broker *b, const cluster *c, const char *name, uint32_t poll_ms, ig_error *err)
{
	memset(b, 0, sizeof *b);
	keydir(c, name, b->dir, sizeof b->dir);
	ig_ledger_open_opts o = {.writer = true};
	ig_ledger_shared_opts so = {
		.dsn = c->dsn,
		.broker = name,
		.on_follow = on_follow,
		.follow_ctx = b,
		.shadow_apply = sh_apply,
		.shadow_reset = sh_reset,
		.shadow_ctx = &b->sh,
		.backoff_min_ms = 50,
		.backoff_max_ms = 200,
		.poll_ms = poll_ms,
	};
	int rc = ig_ledger_open_shared(&b->l, b->dir, &o, &so, err);
	if (rc == IG_OK)
		b->next = ig_ledger_height(b->l);
	return rc;
}

static void broker_open(broker *b, const cluster *c, const char *name)
{
	ig_error err = {0};
	cr_assert_eq(broker_open_rc(b, c, name, 0, &err), IG_OK, "open %s: %s", name, err.msg);
	cr_assert(ig_ledger_is_shared(b->l));
}

/* A fresh cluster (tag, format) and its broker alpha (a). */
static void one_broker(cluster *c, const char *tag, unsigned format, broker *a)
{
	cluster_fresh(c, tag, format);
	broker_open(a, c, "alpha");
}

/* The same with a second broker, beta (b). */
static void two_brokers(cluster *c, const char *tag, unsigned format, broker *a, broker *b)
{
	one_broker(c, tag, format, a);
	broker_open(b, c, "beta");
}

static void submit_enroll(broker *b, const char *id)
{
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, id);
	cr_assert_eq(ig_ledger_submit(b->l, IG_REC_ENROLL, body, len, on_done, b), IG_OK, "submit %s", id);
}

/* A blocking append (as tools make). Its batch caught up first, so every
 * followed record below its index is already waiting for ig_ledger_poll:
 * deliver those, then count this one in order. */
static int append_enroll(broker *b, const char *id, ig_record *rec, ig_error *err)
{
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, id);
	ig_record r;
	int rc = ig_ledger_append(b->l, IG_REC_ENROLL, body, len, &r, err);
	if (rc == IG_OK) {
		(void)ig_ledger_poll(b->l);
		cr_assert_eq(r.index, b->next, "blocking append got index %llu, expected %llu",
		             (unsigned long long)r.index, (unsigned long long)b->next);
		b->next++;
		b->own_ok++;
		b->last_own_index = r.index;
		if (rec)
			*rec = r;
	}
	return rc;
}

/* Blocking appends of enrolls <prefix>0..<prefix>n-1, taking the brokers
 * in turn; each must succeed. */
static void append_many(broker **bs, size_t nb, const char *prefix, int n)
{
	ig_error err = {0};
	for (int i = 0; i < n; i++) {
		char id[32];
		snprintf(id, sizeof id, "%s%d", prefix, i);
		cr_assert_eq(append_enroll(bs[(size_t)i % nb], id, NULL, &err), IG_OK, "%s", err.msg);
	}
}

/* Polls the brokers (as a broker's loop would, on the event fd) until cond
 * holds; fails after 20 s. */
typedef bool (*cond_fn)(broker **bs, size_t n);

static void poll_until(broker **bs, size_t n, cond_fn cond, const char *what)
{
	uint64_t deadline = ig_mono_us() + 20000000u;
	while (!cond(bs, n)) {
		cr_assert_lt(ig_mono_us(), deadline, "timed out waiting for %s", what);
		struct pollfd fds[4];
		for (size_t i = 0; i < n; i++)
			fds[i] = (struct pollfd){.fd = ig_ledger_event_fd(bs[i]->l), .events = POLLIN};
		(void)poll(fds, (nfds_t)n, 50);
		for (size_t i = 0; i < n; i++)
			(void)ig_ledger_poll(bs[i]->l);
	}
}

static uint64_t want_height;

static bool all_at_height(broker **bs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (bs[i]->next != want_height || ig_ledger_height(bs[i]->l) != want_height)
			return false;
	return true;
}

/* ---- tests ---- */

/* Two brokers append at once: every record reaches each exactly once, in
 * index order, own completions interleaved with followed records; both end
 * on the same signed head; format 2's tiles of each broker follow it. */
Test(ledger_pg, two_brokers_interleave_and_follow)
{
	cluster c;
	broker a, b;
	two_brokers(&c, "inter", IG_FORMAT_V2, &a, &b);
	cr_assert_eq(ig_ledger_height(a.l), 1);
	enum { ROUNDS = 6, PER = 5 };
	for (int r = 0; r < ROUNDS; r++) {
		for (int k = 0; k < PER; k++) {
			char id[32];
			snprintf(id, sizeof id, "a%d_%d", r, k);
			submit_enroll(&a, id);
			snprintf(id, sizeof id, "b%d_%d", r, k);
			submit_enroll(&b, id);
		}
		usleep(2000);
	}
	want_height = 1 + 2 * ROUNDS * PER;
	broker *bs[2] = {&a, &b};
	poll_until(bs, 2, all_at_height, "both brokers to reach the same height");
	cr_assert_eq(a.own_ok, ROUNDS * PER);
	cr_assert_eq(b.own_ok, ROUNDS * PER);
	cr_assert_eq(a.followed, ROUNDS * PER, "alpha followed %u of beta's records", a.followed);
	cr_assert_eq(b.followed, ROUNDS * PER, "beta followed %u of alpha's records", b.followed);
	cr_assert_eq(a.conflicts + b.conflicts + a.other + b.other, 0);

	/* The same signed head on both, and it verifies. */
	char ta[IG_CHECKPOINT_MAX + 1], tb[IG_CHECKPOINT_MAX + 1];
	ig_checkpoint ca, cb;
	int la = ig_ledger_checkpoint(a.l, ta, sizeof ta, &ca);
	int lb = ig_ledger_checkpoint(b.l, tb, sizeof tb, &cb);
	cr_assert_gt(la, 0);
	cr_assert_eq(ca.size, want_height);
	cr_assert_eq(cb.size, want_height);
	uint8_t ha[IG_HASH_BYTES], hb[IG_HASH_BYTES];
	ig_ledger_head(a.l, ha);
	ig_ledger_head(b.l, hb);
	cr_assert_eq(memcmp(ha, hb, IG_HASH_BYTES), 0);
	cr_assert_eq(memcmp(ca.root, cb.root, IG_HASH_BYTES), 0);
	ig_checkpoint v;
	ig_error err = {0};
	char origin[IG_CLUSTER_MAX + 16];
	ig_checkpoint_origin(origin, sizeof origin, "pgc");
	cr_assert_eq(ig_checkpoint_verify(ta, (size_t)la, origin, ig_ledger_ch_pk(a.l), &v, &err), IG_OK, "%s", err.msg);
	(void)lb;

	/* Each shadow saw every enroll once. */
	cr_assert_eq(a.sh.n, 2 * ROUNDS * PER);
	cr_assert_eq(b.sh.n, 2 * ROUNDS * PER);

	ig_ledger_shared_stats st;
	ig_ledger_get_shared_stats(a.l, &st);
	cr_assert(st.connected);
	cr_assert_eq(st.followed, ROUNDS * PER);
	cr_assert_eq(st.conflicts, 0);

	/* The tiles each broker keeps in its DIR end at the shared head: the
	 * checkpoint written there is the shared head's. */
	uint8_t pk[IG_PK_BYTES];
	memcpy(pk, ig_ledger_ch_pk(a.l), IG_PK_BYTES);
	ig_ledger_close(a.l);
	ig_ledger_close(b.l);
	const char *dirs[2] = {a.dir, b.dir};
	for (int i = 0; i < 2; i++) {
		char path[500];
		snprintf(path, sizeof path, "%s/tlog/checkpoint", dirs[i]);
		size_t len;
		char *tl = tu_read_file(path, &len);
		ig_checkpoint t;
		cr_assert_eq(ig_checkpoint_verify(tl, len, origin, pk, &t, &err), IG_OK, "%s", err.msg);
		cr_assert_eq(t.size, want_height, "%s's tiles end at %llu", dirs[i], (unsigned long long)t.size);
		cr_assert_eq(memcmp(t.root, ca.root, IG_HASH_BYTES), 0);
		free(tl);
	}
}

/* Both brokers enrol the same id: the second one, re-checked against the
 * state that includes the first broker's record, completes IG_ERR_CONFLICT
 * (not written), and the record queued after it takes its index. */
Test(ledger_pg, recheck_refusal_is_conflict_and_next_takes_the_index)
{
	cluster c;
	broker a, b;
	one_broker(&c, "confl", IG_FORMAT_V1, &a);
	ig_error err = {0};
	/* beta looks at the head only on notifications (poll 60 s) */
	cr_assert_eq(broker_open_rc(&b, &c, "beta", 60000, &err), IG_OK, "%s", err.msg);

	ig_record ra;
	cr_assert_eq(append_enroll(&a, "dup", &ra, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ra.index, 1);
	/* beta submits the same id and one more, whether or not it followed yet */
	submit_enroll(&b, "dup");
	submit_enroll(&b, "after");
	want_height = 3;
	broker *bs[2] = {&a, &b};
	poll_until(bs, 2, all_at_height, "both brokers at height 3");
	cr_assert_eq(b.conflicts, 1, "beta's duplicate enroll must complete IG_ERR_CONFLICT");
	cr_assert_eq(b.own_ok, 1);
	cr_assert_eq(a.own_ok, 1);
	cr_assert_eq(b.last_own_index, 2, "the record after the refused one takes index 2");
	cr_assert_eq(b.followed, 1);
	cr_assert_eq(a.followed, 1);
	ig_ledger_shared_stats st;
	ig_ledger_get_shared_stats(b.l, &st);
	cr_assert_eq(st.conflicts, 1);
	/* the blocking append reports the refusal in words */
	cr_assert_eq(append_enroll(&a, "after", NULL, &err), IG_ERR_CONFLICT);
	cr_assert(strstr(err.msg, "another broker changed the ledger first"), "%s", err.msg);
	cr_assert_eq(ig_ledger_height(a.l), 3);
	ig_ledger_close(a.l);
	ig_ledger_close(b.l);
}

/* A record in the table that no checkpoint of the cluster head covers
 * (someone wrote the table directly): the follower refuses appends from
 * then on, says why, and keeps answering reads. */
Test(ledger_pg, forged_record_stops_the_follower)
{
	cluster c;
	broker a;
	one_broker(&c, "forge", IG_FORMAT_V1, &a);
	ig_error err = {0};
	cr_assert_eq(append_enroll(&a, "d1", NULL, &err), IG_OK, "%s", err.msg);

	/* A well-framed record chained to the head, but the head row keeps the
	 * old checkpoint (the forger has no key). */
	uint8_t head[IG_HASH_BYTES], body[512], frame[1024];
	ig_ledger_head(a.l, head);
	ig_record r;
	memset(&r, 0, sizeof r);
	r.index = ig_ledger_height(a.l);
	r.ts_ms = ig_now_ms();
	r.type = IG_REC_ENROLL;
	memcpy(r.prev_hash, head, IG_HASH_BYTES);
	r.body = body;
	r.body_len = (uint32_t)tu_device_enroll_body(body, sizeof body, "mallory");
	int flen = ig_record_encode(frame, sizeof frame, &r);
	cr_assert_gt(flen, 0);
	char fhex[2100], hhex[65], sql[4096];
	ig_hex_encode(fhex, frame, (size_t)flen);
	ig_hex_encode(hhex, r.hash, IG_HASH_BYTES);
	snprintf(sql, sizeof sql,
	         "BEGIN; INSERT INTO iotguard.records (idx, type, hash, frame, broker) VALUES (%llu, %d, "
	         "'\\x%s', '\\x%s', 'mallory'); UPDATE iotguard.head SET height = %llu, head = '\\x%s'; "
	         "SELECT pg_notify('iotguard_head', '%llu'); COMMIT;",
	         (unsigned long long)r.index, IG_REC_ENROLL, hhex, fhex, (unsigned long long)r.index + 1, hhex,
	         (unsigned long long)r.index + 1);
	pgfx_sql(c.dsn, sql);

	uint64_t deadline = ig_mono_us() + 10000000u;
	int rc;
	uint8_t b2[512];
	size_t len = tu_device_enroll_body(b2, sizeof b2, "d2");
	while ((rc = ig_ledger_submit(a.l, IG_REC_ENROLL, b2, len, on_done, &a)) == IG_OK) {
		cr_assert_lt(ig_mono_us(), deadline, "the forged record was never noticed");
		usleep(20000);
		(void)ig_ledger_poll(a.l);
	}
	cr_assert_eq(rc, IG_ERR_IO);
	cr_assert(tu_log_has("does not cover"), "log: %s", logbuf);
	cr_assert_eq(ig_ledger_height(a.l), 2, "the forged record is not taken");
	cr_assert_eq(a.followed, 0);
	cr_assert_eq(append_enroll(&a, "d3", NULL, &err), IG_ERR_IO);
	cr_assert(strstr(err.msg, "refuses appends"), "%s", err.msg);
	ig_ledger_close(a.l);
}

/* The database lost acknowledged records (a head below what a broker saw,
 * as after promoting an asynchronous standby): appends stop, saying so. */
Test(ledger_pg, head_lowered_is_refused)
{
	cluster c;
	broker a;
	one_broker(&c, "lower", IG_FORMAT_V1, &a);
	broker *only[1] = {&a};
	append_many(only, 1, "x", 3);
	cr_assert_eq(ig_ledger_height(a.l), 4);
	pgfx_sql(c.dsn, "BEGIN; DELETE FROM iotguard.records WHERE idx >= 2; UPDATE iotguard.head SET height = 2; "
	              "SELECT pg_notify('iotguard_head', '2'); COMMIT;");
	uint64_t deadline = ig_mono_us() + 10000000u;
	while (!tu_log_has("acknowledged records were lost")) {
		cr_assert_lt(ig_mono_us(), deadline, "the lowered head was never noticed; log: %s", logbuf);
		usleep(20000);
	}
	cr_assert(tu_log_has("ends at 2 records but this broker saw 4"), "%s", logbuf);
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "y");
	cr_assert_eq(ig_ledger_submit(a.l, IG_REC_ENROLL, body, len, on_done, &a), IG_ERR_IO);
	cr_assert_eq(ig_ledger_height(a.l), 4, "reads still answer from memory");
	ig_ledger_close(a.l);
}

static unsigned replayed;
static int count_record(void *ctx, const ig_record *rec, ig_error *err)
{
	(void)ctx;
	(void)err;
	cr_assert_eq(rec->index, replayed);
	replayed++;
	return IG_OK;
}

/* Reopening checks and replays every record (into the caller's state and
 * the shadow); a frame altered in the table fails the open naming it; a
 * wrong key and an empty database are refused with what to do. */
Test(ledger_pg, reopen_verifies_everything)
{
	cluster c;
	broker a, b;
	two_brokers(&c, "reopen", IG_FORMAT_V2, &a, &b);
	broker *turns[2] = {&b, &a};
	append_many(turns, 2, "p", 4);
	ig_error err = {0};
	ig_ledger_close(a.l);
	ig_ledger_close(b.l);

	/* reopen alpha's DIR */
	ig_ledger *l = NULL;
	shadow sh = {0};
	ig_ledger_open_opts o = {.writer = true, .on_record = count_record};
	ig_ledger_shared_opts so = {.dsn = c.dsn, .broker = "alpha", .shadow_apply = sh_apply, .shadow_reset = sh_reset,
	                            .shadow_ctx = &sh};
	replayed = 0;
	cr_assert_eq(ig_ledger_open_shared(&l, a.dir, &o, &so, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(replayed, 5);
	cr_assert_eq(sh.n, 4);
	cr_assert_eq(ig_ledger_height(l), 5);
	ig_ledger_close(l);

	/* a wrong key: another cluster's ch.key in DIR */
	char other[400], path[500];
	snprintf(other, sizeof other, "%s/other", c.root);
	uint8_t pk[IG_PK_BYTES];
	cr_assert_eq(ig_ledger_init(other, "pgc", pk, &err), IG_OK, "%s", err.msg);
	so.shadow_apply = NULL;
	so.shadow_reset = NULL;
	o.on_record = NULL;
	cr_assert_eq(ig_ledger_open_shared(&l, other, &o, &so, &err), IG_ERR_CRYPTO);
	cr_assert(strstr(err.msg, "copy ch.key from the broker that made the ledger"), "%s", err.msg);
	cr_assert_null(l);

	/* a database without a ledger */
	char empty[512];
	pgfx_fresh_db(empty, sizeof empty, "empty");
	so.dsn = empty;
	cr_assert_eq(ig_ledger_open_shared(&l, a.dir, &o, &so, &err), IG_ERR_NOTFOUND);
	cr_assert(strstr(err.msg, "iotguard init"), "%s", err.msg);
	so.dsn = c.dsn;

	/* one byte of record 2's body altered in the table */
	pgfx_sql(c.dsn, "UPDATE iotguard.records SET frame = overlay(frame placing '\\xff'::bytea from 70 for 1) "
	              "WHERE idx = 2");
	int rc = ig_ledger_open_shared(&l, a.dir, &o, &so, &err);
	cr_assert_eq(rc, IG_ERR_CORRUPT, "rc %d: %s", rc, err.msg);
	cr_assert(strstr(err.msg, "record 2"), "%s", err.msg);
	cr_assert_null(l);
	(void)path;
}

/* A server of this test's own (for tests that stop it or change its
 * settings), stopped by teardown; fills its DSN, returns its port. */
static int own_server(char *dsn, size_t cap)
{
	snprintf(own_pg_dir, sizeof own_pg_dir, "/tmp/ig-lpg-XXXXXX");
	cr_assert_not_null(mkdtemp(own_pg_dir));
	int port = pgfx_free_port();
	char cmd[800];
	snprintf(cmd, sizeof cmd, "'%s/tests/pg/pgctl.sh' start '%s/pg' %d 2>'%s/start.err'", IG_SOURCE_ROOT,
	         own_pg_dir, port, own_pg_dir);
	FILE *p = popen(cmd, "r");
	cr_assert_not_null(p);
	if (!fgets(dsn, (int)cap, p))
		dsn[0] = '\0';
	cr_assert_eq(pclose(p), 0, "PostgreSQL did not start (see %s/start.err)", own_pg_dir);
	dsn[strcspn(dsn, "\n")] = '\0';
	return port;
}

/* A cluster on a server of this test's own (own_server) and its broker
 * alpha; returns the server's port. */
static int own_cluster(cluster *c, broker *a)
{
	char dsn[512];
	int port = own_server(dsn, sizeof dsn);
	cluster_make(c, dsn, IG_FORMAT_V1);
	broker_open(a, c, "alpha");
	return port;
}

/* The database goes away: submits are refused at once with
 * IG_ERR_UNAVAILABLE (counted), reads go on; it comes back: the broker
 * reconnects by itself and appends resume. A private server, since this
 * test stops it. */
Test(ledger_pg, unreachable_then_back)
{
	char cmd[800];
	cluster c;
	broker a;
	int port = own_cluster(&c, &a);
	ig_error err = {0};
	cr_assert_eq(append_enroll(&a, "before", NULL, &err), IG_OK, "%s", err.msg);

	snprintf(cmd, sizeof cmd, "'%s/tests/pg/pgctl.sh' stop '%s/pg' fast", IG_SOURCE_ROOT, own_pg_dir);
	cr_assert_eq(system(cmd), 0);
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "during");
	uint64_t deadline = ig_mono_us() + 10000000u;
	int rc;
	while ((rc = ig_ledger_submit(a.l, IG_REC_ENROLL, body, len, on_done, &a)) == IG_OK) {
		cr_assert_lt(ig_mono_us(), deadline, "submits were never refused");
		usleep(20000);
		(void)ig_ledger_poll(a.l);
	}
	cr_assert_eq(rc, IG_ERR_UNAVAILABLE);
	(void)ig_ledger_poll(a.l);
	cr_assert_eq(a.own_ok, 1, "nothing submitted while the database was down was acknowledged");
	cr_assert_eq(a.other == 0 || a.last_status == IG_ERR_UNAVAILABLE, 1);
	cr_assert_eq(ig_ledger_height(a.l), 2, "reads answer from memory");
	ig_ledger_shared_stats st;
	ig_ledger_get_shared_stats(a.l, &st);
	cr_assert(!st.connected);
	cr_assert_geq(st.unavailable_refusals, 1);
	cr_assert_eq(append_enroll(&a, "during2", NULL, &err), IG_ERR_UNAVAILABLE);
	cr_assert(strstr(err.msg, "unreachable"), "%s", err.msg);
	cr_assert(tu_log_has("unreachable"), "%s", logbuf);

	snprintf(cmd, sizeof cmd, "'%s/tests/pg/pgctl.sh' start '%s/pg' %d >/dev/null", IG_SOURCE_ROOT, own_pg_dir,
	         port);
	cr_assert_eq(system(cmd), 0);
	deadline = ig_mono_us() + 15000000u;
	while ((rc = append_enroll(&a, "after", NULL, &err)) != IG_OK) {
		cr_assert_eq(rc, IG_ERR_UNAVAILABLE, "%s", err.msg);
		cr_assert_lt(ig_mono_us(), deadline, "appends did not resume: %s", err.msg);
		usleep(50000);
	}
	ig_ledger_get_shared_stats(a.l, &st);
	cr_assert(st.connected);
	cr_assert_geq(st.reconnects, 1);
	cr_assert(tu_log_has("reachable again"), "%s", logbuf);
	cr_assert_eq(ig_ledger_sync(a.l, &err), IG_OK, "%s", err.msg);
	uint64_t h = ig_ledger_height(a.l);
	cr_assert_geq(h, 3);
	ig_ledger_close(a.l);
}

static bool at_want(broker **bs, size_t n)
{
	(void)n;
	return bs[0]->next == want_height;
}

/* A broker whose DIR holds only ch.key.sealed opens with sealed_ok, follows
 * the others (no key needed to verify), refuses its own appends with
 * IG_ERR_SEALED, and appends once ig_ledger_unseal hands it the key. */
Test(ledger_pg, sealed_broker_follows_then_unseals)
{
	cluster c;
	broker a, s;
	one_broker(&c, "sealed", IG_FORMAT_V1, &a);
	/* sigma's DIR: the key only sealed (the file's content is custody's business) */
	memset(&s, 0, sizeof s);
	keydir(&c, "sigma", s.dir, sizeof s.dir);
	char kpath[500], spath[500];
	snprintf(kpath, sizeof kpath, "%s/" IG_LEDGER_KEY, s.dir);
	snprintf(spath, sizeof spath, "%s/" IG_CUSTODY_SEALED_FILE, s.dir);
	uint8_t sk[IG_SK_BYTES], pk[IG_PK_BYTES];
	ig_error err = {0};
	cr_assert_eq(ig_keyfile_read(kpath, sk, pk, &err), IG_OK, "%s", err.msg);
	tu_write_file(spath, "sealed", 6);
	cr_assert_eq(unlink(kpath), 0);
	ig_ledger_open_opts o = {.writer = true};
	ig_ledger_shared_opts so = {.dsn = c.dsn, .broker = "sigma", .on_follow = on_follow, .follow_ctx = &s,
	                            .shadow_apply = sh_apply, .shadow_reset = sh_reset, .shadow_ctx = &s.sh};
	cr_assert_eq(ig_ledger_open_shared(&s.l, s.dir, &o, &so, &err), IG_ERR_SEALED, "without sealed_ok: refused");
	o.sealed_ok = true;
	cr_assert_eq(ig_ledger_open_shared(&s.l, s.dir, &o, &so, &err), IG_OK, "%s", err.msg);
	s.next = ig_ledger_height(s.l);
	cr_assert(ig_ledger_sealed(s.l));
	cr_assert_null(ig_ledger_ch_sk(s.l));

	cr_assert_eq(append_enroll(&a, "seen", NULL, &err), IG_OK, "%s", err.msg);
	want_height = 2;
	broker *bs[1] = {&s};
	poll_until(bs, 1, at_want, "the sealed broker to follow");
	cr_assert_eq(s.followed, 1);
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "mine");
	cr_assert_eq(ig_ledger_submit(s.l, IG_REC_ENROLL, body, len, on_done, &s), IG_ERR_SEALED);

	cr_assert_eq(ig_ledger_unseal(s.l, sk, &err), IG_OK, "%s", err.msg);
	sodium_memzero(sk, sizeof sk);
	cr_assert_eq(append_enroll(&s, "mine", NULL, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_ledger_height(s.l), 3);
	ig_ledger_close(s.l);
	ig_ledger_close(a.l);
}

/* One value from a query; fails the test if there is no row. */
static void sql_value(const char *dsn, const char *sql, char *out, size_t cap)
{
	PGconn *c = PQconnectdb(dsn);
	cr_assert_eq(PQstatus(c), CONNECTION_OK, "%s", PQerrorMessage(c));
	PGresult *r = PQexec(c, sql);
	cr_assert_eq(PQresultStatus(r), PGRES_TUPLES_OK, "%s: %s", sql, PQerrorMessage(c));
	out[0] = '\0';
	if (PQntuples(r) > 0)
		snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
	PQclear(r);
	PQfinish(c);
}

/* The connection breaks during COMMIT (the server waits for a synchronous
 * standby that is not there, and the backend is terminated: the
 * transaction committed locally): the ledger reconnects, finds its rows and
 * acknowledges the record, instead of reporting it lost. */
Test(ledger_pg, commit_outcome_unknown_is_resolved)
{
	cluster c;
	broker a;
	(void)own_cluster(&c, &a);
	char admin[600];
	snprintf(admin, sizeof admin, "%s dbname=postgres", c.dsn);
	ig_error err = {0};
	cr_assert_eq(append_enroll(&a, "first", NULL, &err), IG_OK, "%s", err.msg);

	pgfx_sql(admin, "ALTER SYSTEM SET synchronous_standby_names = 'nobody'");
	pgfx_sql(admin, "SELECT pg_reload_conf()");
	usleep(200000);
	submit_enroll(&a, "limbo");
	char pid[32] = "";
	uint64_t deadline = ig_mono_us() + 10000000u;
	while (!pid[0]) {
		cr_assert_lt(ig_mono_us(), deadline, "the COMMIT never waited for the standby");
		usleep(20000);
		sql_value(admin, "SELECT pid FROM pg_stat_activity WHERE wait_event = 'SyncRep'", pid, sizeof pid);
	}
	char sql[128], out[16];
	snprintf(sql, sizeof sql, "SELECT pg_terminate_backend(%s)", pid);
	sql_value(admin, sql, out, sizeof out);
	cr_assert_str_eq(out, "t");
	/* (only now: an empty setting releases a waiting COMMIT normally) */
	pgfx_sql(admin, "ALTER SYSTEM RESET synchronous_standby_names");
	pgfx_sql(admin, "SELECT pg_reload_conf()");

	want_height = 3;
	broker *bs[1] = {&a};
	poll_until(bs, 1, at_want, "the record whose COMMIT lost its connection");
	cr_assert_eq(a.last_status, IG_OK);
	cr_assert_eq(a.last_own_index, 2);
	cr_assert_eq(a.other, 0);
	cr_assert(tu_log_has("they were committed"), "%s", logbuf);
	/* and the ledger goes on */
	cr_assert_eq(append_enroll(&a, "next", NULL, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_ledger_height(a.l), 4);
	ig_ledger_close(a.l);
}
