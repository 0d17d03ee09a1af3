/*
 * test_ledger_idle.c: the ledger's writer thread exits when it has nothing
 * to do and comes back for the next append, losing nothing.
 *
 * Why this exists: a second thread makes Linux refcount the file on every
 * system call of the broker's event loop (a shared file table), which cost
 * about half a microsecond per relayed message (bench/run.sh). So a writer
 * ledger that is idle must leave its process single-threaded, and an
 * append after that must still be written, acknowledged and checkpointed
 * exactly as before, through both the blocking and the polled API.
 */
#include <criterion/criterion.h>

#include <poll.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ig_ledger.h"
#include "ig_record.h"
#include "testutil.h"

static char root[256];
static char ldir[300];

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_tempdir(root, sizeof root, "ledger-idle", 0);
	snprintf(ldir, sizeof ldir, "%s/ledger", root);
}

static void teardown(void)
{
	cr_assert_eq(tu_rmtree(root), 0, "cannot remove %s", root);
}

TestSuite(ledger_idle, .init = setup, .fini = teardown, .timeout = 60);

/* Threads of this process, as the kernel counts them. */
static int threads(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	cr_assert_not_null(f, "cannot read /proc/self/status");
	char line[256];
	int n = -1;
	while (fgets(line, sizeof line, f))
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	fclose(f);
	cr_assert(n > 0, "no Threads: line in /proc/self/status");
	return n;
}

static void sleep_ms(long ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

/* True once the process has `want` threads, within `ms`. */
static bool threads_become(int want, long ms)
{
	for (long waited = 0; waited <= ms; waited += 20) {
		if (threads() == want)
			return true;
		sleep_ms(20);
	}
	return false;
}

typedef struct done_seen {
	int calls, status;
	uint64_t index;
} done_seen;

static void on_done(void *ctx, int status, const ig_record *rec)
{
	done_seen *d = ctx;
	d->calls++;
	d->status = status;
	d->index = rec ? rec->index : 0;
}

static ig_ledger *open_ledger(bool writer)
{
	ig_ledger *l = NULL;
	ig_error err = {0};
	ig_ledger_open_opts opts = {.writer = writer};
	cr_assert_eq(ig_ledger_open(&l, ldir, &opts, &err), IG_OK, "open: %s", err.msg);
	return l;
}

Test(ledger_idle, writer_exits_when_idle_and_returns_for_appends)
{
	ig_error err = {0};
	uint8_t pk[IG_PK_BYTES];
	cr_assert_eq(ig_ledger_init(ldir, "testc", pk, &err), IG_OK, "%s", err.msg);
	int base = threads();

	ig_ledger *l = open_ledger(true);
	cr_assert_eq(threads(), base + 1, "open starts the writer (it signs any unsigned tail)");
	cr_assert(threads_become(base, 5000), "an idle writer must exit; the process still has %d threads (base %d)",
	          threads(), base);

	/* A blocking append after the exit: a writer starts, the record is
	 * durable and acknowledged. */
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "dev0");
	ig_record rec;
	cr_assert_eq(ig_ledger_append(l, IG_REC_ENROLL, body, len, &rec, &err), IG_OK, "append: %s", err.msg);
	cr_assert_eq(rec.index, 1);
	cr_assert_eq(threads(), base + 1, "the append started a writer");
	cr_assert(threads_become(base, 5000), "the writer must exit again when idle");

	/* The polled API (the broker's) after an exit: the completion arrives
	 * through the event fd as before. */
	len = tu_device_enroll_body(body, sizeof body, "dev1");
	done_seen d = {0};
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, on_done, &d), IG_OK);
	struct pollfd pfd = {.fd = ig_ledger_event_fd(l), .events = POLLIN};
	for (int i = 0; i < 500 && d.calls == 0; i++) {
		(void)poll(&pfd, 1, 10);
		(void)ig_ledger_poll(l);
	}
	cr_assert_eq(d.calls, 1, "the submitted record's completion must run once");
	cr_assert_eq(d.status, IG_OK);
	cr_assert_eq(d.index, 2);
	cr_assert_eq(ig_ledger_sync(l, &err), IG_OK, "sync: %s", err.msg);
	cr_assert_eq(ig_ledger_height(l), 3, "genesis and two enrolls");
	cr_assert(threads_become(base, 5000), "the writer must exit when idle after a polled append");

	/* Closing with no writer running, then reopening: both records are
	 * there and checkpointed (a writer open would cut an unsigned tail). */
	ig_ledger_close(l);
	cr_assert_eq(threads(), base);
	l = open_ledger(false);
	cr_assert_eq(ig_ledger_height(l), 3);
	ig_ledger_close(l);
}

Test(ledger_idle, close_while_the_writer_runs)
{
	ig_error err = {0};
	uint8_t pk[IG_PK_BYTES];
	cr_assert_eq(ig_ledger_init(ldir, "testc", pk, &err), IG_OK, "%s", err.msg);
	int base = threads();
	ig_ledger *l = open_ledger(true);
	uint8_t body[512];
	size_t len = tu_device_enroll_body(body, sizeof body, "dev0");
	done_seen d = {0};
	cr_assert_eq(ig_ledger_submit(l, IG_REC_ENROLL, body, len, on_done, &d), IG_OK);
	ig_ledger_close(l);   /* finishes the record and runs its completion */
	cr_assert_eq(d.calls, 1);
	cr_assert_eq(d.status, IG_OK);
	cr_assert_eq(d.index, 1);
	cr_assert_eq(threads(), base, "close joins the writer");
	l = open_ledger(false);
	cr_assert_eq(ig_ledger_height(l), 2);
	ig_ledger_close(l);
}
