/*
 * test_ledger_sealed.c: a writer open of a ledger whose key exists only
 * sealed (ch.key.sealed, issue 9) must hold the lock, check and replay
 * everything and cut a torn tail, yet sign and append nothing and start no
 * thread until ig_ledger_unseal hands it the genesis key; a wrong key must
 * leave it sealed.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_custody.h"
#include "ig_decision.h"
#include "ig_keyfile.h"
#include "ig_ledger.h"
#include "testutil.h"

static char root[256];
static char ldir[300];
static char key_file[340];
static char key_away[340];
static char sealed_file[340];
static uint8_t ch_sk[IG_SK_BYTES];

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_tempdir(root, sizeof root, "ledger-sealed", 0);
	snprintf(ldir, sizeof ldir, "%s/ledger", root);
	snprintf(key_file, sizeof key_file, "%s/%s", ldir, IG_LEDGER_KEY);
	snprintf(key_away, sizeof key_away, "%s/ch.key.away", root);
	snprintf(sealed_file, sizeof sealed_file, "%s/%s", ldir, IG_CUSTODY_SEALED_FILE);
}

static void teardown(void)
{
	sodium_memzero(ch_sk, sizeof ch_sk);
	cr_assert_eq(tu_rmtree(root), 0, "cannot remove %s", root);
}

TestSuite(sealed, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t append_enroll(ig_ledger *l, const char *id)
{
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, id);
	ig_record rec;
	ig_error err = {0};
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, &rec, &err), IG_OK, "append %s: %s", id, err.msg);
	return rec.index;
}

/* A ledger with two enrolments, then its key moved out of the directory
 * (kept in ch_sk) and a placeholder ch.key.sealed in its place: the
 * ledger only checks that the sealed file is there. */
static void make_sealed_ledger(void)
{
	ig_error err = {0};
	cr_assert_eq(ig_ledger_init(ldir, "sealed", NULL, &err), IG_OK, "%s", err.msg);
	ig_ledger *l = NULL;
	ig_ledger_open_opts wo = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, ldir, &wo, &err), IG_OK, "%s", err.msg);
	append_enroll(l, "dev1");
	append_enroll(l, "dev2");
	ig_ledger_close(l);
	uint8_t pk[IG_PK_BYTES];
	cr_assert_eq(ig_keyfile_read(key_file, ch_sk, pk, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(rename(key_file, key_away), 0, "cannot move %s away: %s", key_file, strerror(errno));
	tu_write_file(sealed_file, "not really sealed", 17);
}

static int threads_now(void)
{
	size_t len = 0;
	char *s = tu_read_file("/proc/self/status", &len);
	cr_assert_not_null(s);
	const char *t = strstr(s, "\nThreads:");
	cr_assert_not_null(t, "no Threads: line in /proc/self/status");
	int n = atoi(t + 9);
	free(s);
	return n;
}

static ig_ledger *open_sealed(void)
{
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts so = {.writer = true, .sealed_ok = true};
	cr_assert_eq(ig_ledger_open(&l, ldir, &so, &err), IG_OK, "a sealed open must succeed: %s", err.msg);
	return l;
}

Test(sealed, open_refuses_appends_until_unsealed_with_the_genesis_key)
{
	make_sealed_ledger();
	ig_error err = {0};
	ig_ledger *l = NULL;

	/* A writer that does not accept a sealed ledger says why, and what to do. */
	ig_ledger_open_opts wo = {.writer = true};
	cr_assert_eq(ig_ledger_open(&l, ldir, &wo, &err), IG_ERR_SEALED);
	cr_assert_null(l);
	cr_assert_not_null(strstr(err.msg, "is sealed"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, "custody recover"), "%s", err.msg);

	int threads_before = threads_now();
	l = open_sealed();
	cr_assert(ig_ledger_sealed(l));
	cr_assert_null(ig_ledger_ch_sk(l), "a sealed ledger has no key to hand out");
	cr_assert_eq(ig_ledger_height(l), 3, "every record is replayed while sealed");
	cr_assert_geq(ig_ledger_event_fd(l), 0, "the completion fd exists from the open on");
	cr_assert_eq(threads_now(), threads_before, "a sealed open must start no writer thread");

	/* It holds the lock: no second writer. */
	ig_ledger *second = NULL;
	ig_ledger_open_opts so = {.writer = true, .sealed_ok = true};
	cr_assert_eq(ig_ledger_open(&second, ldir, &so, &err), IG_ERR_LOCKED);

	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "dev3");
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, NULL, NULL), IG_ERR_SEALED);
	memset(&err, 0, sizeof err);
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, NULL, &err), IG_ERR_SEALED);
	cr_assert_not_null(strstr(err.msg, "sealed"), "%s", err.msg);
	cr_assert_eq(ig_ledger_sync(l, &err), IG_ERR_SEALED, "a sync would wait for a signature that cannot come");
	cr_assert_eq(ig_ledger_poll(l), 0);
	cr_assert_eq(threads_now(), threads_before, "a refused append must not start the writer");

	/* A key of another cluster, and a key whose public half was pasted
	 * onto another seed, are refused; the ledger stays sealed. */
	uint8_t other_pk[IG_PK_BYTES], other_sk[IG_SK_BYTES];
	tu_seed_keypair(other_pk, other_sk, 0x42);
	memset(&err, 0, sizeof err);
	cr_assert_eq(ig_ledger_unseal(l, other_sk, &err), IG_ERR_CRYPTO);
	cr_assert_not_null(strstr(err.msg, "not the genesis key"), "%s", err.msg);
	memcpy(other_sk + 32, ig_ledger_ch_pk(l), IG_PK_BYTES);
	cr_assert_eq(ig_ledger_unseal(l, other_sk, &err), IG_ERR_CRYPTO, "a seed of another key with our pk");
	sodium_memzero(other_sk, sizeof other_sk);
	cr_assert(ig_ledger_sealed(l));
	cr_assert_null(ig_ledger_ch_sk(l));
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, NULL, NULL), IG_ERR_SEALED);

	/* The genesis key unseals it: the writer starts and appends work. */
	memset(&err, 0, sizeof err);
	cr_assert_eq(ig_ledger_unseal(l, ch_sk, &err), IG_OK, "%s", err.msg);
	cr_assert_not(ig_ledger_sealed(l));
	cr_assert_not_null(ig_ledger_ch_sk(l));
	cr_assert_eq(sodium_memcmp(ig_ledger_ch_sk(l), ch_sk, IG_SK_BYTES), 0);
	cr_assert_eq(ig_ledger_unseal(l, ch_sk, &err), IG_ERR_STATE, "a second unseal has nothing to do");
	cr_assert_eq(append_enroll(l, "dev3"), 3);
	cr_assert_eq(ig_ledger_sync(l, &err), IG_OK, "%s", err.msg);
	ig_ledger_close(l);

	/* Durable, and signed with the genesis key: a reopen (sealed again:
	 * there is still no ch.key) and a full verify both see it. */
	l = open_sealed();
	cr_assert(ig_ledger_sealed(l));
	cr_assert_eq(ig_ledger_height(l), 4);
	ig_checkpoint cp;
	cr_assert_geq(ig_ledger_checkpoint(l, NULL, 0, &cp), 0);
	cr_assert_eq(cp.size, 4, "the record appended after the unseal is covered by a signed checkpoint");
	ig_ledger_close(l);
	ig_verify_result res;
	cr_assert_eq(ig_ledger_verify(ldir, NULL, NULL, NULL, NULL, &res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 4);
	cr_assert_eq(res.checkpoint_size, 4);
}

/* Read-only opens and verify never needed the key. */
Test(sealed, readers_need_no_key)
{
	make_sealed_ledger();
	ig_error err = {0};
	ig_ledger *l = NULL;
	ig_ledger_open_opts ro = {0};
	cr_assert_eq(ig_ledger_open(&l, ldir, &ro, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_ledger_height(l), 3);
	cr_assert_not(ig_ledger_sealed(l), "a reader is not a sealed writer");
	ig_ledger_close(l);
	ig_verify_result res;
	cr_assert_eq(ig_ledger_verify(ldir, NULL, NULL, NULL, NULL, &res, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(res.height, 3);
}

/* Closing a ledger that was never unsealed joins no thread and leaks
 * nothing (ASan). */
Test(sealed, close_while_sealed_is_clean)
{
	make_sealed_ledger();
	ig_ledger *l = open_sealed();
	uint8_t cosigned[] = "not a checkpoint, kept for the writer";
	cr_assert_eq(ig_ledger_publish_cosigned(l, (const char *)cosigned, sizeof cosigned - 1, 3), IG_OK,
	             "a cosigned checkpoint is kept for after the unseal");
	ig_ledger_close(l);
	/* The lock was dropped: a normal writer (with the key back) opens. */
	cr_assert_eq(rename(key_away, key_file), 0);
	ig_error err = {0};
	ig_ledger_open_opts wo = {.writer = true, .sealed_ok = true};
	cr_assert_eq(ig_ledger_open(&l, ldir, &wo, &err), IG_OK, "%s", err.msg);
	cr_assert_not(ig_ledger_sealed(l), "ch.key wins over ch.key.sealed");
	cr_assert_not_null(ig_ledger_ch_sk(l));
	cr_assert_eq(ig_ledger_unseal(l, ch_sk, &err), IG_ERR_STATE);
	ig_ledger_close(l);
}

/* A crash's torn tail is cut by a sealed writer as by any writer. */
Test(sealed, torn_tail_is_cut_while_sealed)
{
	make_sealed_ledger();
	char log_path[400];
	snprintf(log_path, sizeof log_path, "%s/%s", ldir, IG_LEDGER_LOG);
	struct stat st;
	cr_assert_eq(stat(log_path, &st), 0);
	off_t good = st.st_size;
	FILE *f = fopen(log_path, "ab");
	cr_assert_not_null(f);
	fwrite("\x01\x02\x03\x04\x05\x06\x07", 1, 7, f);
	fclose(f);
	ig_ledger *l = open_sealed();
	cr_assert_eq(stat(log_path, &st), 0);
	cr_assert_eq(st.st_size, good, "the torn tail must be cut");
	cr_assert_eq(ig_ledger_height(l), 3);
	ig_ledger_close(l);
}

/* With neither ch.key nor ch.key.sealed the open fails as it always did. */
Test(sealed, no_key_and_no_sealed_key_still_fails)
{
	make_sealed_ledger();
	cr_assert_eq(unlink(sealed_file), 0);
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts so = {.writer = true, .sealed_ok = true};
	cr_assert_eq(ig_ledger_open(&l, ldir, &so, &err), IG_ERR_NOTFOUND);
	cr_assert_null(l);
	cr_assert_not_null(strstr(err.msg, "open key file"), "%s", err.msg);
	cr_assert_not_null(strstr(err.msg, IG_LEDGER_KEY), "%s", err.msg);
}

/* A service whose record a sealed ledger refused tells its requester so,
 * not that a disk failed. */
Test(sealed, refusal_sentence_for_requesters)
{
	const char *msg = ig_decision_ledger_refusal(IG_ERR_SEALED);
	cr_assert_not_null(strstr(msg, "the cluster head is sealed"), "%s", msg);
	cr_assert_not_null(strstr(msg, "retry later"), "%s", msg);
	cr_assert_null(strstr(msg, "disk"), "%s", msg);
}
