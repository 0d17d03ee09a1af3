/*
 * svc_custody.c: the custody service (ig_svc_custody.h; docs/PROTOCOL.md,
 * "Custody").
 *
 * Why this exists: see ig_svc_custody.h. Three machines share this file and
 * never run at once on the same epoch:
 * - the deal: choose n holders, deal shares of S, append custody_epoch, box
 *   each holder its share once that is durable, collect every ack, append
 *   custody_active, tell the holders, make sure ch.key.sealed is for S. A
 *   deal that stalls is abandoned; the active epoch stays in force;
 * - the collection: with an active epoch but S not in memory (a sealed start,
 *   or an unsealed start that must be able to rotate), ask each online holder
 *   for its share under a fresh per-boot X25519 key, check each on the
 *   worker, and at k good shares rebuild S (and, sealed, the key);
 * - the watch: once a second, whether a rotation is due (timer, a revoked
 *   holder, a holder offline too long, an admin's request).
 * The worker thread does the slow or secret-heavy work; its results come
 * back through a locked list the tick drains, so every state change happens
 * on the caller's thread.
 */
#include "ig_svc_custody.h"

#include "ig_custody.h"
#include "ig_custody_approve.h"
#include "ig_custody_view.h"
#include "ig_durable.h"
#include "ig_holders.h"
#include "ig_idtable.h"
#include "ig_json.h"
#include "ig_keybox.h"
#include "ig_ledger.h"
#include "ig_record.h"
#include "ig_vss.h"
#include "ig_workq.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define POLL_MS 1000u
#define RETRY_MS 5000u
#define DEV_TABLE_MAX ((size_t)1 << 22)
#define BAD_QUEUE_MAX 64
#define SEALED_MAX (4096 + IG_CUSTODY_SEALED_OVERHEAD + 1)
#define KEYFILE_MAX 4097
#define BY_AUTO "cluster-head"
#define RETELL_MS 60000u   /* a status still showing a void epoch is answered again after this */

/* What an agent's status said about it. */
typedef struct dev_info {
	bool battery_known, mains;
	uint8_t percent;
	uint64_t uptime_ms;
	uint64_t at_ms;
	uint64_t told_epoch;      /* the active epoch last sent because its status showed an older one */
	uint64_t told_ms;
} dev_info;

/* Guarded, locked memory (sodium_malloc): the custody secret, the per-boot
 * X25519 key, the shares of the deal in flight and those collected. */
typedef struct secrets {
	uint8_t S[32];
	uint8_t xsk[32];
	uint8_t dealt[IG_VSS_MAX][32];
	uint8_t got[IG_VSS_MAX][32];
} secrets;

typedef struct deal_state {
	bool on, durable;
	uint64_t epoch;
	unsigned k, n;
	char holders[IG_VSS_MAX][IG_ID_MAX + 1];
	uint8_t commitments[IG_VSS_MAX][32];
	bool acked[IG_VSS_MAX], was_online[IG_VSS_MAX];
	unsigned acks;
	uint64_t started_ms;
	char reason[IG_CUSTODY_REASON_MAX + 1];
	char by[IG_BY_MAX + 1];
	/* The epoch active when the deal started: its holders are told of the
	 * new one too, so one left out wipes its share of the same S. */
	uint64_t prev_epoch;
	unsigned prev_n;
	char prev_holders[IG_VSS_MAX][IG_ID_MAX + 1];
	/* Admin unseal mode: the active admins at deal time, ascending, and the
	 * cluster-head key's signature over them (ig_custody_approve.h). */
	bool has_admins;
	size_t n_admins;
	uint8_t admins[IG_CUSTODY_ADMINS_MAX][32];
	uint8_t admins_sig[IG_CUSTODY_SIG_BYTES];
} deal_state;

typedef struct collect_state {
	bool on;
	uint64_t epoch;
	uint8_t request[16];
	uint8_t xpk[32];
	bool asked[IG_VSS_MAX], pending[IG_VSS_MAX], have[IG_VSS_MAX], bad[IG_VSS_MAX], online[IG_VSS_MAX];
	unsigned good;
	bool combining;
	uint64_t arrived_ms[IG_VSS_MAX];  /* when each share's message arrived */
	uint64_t kth_ms;            /* when the share that made k good ones arrived */
	uint64_t retry_at_ms;       /* after a failed combine */
	/* Admin unseal mode: nothing is asked until an admin approves this
	 * request id and pk against this ledger size and root. */
	uint64_t head_size;
	uint8_t head_root[32];
	bool approved;
	uint8_t admin_pk[IG_PK_BYTES];
	uint8_t approval_sig[IG_CUSTODY_SIG_BYTES];
	char approved_by[IG_ID_MAX + 1];
} collect_state;

/* `iotguard custody recover`: shares released to the CLI's key, passed on
 * unopened (only the CLI can open them). */
typedef struct recover_state {
	bool on, reading;
	uint64_t epoch;
	uint8_t request[16];
	uint8_t pk[32];
	bool approved;             /* the admin's approval goes with each request */
	uint8_t admin_pk[IG_PK_BYTES], approval_sig[IG_CUSTODY_SIG_BYTES], root[32];
	uint64_t size;
	bool asked[IG_VSS_MAX], got[IG_VSS_MAX];
	uint8_t nonce[IG_VSS_MAX][24];
	uint8_t box[IG_VSS_MAX][IG_CUSTODY_RELEASE_BOX_BYTES];
	unsigned count;
	uint64_t deadline_ms;
	ig_svc_custody_recover_fn done;
	void *done_ctx;
} recover_state;

typedef struct bad_rec {
	uint64_t epoch;
	char holder[IG_ID_MAX + 1];
	char reason[128];
} bad_rec;

typedef enum job_kind { JOB_VERIFY, JOB_COMBINE, JOB_ENSURE_SEALED, JOB_WIPE_KEY, JOB_READ_SEALED, JOB_DEAL } job_kind;

/* Per job, in guarded memory. */
typedef struct job_secret {
	uint8_t xsk[32];
	uint8_t share[32];
	uint8_t S[32];
	uint8_t sk[IG_SK_BYTES];
	uint8_t shares[IG_VSS_MAX][32];
	uint8_t indices[IG_VSS_MAX];
} job_secret;

typedef struct job {
	ig_work link;                 /* first: the worker queue's */
	job_kind kind;
	uint64_t epoch;
	unsigned k, m, index;
	char holder[IG_ID_MAX + 1];
	uint8_t holder_pk[IG_PK_BYTES], request[16], nonce[24];
	uint8_t box[IG_CUSTODY_RELEASE_BOX_BYTES];
	uint8_t commitments[IG_VSS_MAX][32];
	bool unseal, ensure;
	uint8_t ch_pk[IG_PK_BYTES];
	uint8_t *file;             /* JOB_READ_SEALED: the file's bytes (malloc'd; public) */
	size_t file_len;
	char key_path[4200], sealed_path[4200];
	ig_svc_custody_done_fn done;
	void *done_ctx;
	/* results */
	int status;
	bool wrote;
	char msg[300];
	job_secret *sec;
} job;

struct ig_svc_custody {
	ig_state *st;
	ig_pool *pool;
	ig_svc_custody_config cfg;
	ig_svc_custody_env env;
	char key_path[4200], sealed_path[4200];
	uint8_t ch_pk[IG_PK_BYTES];

	secrets *sec;
	bool S_known;
	bool sealed_file_ok;       /* ch.key.sealed on disk opens with S */
	bool sealed_file_busy;
	bool wiping;
	/* A deal's shares and commitments are being computed on the worker
	 * (k base multiplications and n·k scalar products: milliseconds at
	 * k = n = 255, too long for the broker's loop); c->deal holds its
	 * holders, reason and by meanwhile. */
	bool deal_computing;

	ig_idtable *devs;

	deal_state deal;
	collect_state col;
	recover_state *rec;        /* NULL unless a recover is under way */
	uint64_t epoch_floor;      /* no epoch at or below this is dealt again */
	uint64_t next_deal_ms;
	char waiting[300];         /* why no deal starts, for the status */

	/* The active epoch's holders, watched for rotation. */
	uint64_t watch_epoch;
	uint64_t offline_since[IG_VSS_MAX];
	bool revoked_holder;
	bool rotate_requested;
	bool fresh_S;              /* the next deal makes a new S (the old one cannot be rebuilt) */
	char rotate_by[IG_BY_MAX + 1];

	/* Admin unseal mode: the admin list the holders of the active epoch
	 * keep, as this start dealt it (admins_epoch 0: dealt before this
	 * start, so not known here), and the registry's admin counts when it
	 * was last compared. */
	uint64_t admins_epoch;
	size_t n_known_admins;
	uint8_t known_admins[IG_CUSTODY_ADMINS_MAX][32];
	uint64_t admin_counts[2];

	bad_rec bad_queue[BAD_QUEUE_MAX];
	size_t n_bad_queue;
	char last_bad_holder[IG_ID_MAX + 1];

	uint64_t next_poll_ms;
	char *last_state;

	ig_svc_custody_counts counts;

	/* the worker */
	ig_workq work;
};

/* ---- small helpers ------------------------------------------------------ */

static const ig_custody_view *view(const ig_svc_custody *c)
{
	return ig_state_custody(c->st);
}


static const char *req_nonce(const cJSON *req)
{
	const cJSON *n = cJSON_IsObject(req) ? cJSON_GetObjectItemCaseSensitive(req, "nonce") : NULL;
	return cJSON_IsString(n) && ig_decision_nonce_ok(n->valuestring) ? n->valuestring : "";
}

static const char *str_field(const cJSON *req, const char *name)
{
	const cJSON *f = cJSON_GetObjectItemCaseSensitive(req, name);
	return cJSON_IsString(f) ? f->valuestring : NULL;
}

static void emit(ig_svc_custody *c, const char *event, uint64_t epoch, const char *holder, const char *message)
{
	if (!c->env.event)
		return;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "type", "custody_event");
	cJSON_AddStringToObject(o, "event", event);
	cJSON_AddNumberToObject(o, "ts", (double)ig_now_ms());
	cJSON_AddNumberToObject(o, "epoch", (double)epoch);
	if (holder)
		cJSON_AddStringToObject(o, "holder", holder);
	if (message)
		cJSON_AddStringToObject(o, "message", message);
	c->env.event(c->env.ctx, o);
}

static bool is_sealed(const ig_svc_custody *c)
{
	return c->env.sealed && c->env.sealed(c->env.ctx);
}

static bool online(const ig_svc_custody *c, const char *id)
{
	return c->env.online && c->env.online(c->env.ctx, id);
}

/* ---- admins (admin unseal mode) ------------------------------------------ */

struct admins_acc {
	uint8_t (*pks)[32];
	size_t n;
	bool over;
};

static bool add_admin(void *ctx, const ig_identity *idn)
{
	struct admins_acc *acc = ctx;
	if (idn->role != IG_ROLE_ADMIN || idn->status != IG_ID_ACTIVE)
		return true;
	if (acc->n == IG_CUSTODY_ADMINS_MAX) {
		acc->over = true;
		return false;
	}
	memcpy(acc->pks[acc->n++], idn->pk, 32);
	return true;
}

/* The active admins' keys, ascending. IG_ERR_RANGE when there are more than
 * IG_CUSTODY_ADMINS_MAX. */
static int current_admins(const ig_svc_custody *c, uint8_t pks[][32], size_t *n)
{
	struct admins_acc acc = {.pks = pks};
	ig_state_identity_foreach(c->st, add_admin, &acc);
	*n = acc.n;
	if (acc.over)
		return IG_ERR_RANGE;
	ig_custody_approve_admins_sort(pks, acc.n);
	return IG_OK;
}

/* ---- the worker --------------------------------------------------------- */

static void job_free(job *j)
{
	if (!j)
		return;
	if (j->sec)
		sodium_free(j->sec);   /* wipes */
	free(j->file);
	sodium_memzero(j, sizeof *j);
	free(j);
}

static job *job_new(ig_svc_custody *c, job_kind kind)
{
	job *j = calloc(1, sizeof *j);
	if (!j)
		return NULL;
	j->sec = sodium_malloc(sizeof *j->sec);
	if (!j->sec) {
		free(j);
		return NULL;
	}
	sodium_memzero(j->sec, sizeof *j->sec);
	j->kind = kind;
	memcpy(j->ch_pk, c->ch_pk, IG_PK_BYTES);
	memcpy(j->key_path, c->key_path, sizeof j->key_path);
	memcpy(j->sealed_path, c->sealed_path, sizeof j->sealed_path);
	return j;
}

_Static_assert(offsetof(job, link) == 0, "a job is found from its queue link");

static job *job_of(ig_work *w)
{
	return (job *)w;
}

static void submit(ig_svc_custody *c, job *j)
{
	ig_workq_submit(&c->work, &j->link);
}

static void run_verify(job *j)
{
	ig_custody_release r;
	if (ig_custody_release_open(&r, j->box, sizeof j->box, j->nonce, j->holder_pk, j->sec->xsk) != IG_OK) {
		j->status = IG_ERR_CRYPTO;
		snprintf(j->msg, sizeof j->msg, "the share's box does not open with the holder's key");
	} else if (sodium_memcmp(r.request, j->request, 16) != 0 || r.epoch != j->epoch || r.index != j->index) {
		j->status = IG_ERR_CRYPTO;
		snprintf(j->msg, sizeof j->msg, "the sealed share names another request, epoch or index than its message");
	} else if (ig_vss_verify(r.share, j->index, (const uint8_t(*)[32])j->commitments, j->k) != IG_OK) {
		j->status = IG_ERR_CRYPTO;
		snprintf(j->msg, sizeof j->msg, "the share does not match epoch %llu's commitments",
		         (unsigned long long)j->epoch);
	} else {
		memcpy(j->sec->share, r.share, 32);
		j->status = IG_OK;
	}
	sodium_memzero(&r, sizeof r);
}

/* Makes sure ch.key.sealed opens with S; writes it from ch.key when not. */
static void ensure_sealed(job *j)
{
	uint8_t *buf = sodium_malloc(SEALED_MAX + KEYFILE_MAX + 4096);
	if (!buf) {
		j->status = IG_ERR_NOMEM;
		snprintf(j->msg, sizeof j->msg, "out of memory checking %s", IG_CUSTODY_SEALED_FILE);
		return;
	}
	uint8_t *sealed = buf, *plain = buf + SEALED_MAX, *scratch = buf + SEALED_MAX + KEYFILE_MAX;
	size_t len = 0, plain_len = 0;
	ig_error err = {0};
	int rc = ig_durable_read((char *)sealed, SEALED_MAX, &len, j->sealed_path, "the sealed key", &err);
	if (rc == IG_OK) {
		rc = ig_custody_unseal_file(scratch, 4096, &plain_len, j->sec->S, j->ch_pk, sealed, len, &err);
		if (rc == IG_OK) {
			j->status = IG_OK;
			goto out;
		}
	}
	rc = ig_durable_read((char *)plain, KEYFILE_MAX, &plain_len, j->key_path, "the cluster-head key", &err);
	if (rc != IG_OK) {
		j->status = rc;
		snprintf(j->msg, sizeof j->msg, "%s does not open with S and ch.key cannot be read (%.200s)",
		         IG_CUSTODY_SEALED_FILE, err.msg);
		goto out;
	}
	rc = ig_custody_seal(sealed, SEALED_MAX, &len, j->sec->S, j->ch_pk, plain, plain_len);
	if (rc == IG_OK)
		rc = ig_durable_replace(j->sealed_path, sealed, len, "the sealed key", &err);
	else
		snprintf(err.msg, sizeof err.msg, "sealing ch.key failed");
	j->status = rc;
	j->wrote = rc == IG_OK;
	if (rc != IG_OK)
		snprintf(j->msg, sizeof j->msg, "cannot write %s: %.200s", IG_CUSTODY_SEALED_FILE, err.msg);
out:
	sodium_free(buf);
}

static void run_combine(job *j)
{
	if (ig_vss_combine(j->sec->S, j->sec->indices, (const uint8_t(*)[32])j->sec->shares, j->m) != IG_OK ||
	    ig_vss_check_secret(j->sec->S, j->commitments[0]) != IG_OK) {
		j->status = IG_ERR_CRYPTO;
		snprintf(j->msg, sizeof j->msg, "the %u checked shares combine to a secret that does not match "
		         "commitment 0", j->m);
		return;
	}
	j->status = IG_OK;
	if (j->unseal) {
		uint8_t *sealed = sodium_malloc(SEALED_MAX);
		size_t len = 0;
		ig_error err = {0};
		int rc = sealed ? ig_durable_read((char *)sealed, SEALED_MAX, &len, j->sealed_path, "the sealed key", &err)
		                : IG_ERR_NOMEM;
		if (rc == IG_OK)
			rc = ig_custody_unseal(j->sec->sk, j->sec->S, j->ch_pk, sealed, len, &err);
		if (sealed)
			sodium_free(sealed);
		if (rc != IG_OK) {
			j->status = rc;
			snprintf(j->msg, sizeof j->msg, "S was rebuilt but %s does not unseal: %.200s", IG_CUSTODY_SEALED_FILE,
			         err.msg);
		}
	} else if (j->ensure) {
		ensure_sealed(j);
	}
}

static void run_wipe(job *j)
{
	ig_error err = {0};
	int fd = open(j->key_path, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT) {
			j->status = IG_OK;   /* already gone */
			return;
		}
		j->status = IG_ERR_IO;
		snprintf(j->msg, sizeof j->msg, "open %.200s: %s", j->key_path, strerror(errno));
		return;
	}
	struct stat sb;
	int rc = fstat(fd, &sb);
	uint8_t zeros[512] = {0};
	off_t left = rc == 0 ? sb.st_size : 0;
	while (rc == 0 && left > 0) {
		size_t n = left < (off_t)sizeof zeros ? (size_t)left : sizeof zeros;
		ssize_t w = write(fd, zeros, n);
		if (w <= 0) {
			rc = -1;
			break;
		}
		left -= w;
	}
	if (rc == 0)
		rc = fsync(fd);
	int saved = errno;
	close(fd);
	if (rc != 0) {
		j->status = IG_ERR_IO;
		snprintf(j->msg, sizeof j->msg, "overwriting %.200s failed: %s; it is still on disk", j->key_path, strerror(saved));
		return;
	}
	if (unlink(j->key_path) != 0) {
		j->status = IG_ERR_IO;
		snprintf(j->msg, sizeof j->msg, "unlink %.200s: %s (its bytes are zeroed)", j->key_path, strerror(errno));
		return;
	}
	j->status = ig_durable_sync_parent(j->key_path, "the ledger directory", &err);
	if (j->status != IG_OK)
		snprintf(j->msg, sizeof j->msg, "%.250s", err.msg);
}

static void run_deal(job *j)
{
	j->status = ig_vss_deal(j->sec->shares, j->commitments, j->sec->S, j->k, j->m);
}

static void run_read_sealed(job *j)
{
	ig_error err = {0};
	j->file = malloc(SEALED_MAX);
	j->status = j->file ? ig_durable_read((char *)j->file, SEALED_MAX, &j->file_len, j->sealed_path, "the sealed key",
	                                      &err)
	                    : IG_ERR_NOMEM;
	if (j->status != IG_OK)
		snprintf(j->msg, sizeof j->msg, "cannot read %s: %.200s", IG_CUSTODY_SEALED_FILE, err.msg);
}

static void worker_run(void *ctx, ig_work *w)
{
	(void)ctx;
	job *j = job_of(w);
	switch (j->kind) {
	case JOB_VERIFY: run_verify(j); break;
	case JOB_COMBINE: run_combine(j); break;
	case JOB_ENSURE_SEALED: ensure_sealed(j); break;
	case JOB_WIPE_KEY: run_wipe(j); break;
	case JOB_READ_SEALED: run_read_sealed(j); break;
	case JOB_DEAL: run_deal(j); break;
	}
}

/* ---- life --------------------------------------------------------------- */

int ig_svc_custody_config_check(const ig_svc_custody_config *cfg, ig_error *err)
{
	if ((cfg->k == 0) != (cfg->n == 0))
		return ig_error_set(err, IG_ERR_INVAL, "plugin_opt_custody_threshold and plugin_opt_custody_shares go "
		                    "together: set both (2 <= K <= N <= 255) or neither");
	if (cfg->k && (cfg->k < 2 || cfg->k > cfg->n || cfg->n > IG_VSS_MAX))
		return ig_error_set(err, IG_ERR_INVAL, "custody needs 2 <= threshold K <= shares N <= 255 (got K = %u, "
		                    "N = %u); fix mosquitto.conf", cfg->k, cfg->n);
	return IG_OK;
}

ig_svc_custody *ig_svc_custody_new(ig_state *st, ig_pool *pool, const ig_svc_custody_config *cfg,
                                   const ig_svc_custody_env *env, ig_error *err)
{
	if (ig_svc_custody_config_check(cfg, err) != IG_OK)
		return NULL;
	ig_svc_custody *c = calloc(1, sizeof *c);
	if (!c) {
		ig_error_set(err, IG_ERR_NOMEM, "custody: out of memory");
		return NULL;
	}
	c->st = st;
	c->pool = pool;
	c->cfg = *cfg;
	if (!c->cfg.deal_timeout_s)
		c->cfg.deal_timeout_s = 120;
	if (!c->cfg.min_battery)
		c->cfg.min_battery = IG_HOLDERS_DEFAULT_MIN_BATTERY;
	c->env = *env;
	memcpy(c->ch_pk, cfg->ch_pk, IG_PK_BYTES);
	int n1 = snprintf(c->key_path, sizeof c->key_path, "%s/%s", cfg->ledger_dir, IG_LEDGER_KEY);
	int n2 = snprintf(c->sealed_path, sizeof c->sealed_path, "%s/%s", cfg->ledger_dir, IG_CUSTODY_SEALED_FILE);
	c->sec = sodium_malloc(sizeof *c->sec);
	if (n1 < 0 || n2 < 0 || (size_t)n2 >= sizeof c->sealed_path) {
		ig_error_set(err, IG_ERR_RANGE, "custody: the ledger path is too long");
		ig_svc_custody_free(c);
		return NULL;
	}
	if (!c->sec || ig_idtable_new(&c->devs, IG_ID_MAX, sizeof(dev_info), 64, DEV_TABLE_MAX) != IG_OK) {
		ig_error_set(err, IG_ERR_NOMEM, "custody: out of memory (locked memory: check ulimit -l)");
		ig_svc_custody_free(c);
		return NULL;
	}
	sodium_memzero(c->sec, sizeof *c->sec);
	if (ig_workq_start(&c->work, worker_run, c) != IG_OK) {
		ig_error_set(err, IG_ERR_IO, "custody: cannot start the worker thread");
		ig_svc_custody_free(c);
		return NULL;
	}
	return c;
}

void ig_svc_custody_free(ig_svc_custody *c)
{
	if (!c)
		return;
	for (ig_work *w = ig_workq_stop(&c->work); w;) {
		job *j = job_of(w);
		w = w->next;
		if (j->done)
			j->done(j->done_ctx, "closed", "the broker is shutting down; check ch.key and retry the seal");
		job_free(j);
	}
	if (c->rec) {
		c->rec->done(c->rec->done_ctx, "closed", "the broker is shutting down; run recover again", NULL);
		free(c->rec);
	}
	if (c->sec)
		sodium_free(c->sec);
	ig_idtable_free(c->devs);
	free(c->last_state);
	sodium_memzero(c, sizeof *c);
	free(c);
}

/* ---- messages to holders ----------------------------------------------- */

static cJSON *deal_message(ig_svc_custody *c, unsigned i)
{
	const uint8_t *ch_sk = c->env.ch_sk ? c->env.ch_sk(c->env.ctx) : NULL;
	const ig_identity *who = ig_state_active(c->st, c->deal.holders[i], IG_ROLE_NONE);
	const ig_box_key *bk = ch_sk && who ? ig_state_box_key(c->st, who, ch_sk) : NULL;
	if (!bk)
		return NULL;
	ig_custody_deal d = {.epoch = c->deal.epoch, .index = (uint8_t)(i + 1), .k = (uint8_t)c->deal.k,
	                     .n = (uint8_t)c->deal.n};
	memcpy(d.share, c->sec->dealt[i], 32);
	ig_custody_commitments_hash(d.commitments_hash, c->deal.epoch, (const uint8_t(*)[32])c->deal.commitments,
	                            c->deal.k);
	uint8_t box[IG_CUSTODY_DEAL_BOX_BYTES], nonce[24];
	int rc = ig_custody_deal_seal(box, nonce, &d, bk);
	sodium_memzero(&d, sizeof d);
	if (rc != IG_OK)
		return NULL;
	char nonce_hex[49], hex[65];
	char b64[sodium_base64_ENCODED_LEN(sizeof box, sodium_base64_VARIANT_ORIGINAL)];
	ig_hex_encode(nonce_hex, nonce, sizeof nonce);
	sodium_bin2base64(b64, sizeof b64, box, sizeof box, sodium_base64_VARIANT_ORIGINAL);
	cJSON *o = cJSON_CreateObject();
	cJSON *cs = o ? cJSON_CreateArray() : NULL;
	if (!cs) {
		cJSON_Delete(o);
		return NULL;
	}
	cJSON_AddStringToObject(o, "type", "custody_deal");
	cJSON_AddNumberToObject(o, "epoch", (double)c->deal.epoch);
	cJSON_AddNumberToObject(o, "k", c->deal.k);
	cJSON_AddNumberToObject(o, "n", c->deal.n);
	cJSON_AddNumberToObject(o, "index", i + 1);
	for (unsigned j = 0; j < c->deal.k; j++) {
		ig_hex_encode(hex, c->deal.commitments[j], 32);
		cJSON_AddItemToArray(cs, cJSON_CreateString(hex));
	}
	cJSON_AddItemToObject(o, "commitments", cs);
	cJSON_AddStringToObject(o, "box_nonce", nonce_hex);
	cJSON_AddStringToObject(o, "box", b64);
	if (c->deal.has_admins) {
		cJSON *as = cJSON_AddArrayToObject(o, "admins");
		char sig_b64[sodium_base64_ENCODED_LEN(IG_CUSTODY_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL)];
		for (size_t j = 0; as && j < c->deal.n_admins; j++) {
			ig_hex_encode(hex, c->deal.admins[j], 32);
			cJSON_AddItemToArray(as, cJSON_CreateString(hex));
		}
		sodium_bin2base64(sig_b64, sizeof sig_b64, c->deal.admins_sig, sizeof c->deal.admins_sig,
		                  sodium_base64_VARIANT_ORIGINAL);
		if (!as || !cJSON_AddStringToObject(o, "admins_sig", sig_b64)) {
			cJSON_Delete(o);
			return NULL;
		}
	}
	return o;
}

static cJSON *active_message(uint64_t epoch)
{
	cJSON *m = cJSON_CreateObject();
	if (!m)
		return NULL;
	cJSON_AddStringToObject(m, "type", "custody_active");
	cJSON_AddNumberToObject(m, "epoch", (double)epoch);
	return m;
}

static bool deal_holds(const deal_state *d, const char *id)
{
	for (unsigned i = 0; i < d->n; i++)
		if (strcmp(d->holders[i], id) == 0)
			return true;
	return false;
}

/* custody_request's "approval" (docs/PROTOCOL.md, "Custody: admin approval"). */
static bool add_approval(cJSON *o, const uint8_t admin_pk[32], const uint8_t sig[64], uint64_t size,
                         const uint8_t root[32])
{
	char admin_hex[65];
	char sig_b64[sodium_base64_ENCODED_LEN(IG_CUSTODY_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL)];
	char root_b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
	ig_hex_encode(admin_hex, admin_pk, 32);
	sodium_bin2base64(sig_b64, sizeof sig_b64, sig, IG_CUSTODY_SIG_BYTES, sodium_base64_VARIANT_ORIGINAL);
	sodium_bin2base64(root_b64, sizeof root_b64, root, 32, sodium_base64_VARIANT_ORIGINAL);
	cJSON *ap = cJSON_AddObjectToObject(o, "approval");
	return ap && cJSON_AddStringToObject(ap, "admin_pk", admin_hex) && cJSON_AddStringToObject(ap, "sig", sig_b64) &&
	       cJSON_AddNumberToObject(ap, "size", (double)size) && cJSON_AddStringToObject(ap, "root", root_b64);
}

static cJSON *request_message(const ig_svc_custody *c)
{
	char req_hex[33], pk_hex[65];
	ig_hex_encode(req_hex, c->col.request, 16);
	ig_hex_encode(pk_hex, c->col.xpk, 32);
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return NULL;
	cJSON_AddStringToObject(o, "type", "custody_request");
	cJSON_AddNumberToObject(o, "epoch", (double)c->col.epoch);
	cJSON_AddStringToObject(o, "request", req_hex);
	cJSON_AddStringToObject(o, "pk", pk_hex);
	if (c->col.approved && !add_approval(o, c->col.admin_pk, c->col.approval_sig, c->col.head_size, c->col.head_root)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* ---- the deal ------------------------------------------------------------ */

static void deal_wipe(ig_svc_custody *c)
{
	sodium_memzero(c->sec->dealt, sizeof c->sec->dealt);
	memset(&c->deal, 0, sizeof c->deal);
}

static void deal_abandon(ig_svc_custody *c, const char *why, uint64_t now_ms)
{
	uint64_t epoch = c->deal.epoch;
	c->counts.deals_abandoned++;
	deal_wipe(c);
	c->next_deal_ms = now_ms + RETRY_MS;
	snprintf(c->waiting, sizeof c->waiting, "the deal of epoch %llu was abandoned: %.240s",
	         (unsigned long long)epoch, why);
	ig_log(IG_LOG_WARN, "custody: %s", c->waiting);
	emit(c, "deal_abandoned", epoch, NULL, why);
}

/* Why record (a custody record type) did not become durable, for the
 * abandoned deal's event and the status. A conflict is a record another
 * broker appended to the shared ledger first (an epoch dealt or activated
 * there): the state already holds it, so the next deal starts from it. */
static const char *append_failure(char *buf, size_t cap, int status, const char *record)
{
	if (status == IG_ERR_UNKNOWN)
		snprintf(buf, cap, "the %s record may not be durable", record);
	else if (status == IG_ERR_CONFLICT)
		snprintf(buf, cap, "another broker appended a custody record to the shared ledger first, so this %s "
		         "record no longer applied and was not written; the next deal starts from the ledger's custody "
		         "state", record);
	else
		snprintf(buf, cap, "%s", ig_decision_ledger_refusal(status));
	return buf;
}

typedef struct epoch_pending {
	ig_svc_custody *c;
	uint64_t epoch;
} epoch_pending;

static void on_epoch_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	epoch_pending *ep = ctx;
	ig_svc_custody *c = ep->c;
	uint64_t epoch = ep->epoch;
	free(ep);
	if (status == IG_OK || status == IG_ERR_UNKNOWN)
		c->epoch_floor = epoch > c->epoch_floor ? epoch : c->epoch_floor;
	if (!c->deal.on || c->deal.epoch != epoch)
		return;
	uint64_t now = ig_now_ms();
	if (status != IG_OK) {
		char why[300];
		deal_abandon(c, append_failure(why, sizeof why, status, "custody_epoch"), now);
		return;
	}
	c->counts.epochs_dealt++;
	c->deal.durable = true;
	for (unsigned i = 0; i < c->deal.n; i++) {
		c->deal.was_online[i] = online(c, c->deal.holders[i]);
		if (!c->deal.was_online[i])
			continue;
		cJSON *m = deal_message(c, i);
		if (m)
			ig_decision_reply_chained(out, c->deal.holders[i], m);
	}
	ig_log(IG_LOG_INFO, "custody: epoch %llu dealt (%u of %u, %s); waiting for every holder's ack",
	       (unsigned long long)epoch, c->deal.k, c->deal.n, c->deal.reason);
}

static void start_deal(ig_svc_custody *c, const char *reason, const char *by, uint64_t now_ms)
{
	const ig_custody_view *v = view(c);
	unsigned k = c->cfg.k, n = c->cfg.n;

	/* Candidates: every identity whose agent reported a status. */
	size_t count = ig_idtable_count(c->devs), got = 0, cursor = 0;
	ig_holder_candidate *cands = calloc(count ? count : 1, sizeof *cands);
	size_t *chosen = calloc(n, sizeof *chosen);
	if (!cands || !chosen) {
		free(cands);
		free(chosen);
		c->next_deal_ms = now_ms + RETRY_MS;
		return;
	}
	dev_info *di;
	while ((di = ig_idtable_next(c->devs, &cursor)) && got < count) {
		size_t klen;
		const char *id = ig_idtable_key(c->devs, di, &klen);
		const ig_identity *idn = ig_state_active(c->st, id, IG_ROLE_NONE);
		if (!idn)
			continue;
		const ig_device *dev = ig_state_device_find(c->st, idn->id);
		ig_holder_candidate *h = &cands[got++];
		h->id = idn->id;
		h->zone = ig_state_zone(c->st, idn->id);
		h->role = idn->role;
		h->active = true;
		h->online = online(c, idn->id);
		h->attested = !dev || dev->attest != IG_ATTEST_DISALLOWED;   /* UNLISTED: no allow-list */
		h->battery_known = di->battery_known;
		h->mains = di->mains;
		h->battery_percent = di->percent;
		h->up_ms = di->uptime_ms + (now_ms > di->at_ms ? now_ms - di->at_ms : 0);
	}
	ig_holders_opts opts = {.role_mask = c->env.holder_roles ? c->env.holder_roles(c->env.ctx) : c->cfg.role_mask,
	                        .min_battery = c->cfg.min_battery};
	ig_error err = {0};
	int rc = ig_holders_choose(chosen, cands, got, n, &opts, &err);
	if (rc != IG_OK) {
		snprintf(c->waiting, sizeof c->waiting, "waiting for %u online eligible holders: %.200s", n, err.msg);
		c->next_deal_ms = now_ms + POLL_MS;   /* holders come and go: look again at the next poll */
		free(cands);
		free(chosen);
		return;
	}
	deal_state *d = &c->deal;
	memset(d, 0, sizeof *d);
	for (unsigned i = 0; i < n; i++)
		snprintf(d->holders[i], sizeof d->holders[i], "%s", cands[chosen[i]].id);
	if (v->active.epoch) {
		d->prev_epoch = v->active.epoch;
		d->prev_n = v->active.n;
		for (unsigned i = 0; i < v->active.n; i++)
			snprintf(d->prev_holders[i], sizeof d->prev_holders[i], "%s", v->active.holders[i]);
	}
	free(cands);
	free(chosen);

	/* S: the one the active epoch shares, or a new one. */
	if (!v->active.epoch || c->fresh_S) {
		uint8_t extra[32];
		bool have_extra = ig_pool_derive(c->pool, extra, sizeof extra, "custody-secret", NULL, 0) == IG_OK;
		rc = ig_custody_secret_new(c->sec->S, have_extra ? extra : NULL, have_extra ? sizeof extra : 0);
		sodium_memzero(extra, sizeof extra);
		if (rc != IG_OK) {
			memset(d, 0, sizeof *d);
			c->next_deal_ms = now_ms + RETRY_MS;
			return;
		}
	}
	snprintf(d->reason, sizeof d->reason, "%s", reason);
	snprintf(d->by, sizeof d->by, "%s", by);
	job *j = job_new(c, JOB_DEAL);
	if (!j) {
		deal_wipe(c);
		c->next_deal_ms = now_ms + RETRY_MS;
		return;
	}
	memcpy(j->sec->S, c->sec->S, sizeof j->sec->S);
	j->k = k;
	j->m = n;
	c->deal_computing = true;
	submit(c, j);
}

/* The worker computed the shares and commitments of the deal start_deal
 * began: number the epoch, sign the admin list, append custody_epoch. */
static void deal_computed(ig_svc_custody *c, job *j, uint64_t now_ms)
{
	const ig_custody_view *v = view(c);
	deal_state *d = &c->deal;
	unsigned k = j->k, n = j->m;
	int rc;
	c->deal_computing = false;
	if (j->status != IG_OK) {
		ig_log(IG_LOG_ERR, "custody: computing the shares of a deal failed (%d); retrying", j->status);
		deal_wipe(c);
		c->next_deal_ms = now_ms + RETRY_MS;
		return;
	}
	/* A holder revoked while the worker computed is no holder: choose again. */
	for (unsigned i = 0; i < n; i++) {
		if (!ig_state_active(c->st, d->holders[i], IG_ROLE_NONE)) {
			deal_wipe(c);
			c->next_deal_ms = now_ms;
			return;
		}
	}
	memcpy(c->sec->dealt, j->sec->shares, (size_t)n * sizeof c->sec->dealt[0]);
	memcpy(d->commitments, j->commitments, (size_t)k * sizeof d->commitments[0]);
	const char *reason = d->reason, *by = d->by;
	uint64_t last = v->dealt.epoch > v->active.epoch ? v->dealt.epoch : v->active.epoch;
	if (c->epoch_floor > last)
		last = c->epoch_floor;
	d->epoch = last + 1;
	d->k = k;
	d->n = n;
	d->started_ms = now_ms;
	if (c->cfg.unseal_admin) {
		/* The holders keep this signed list and release only against an
		 * approval by one of these admins. */
		const uint8_t *ch_sk = c->env.ch_sk ? c->env.ch_sk(c->env.ctx) : NULL;
		rc = current_admins(c, d->admins, &d->n_admins);
		if (rc == IG_OK && d->n_admins == 0) {
			snprintf(c->waiting, sizeof c->waiting, "admin unseal mode needs at least one active admin identity in "
			         "the signed list dealt to the holders: enroll one (iotguard enroll --role admin)");
			rc = IG_ERR_STATE;
		} else if (rc == IG_ERR_RANGE) {
			snprintf(c->waiting, sizeof c->waiting, "admin unseal mode signs at most %d admins into a deal; revoke "
			         "unused admin identities", IG_CUSTODY_ADMINS_MAX);
		} else if (rc == IG_OK) {
			rc = ch_sk ? ig_custody_approve_admins_sign(d->admins_sig, c->cfg.cluster, d->epoch,
			                                    (const uint8_t(*)[32])d->admins, d->n_admins, ch_sk)
			           : IG_ERR_STATE;
			if (rc != IG_OK)
				snprintf(c->waiting, sizeof c->waiting, "cannot sign the admin list (error %d)", rc);
		}
		if (rc != IG_OK) {
			ig_log(IG_LOG_WARN, "custody: %s", c->waiting);
			deal_wipe(c);
			c->next_deal_ms = now_ms + RETRY_MS;
			return;
		}
		d->has_admins = true;
	}
	ig_custody_epoch_rec *rec = calloc(1, sizeof *rec);
	size_t cap = 64 + (size_t)n * (IG_ID_MAX + 2) + (size_t)k * 32 + 128;
	uint8_t *body = malloc(cap);
	epoch_pending *ep = calloc(1, sizeof *ep);
	int blen = IG_ERR_NOMEM;
	if (rec && body && ep) {
		rec->epoch = d->epoch;
		rec->k = (uint8_t)k;
		rec->n = (uint8_t)n;
		rec->holder_count = n;
		for (unsigned i = 0; i < n; i++)
			memcpy(rec->holders[i], d->holders[i], sizeof rec->holders[i]);
		rec->commitment_count = k;
		memcpy(rec->commitments, d->commitments, (size_t)k * 32);
		snprintf(rec->reason, sizeof rec->reason, "%s", reason);
		snprintf(rec->by, sizeof rec->by, "%s", by);
		blen = ig_record_custody_epoch_encode(body, cap, rec);
	}
	ig_decision dec;
	memset(&dec, 0, sizeof dec);
	if (blen < 0 || !ig_decision_append(&dec, IG_REC_CUSTODY_EPOCH, body, (size_t)blen, on_epoch_done, ep)) {
		free(ep);
		free(rec);
		free(body);
		deal_wipe(c);
		c->next_deal_ms = now_ms + RETRY_MS;
		ig_log(IG_LOG_ERR, "custody: cannot build the custody_epoch record (%d)", blen);
		return;
	}
	free(rec);
	free(body);
	ep->c = c;
	ep->epoch = d->epoch;
	d->on = true;
	c->waiting[0] = '\0';
	if (strcmp(reason, "admin") == 0)
		c->rotate_requested = false;
	c->revoked_holder = false;
	c->env.carry_out(c->env.ctx, &dec);
}

typedef struct active_pending {
	ig_svc_custody *c;
	uint64_t epoch;
} active_pending;

static void on_active_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	active_pending *ap = ctx;
	ig_svc_custody *c = ap->c;
	uint64_t epoch = ap->epoch;
	free(ap);
	if (!c->deal.on || c->deal.epoch != epoch)
		return;
	uint64_t now = ig_now_ms();
	if (status != IG_OK) {
		char why[300];
		deal_abandon(c, append_failure(why, sizeof why, status, "custody_active"), now);
		return;
	}
	c->counts.epochs_active++;
	if (strcmp(c->deal.reason, "initial") != 0)
		c->counts.rotations++;
	for (unsigned i = 0; i < c->deal.n; i++)
		ig_decision_reply_chained(out, c->deal.holders[i], active_message(epoch));
	/* A holder of the previous epoch left out of this one still has a
	 * share of the same S: custody_active makes it wipe that share. One
	 * offline now is told when its status shows the old epoch. */
	unsigned left_out = 0;
	for (unsigned i = 0; i < c->deal.prev_n; i++) {
		if (deal_holds(&c->deal, c->deal.prev_holders[i]) || !online(c, c->deal.prev_holders[i]))
			continue;
		ig_decision_reply_chained(out, c->deal.prev_holders[i], active_message(epoch));
		left_out++;
	}
	if (left_out)
		ig_log(IG_LOG_INFO, "custody: %u holder%s of epoch %llu left out of epoch %llu told to wipe %s share",
		       left_out, left_out == 1 ? "" : "s", (unsigned long long)c->deal.prev_epoch,
		       (unsigned long long)epoch, left_out == 1 ? "its" : "their");
	ig_log(IG_LOG_INFO, "custody: epoch %llu is active (%u of %u holders, %s)", (unsigned long long)epoch,
	       c->deal.k, c->deal.n, c->deal.reason);
	bool fresh_S = !c->S_known;
	c->S_known = true;
	c->fresh_S = false;
	if (c->deal.has_admins) {
		c->admins_epoch = epoch;
		c->n_known_admins = c->deal.n_admins;
		memcpy(c->known_admins, c->deal.admins, sizeof c->known_admins);
	}
	deal_wipe(c);
	c->watch_epoch = 0;   /* re-armed on the next poll */
	if (fresh_S)
		c->sealed_file_ok = false;
	if (!c->sealed_file_ok && !c->sealed_file_busy) {
		job *j = job_new(c, JOB_ENSURE_SEALED);
		if (j) {
			memcpy(j->sec->S, c->sec->S, 32);
			c->sealed_file_busy = true;
			submit(c, j);
		}
	}
}

void ig_svc_custody_ack(ig_decision *out, ig_svc_custody *c, const char *id, const cJSON *req, uint64_t now_ms)
{
	const char *nonce = req_nonce(req);
	uint64_t epoch = 0, index = 0;
	const char *error = cJSON_IsObject(req) ? str_field(req, "error") : NULL;
	if (!nonce[0] || ig_json_uint_field(&epoch, req, "epoch", 1, IG_JSON_UINT_MAX) != IG_OK ||
	    ig_json_uint_field(&index, req, "index", 1, IG_VSS_MAX) != IG_OK) {
		c->counts.shares_refused++;
		ig_decision_refuse(out, "custody_ack", nonce, "malformed",
		                   "custody_ack needs \"nonce\", \"epoch\" (>= 1) and \"index\" (1..255)");
		return;
	}
	if (!ig_state_active(c->st, id, IG_ROLE_NONE)) {
		ig_decision_refuse(out, "custody_ack", nonce, "revoked", "this identity is not active");
		return;
	}
	if (!c->deal.on || c->deal.epoch != epoch || !c->deal.durable) {
		bool old = epoch <= view(c)->active.epoch || (c->deal.on && epoch < c->deal.epoch) ||
		           epoch <= c->epoch_floor;
		ig_decision_refuse(out, "custody_ack", nonce, old ? "old_epoch" : "not_dealing",
		                   old ? "epoch %llu is not being dealt any more; keep the share of the newest epoch"
		                       : "the cluster head is not dealing epoch %llu",
		                   (unsigned long long)epoch);
		return;
	}
	unsigned i = (unsigned)index - 1;
	if (i >= c->deal.n || strcmp(c->deal.holders[i], id) != 0) {
		ig_decision_refuse(out, "custody_ack", nonce, "not_holder", "you do not hold index %u of epoch %llu",
		                   (unsigned)index, (unsigned long long)epoch);
		return;
	}
	if (error) {
		const char *msg = str_field(req, "message");
		char why[300];
		snprintf(why, sizeof why, "holder %s refused its share: %s%s%.200s", id, error, msg ? ": " : "",
		         msg ? msg : "");
		c->counts.bad_acks++;
		emit(c, "bad_ack", epoch, id, why);
		deal_abandon(c, why, now_ms);
		return;
	}
	if (c->deal.acked[i])
		return;
	c->deal.acked[i] = true;
	c->deal.acks++;
	c->counts.acks++;
	emit(c, "ack", epoch, id, NULL);
	if (c->deal.acks < c->deal.n)
		return;
	ig_custody_active_rec ar = {.epoch = epoch};
	uint8_t body[64];
	int blen = ig_record_custody_active_encode(body, sizeof body, &ar);
	active_pending *ap = calloc(1, sizeof *ap);
	if (blen < 0 || !ap || !ig_decision_append(out, IG_REC_CUSTODY_ACTIVE, body, (size_t)blen, on_active_done, ap)) {
		free(ap);
		deal_abandon(c, "cannot build the custody_active record", now_ms);
		return;
	}
	ap->c = c;
	ap->epoch = epoch;
}

/* ---- the collection ------------------------------------------------------ */

static void collect_stop(ig_svc_custody *c)
{
	sodium_memzero(c->sec->xsk, sizeof c->sec->xsk);
	sodium_memzero(c->sec->got, sizeof c->sec->got);
	memset(&c->col, 0, sizeof c->col);
}

static void collect_start(ig_svc_custody *c, uint64_t now_ms)
{
	(void)now_ms;
	collect_stop(c);
	c->col.on = true;
	c->col.epoch = view(c)->active.epoch;
	crypto_box_keypair(c->col.xpk, c->sec->xsk);
	randombytes_buf(c->col.request, sizeof c->col.request);
	if (c->env.ledger_head && !c->env.ledger_head(c->env.ctx, &c->col.head_size, c->col.head_root))
		c->col.head_size = 0;
	if (c->cfg.unseal_admin) {
		char req_hex[33];
		ig_hex_encode(req_hex, c->col.request, 16);
		ig_log(IG_LOG_WARN, "custody: %s; request %s for the shares of epoch %llu waits for an admin's approval "
		       "(iotguard custody approve)", is_sealed(c) ? "sealed" : "the custody secret is not in memory", req_hex,
		       (unsigned long long)c->col.epoch);
		return;
	}
	ig_log(IG_LOG_INFO, "custody: %s; asking the holders of epoch %llu for their shares",
	       is_sealed(c) ? "sealed" : "the custody secret is not in memory", (unsigned long long)c->col.epoch);
}

static void on_bad_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)ctx;
	(void)rec;
	(void)out;
	char why[300];
	if (status != IG_OK)
		ig_log(IG_LOG_WARN, "custody: a custody_bad_share record was not written: %s",
		       append_failure(why, sizeof why, status, "custody_bad_share"));
}

/* A custody_bad_share record, now or (sealed) once unsealed. */
static void record_bad(ig_svc_custody *c, uint64_t epoch, const char *holder, const char *reason)
{
	if (is_sealed(c)) {
		if (c->n_bad_queue < BAD_QUEUE_MAX) {
			bad_rec *b = &c->bad_queue[c->n_bad_queue++];
			b->epoch = epoch;
			snprintf(b->holder, sizeof b->holder, "%s", holder);
			snprintf(b->reason, sizeof b->reason, "%.*s", (int)sizeof b->reason - 1, reason);
		}
		return;
	}
	ig_custody_bad_share_rec r = {.epoch = epoch};
	snprintf(r.holder, sizeof r.holder, "%s", holder);
	snprintf(r.reason, sizeof r.reason, "%s", reason);
	uint8_t body[512];
	int blen = ig_record_custody_bad_share_encode(body, sizeof body, &r);
	ig_decision d;
	memset(&d, 0, sizeof d);
	if (blen >= 0 && ig_decision_append(&d, IG_REC_CUSTODY_BAD_SHARE, body, (size_t)blen, on_bad_done, NULL))
		c->env.carry_out(c->env.ctx, &d);
}

static void maybe_combine(ig_svc_custody *c, uint64_t now_ms)
{
	const ig_custody_view *v = view(c);
	if (!c->col.on || c->col.combining || c->col.good < v->active.k)
		return;
	job *j = job_new(c, JOB_COMBINE);
	if (!j)
		return;
	unsigned m = 0;
	for (unsigned i = 0; i < v->active.n && m < v->active.k; i++)
		if (c->col.have[i]) {
			j->sec->indices[m] = (uint8_t)(i + 1);
			memcpy(j->sec->shares[m], c->sec->got[i], 32);
			m++;
		}
	j->m = m;
	j->k = v->active.k;
	j->epoch = v->active.epoch;
	memcpy(j->commitments, v->active.commitments, (size_t)v->active.k * 32);
	j->unseal = is_sealed(c);
	j->ensure = !j->unseal;
	c->col.combining = true;
	/* The k-th share is the latest to arrive of those combined. */
	c->col.kth_ms = 0;
	for (unsigned i = 0; i < m; i++) {
		uint64_t t = c->col.arrived_ms[j->sec->indices[i] - 1];
		if (t > c->col.kth_ms)
			c->col.kth_ms = t;
	}
	if (!c->col.kth_ms)
		c->col.kth_ms = now_ms;
	submit(c, j);
}

/* A holder's share for a recover: kept as it came (boxed to the CLI). */
static void recover_share(ig_decision *out, ig_svc_custody *c, const char *id, const char *nonce, unsigned index,
                          const char *error, const char *box_nonce, const char *box)
{
	recover_state *rs = c->rec;
	if (error)
		return;   /* counted as no_share already */
	if (ig_custody_view_index(view(c), rs->epoch, id) != index) {
		c->counts.shares_refused++;
		ig_decision_refuse(out, "custody_share", nonce, "not_holder", "you do not hold index %u of epoch %llu",
		                   index, (unsigned long long)rs->epoch);
		return;
	}
	unsigned i = index - 1;
	size_t len = 0;
	if (rs->got[i])
		return;
	if (ig_hex_decode(rs->nonce[i], 24, box_nonce, strlen(box_nonce)) != IG_OK ||
	    sodium_base642bin(rs->box[i], sizeof rs->box[i], box, strlen(box), NULL, &len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    len != IG_CUSTODY_RELEASE_BOX_BYTES) {
		c->counts.shares_refused++;
		ig_decision_refuse(out, "custody_share", nonce, "malformed",
		                   "\"box_nonce\" must be 48 hex and \"box\" base64 of %d bytes", IG_CUSTODY_RELEASE_BOX_BYTES);
		return;
	}
	rs->got[i] = true;
	rs->count++;
	emit(c, "share", rs->epoch, id, "released to the recover request");
}

void ig_svc_custody_share(ig_decision *out, ig_svc_custody *c, const char *id, const cJSON *req, uint64_t now_ms)
{
	(void)now_ms;
	const ig_custody_view *v = view(c);
	const char *nonce = req_nonce(req);
	uint64_t epoch = 0, index = 0;
	const char *request = cJSON_IsObject(req) ? str_field(req, "request") : NULL;
	const char *error = cJSON_IsObject(req) ? str_field(req, "error") : NULL;
	const char *box_nonce = cJSON_IsObject(req) ? str_field(req, "box_nonce") : NULL;
	const char *box = cJSON_IsObject(req) ? str_field(req, "box") : NULL;
	uint8_t req_id[16];
	/* A holder's "no share" answer names no index. */
	bool index_ok = ig_json_uint_field(&index, req, "index", 1, IG_VSS_MAX) == IG_OK;
	if (!nonce[0] || ig_json_uint_field(&epoch, req, "epoch", 1, IG_JSON_UINT_MAX) != IG_OK ||
	    (!error && !index_ok) || !request || ig_hex_decode(req_id, sizeof req_id, request, strlen(request)) != IG_OK ||
	    (!error && (!box_nonce || !box))) {
		c->counts.shares_refused++;
		ig_decision_refuse(out, "custody_share", nonce, "malformed",
		                   "custody_share needs \"nonce\", \"epoch\", \"request\" (32 hex) and either \"index\", "
		                   "\"box_nonce\" and \"box\" or \"error\"");
		return;
	}
	if (error) {
		/* Nothing to refuse: the holder has nothing for this request. */
		c->counts.no_share++;
		emit(c, "no_share", epoch, id, error);
		return;
	}
	const char *code = NULL;
	char msg[200] = "";
	if (epoch < v->active.epoch) {
		code = "old_epoch";
		snprintf(msg, sizeof msg, "epoch %llu is void: epoch %llu is active; a share of an older epoch is refused",
		         (unsigned long long)epoch, (unsigned long long)v->active.epoch);
	} else if (epoch != v->active.epoch) {
		code = "unknown_epoch";
		snprintf(msg, sizeof msg, "epoch %llu is not the active epoch", (unsigned long long)epoch);
	} else if (c->rec && c->rec->epoch == epoch && memcmp(req_id, c->rec->request, 16) == 0) {
		recover_share(out, c, id, nonce, (unsigned)index, error, box_nonce, box);
		return;
	} else if (!c->col.on || c->col.epoch != epoch || memcmp(req_id, c->col.request, 16) != 0) {
		code = "not_requested";
		snprintf(msg, sizeof msg, "the cluster head did not ask for this share (no such request now)");
	} else if (ig_custody_view_index(v, epoch, id) != index) {
		code = "not_holder";
		snprintf(msg, sizeof msg, "you do not hold index %u of epoch %llu", (unsigned)index,
		         (unsigned long long)epoch);
	}
	if (code) {
		c->counts.shares_refused++;
		ig_decision_refuse(out, "custody_share", nonce, code, "%s", msg);
		return;
	}
	unsigned i = (unsigned)index - 1;
	if (c->col.have[i] || c->col.pending[i] || c->col.combining)
		return;   /* a repeat; the first one counts */
	const ig_identity *who = ig_state_active(c->st, id, IG_ROLE_NONE);
	job *j = who ? job_new(c, JOB_VERIFY) : NULL;
	size_t box_len = 0;
	if (!who) {
		ig_decision_refuse(out, "custody_share", nonce, "revoked", "this identity is not active");
		return;
	}
	if (!j || ig_hex_decode(j->nonce, sizeof j->nonce, box_nonce, strlen(box_nonce)) != IG_OK ||
	    sodium_base642bin(j->box, sizeof j->box, box, strlen(box), NULL, &box_len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    box_len != IG_CUSTODY_RELEASE_BOX_BYTES) {
		job_free(j);
		c->counts.shares_refused++;
		ig_decision_refuse(out, "custody_share", nonce, "malformed",
		                   "\"box_nonce\" must be 48 hex and \"box\" base64 of %d bytes", IG_CUSTODY_RELEASE_BOX_BYTES);
		return;
	}
	j->epoch = epoch;
	j->index = (unsigned)index;
	j->k = v->active.k;
	snprintf(j->holder, sizeof j->holder, "%s", id);
	memcpy(j->holder_pk, who->pk, IG_PK_BYTES);
	memcpy(j->request, c->col.request, 16);
	memcpy(j->sec->xsk, c->sec->xsk, 32);
	memcpy(j->commitments, v->active.commitments, (size_t)v->active.k * 32);
	c->col.pending[i] = true;
	c->col.arrived_ms[i] = ig_now_ms();
	submit(c, j);
}

/* ---- worker results ------------------------------------------------------ */

static void flush_bad_queue(ig_svc_custody *c)
{
	size_t n = c->n_bad_queue;
	c->n_bad_queue = 0;
	for (size_t i = 0; i < n; i++)
		record_bad(c, c->bad_queue[i].epoch, c->bad_queue[i].holder, c->bad_queue[i].reason);
}

static void verify_done(ig_svc_custody *c, job *j, uint64_t now_ms)
{
	if (!c->col.on || c->col.epoch != j->epoch)
		return;
	unsigned i = j->index - 1;
	c->col.pending[i] = false;
	if (j->status == IG_OK) {
		memcpy(c->sec->got[i], j->sec->share, 32);
		c->col.have[i] = true;
		c->col.good++;
		c->counts.shares_good++;
		emit(c, "share", j->epoch, j->holder, NULL);
		maybe_combine(c, now_ms);
		return;
	}
	c->col.bad[i] = true;
	c->counts.shares_bad++;
	snprintf(c->last_bad_holder, sizeof c->last_bad_holder, "%s", j->holder);
	ig_log(IG_LOG_WARN, "custody: holder %s sent a bad share for epoch %llu: %s", j->holder,
	       (unsigned long long)j->epoch, j->msg);
	emit(c, "bad_share", j->epoch, j->holder, j->msg);
	record_bad(c, j->epoch, j->holder, j->msg);
}

static void combine_done(ig_svc_custody *c, job *j, uint64_t now_ms)
{
	c->col.combining = false;
	if (!c->col.on || c->col.epoch != j->epoch)
		return;
	if (j->status != IG_OK) {
		ig_log(IG_LOG_ERR, "custody: %s", j->msg);
		emit(c, "unseal_failed", j->epoch, NULL, j->msg);
		collect_stop(c);
		c->col.retry_at_ms = now_ms + RETRY_MS;
		return;
	}
	memcpy(c->sec->S, j->sec->S, 32);
	c->S_known = true;
	char why[200];
	if (j->unseal) {
		ig_error err = {0};
		int rc = c->env.unseal ? c->env.unseal(c->env.ctx, j->sec->sk, &err) : IG_ERR_STATE;
		sodium_memzero(j->sec->sk, sizeof j->sec->sk);
		if (rc != IG_OK) {
			ig_log(IG_LOG_ERR, "custody: the key was rebuilt but could not be installed: %s", err.msg);
			emit(c, "unseal_failed", j->epoch, NULL, err.msg);
			c->S_known = false;
			sodium_memzero(c->sec->S, 32);
			collect_stop(c);
			c->col.retry_at_ms = now_ms + RETRY_MS;
			return;
		}
		c->sealed_file_ok = true;
		c->counts.unseals++;
		snprintf(why, sizeof why, "unsealed with %u shares, %llu ms after the k-th", j->m,
		         (unsigned long long)(ig_now_ms() - c->col.kth_ms));
		ig_log(IG_LOG_INFO, "custody: %s", why);
		emit(c, "unsealed", j->epoch, NULL, why);
		flush_bad_queue(c);
	} else {
		c->sealed_file_ok = j->status == IG_OK;
		c->counts.recoveries++;
		snprintf(why, sizeof why, "the custody secret was rebuilt from %u shares%s", j->m,
		         j->wrote ? "; ch.key.sealed rewritten" : "");
		ig_log(IG_LOG_INFO, "custody: %s", why);
		emit(c, "recovered", j->epoch, NULL, why);
	}
	collect_stop(c);
}

static void read_sealed_done(ig_svc_custody *c, job *j);

static void collect_results(ig_svc_custody *c, uint64_t now_ms)
{
	for (ig_work *w = ig_workq_take_done(&c->work); w;) {
		job *j = job_of(w);
		w = w->next;
		switch (j->kind) {
		case JOB_VERIFY: verify_done(c, j, now_ms); break;
		case JOB_COMBINE: combine_done(c, j, now_ms); break;
		case JOB_ENSURE_SEALED:
			c->sealed_file_busy = false;
			c->sealed_file_ok = j->status == IG_OK;
			if (j->status != IG_OK)
				ig_log(IG_LOG_ERR, "custody: %s", j->msg);
			emit(c, "sealed_file", j->epoch, NULL, j->status == IG_OK ? "ch.key.sealed is durable" : j->msg);
			break;
		case JOB_READ_SEALED:
			read_sealed_done(c, j);
			break;
		case JOB_DEAL:
			deal_computed(c, j, now_ms);
			break;
		case JOB_WIPE_KEY:
			c->wiping = false;
			if (j->status == IG_OK)
				ig_log(IG_LOG_INFO, "custody: ch.key overwritten and removed; the next start is sealed");
			else
				ig_log(IG_LOG_ERR, "custody: %s", j->msg);
			if (j->done)
				j->done(j->done_ctx, j->status == IG_OK ? NULL : "storage_failed",
				        j->status == IG_OK ? "ch.key removed" : j->msg);
			j->done = NULL;
			break;
		}
		job_free(j);
	}
}

/* ---- recover -------------------------------------------------------------- */

static void send_to(ig_svc_custody *c, const char *to, cJSON *m);

static void recover_finish(ig_svc_custody *c, const char *error, const char *message, cJSON *result)
{
	recover_state *rs = c->rec;
	c->rec = NULL;
	rs->done(rs->done_ctx, error, message, result);
	sodium_memzero(rs, sizeof *rs);
	free(rs);
}

static cJSON *recover_result(ig_svc_custody *c, const job *j)
{
	recover_state *rs = c->rec;
	const ig_custody_epoch_view *e = ig_custody_view_epoch(view(c), rs->epoch);
	cJSON *o = cJSON_CreateObject();
	cJSON *cs = o ? cJSON_AddArrayToObject(o, "commitments") : NULL;
	cJSON *sh = o ? cJSON_AddArrayToObject(o, "shares") : NULL;
	size_t b64_len = sodium_base64_ENCODED_LEN(j->file_len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(b64_len);
	if (!e || !cs || !sh || !b64) {
		free(b64);
		cJSON_Delete(o);
		return NULL;
	}
	char hex[65];
	cJSON_AddNumberToObject(o, "epoch", (double)rs->epoch);
	cJSON_AddNumberToObject(o, "k", e->k);
	cJSON_AddNumberToObject(o, "n", e->n);
	ig_hex_encode(hex, c->ch_pk, 32);
	cJSON_AddStringToObject(o, "ch_pk", hex);
	ig_hex_encode(hex, rs->request, 16);
	cJSON_AddStringToObject(o, "request", hex);
	for (unsigned i = 0; i < e->k; i++) {
		ig_hex_encode(hex, e->commitments[i], 32);
		cJSON_AddItemToArray(cs, cJSON_CreateString(hex));
	}
	for (unsigned i = 0; i < e->n; i++) {
		if (!rs->got[i])
			continue;
		const ig_identity *who = ig_state_identity(c->st, e->holders[i]);
		cJSON *h = who ? cJSON_CreateObject() : NULL;
		if (!h)
			continue;
		char nonce_hex[49], box_b64[sodium_base64_ENCODED_LEN(IG_CUSTODY_RELEASE_BOX_BYTES,
		                                                      sodium_base64_VARIANT_ORIGINAL)];
		cJSON_AddStringToObject(h, "holder", e->holders[i]);
		cJSON_AddNumberToObject(h, "index", i + 1);
		ig_hex_encode(hex, who->pk, 32);
		cJSON_AddStringToObject(h, "pk", hex);
		ig_hex_encode(nonce_hex, rs->nonce[i], 24);
		cJSON_AddStringToObject(h, "box_nonce", nonce_hex);
		sodium_bin2base64(box_b64, sizeof box_b64, rs->box[i], sizeof rs->box[i], sodium_base64_VARIANT_ORIGINAL);
		cJSON_AddStringToObject(h, "box", box_b64);
		cJSON_AddItemToArray(sh, h);
	}
	sodium_bin2base64(b64, b64_len, j->file, j->file_len, sodium_base64_VARIANT_ORIGINAL);
	cJSON_AddStringToObject(o, "sealed", b64);
	free(b64);
	return o;
}

static void read_sealed_done(ig_svc_custody *c, job *j)
{
	if (!c->rec || !c->rec->reading)
		return;
	if (j->status != IG_OK) {
		recover_finish(c, "not_ready", j->msg, NULL);
		return;
	}
	cJSON *result = recover_result(c, j);
	if (!result)
		recover_finish(c, "internal", "out of memory building the answer; run recover again", NULL);
	else
		recover_finish(c, NULL, "shares released to your key", result);
}

static void poll_recover(ig_svc_custody *c, uint64_t now_ms)
{
	recover_state *rs = c->rec;
	const ig_custody_epoch_view *e = ig_custody_view_epoch(view(c), rs->epoch);
	if (!e || view(c)->active.epoch != rs->epoch) {
		if (!rs->reading)
			recover_finish(c, "busy", "a new epoch became active during the recover; run it again", NULL);
		return;
	}
	if (rs->reading)
		return;
	if (rs->count >= e->k) {
		job *j = job_new(c, JOB_READ_SEALED);
		if (j) {
			rs->reading = true;
			submit(c, j);
		}
		return;
	}
	if (now_ms >= rs->deadline_ms) {
		char msg[200];
		snprintf(msg, sizeof msg, "only %u of the %u shares needed were released in time; bring more holders of "
		         "epoch %llu online and run recover again", rs->count, e->k, (unsigned long long)rs->epoch);
		recover_finish(c, "not_enough_shares", msg, NULL);
		return;
	}
	char req_hex[33], pk_hex[65];
	ig_hex_encode(req_hex, rs->request, 16);
	ig_hex_encode(pk_hex, rs->pk, 32);
	for (unsigned i = 0; i < e->n; i++) {
		if (rs->asked[i] || rs->got[i] || !online(c, e->holders[i]))
			continue;
		rs->asked[i] = true;
		cJSON *m = cJSON_CreateObject();
		if (!m)
			continue;
		cJSON_AddStringToObject(m, "type", "custody_request");
		cJSON_AddNumberToObject(m, "epoch", (double)rs->epoch);
		cJSON_AddStringToObject(m, "request", req_hex);
		cJSON_AddStringToObject(m, "pk", pk_hex);
		if (rs->approved && !add_approval(m, rs->admin_pk, rs->approval_sig, rs->size, rs->root)) {
			cJSON_Delete(m);
			continue;
		}
		send_to(c, e->holders[i], m);
	}
}

bool ig_svc_custody_recover(ig_svc_custody *c, const uint8_t pk[32], const ig_svc_custody_approval *approval,
                            uint32_t timeout_s, ig_svc_custody_recover_fn done, void *done_ctx, const char **error,
                            char *message, size_t cap)
{
	*error = NULL;
	const ig_identity *who = NULL;
	if (approval && c->cfg.k && !(who = ig_state_active(c->st, approval->by, IG_ROLE_ADMIN))) {
		*error = "not_admin";
		snprintf(message, cap, "%.64s is not an active admin identity", approval->by);
	} else if (approval && c->cfg.k &&
	           ig_custody_approve_verify(approval->sig, c->cfg.cluster, approval->request, pk, approval->size,
	                                     approval->root, who->pk) != IG_OK) {
		*error = "bad_signature";
		snprintf(message, cap, "the approval is not %.64s's signature over the request id, pk, ledger size and "
		         "root it names", approval->by);
	} else if (!approval && c->cfg.unseal_admin) {
		*error = "approval_needed";
		snprintf(message, cap, "admin unseal mode: the holders release only against an admin's approval; "
		         "'iotguard custody recover' signs one with --key");
	}
	if (*error)
		return false;
	if (!c->cfg.k) {
		*error = "custody_off";
		snprintf(message, cap, "custody is off: there are no shares to recover from");
	} else if (!view(c)->active.epoch) {
		*error = "no_epoch";
		snprintf(message, cap, "no custody epoch is active: there are no shares to recover from");
	} else if (c->rec) {
		*error = "busy";
		snprintf(message, cap, "a recover is already under way; retry when it is done");
	}
	if (*error)
		return false;
	recover_state *rs = calloc(1, sizeof *rs);
	if (!rs) {
		*error = "internal";
		snprintf(message, cap, "out of memory");
		return false;
	}
	rs->epoch = view(c)->active.epoch;
	randombytes_buf(rs->request, sizeof rs->request);
	memcpy(rs->pk, pk, 32);
	if (approval) {
		memcpy(rs->request, approval->request, sizeof rs->request);
		rs->approved = true;
		memcpy(rs->admin_pk, who->pk, IG_PK_BYTES);
		memcpy(rs->approval_sig, approval->sig, sizeof rs->approval_sig);
		memcpy(rs->root, approval->root, 32);
		rs->size = approval->size;
	}
	rs->deadline_ms = ig_now_ms() + (uint64_t)(timeout_s ? timeout_s : 20) * 1000u;
	rs->done = done;
	rs->done_ctx = done_ctx;
	c->rec = rs;
	c->next_poll_ms = 0;   /* ask at the next tick */
	ig_log(IG_LOG_INFO, "custody: recover: asking the holders of epoch %llu to release their shares to the "
	       "requester's key", (unsigned long long)rs->epoch);
	return true;
}

/* ---- the watch ----------------------------------------------------------- */

static void send_to(ig_svc_custody *c, const char *to, cJSON *m)
{
	if (!m)
		return;
	ig_decision d;
	memset(&d, 0, sizeof d);
	if (ig_decision_reply(&d, to, m))
		c->env.carry_out(c->env.ctx, &d);
	else
		ig_decision_clear(&d);
}

static void poll_collect(ig_svc_custody *c, uint64_t now_ms)
{
	const ig_custody_view *v = view(c);
	if (!c->col.on || c->col.epoch != v->active.epoch) {
		if (c->col.on)
			collect_stop(c);
		return;
	}
	if (c->cfg.unseal_admin && !c->col.approved)
		return;   /* no holder is asked before an admin approves */
	for (unsigned i = 0; i < v->active.n; i++) {
		bool on = online(c, v->active.holders[i]);
		if (!on)
			c->col.asked[i] = false;   /* ask again when it is back */
		else if (!c->col.asked[i] && !c->col.have[i] && !c->col.pending[i] && !c->col.bad[i]) {
			c->col.asked[i] = true;
			send_to(c, v->active.holders[i], request_message(c));
		}
		c->col.online[i] = on;
	}
	(void)now_ms;
}

static void poll_deal(ig_svc_custody *c, uint64_t now_ms)
{
	if (!c->deal.durable)
		return;
	if (now_ms - c->deal.started_ms > (uint64_t)c->cfg.deal_timeout_s * 1000u) {
		char why[200];
		snprintf(why, sizeof why, "not every holder acknowledged within %u s", c->cfg.deal_timeout_s);
		deal_abandon(c, why, now_ms);
		return;
	}
	for (unsigned i = 0; i < c->deal.n; i++) {
		bool on = online(c, c->deal.holders[i]);
		if (on && !c->deal.was_online[i] && !c->deal.acked[i])
			send_to(c, c->deal.holders[i], deal_message(c, i));
		c->deal.was_online[i] = on;
	}
}

/* Why the active epoch must be replaced now, or NULL. */
static const char *rotation_due(ig_svc_custody *c, uint64_t now_ms)
{
	const ig_custody_view *v = view(c);
	if (c->watch_epoch != v->active.epoch) {
		c->watch_epoch = v->active.epoch;
		for (unsigned i = 0; i < IG_VSS_MAX; i++)
			c->offline_since[i] = 0;
	}
	bool revoked = c->revoked_holder, offline = false;
	for (unsigned i = 0; i < v->active.n; i++) {
		const char *h = v->active.holders[i];
		if (!ig_state_active(c->st, h, IG_ROLE_NONE))
			revoked = true;
		if (online(c, h))
			c->offline_since[i] = 0;
		else if (!c->offline_since[i])
			c->offline_since[i] = now_ms;
		else if (now_ms - c->offline_since[i] >= (uint64_t)c->cfg.holder_timeout_s * 1000u)
			offline = true;
	}
	if (c->rotate_requested)
		return "admin";
	if (revoked)
		return "revoked";
	if (offline)
		return "offline";
	if (v->active.active_ms && c->cfg.rotate_s && now_ms >= v->active.active_ms + (uint64_t)c->cfg.rotate_s * 1000u)
		return "timer";
	return NULL;
}

/* Admin unseal mode: the holders of the active epoch must keep the list of
 * admins active now. When this start does not know the list they keep (the
 * epoch was dealt before it, perhaps in auto mode) or an admin was enrolled
 * or revoked since, a new epoch is dealt (reason admin). The registry is
 * walked only when its admin counts moved. */
static void check_admins(ig_svc_custody *c)
{
	const ig_custody_view *v = view(c);
	if (c->rotate_requested)
		return;
	if (c->admins_epoch != v->active.epoch) {
		ig_log(IG_LOG_INFO, "custody: the admin list the holders of epoch %llu keep is not known to this start: "
		       "dealing a new epoch with the current list", (unsigned long long)v->active.epoch);
		c->rotate_requested = true;
		snprintf(c->rotate_by, sizeof c->rotate_by, "%s", BY_AUTO);
		return;
	}
	ig_registry *reg = ig_state_registry(c->st);
	uint64_t counts[2] = {ig_registry_count(reg, IG_ID_ACTIVE, IG_ROLE_ADMIN),
	                      ig_registry_count(reg, IG_ID_REVOKED, IG_ROLE_ADMIN)};
	if (counts[0] == c->admin_counts[0] && counts[1] == c->admin_counts[1])
		return;
	c->admin_counts[0] = counts[0];
	c->admin_counts[1] = counts[1];
	uint8_t(*now)[32] = malloc(sizeof c->known_admins);
	size_t n = 0;
	if (!now)
		return;
	int rc = current_admins(c, now, &n);
	if (rc == IG_OK && (n != c->n_known_admins || memcmp(now, c->known_admins, n * 32) != 0)) {
		ig_log(IG_LOG_INFO, "custody: the active admins changed (%zu now): dealing a new epoch so the holders keep "
		       "the current list", n);
		c->rotate_requested = true;
		snprintf(c->rotate_by, sizeof c->rotate_by, "%s", BY_AUTO);
	}
	free(now);
}

static void publish_state(ig_svc_custody *c, uint64_t now_ms)
{
	if (!c->env.publish_state)
		return;
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	ig_svc_custody_status_json(c, o, now_ms);
	cJSON_DeleteItemFromObject(o, "counters");
	cJSON_DeleteItemFromObject(o, "ledger");   /* moves with every append; only the admin API's answer has it */
	cJSON_DeleteItemFromObject(o, "ts");
	char *json = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!json)
		return;
	if (c->last_state && strcmp(c->last_state, json) == 0) {
		free(json);
		return;
	}
	free(c->last_state);
	c->last_state = json;
	c->env.publish_state(c->env.ctx, json);
}

void ig_svc_custody_tick(ig_svc_custody *c, uint64_t now_ms)
{
	if (ig_workq_outstanding(&c->work))
		collect_results(c, now_ms);
	if (now_ms < c->next_poll_ms)
		return;
	c->next_poll_ms = now_ms + POLL_MS;
	if (!c->cfg.k)
		return;
	const ig_custody_view *v = view(c);
	bool sealed = is_sealed(c);
	if (c->rec)
		poll_recover(c, now_ms);

	if (v->active.epoch && !c->S_known && !c->col.on && now_ms >= c->col.retry_at_ms)
		collect_start(c, now_ms);
	poll_collect(c, now_ms);
	if (c->deal.on)
		poll_deal(c, now_ms);

	const uint8_t *ch_sk = c->env.ch_sk ? c->env.ch_sk(c->env.ctx) : NULL;
	if (c->cfg.unseal_admin && !sealed && ch_sk && v->active.epoch && c->S_known && !c->deal.on && !c->deal_computing)
		check_admins(c);
	if (!sealed && ch_sk && !v->sealed && v->active.epoch && !c->S_known && !c->deal.on && !c->deal_computing &&
	    now_ms >= c->next_deal_ms) {
		/* S is not in memory and k holders have not sent it back, but
		 * ch.key was never sealed away: when the holders are gone
		 * (revoked, offline too long) or an admin asks, deal a new S
		 * rather than wait for holders that may never return. */
		const char *reason = rotation_due(c, now_ms);
		if (reason && strcmp(reason, "timer") != 0) {
			collect_stop(c);
			c->fresh_S = true;
			ig_log(IG_LOG_WARN, "custody: the custody secret cannot be rebuilt (%s) and ch.key is still on disk: "
			       "dealing a new one", reason);
			start_deal(c, reason, strcmp(reason, "admin") == 0 ? c->rotate_by : BY_AUTO, now_ms);
		}
	}
	if (!sealed && ch_sk && !c->deal.on && !c->deal_computing && !c->col.on && now_ms >= c->next_deal_ms) {
		const char *reason = NULL;
		const char *by = BY_AUTO;
		if (!v->active.epoch) {
			reason = "initial";
		} else if (c->S_known) {
			reason = rotation_due(c, now_ms);
			if (reason && strcmp(reason, "admin") == 0)
				by = c->rotate_by;
		}
		if (reason)
			start_deal(c, reason, by, now_ms);
	} else if (v->active.epoch && c->S_known) {
		rotation_due(c, now_ms);   /* keeps the offline clocks running */
	}
	publish_state(c, now_ms);
}

/* ---- status messages, revocation ----------------------------------------- */

/* The oldest epoch a status's "custody":{"epochs":[...]} names, or 0. */
static uint64_t oldest_held(const cJSON *o)
{
	const cJSON *cu = cJSON_GetObjectItemCaseSensitive(o, "custody");
	const cJSON *eps = cJSON_IsObject(cu) ? cJSON_GetObjectItemCaseSensitive(cu, "epochs") : NULL;
	uint64_t oldest = 0;
	const cJSON *e;
	if (!cJSON_IsArray(eps))
		return 0;
	cJSON_ArrayForEach(e, eps)
	{
		if (!cJSON_IsNumber(e) || e->valuedouble < 1 || e->valuedouble > (double)IG_JSON_UINT_MAX)
			continue;
		uint64_t v = (uint64_t)e->valuedouble;
		if (!oldest || v < oldest)
			oldest = v;
	}
	return oldest;
}

void ig_svc_custody_status_message(ig_decision *out, ig_svc_custody *c, const char *id, const void *payload,
                                   size_t len, uint64_t now_ms)
{
	if (!c->cfg.k || len > 8192)
		return;
	cJSON *o = cJSON_ParseWithLength(payload, len);
	if (!cJSON_IsObject(o)) {
		cJSON_Delete(o);
		return;
	}
	const char *state = str_field(o, "state");
	if (state && strcmp(state, "online") != 0) {
		ig_idtable_remove(c->devs, id, strlen(id));
		cJSON_Delete(o);
		return;
	}
	void *slot = NULL;
	if (ig_idtable_put(c->devs, id, strlen(id), &slot, NULL) != IG_OK) {
		cJSON_Delete(o);
		return;
	}
	dev_info *d = slot;
	uint64_t up = 0;
	d->uptime_ms = ig_json_uint_field(&up, o, "uptime_s", 0, (uint64_t)1 << 40) == IG_OK ? up * 1000u : 0;
	d->at_ms = now_ms;
	const cJSON *b = cJSON_GetObjectItemCaseSensitive(o, "battery");
	uint64_t pct = 0;
	d->battery_known = cJSON_IsObject(b);
	d->mains = d->battery_known && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "mains"));
	d->percent = d->battery_known && ig_json_uint_field(&pct, b, "percent", 0, 100) == IG_OK ? (uint8_t)pct : 0;
	/* A device still holding a share of an epoch older than the active one
	 * (offline when it was left out of a rotation, or when the activation
	 * was sent) is told which epoch is active, so it wipes that share of
	 * the same S. Once per epoch, again only if a later status still shows
	 * it (the message may have been lost). */
	uint64_t oldest = oldest_held(o), active = view(c)->active.epoch;
	if (oldest && active && oldest < active &&
	    (d->told_epoch != active || now_ms - d->told_ms >= RETELL_MS)) {
		if (ig_decision_reply_chained(out, id, active_message(active))) {
			ig_log(IG_LOG_INFO, "custody: %s still holds a share of epoch %llu; told it epoch %llu is active",
			       id, (unsigned long long)oldest, (unsigned long long)active);
			d->told_epoch = active;
			d->told_ms = now_ms;
		}
	}
	cJSON_Delete(o);
}

void ig_svc_custody_on_revoke(ig_svc_custody *c, const char *id)
{
	if (!c->cfg.k)
		return;
	ig_idtable_remove(c->devs, id, strlen(id));
	if (ig_custody_view_index(view(c), view(c)->active.epoch, id))
		c->revoked_holder = true;
	if (c->deal.on)
		for (unsigned i = 0; i < c->deal.n; i++)
			if (strcmp(c->deal.holders[i], id) == 0) {
				deal_abandon(c, "a holder was revoked", ig_now_ms());
				c->next_deal_ms = 0;
				c->revoked_holder = true;
				break;
			}
}

/* ---- admin ---------------------------------------------------------------- */

static const char *state_name(const ig_svc_custody *c)
{
	if (!c->cfg.k)
		return "off";
	if (is_sealed(c))
		return c->col.good ? "unsealing" : "sealed";
	if (c->deal.on || !view(c)->active.epoch)
		return "dealing";
	return "active";
}

void ig_svc_custody_status_json(ig_svc_custody *c, cJSON *o, uint64_t now_ms)
{
	(void)now_ms;
	const ig_custody_view *v = view(c);
	const ig_custody_epoch_view *e = v->active.epoch ? &v->active : NULL;
	cJSON_AddStringToObject(o, "state", state_name(c));
	cJSON_AddNumberToObject(o, "epoch", e ? (double)e->epoch : 0);
	cJSON_AddNumberToObject(o, "k", e ? e->k : c->cfg.k);
	cJSON_AddNumberToObject(o, "n", e ? e->n : c->cfg.n);
	cJSON_AddBoolToObject(o, "sealed", is_sealed(c));
	cJSON_AddBoolToObject(o, "key_on_disk", !v->sealed);
	cJSON *hs = cJSON_AddArrayToObject(o, "holders");
	/* The holders shown: the deal's while one is under way, else the active epoch's. */
	bool dealing = c->deal.on;
	unsigned n = dealing ? c->deal.n : e ? e->n : 0;
	for (unsigned i = 0; hs && i < n; i++) {
		const char *id = dealing ? c->deal.holders[i] : e->holders[i];
		const char *zone = ig_state_zone(c->st, id);
		cJSON *h = cJSON_CreateObject();
		if (!h)
			break;
		cJSON_AddStringToObject(h, "id", id);
		cJSON_AddNumberToObject(h, "index", i + 1);
		if (zone && zone[0])
			cJSON_AddStringToObject(h, "zone", zone);
		else
			cJSON_AddNullToObject(h, "zone");
		cJSON_AddBoolToObject(h, "online", online(c, id));
		cJSON_AddBoolToObject(h, "acked", dealing ? c->deal.acked[i] : true);
		cJSON_AddItemToArray(hs, h);
	}
	cJSON_AddNumberToObject(o, "shares_collected", c->col.good);
	if (c->cfg.k)
		cJSON_AddStringToObject(o, "unseal", c->cfg.unseal_admin ? "admin" : "auto");
	if (c->cfg.unseal_admin && c->col.on && !c->col.approved) {
		/* What an admin signs to approve this collection (iotguard custody approve). */
		char req_hex[33], pk_hex[65];
		char root_b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
		ig_hex_encode(req_hex, c->col.request, 16);
		ig_hex_encode(pk_hex, c->col.xpk, 32);
		sodium_bin2base64(root_b64, sizeof root_b64, c->col.head_root, 32, sodium_base64_VARIANT_ORIGINAL);
		cJSON *pa = cJSON_AddObjectToObject(o, "pending_approval");
		if (pa) {
			cJSON_AddNumberToObject(pa, "epoch", (double)c->col.epoch);
			cJSON_AddStringToObject(pa, "request", req_hex);
			cJSON_AddStringToObject(pa, "pk", pk_hex);
			cJSON_AddNumberToObject(pa, "size", (double)c->col.head_size);
			cJSON_AddStringToObject(pa, "root", root_b64);
		}
	}
	if (dealing)
		cJSON_AddNumberToObject(o, "dealing_epoch", (double)c->deal.epoch);
	if (e && e->active_ms && c->cfg.rotate_s)
		cJSON_AddNumberToObject(o, "next_rotation_at", (double)(e->active_ms / 1000 + c->cfg.rotate_s));
	else
		cJSON_AddNullToObject(o, "next_rotation_at");
	if (c->waiting[0] && !dealing)
		cJSON_AddStringToObject(o, "message", c->waiting);
	if (c->last_bad_holder[0])
		cJSON_AddStringToObject(o, "last_bad_holder", c->last_bad_holder);
	uint64_t lsize = 0;
	uint8_t lroot[32];
	if (c->env.ledger_head && c->env.ledger_head(c->env.ctx, &lsize, lroot)) {
		char root_b64[sodium_base64_ENCODED_LEN(32, sodium_base64_VARIANT_ORIGINAL)];
		sodium_bin2base64(root_b64, sizeof root_b64, lroot, 32, sodium_base64_VARIANT_ORIGINAL);
		cJSON *lg = cJSON_AddObjectToObject(o, "ledger");
		if (lg) {
			cJSON_AddNumberToObject(lg, "size", (double)lsize);
			cJSON_AddStringToObject(lg, "root", root_b64);
		}
	}
	cJSON *cn = cJSON_AddObjectToObject(o, "counters");
	if (cn) {
		const ig_svc_custody_counts *k = &c->counts;
		cJSON_AddNumberToObject(cn, "epochs_dealt", (double)k->epochs_dealt);
		cJSON_AddNumberToObject(cn, "epochs_active", (double)k->epochs_active);
		cJSON_AddNumberToObject(cn, "deals_abandoned", (double)k->deals_abandoned);
		cJSON_AddNumberToObject(cn, "acks", (double)k->acks);
		cJSON_AddNumberToObject(cn, "bad_acks", (double)k->bad_acks);
		cJSON_AddNumberToObject(cn, "shares_good", (double)k->shares_good);
		cJSON_AddNumberToObject(cn, "shares_bad", (double)k->shares_bad);
		cJSON_AddNumberToObject(cn, "shares_refused", (double)k->shares_refused);
		cJSON_AddNumberToObject(cn, "unseals", (double)k->unseals);
		cJSON_AddNumberToObject(cn, "recoveries", (double)k->recoveries);
		cJSON_AddNumberToObject(cn, "rotations", (double)k->rotations);
	}
}

typedef struct seal_pending {
	ig_svc_custody *c;
	ig_svc_custody_done_fn done;
	void *done_ctx;
} seal_pending;

static void on_sealed_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	(void)out;
	seal_pending *sp = ctx;
	ig_svc_custody *c = sp->c;
	if (status == IG_ERR_CONFLICT) {
		/* Another broker changed custody first (a new epoch, or its own
		 * seal): this seal names what is no longer the active epoch. */
		c->wiping = false;
		sp->done(sp->done_ctx, "conflict", "another broker changed custody in the shared ledger first, so the "
		         "custody_sealed record no longer applied and was not written; ch.key was kept: read "
		         "custody_status and seal again if it is still wanted");
		free(sp);
		return;
	}
	if (status != IG_OK) {
		c->wiping = false;
		sp->done(sp->done_ctx, status == IG_ERR_UNKNOWN ? IG_DECISION_E_OUTCOME_UNKNOWN : "storage_failed",
		         status == IG_ERR_UNKNOWN ? "the custody_sealed record may or may not be durable; ch.key was "
		                                    "kept: retry the seal once the broker is back"
		                                  : ig_decision_ledger_refusal(status));
		free(sp);
		return;
	}
	job *j = job_new(c, JOB_WIPE_KEY);
	if (!j) {
		c->wiping = false;
		sp->done(sp->done_ctx, "internal", "out of memory; ch.key was kept: retry the seal");
	} else {
		j->done = sp->done;
		j->done_ctx = sp->done_ctx;
		submit(c, j);
	}
	free(sp);
}

bool ig_svc_custody_seal(ig_decision *out, ig_svc_custody *c, const char *by, ig_svc_custody_done_fn done,
                         void *done_ctx, const char **error, char *message, size_t cap)
{
	const ig_custody_view *v = view(c);
	*error = NULL;
	if (!c->cfg.k) {
		*error = "custody_off";
		snprintf(message, cap, "custody is off: set plugin_opt_custody_threshold and plugin_opt_custody_shares");
	} else if (is_sealed(c)) {
		*error = "sealed";
		snprintf(message, cap, "the cluster head is sealed already");
	} else if (!v->active.epoch) {
		*error = "no_epoch";
		snprintf(message, cap, "no custody epoch is active yet, so sealing would lose the key: wait until "
		         "'iotguard custody status' shows an active epoch");
	} else if (!c->sealed_file_ok) {
		*error = "not_ready";
		snprintf(message, cap, "ch.key.sealed is not yet known to open with the custody secret (k holders must "
		         "be online after a restart); retry in a few seconds");
	} else if (c->wiping) {
		*error = "busy";
		snprintf(message, cap, "a seal is already under way");
	}
	if (*error)
		return false;
	ig_custody_sealed_rec r = {.epoch = v->active.epoch};
	memcpy(r.c0, v->active.commitments[0], 32);
	snprintf(r.by, sizeof r.by, "%s", by);
	uint8_t body[256];
	int blen = ig_record_custody_sealed_encode(body, sizeof body, &r);
	seal_pending *sp = calloc(1, sizeof *sp);
	if (blen < 0 || !sp || !ig_decision_append(out, IG_REC_CUSTODY_SEALED, body, (size_t)blen, on_sealed_done, sp)) {
		free(sp);
		*error = "internal";
		snprintf(message, cap, "cannot build the custody_sealed record");
		return false;
	}
	sp->c = c;
	sp->done = done;
	sp->done_ctx = done_ctx;
	c->wiping = true;
	return true;
}

bool ig_svc_custody_rotate(ig_svc_custody *c, const char *by, const char **error, char *message, size_t cap)
{
	*error = NULL;
	if (!c->cfg.k) {
		*error = "custody_off";
		snprintf(message, cap, "custody is off: set plugin_opt_custody_threshold and plugin_opt_custody_shares");
	} else if (is_sealed(c)) {
		*error = "sealed";
		snprintf(message, cap, "the cluster head is sealed: k custody holders must connect; retry later");
	} else if (c->deal.on || c->deal_computing) {
		*error = "busy";
		if (c->deal.on)
			snprintf(message, cap, "epoch %llu is being dealt; retry once it is active",
			         (unsigned long long)c->deal.epoch);
		else
			snprintf(message, cap, "a new epoch is being dealt; retry once it is active");
	} else if (!view(c)->active.epoch) {
		*error = "no_epoch";
		snprintf(message, cap, "no epoch is active yet; the first one is dealt as soon as %u holders are online",
		         c->cfg.n);
	}
	if (*error)
		return false;
	c->rotate_requested = true;
	snprintf(c->rotate_by, sizeof c->rotate_by, "%s", by);
	c->next_deal_ms = 0;
	c->next_poll_ms = 0;
	snprintf(message, cap, "a new epoch will be dealt%s", c->S_known ? "" : " once k holders have sent their shares");
	return true;
}

bool ig_svc_custody_approve(ig_svc_custody *c, const char *by, const uint8_t sig[64], const char **error,
                            char *message, size_t cap)
{
	*error = NULL;
	const ig_identity *who = NULL;
	if (!c->cfg.k) {
		*error = "custody_off";
		snprintf(message, cap, "custody is off: there is nothing to approve");
	} else if (!c->cfg.unseal_admin) {
		*error = "not_admin_mode";
		snprintf(message, cap, "the cluster head asks its holders without approval "
		         "(plugin_opt_custody_unseal auto)");
	} else if (!c->col.on || c->col.approved) {
		*error = "not_pending";
		snprintf(message, cap, c->col.approved ? "the pending request is approved already"
		                                       : "no request for shares waits for approval now");
	} else if (!(who = ig_state_active(c->st, by, IG_ROLE_ADMIN))) {
		*error = "not_admin";
		snprintf(message, cap, "%.64s is not an active admin identity", by);
	} else if (ig_custody_approve_verify(sig, c->cfg.cluster, c->col.request, c->col.xpk, c->col.head_size,
	                                     c->col.head_root, who->pk) != IG_OK) {
		*error = "bad_signature";
		snprintf(message, cap, "the signature is not %.64s's over the pending request (request id, pk, ledger size "
		         "and root as 'iotguard custody status' shows them); fetch it again and re-sign", by);
	}
	if (*error) {
		ig_log(IG_LOG_WARN, "custody: an approval by %.64s was refused: %s", by, message);
		return false;
	}
	memcpy(c->col.admin_pk, who->pk, IG_PK_BYTES);
	memcpy(c->col.approval_sig, sig, IG_CUSTODY_SIG_BYTES);
	snprintf(c->col.approved_by, sizeof c->col.approved_by, "%s", by);
	c->col.approved = true;
	c->next_poll_ms = 0;   /* ask the holders at the next tick */
	char req_hex[33];
	ig_hex_encode(req_hex, c->col.request, 16);
	ig_log(IG_LOG_INFO, "custody: %s approved request %s; asking the holders of epoch %llu", by, req_hex,
	       (unsigned long long)c->col.epoch);
	emit(c, "approved", c->col.epoch, NULL, by);
	snprintf(message, cap, "approved; the holders of epoch %llu are asked for their shares",
	         (unsigned long long)c->col.epoch);
	return true;
}

void ig_svc_custody_get_counts(const ig_svc_custody *c, ig_svc_custody_counts *out)
{
	*out = c->counts;
}

void ig_svc_custody_stats(const ig_svc_custody *c, cJSON *stats)
{
	cJSON *o = cJSON_AddObjectToObject(stats, "custody");
	if (!o)
		return;
	const ig_svc_custody_counts *k = &c->counts;
	cJSON_AddStringToObject(o, "state", state_name(c));
	cJSON_AddNumberToObject(o, "epoch", (double)view(c)->active.epoch);
	cJSON_AddNumberToObject(o, "shares_collected", c->col.good);
	cJSON_AddNumberToObject(o, "epochs_dealt", (double)k->epochs_dealt);
	cJSON_AddNumberToObject(o, "epochs_active", (double)k->epochs_active);
	cJSON_AddNumberToObject(o, "deals_abandoned", (double)k->deals_abandoned);
	cJSON_AddNumberToObject(o, "acks", (double)k->acks);
	cJSON_AddNumberToObject(o, "bad_acks", (double)k->bad_acks);
	cJSON_AddNumberToObject(o, "shares_good", (double)k->shares_good);
	cJSON_AddNumberToObject(o, "shares_bad", (double)k->shares_bad);
	cJSON_AddNumberToObject(o, "shares_refused", (double)k->shares_refused);
	cJSON_AddNumberToObject(o, "unseals", (double)k->unseals);
	cJSON_AddNumberToObject(o, "recoveries", (double)k->recoveries);
	cJSON_AddNumberToObject(o, "rotations", (double)k->rotations);
	if (c->last_bad_holder[0])
		cJSON_AddStringToObject(o, "last_bad_holder", c->last_bad_holder);
}
