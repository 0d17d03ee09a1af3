/*
 * svc_kp.c: the key-ring service (ig_svc_kp.h; docs/PROTOCOL.md, "Key
 * rings").
 *
 * Why this exists: see ig_svc_kp.h. Three things happen here:
 * - epochs: the tick appends kp_epoch when the policy's P/m/q have no epoch
 *   yet or differ from the current one's, and kp_rotate appends one for an
 *   admin. One epoch append at a time; the epoch number is the view's + 1.
 * - dealing: a key_ring request (or an enrolment/join while predistribution
 *   is on) hands a job to the worker, which derives the pool secret's m ring
 *   keys, the ring hash and the box; the tick collects it, appends kp_ring
 *   unless the ledger already has it, and answers once that is durable.
 *   One job or append per device at a time: requests arriving meanwhile
 *   wait for its answer.
 * - retiring: a durable revocation of a ring holder appends kp_compromised
 *   (its ring ids), after which the signed revoked statement is
 *   republished, retained.
 * After an append whose outcome is unknown (a disk write failed after the
 * record reached the kernel) nothing more is appended until a restart:
 * repeating it could put a second kp_epoch or kp_ring for the same thing in
 * the log, which replay refuses.
 */
#include "ig_svc_kp.h"

#include "ig_idtable.h"
#include "ig_keybox.h"
#include "ig_kp_view.h"
#include "ig_record.h"
#include "ig_workq.h"

#include <cJSON.h>
#include <sodium.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define POLL_MS 1000u
#define RATE_WINDOW_MS 60000u
#define DEV_TABLE_MAX ((size_t)1 << 22)
#define WAIT_MAX 4           /* answers waiting for one device's ring */
#define DUE_MAX 4096         /* revoked ring holders waiting for their kp_compromised */

/* Requests waiting for one device's ring (job on the worker or kp_ring
 * append in flight); "" is an unasked deal (pushed only when online). */
typedef struct inflight {
	char id[IG_ID_MAX + 1];
	size_t n;
	char nonce[WAIT_MAX][IG_DECISION_REQUEST_NONCE_MAX + 1];
	cJSON *answer;                /* the key_ring message without "nonce", once computed */
} inflight;

typedef struct dev_kp {
	uint64_t win_ms;
	uint32_t in_win;
	inflight *fl;                 /* NULL: nothing in flight */
} dev_kp;

/* Guarded, locked memory: the pool secret of the epoch it was derived for. */
typedef struct secrets {
	uint8_t pool_secret[32];
} secrets;

typedef struct job_secret {
	uint8_t pool_secret[32];
	ig_box_key bk;
} job_secret;

typedef struct job {
	ig_work link;                 /* first: the worker queue's */
	char id[IG_ID_MAX + 1];
	ig_kp_params params;
	job_secret *sec;
	/* results */
	int status;
	uint8_t ring_hash[32];
	uint8_t box_nonce[24];
	char *box_b64;                /* malloc'd */
} job;

struct ig_svc_kp {
	ig_state *st;
	ig_svc_kp_config cfg;
	ig_svc_kp_env env;

	secrets *sec;
	uint64_t secret_epoch;        /* sec->pool_secret is for this epoch; 0: none */

	ig_idtable *devs;

	bool epoch_inflight;
	uint64_t epoch_inflight_n;
	bool stuck;                   /* an append's outcome is unknown: append nothing more */
	char stuck_why[300];

	char (*due)[IG_ID_MAX + 1];   /* revoked ring holders to retire */
	size_t n_due;
	char compromise_inflight[IG_ID_MAX + 1];

	bool published;               /* a statement was published since start */
	uint64_t published_serial;
	uint64_t published_epoch;

	uint64_t next_poll_ms;
	uint64_t next_warn_ms;
	ig_svc_kp_counts counts;

	ig_workq work;
};

/* ---- small helpers ------------------------------------------------------ */

static const ig_kp_view *view(const ig_svc_kp *k)
{
	return ig_state_kp(k->st);
}

static const ig_policy *policy(const ig_svc_kp *k)
{
	return k->env.policy ? k->env.policy(k->env.ctx) : NULL;
}

static const uint8_t *ch_sk(const ig_svc_kp *k)
{
	return k->env.ch_sk ? k->env.ch_sk(k->env.ctx) : NULL;
}

static bool online(const ig_svc_kp *k, const char *id)
{
	return k->env.online && k->env.online(k->env.ctx, id);
}

/* A refusal of a key_ring request sent as a reply to `to` (the tick answers
 * outside the request, where the carrier has no requester). */
static void refuse_to(ig_decision *out, const char *to, const char *nonce, const char *error, const char *msg)
{
	ig_decision r;
	memset(&r, 0, sizeof r);
	ig_decision_refuse(&r, "key_ring", nonce, error, "%s", msg);
	cJSON *o = ig_decision_error_json(&r);
	ig_decision_clear(&r);
	ig_decision_reply_chained(out, to, o);
}

static void send_decision(ig_svc_kp *k, ig_decision *d)
{
	if (d->kind == IG_DECISION_NONE && !d->next) {
		ig_decision_clear(d);
		return;
	}
	k->env.carry_out(k->env.ctx, d);
}

static void mark_stuck(ig_svc_kp *k, const char *what)
{
	k->stuck = true;
	snprintf(k->stuck_why, sizeof k->stuck_why,
	         "a disk write failed after a %s record was written, so it may or may not be durable; no key-ring "
	         "record is appended until the broker restarts: fix the disk (see the broker log) and restart it", what);
	ig_log(IG_LOG_ERR, "key rings: %s", k->stuck_why);
}

static dev_kp *dev_get(ig_svc_kp *k, const char *id)
{
	void *slot = NULL;
	if (ig_idtable_put(k->devs, id, strlen(id), &slot, NULL) != IG_OK)
		return NULL;
	return slot;
}

static dev_kp *dev_find(ig_svc_kp *k, const char *id)
{
	return ig_idtable_find(k->devs, id, strlen(id));
}

/* The pool secret of epoch, derived (one HKDF) when the cached one is for
 * another epoch. NULL while sealed. */
static const uint8_t *pool_secret(ig_svc_kp *k, uint64_t epoch)
{
	const uint8_t *sk = ch_sk(k);
	if (!sk)
		return NULL;
	if (k->secret_epoch != epoch) {
		ig_kp_pool_secret(k->sec->pool_secret, sk, epoch);   /* the first 32 bytes: the Ed25519 seed */
		k->secret_epoch = epoch;
	}
	return k->sec->pool_secret;
}

static bool policy_params(const ig_svc_kp *k, uint32_t *pool, uint32_t *ring, uint8_t *q)
{
	return ig_policy_kp(policy(k), pool, ring, q);
}

/* ---- the worker --------------------------------------------------------- */

static void job_free(job *j)
{
	if (!j)
		return;
	if (j->sec)
		sodium_free(j->sec);   /* wipes */
	free(j->box_b64);
	free(j);
}

_Static_assert(offsetof(job, link) == 0, "a job is found from its queue link");

static job *job_of(ig_work *w)
{
	return (job *)w;
}

static void submit(ig_svc_kp *k, job *j)
{
	ig_workq_submit(&k->work, &j->link);
}

/* The ring of j->id: its ids, m pool keys, the ring hash, and the A.8
 * plaintext boxed for the device. Every key is wiped before returning. */
static void run_ring(job *j)
{
	const ig_kp_params *p = &j->params;
	uint32_t m = p->ring;
	uint32_t *ids = malloc((size_t)m * sizeof *ids);
	uint8_t(*keys)[32] = sodium_malloc((size_t)m * 32);
	size_t cap = 8 + 4 + 4 + 1 + 32 + 1 + IG_ID_MAX + (size_t)m * 36;
	uint8_t *plain = sodium_malloc(cap);
	uint8_t *box = malloc(cap + crypto_box_MACBYTES);
	j->status = IG_ERR_NOMEM;
	if (!ids || !keys || !plain || !box)
		goto out;
	j->status = ig_kp_ring_ids(ids, p->seed, j->id, p->pool, m);
	if (j->status != IG_OK)
		goto out;
	ig_kp_pool_keys(keys, j->sec->pool_secret, ids, m);
	ig_kp_ring_hash(j->ring_hash, p->epoch, j->id, ids, (const uint8_t(*)[32])keys, m);
	int n = ig_kp_ring_plain(plain, cap, p, j->id, ids, (const uint8_t(*)[32])keys);
	if (n < 0) {
		j->status = n;
		goto out;
	}
	randombytes_buf(j->box_nonce, sizeof j->box_nonce);
	if (crypto_box_easy_afternm(box, plain, (unsigned long long)n, j->box_nonce, j->sec->bk.k) != 0) {
		j->status = IG_ERR_CRYPTO;
		goto out;
	}
	size_t blen = (size_t)n + crypto_box_MACBYTES;
	size_t b64_len = sodium_base64_ENCODED_LEN(blen, sodium_base64_VARIANT_ORIGINAL);
	j->box_b64 = malloc(b64_len);
	if (!j->box_b64) {
		j->status = IG_ERR_NOMEM;
		goto out;
	}
	sodium_bin2base64(j->box_b64, b64_len, box, blen, sodium_base64_VARIANT_ORIGINAL);
	j->status = IG_OK;
out:
	if (keys)
		sodium_free(keys);
	if (plain)
		sodium_free(plain);
	free(ids);
	free(box);
	sodium_memzero(j->sec, sizeof *j->sec);
}

static void worker_run(void *ctx, ig_work *w)
{
	(void)ctx;
	run_ring(job_of(w));
}

/* ---- life --------------------------------------------------------------- */

static void due_add(ig_svc_kp *k, const char *id)
{
	for (size_t i = 0; i < k->n_due; i++)
		if (strcmp(k->due[i], id) == 0)
			return;
	if (k->n_due == DUE_MAX) {
		ig_log(IG_LOG_WARN, "key rings: more than %d revoked ring holders wait to be retired; %s waits for a "
		       "restart", DUE_MAX, id);
		return;
	}
	snprintf(k->due[k->n_due++], IG_ID_MAX + 1, "%s", id);
}

/* A revoked ring holder whose ids are not retired yet, with its revocation
 * durable (the registry has its revoke record's index). */
static bool needs_retiring(const ig_svc_kp *k, const char *id)
{
	const ig_identity *who = ig_registry_find(ig_state_registry(k->st), id, strlen(id));
	return who && who->status == IG_ID_REVOKED && who->revoked_index > 0 && ig_kp_view_ring(view(k), id, NULL) &&
	       !ig_kp_view_compromised_device(view(k), id);
}

static bool scan_revoked(void *ctx, const ig_identity *idn)
{
	ig_svc_kp *k = ctx;
	if (needs_retiring(k, idn->id))
		due_add(k, idn->id);
	return true;
}

ig_svc_kp *ig_svc_kp_new(ig_state *st, const ig_svc_kp_config *cfg, const ig_svc_kp_env *env, ig_error *err)
{
	ig_svc_kp *k = calloc(1, sizeof *k);
	if (!k) {
		ig_error_set(err, IG_ERR_NOMEM, "key rings: out of memory");
		return NULL;
	}
	k->st = st;
	k->cfg = *cfg;
	if (!k->cfg.requests_per_minute)
		k->cfg.requests_per_minute = IG_SVC_KP_REQUESTS_PER_MINUTE;
	k->env = *env;
	k->sec = sodium_malloc(sizeof *k->sec);
	k->due = calloc(DUE_MAX, sizeof *k->due);
	if (!k->sec || !k->due || ig_idtable_new(&k->devs, IG_ID_MAX, sizeof(dev_kp), 64, DEV_TABLE_MAX) != IG_OK) {
		ig_error_set(err, IG_ERR_NOMEM, "key rings: out of memory (locked memory: check ulimit -l)");
		ig_svc_kp_free(k);
		return NULL;
	}
	sodium_memzero(k->sec, sizeof *k->sec);
	if (ig_workq_start(&k->work, worker_run, k) != IG_OK) {
		ig_error_set(err, IG_ERR_IO, "key rings: cannot start the worker thread");
		ig_svc_kp_free(k);
		return NULL;
	}
	ig_state_identity_foreach(st, scan_revoked, k);
	return k;
}

static void inflight_free(inflight *fl)
{
	if (!fl)
		return;
	cJSON_Delete(fl->answer);
	free(fl);
}

void ig_svc_kp_free(ig_svc_kp *k)
{
	if (!k)
		return;
	for (ig_work *w = ig_workq_stop(&k->work); w;) {
		ig_work *next = w->next;
		job_free(job_of(w));
		w = next;
	}
	if (k->devs) {
		size_t cursor = 0;
		dev_kp *d;
		while ((d = ig_idtable_next(k->devs, &cursor)))
			inflight_free(d->fl);
		ig_idtable_free(k->devs);
	}
	if (k->sec)
		sodium_free(k->sec);
	free(k->due);
	free(k);
}

/* ---- dealing ------------------------------------------------------------- */

/* Starts computing id's ring of the current epoch for the waiting nonce
 * ("" = unasked). IG_OK, or an error: IG_ERR_STATE (no epoch, sealed, no box
 * key), IG_ERR_NOMEM. */
static int start_ring(ig_svc_kp *k, dev_kp *d, const ig_identity *who, const char *nonce)
{
	ig_kp_params p;
	if (!ig_kp_view_params(view(k), &p))
		return IG_ERR_STATE;
	const uint8_t *ps = pool_secret(k, p.epoch);
	const ig_box_key *bk = ps ? ig_state_box_key(k->st, who, ch_sk(k)) : NULL;
	if (!bk)
		return IG_ERR_STATE;
	job *j = calloc(1, sizeof *j);
	inflight *fl = calloc(1, sizeof *fl);
	if (j)
		j->sec = sodium_malloc(sizeof *j->sec);
	if (!j || !j->sec || !fl) {
		job_free(j);
		free(fl);
		return IG_ERR_NOMEM;
	}
	snprintf(j->id, sizeof j->id, "%s", who->id);
	j->params = p;
	memcpy(j->sec->pool_secret, ps, 32);
	j->sec->bk = *bk;
	snprintf(fl->id, sizeof fl->id, "%s", who->id);
	snprintf(fl->nonce[0], sizeof fl->nonce[0], "%s", nonce);
	fl->n = 1;
	d->fl = fl;
	submit(k, j);
	return IG_OK;
}

/* The key_ring message for a computed job (A.8), without "nonce". */
static cJSON *ring_message(const job *j)
{
	char seed_hex[65], hash_hex[65], nonce_hex[49];
	ig_hex_encode(seed_hex, j->params.seed, 32);
	ig_hex_encode(hash_hex, j->ring_hash, 32);
	ig_hex_encode(nonce_hex, j->box_nonce, 24);
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, "type", "key_ring") ||
	    !cJSON_AddNumberToObject(o, "epoch", (double)j->params.epoch) ||
	    !cJSON_AddNumberToObject(o, "pool", j->params.pool) || !cJSON_AddNumberToObject(o, "ring", j->params.ring) ||
	    !cJSON_AddNumberToObject(o, "q", j->params.q) || !cJSON_AddStringToObject(o, "seed", seed_hex) ||
	    !cJSON_AddStringToObject(o, "ring_hash", hash_hex) || !cJSON_AddStringToObject(o, "box_nonce", nonce_hex) ||
	    !cJSON_AddStringToObject(o, "box", j->box_b64)) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Sends fl's answer to every waiting request (a pushed one only when the
 * device is online) and frees fl. */
static void answer_all(ig_svc_kp *k, ig_decision *out, inflight *fl)
{
	for (size_t i = 0; i < fl->n; i++) {
		if (!fl->nonce[i][0] && !online(k, fl->id))
			continue;
		cJSON *m = cJSON_Duplicate(fl->answer, true);
		if (m && fl->nonce[i][0] && !cJSON_AddStringToObject(m, "nonce", fl->nonce[i])) {
			cJSON_Delete(m);
			m = NULL;
		}
		if (m && ig_decision_reply_chained(out, fl->id, m))
			k->counts.dealt++;
	}
	inflight_free(fl);
}

static void refuse_all(ig_svc_kp *k, ig_decision *out, inflight *fl, const char *error, const char *msg)
{
	for (size_t i = 0; i < fl->n; i++)
		if (fl->nonce[i][0]) {
			refuse_to(out, fl->id, fl->nonce[i], error, msg);
			k->counts.refused++;
		}
	inflight_free(fl);
}

/* Detaches id's inflight from its device entry (the entry may be gone). */
static inflight *take_inflight(ig_svc_kp *k, const char *id)
{
	dev_kp *d = dev_find(k, id);
	inflight *fl = d ? d->fl : NULL;
	if (d)
		d->fl = NULL;
	return fl;
}

typedef struct ring_pending {
	ig_svc_kp *k;
	char id[IG_ID_MAX + 1];
	uint64_t epoch;
	uint8_t ring_hash[32];        /* the ring the record names: a ring is a function of (epoch, id) */
} ring_pending;

/* The kp_ring record was refused because another broker's record came
 * first (the state holds it). The same ring recorded there (its device
 * asked through both) is as good as ours: answer with it. Otherwise the
 * words a request asked now would get. */
static void ring_lost(ig_svc_kp *k, const ring_pending *rp, inflight *fl, ig_decision *out)
{
	ig_kp_params cur;
	uint8_t recorded[32];
	if (!ig_state_active(k->st, fl->id, IG_ROLE_DEVICE))
		refuse_all(k, out, fl, "revoked", "this identity was revoked through another broker; no ring was sent");
	else if (!ig_kp_view_params(view(k), &cur) || cur.epoch != rp->epoch)
		refuse_all(k, out, fl, "epoch_pending",
		           "a new key-ring epoch was started through another broker while your ring was recorded; ask again");
	else if (ig_kp_view_ring(view(k), fl->id, recorded) && sodium_memcmp(recorded, rp->ring_hash, 32) == 0)
		answer_all(k, out, fl);
	else
		refuse_all(k, out, fl, "conflict",
		           "another broker recorded a different ring for this identity in this epoch first, so yours was "
		           "not recorded and not sent; tell the operator (the brokers must share ch.key)");
}

static void on_ring_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	ring_pending *rp = ctx;
	ig_svc_kp *k = rp->k;
	inflight *fl = take_inflight(k, rp->id);
	if (!fl) {
		free(rp);
		return;
	}
	if (status == IG_ERR_CONFLICT) {
		ring_lost(k, rp, fl, out);
		free(rp);
		return;
	}
	free(rp);
	if (status == IG_ERR_UNKNOWN) {
		mark_stuck(k, "kp_ring");
		refuse_all(k, out, fl, IG_DECISION_E_OUTCOME_UNKNOWN,
		           "a disk write failed after your kp_ring record was written, so it may or may not be durable; no "
		           "ring was sent: ask again once the broker is back");
	} else if (status != IG_OK) {
		char msg[IG_DECISION_MESSAGE_MAX];
		snprintf(msg, sizeof msg, "your ring was not recorded, so it was not sent: %s",
		         ig_decision_ledger_refusal(status));
		refuse_all(k, out, fl, "storage_failed", msg);
	} else if (!ig_state_active(k->st, fl->id, IG_ROLE_DEVICE)) {
		/* Revoked while its record was written: the record stands (it
		 * came first in the log), the ring is not sent. */
		k->counts.rings_recorded++;
		refuse_all(k, out, fl, "revoked", "this identity was revoked; no ring was sent");
	} else {
		k->counts.rings_recorded++;
		answer_all(k, out, fl);
	}
}

/* A ring the worker computed: answer, or append its kp_ring first. */
static void ring_computed(ig_svc_kp *k, job *j, ig_decision *out)
{
	dev_kp *d = dev_find(k, j->id);
	inflight *fl = d ? d->fl : NULL;
	if (!fl)
		return;
	ig_kp_params cur;
	bool have = ig_kp_view_params(view(k), &cur);
	const char *error = NULL, *msg = NULL;
	char buf[IG_DECISION_MESSAGE_MAX];
	if (!ig_state_active(k->st, j->id, IG_ROLE_DEVICE)) {
		error = "revoked", msg = "this identity is no longer an active device; no ring was sent";
	} else if (!have || cur.epoch != j->params.epoch || k->epoch_inflight) {
		/* A kp_ring submitted after a new kp_epoch would name an epoch
		 * that is no longer current when it is applied. */
		error = "epoch_pending", msg = "a new key-ring epoch started while your ring was computed; ask again";
	} else if (j->status != IG_OK) {
		ig_log(IG_LOG_ERR, "key rings: computing %s's ring failed (error %d)", j->id, j->status);
		error = "internal", msg = "the cluster head could not compute your ring; retry in a moment";
	} else if (!(fl->answer = ring_message(j))) {
		error = "internal", msg = "the cluster head is out of memory; retry in a moment";
	}
	uint8_t recorded[32];
	if (!error && ig_kp_view_ring(view(k), j->id, recorded)) {
		d->fl = NULL;
		if (sodium_memcmp(recorded, j->ring_hash, 32) != 0) {
			ig_log(IG_LOG_ERR, "key rings: %s's ring hash differs from its kp_ring record in epoch %llu (a "
			       "different cluster-head key?); not sent", j->id, (unsigned long long)cur.epoch);
			refuse_all(k, out, fl, "internal", "your ring does not match its ledger record; tell the operator");
			return;
		}
		answer_all(k, out, fl);
		return;
	}
	if (!error && k->stuck) {
		error = "storage_failed";
		snprintf(buf, sizeof buf, "%s", k->stuck_why);
		msg = buf;
	}
	if (error) {
		d->fl = NULL;
		refuse_all(k, out, fl, error, msg);
		return;
	}
	ig_kp_ring_rec rec = {.epoch = j->params.epoch};
	snprintf(rec.id, sizeof rec.id, "%s", j->id);
	memcpy(rec.ring_hash, j->ring_hash, 32);
	uint8_t body[256];
	int blen = ig_record_kp_ring_encode(body, sizeof body, &rec);
	ring_pending *rp = calloc(1, sizeof *rp);
	ig_decision *link = out;
	while (link->next)
		link = link->next;
	if (link->kind != IG_DECISION_NONE)
		link = ig_decision_then(out);
	if (rp) {
		rp->k = k;
		snprintf(rp->id, sizeof rp->id, "%s", j->id);
		rp->epoch = j->params.epoch;
		memcpy(rp->ring_hash, j->ring_hash, 32);
	}
	if (blen < 0 || !rp || !link || !ig_decision_append(link, IG_REC_KP_RING, body, (size_t)blen, on_ring_done, rp)) {
		free(rp);
		d->fl = NULL;
		refuse_all(k, out, fl, "internal", "the cluster head could not build your kp_ring record; retry later");
	}
}

static void collect_results(ig_svc_kp *k)
{
	for (ig_work *w = ig_workq_take_done(&k->work); w;) {
		job *j = job_of(w);
		w = w->next;
		ig_decision out;
		memset(&out, 0, sizeof out);
		ring_computed(k, j, &out);
		job_free(j);
		send_decision(k, &out);
	}
}

static bool rate_ok(ig_svc_kp *k, dev_kp *d, uint64_t now_ms)
{
	if (now_ms - d->win_ms >= RATE_WINDOW_MS) {
		d->win_ms = now_ms;
		d->in_win = 0;
	}
	return ++d->in_win <= k->cfg.requests_per_minute;
}

/* Why no ring can be dealt now (the policy wants another epoch, or one is
 * being appended); NULL when the current epoch is the policy's. */
static const char *epoch_wait(const ig_svc_kp *k)
{
	uint32_t P, m;
	uint8_t q;
	ig_kp_params cur;
	if (k->epoch_inflight)
		return "a new key-ring epoch is being recorded; ask again in a few seconds";
	if (!ig_kp_view_params(view(k), &cur))
		return "the first key-ring epoch is not recorded yet; ask again in a few seconds";
	if (policy_params(k, &P, &m, &q) && (cur.pool != P || cur.ring != m || cur.q != q))
		return "the policy changed the key-ring parameters and a new epoch is due; ask again in a few seconds";
	return NULL;
}

void ig_svc_kp_request(ig_decision *out, ig_svc_kp *k, const char *id, const cJSON *req, uint64_t now_ms)
{
	k->counts.requests++;
	const cJSON *n = cJSON_IsObject(req) ? cJSON_GetObjectItemCaseSensitive(req, "nonce") : NULL;
	const char *nonce = cJSON_IsString(n) && ig_decision_nonce_ok(n->valuestring) ? n->valuestring : "";
	const ig_identity *who = ig_state_active(k->st, id, IG_ROLE_NONE);
	dev_kp *d = NULL;
	const char *error = NULL, *msg = NULL;
	if (!who) {
		error = "revoked", msg = "this identity is not active";
	} else if (!nonce[0]) {
		error = "malformed", msg = "key_ring needs \"nonce\" (1..64 printable characters, no space)";
	} else if (!ig_policy_kp(policy(k), NULL, NULL, NULL)) {
		error = "not_enabled", msg = "key rings are off: the policy has no \"predistribution\" section";
	} else if (who->role != IG_ROLE_DEVICE) {
		error = "not_allowed", msg = "key rings are dealt to identities with role device only";
	} else if (!(d = dev_get(k, id))) {
		error = "internal", msg = "the cluster head is out of memory; retry in a moment";
	} else if (!rate_ok(k, d, now_ms)) {
		error = "rate_limited", msg = "more than the allowed key_ring requests this minute; slow down";
	} else if ((msg = epoch_wait(k))) {
		error = "epoch_pending";
	}
	if (!error && d->fl) {
		/* Its ring is on the worker or its record in flight: this request
		 * gets the same answer. */
		if (d->fl->n < WAIT_MAX) {
			snprintf(d->fl->nonce[d->fl->n++], sizeof d->fl->nonce[0], "%s", nonce);
			return;
		}
		error = "rate_limited", msg = "several key_ring requests are already waiting for your ring; wait for them";
	}
	if (!error) {
		int rc = start_ring(k, d, who, nonce);
		if (rc == IG_OK)
			return;
		error = "internal";
		msg = rc == IG_ERR_NOMEM ? "the cluster head is out of memory; retry in a moment"
		                         : "the cluster head cannot box a ring for this identity now; retry later";
	}
	k->counts.refused++;
	ig_decision_refuse(out, "key_ring", nonce, error, "%s", msg);
}

/* An unasked deal (enrolment, join): nothing when predistribution is off,
 * no epoch is current, id is no active device, or its ring is dealt or in
 * flight already. */
static void deal_unasked(ig_svc_kp *k, const char *id)
{
	const ig_identity *who = ig_state_active(k->st, id, IG_ROLE_DEVICE);
	if (!who || !ig_policy_kp(policy(k), NULL, NULL, NULL) || epoch_wait(k) || k->stuck ||
	    ig_kp_view_ring(view(k), id, NULL))
		return;
	dev_kp *d = dev_get(k, id);
	if (!d || d->fl)
		return;
	if (start_ring(k, d, who, "") != IG_OK)
		ig_log(IG_LOG_WARN, "key rings: could not start dealing %s's ring; it gets one when it asks", id);
}

/* ---- records, revocation -------------------------------------------------- */

void ig_svc_kp_on_record(ig_svc_kp *k, const ig_record *rec)
{
	ig_error err = {0};
	switch (rec->type) {
	case IG_REC_ENROLL: {
		ig_enroll e;
		if (ig_record_enroll_decode(rec->body, rec->body_len, &e, &err) == IG_OK && e.role == IG_ROLE_DEVICE)
			deal_unasked(k, e.id);
		break;
	}
	case IG_REC_JOIN_USED: {
		ig_join_used u;
		if (ig_record_join_used_decode(rec->body, rec->body_len, &u, &err) == IG_OK)
			deal_unasked(k, u.id);
		break;
	}
	case IG_REC_REVOKE: {
		ig_revoke r;
		if (ig_record_revoke_decode(rec->body, rec->body_len, &r, &err) == IG_OK)
			ig_svc_kp_on_revoke(k, r.id);
		break;
	}
	default:
		break;
	}
}

void ig_svc_kp_on_revoke(ig_svc_kp *k, const char *id)
{
	/* The first call comes before the revoke record is durable; the
	 * kp_compromised record must follow it in the log, so only the second
	 * (revoked_index set) counts. */
	if (needs_retiring(k, id)) {
		due_add(k, id);
		k->next_poll_ms = 0;
	}
}

/* ---- epochs --------------------------------------------------------------- */

typedef struct epoch_pending {
	ig_svc_kp *k;
	uint64_t epoch;
	ig_svc_kp_done_fn done;       /* kp_rotate's admin answer; NULL for automatic epochs */
	void *done_ctx;
} epoch_pending;

static void publish_statement(ig_svc_kp *k);

static void on_epoch_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	(void)out;
	epoch_pending *ep = ctx;
	ig_svc_kp *k = ep->k;
	k->epoch_inflight = false;
	char msg[IG_DECISION_MESSAGE_MAX];
	const char *error = NULL;
	if (status == IG_OK) {
		k->counts.epochs++;
		ig_log(IG_LOG_INFO, "key rings: epoch %llu started", (unsigned long long)ep->epoch);
		snprintf(msg, sizeof msg, "key-ring epoch %llu started; devices get new rings as they ask",
		         (unsigned long long)ep->epoch);
		publish_statement(k);
	} else if (status == IG_ERR_UNKNOWN) {
		mark_stuck(k, "kp_epoch");
		error = IG_DECISION_E_OUTCOME_UNKNOWN;
		snprintf(msg, sizeof msg, "%s", k->stuck_why);
	} else if (status == IG_ERR_CONFLICT) {
		/* Another broker started this epoch first; its record is the one
		 * in force (the state holds it). */
		error = "conflict";
		snprintf(msg, sizeof msg, "key-ring epoch %llu was started through another broker first, so this "
		         "kp_epoch record was not written; read kp_status before rotating again",
		         (unsigned long long)ep->epoch);
		ig_log(IG_LOG_INFO, "key rings: epoch %llu was started through another broker first",
		       (unsigned long long)ep->epoch);
	} else {
		error = "storage_failed";
		snprintf(msg, sizeof msg, "the new epoch was not recorded: %s", ig_decision_ledger_refusal(status));
		ig_log(IG_LOG_WARN, "key rings: epoch %llu was not recorded: %s", (unsigned long long)ep->epoch,
		       ig_decision_ledger_refusal(status));
	}
	if (ep->done)
		ep->done(ep->done_ctx, error, msg);
	free(ep);
}

/* Fills out with the kp_epoch append of the next epoch under the policy's
 * parameters. False (out untouched) when it cannot be built. */
static bool epoch_append(ig_decision *out, ig_svc_kp *k, const char *reason, const char *by, ig_svc_kp_done_fn done,
                         void *done_ctx)
{
	uint32_t P, m;
	uint8_t q;
	if (!policy_params(k, &P, &m, &q))
		return false;
	ig_kp_params cur;
	uint64_t epoch = ig_kp_view_params(view(k), &cur) ? cur.epoch + 1 : 1;
	const uint8_t *ps = pool_secret(k, epoch);
	if (!ps)
		return false;
	ig_kp_epoch_rec rec = {.epoch = epoch, .pool = P, .ring = m, .q = q};
	ig_kp_ring_seed(rec.seed, ps);
	snprintf(rec.reason, sizeof rec.reason, "%s", reason);
	snprintf(rec.by, sizeof rec.by, "%s", by);
	uint8_t body[256];
	int blen = ig_record_kp_epoch_encode(body, sizeof body, &rec);
	epoch_pending *ep = calloc(1, sizeof *ep);
	if (blen < 0 || !ep) {
		free(ep);
		return false;
	}
	*ep = (epoch_pending){.k = k, .epoch = epoch, .done = done, .done_ctx = done_ctx};
	if (!ig_decision_append(out, IG_REC_KP_EPOCH, body, (size_t)blen, on_epoch_done, ep)) {
		free(ep);
		return false;
	}
	k->epoch_inflight = true;
	k->epoch_inflight_n = epoch;
	return true;
}

bool ig_svc_kp_rotate(ig_decision *out, ig_svc_kp *k, const char *by, ig_svc_kp_done_fn done, void *done_ctx,
                      const char **error, char *message, size_t cap)
{
	*error = NULL;
	if (!ig_policy_kp(policy(k), NULL, NULL, NULL)) {
		*error = "not_enabled";
		snprintf(message, cap, "key rings are off: add \"predistribution\": {\"pool\", \"ring\", \"q\"} to the "
		         "policy and reload it (SIGHUP)");
	} else if (k->epoch_inflight) {
		*error = "busy";
		snprintf(message, cap, "epoch %llu is being recorded; retry once it is", (unsigned long long)k->epoch_inflight_n);
	} else if (k->stuck) {
		*error = "storage_failed";
		snprintf(message, cap, "%s", k->stuck_why);
	} else if (!ch_sk(k)) {
		*error = "sealed";
		snprintf(message, cap, "the cluster head is sealed; unseal it first");
	} else if (!epoch_append(out, k, "rotate", by, done, done_ctx)) {
		*error = "internal";
		snprintf(message, cap, "the cluster head could not build the kp_epoch record (out of memory?); retry");
	}
	if (*error)
		return false;
	snprintf(message, cap, "epoch %llu is being recorded", (unsigned long long)k->epoch_inflight_n);
	return true;
}

/* The tick's epoch check: the policy's parameters without an epoch of them. */
static void check_epoch(ig_svc_kp *k)
{
	uint32_t P, m;
	uint8_t q;
	if (k->epoch_inflight || k->stuck || !ch_sk(k) || !policy_params(k, &P, &m, &q))
		return;
	ig_kp_params cur;
	bool have = ig_kp_view_params(view(k), &cur);
	if (have && cur.pool == P && cur.ring == m && cur.q == q)
		return;
	ig_decision d;
	memset(&d, 0, sizeof d);
	if (epoch_append(&d, k, have ? "policy" : "initial", k->cfg.cluster, NULL, NULL))
		send_decision(k, &d);
}

/* ---- retiring a revoked ring ------------------------------------------------ */

typedef struct comp_pending {
	ig_svc_kp *k;
	char id[IG_ID_MAX + 1];
} comp_pending;

static void on_comp_done(void *ctx, int status, const ig_record *rec, ig_decision *out)
{
	(void)rec;
	(void)out;
	comp_pending *cp = ctx;
	ig_svc_kp *k = cp->k;
	k->compromise_inflight[0] = '\0';
	if (status == IG_OK) {
		k->counts.compromised++;
		ig_log(IG_LOG_INFO, "key rings: %s's ring ids are retired (kp_compromised)", cp->id);
		publish_statement(k);
	} else if (status == IG_ERR_UNKNOWN) {
		mark_stuck(k, "kp_compromised");
	} else if (status == IG_ERR_CONFLICT && !needs_retiring(k, cp->id)) {
		/* Another broker retired the same ring first: nothing left to do. */
		ig_log(IG_LOG_INFO, "key rings: %s's ring ids were retired through another broker first", cp->id);
	} else {
		ig_log(IG_LOG_WARN, "key rings: retiring %s's ring ids was not recorded (%s); retrying", cp->id,
		       ig_decision_ledger_refusal(status));
		due_add(k, cp->id);
	}
	free(cp);
}

static void retire_next(ig_svc_kp *k)
{
	/* Not behind an epoch append: the record must name the epoch current
	 * when it is applied (the new epoch starts with nothing compromised). */
	while (k->n_due && !k->compromise_inflight[0] && !k->epoch_inflight && !k->stuck && ch_sk(k)) {
		char id[IG_ID_MAX + 1];
		snprintf(id, sizeof id, "%s", k->due[0]);
		memmove(k->due[0], k->due[1], (k->n_due - 1) * sizeof k->due[0]);
		k->n_due--;
		ig_kp_params p;
		if (!needs_retiring(k, id) || !ig_kp_view_params(view(k), &p))
			continue;
		ig_kp_compromised_rec *rec = calloc(1, sizeof *rec);
		comp_pending *cp = calloc(1, sizeof *cp);
		uint8_t *body = malloc(64 + IG_ID_MAX + (size_t)p.ring * 4 + 64);
		int blen = IG_ERR_NOMEM;
		if (rec && cp && body) {
			rec->epoch = p.epoch;
			snprintf(rec->id, sizeof rec->id, "%s", id);
			rec->id_count = p.ring;
			blen = ig_kp_ring_ids(rec->ids, p.seed, id, p.pool, p.ring);
			if (blen == IG_OK)
				blen = ig_record_kp_compromised_encode(body, 64 + IG_ID_MAX + (size_t)p.ring * 4 + 64, rec);
		}
		ig_decision d;
		memset(&d, 0, sizeof d);
		if (blen >= 0 && cp) {
			cp->k = k;
			snprintf(cp->id, sizeof cp->id, "%s", id);
		}
		if (blen < 0 || !ig_decision_append(&d, IG_REC_KP_COMPROMISED, body, (size_t)blen, on_comp_done, cp)) {
			ig_log(IG_LOG_ERR, "key rings: could not build the kp_compromised record of %s (error %d); retrying", id,
			       blen);
			free(cp);
			free(rec);
			free(body);
			due_add(k, id);
			return;
		}
		free(rec);
		free(body);
		snprintf(k->compromise_inflight, sizeof k->compromise_inflight, "%s", id);
		send_decision(k, &d);
	}
}

/* ---- the revoked statement ------------------------------------------------- */

static int cmp_id(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Publishes the signed statement (A.7) of the current epoch when its serial
 * or epoch differs from the last one published (or none was since start). */
static void publish_statement(ig_svc_kp *k)
{
	ig_kp_params p;
	const uint8_t *sk = ch_sk(k);
	if (!k->env.publish_revoked || !sk || !ig_kp_view_params(view(k), &p))
		return;
	uint64_t serial = ig_kp_view_serial(view(k));
	if (k->published && k->published_serial == serial && k->published_epoch == p.epoch)
		return;
	ig_kp_revoked r;
	memset(&r, 0, sizeof r);
	snprintf(r.cluster, sizeof r.cluster, "%s", k->cfg.cluster);
	r.params = p;
	r.serial = serial;
	size_t n_ids = 0;
	const uint32_t *ids = ig_kp_view_compromised(view(k), &n_ids);
	const char(*devs)[IG_ID_MAX + 1] = NULL;
	size_t n_dev = ig_kp_view_devices(view(k), &devs);
	r.ids = n_ids ? malloc(n_ids * sizeof *r.ids) : NULL;
	r.devices = n_dev ? malloc(n_dev * sizeof *r.devices) : NULL;
	if ((n_ids && !r.ids) || (n_dev && !r.devices)) {
		ig_kp_revoked_free(&r);
		return;
	}
	if (n_ids)
		memcpy(r.ids, ids, n_ids * sizeof *r.ids);
	if (n_dev)
		memcpy(r.devices, devs, n_dev * sizeof *r.devices);
	r.n_ids = n_ids;
	r.n_devices = n_dev;
	if (n_dev > 1)   /* the first statement of an epoch has none, and qsort(NULL, 0) is undefined */
		qsort(r.devices, n_dev, sizeof *r.devices, cmp_id);
	char *json = ig_kp_revoked_json(&r, sk);
	ig_kp_revoked_free(&r);
	if (!json) {
		ig_log(IG_LOG_ERR, "key rings: could not build the revoked statement (out of memory?); retrying");
		return;
	}
	k->env.publish_revoked(k->env.ctx, json);
	free(json);
	k->published = true;
	k->published_serial = serial;
	k->published_epoch = p.epoch;
	k->counts.statements++;
}

/* ---- the tick ---------------------------------------------------------------- */

void ig_svc_kp_tick(ig_svc_kp *k, uint64_t now_ms)
{
	if (ig_workq_outstanding(&k->work))
		collect_results(k);
	if (now_ms < k->next_poll_ms)
		return;
	k->next_poll_ms = now_ms + POLL_MS;
	check_epoch(k);
	retire_next(k);
	publish_statement(k);
}

/* ---- admin, stats -------------------------------------------------------------- */

void ig_svc_kp_status_json(ig_svc_kp *k, cJSON *o)
{
	ig_kp_params p;
	bool have = ig_kp_view_params(view(k), &p);
	char seed_hex[65] = "";
	if (have)
		ig_hex_encode(seed_hex, p.seed, 32);
	size_t n_ids = 0;
	ig_kp_view_compromised(view(k), &n_ids);
	const char(*devs)[IG_ID_MAX + 1] = NULL;
	size_t n_dev = ig_kp_view_devices(view(k), &devs);
	cJSON_AddBoolToObject(o, "enabled", ig_policy_kp(policy(k), NULL, NULL, NULL));
	cJSON_AddNumberToObject(o, "epoch", have ? (double)p.epoch : 0);
	cJSON_AddNumberToObject(o, "pool", have ? p.pool : 0);
	cJSON_AddNumberToObject(o, "ring", have ? p.ring : 0);
	cJSON_AddNumberToObject(o, "q", have ? p.q : 0);
	cJSON_AddStringToObject(o, "seed", seed_hex);
	cJSON_AddNumberToObject(o, "rings", (double)ig_kp_view_rings(view(k)));
	cJSON_AddNumberToObject(o, "compromised_ids", (double)n_ids);
	cJSON *arr = cJSON_AddArrayToObject(o, "compromised_devices");
	for (size_t i = 0; arr && i < n_dev; i++)
		cJSON_AddItemToArray(arr, cJSON_CreateString(devs[i]));
	cJSON_AddNumberToObject(o, "serial", (double)ig_kp_view_serial(view(k)));
	cJSON *c = cJSON_AddObjectToObject(o, "counters");
	if (c) {
		cJSON_AddNumberToObject(c, "requests", (double)k->counts.requests);
		cJSON_AddNumberToObject(c, "dealt", (double)k->counts.dealt);
		cJSON_AddNumberToObject(c, "refused", (double)k->counts.refused);
		cJSON_AddNumberToObject(c, "rings_recorded", (double)k->counts.rings_recorded);
		cJSON_AddNumberToObject(c, "epochs", (double)k->counts.epochs);
		cJSON_AddNumberToObject(c, "compromised", (double)k->counts.compromised);
		cJSON_AddNumberToObject(c, "statements", (double)k->counts.statements);
	}
	const char *pending = k->stuck ? k->stuck_why : ig_policy_kp(policy(k), NULL, NULL, NULL) ? epoch_wait(k) : NULL;
	if (pending)
		cJSON_AddStringToObject(o, "pending", pending);
}

void ig_svc_kp_get_counts(const ig_svc_kp *k, ig_svc_kp_counts *out)
{
	*out = k->counts;
}

void ig_svc_kp_stats(const ig_svc_kp *k, cJSON *stats)
{
	cJSON *o = cJSON_AddObjectToObject(stats, "kp");
	if (!o)
		return;
	ig_kp_params p;
	size_t n_ids = 0;
	ig_kp_view_compromised(view(k), &n_ids);
	cJSON_AddNumberToObject(o, "epoch", ig_kp_view_params(view(k), &p) ? (double)p.epoch : 0);
	cJSON_AddNumberToObject(o, "rings", (double)ig_kp_view_rings(view(k)));
	cJSON_AddNumberToObject(o, "compromised_ids", (double)n_ids);
	cJSON_AddNumberToObject(o, "dealt", (double)k->counts.dealt);
	cJSON_AddNumberToObject(o, "refused", (double)k->counts.refused);
	cJSON_AddNumberToObject(o, "requests", (double)k->counts.requests);
}
