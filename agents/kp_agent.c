/*
 * kp_agent.c: the device's key ring, its revoked set, its key-ring sessions,
 * hellos, path requests and relaying (kp_agent.h; docs/PROTOCOL.md "Key rings
 * on the device").
 *
 * Why this exists: see kp_agent.h. Three rules shape this file. Every check
 * that can be made from cleartext (epoch, ids, revoked devices, an
 * outstanding hello) is made before a mac or a box is computed, so junk costs
 * little. Nothing that could repeat a (key, nonce) pair survives a restart:
 * sessions live in memory only and are always made from fresh random nonces,
 * and path boxes use random nonces, so only the ring and the revoked set are
 * written to KEYFILE.ring. And a revoked statement drops every session and
 * path key that depended on a now-compromised id or a revoked device at
 * once; the peers are re-keyed when next wanted.
 */
#include "kp_agent.h"

#include "ig_durable.h"
#include "ig_json.h"
#include "ig_kp.h"
#include "ig_m2m.h"
#include "ig_replay.h"

#include <cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define RING_WHAT "key ring file"
#define FILE_MAGIC "IGKRING1"
#define PEERS_MAX 64
#define RELAY_TRACK 16
#define RELAY_WINDOW_MS 60000
#define PATH_KEY_MAX_MS IG_KPA_SESSION_MAX_MS   /* a path key not used for this long is forgotten */
#define SESSION_HARD_MS (2 * (uint64_t)IG_KPA_SESSION_MAX_MS)  /* no new messages after this */
#define SESSION_HARD_MSGS (2 * (uint64_t)IG_KPA_SESSION_MAX_MSGS)
#define PEER_FORGET_MS 600000
#define FILE_MAX (16u << 20)   /* KEYFILE.ring: ring, plus up to ~4M compromised ids */
#define TOPIC_CAP (sizeof "iotguard//m2m//" + IG_CLUSTER_MAX + 2 * IG_ID_MAX + 1)
#define RING_PLAIN_MAX (8 + 4 + 4 + 1 + 32 + 1 + IG_ID_MAX + (size_t)IG_KP_RING_MAX * 36)
#define RING_BOX_MAX (RING_PLAIN_MAX + crypto_box_MACBYTES)

typedef enum { S_EMPTY = 0, S_LIVE, S_EXPIRED, S_REVOKED } sess_state;

typedef struct kp_session {
	sess_state state;
	char peer[IG_ID_MAX + 1];
	uint8_t key[32], key_id[16];
	uint8_t direction;                         /* the direction we send with */
	uint64_t sent, received;
	ig_replay_window rx;                       /* the peer's direction */
	bool path;
	char via[IG_ID_MAX + 1];
	/* The ring ids the key rests on: K_AB's (direct) or K_C,self's (the key
	 * that brought the path key), so a revocation finds what it exposes. */
	uint16_t n;
	uint32_t ids[IG_KP_PAIR_MAX_IDS];
	uint8_t na[32];                            /* responder: a repeated hello gets the same reply */
	uint8_t reply[IG_KP_HELLO_MAX];
	size_t reply_len;                          /* 0: we initiated */
	uint64_t created_ms, order;
	bool rekey_asked;
} kp_session;

typedef struct kp_peer {
	bool used;
	char id[IG_ID_MAX + 1];
	uint64_t last_ms;
	/* outstanding hello (we initiate) */
	bool hello;
	ig_kp_hello h;
	uint8_t K[32];
	uint16_t hn;
	uint32_t hids[IG_KP_PAIR_MAX_IDS];        /* ids behind K (for a path hello: the path key's) */
	uint8_t msg[IG_KP_HELLO_MAX];
	size_t msg_len;
	uint64_t hello_ms;
	unsigned tries;
	/* Each try has its own NA (no hello is ever sent twice); a late reply to an earlier one still counts. */
	uint8_t nas[IG_KPA_HELLO_TRIES][32];
	/* outstanding path request */
	bool req;
	uint8_t req_id[16];
	size_t cand;
	char req_via[IG_ID_MAX + 1];
	uint64_t req_ms;
	/* the path key received for this peer */
	bool has_path;
	uint8_t path_id[16], path_key[32];
	char via[IG_ID_MAX + 1];
	uint16_t pn;
	uint32_t pids[IG_KP_PAIR_MAX_IDS];
	uint64_t path_ms;
	/* wanted, and when to try again */
	bool wanted;
	uint64_t retry_ms;
	uint64_t rehello_ms;                       /* last hello forced by an unknown key id or expiry */
	bool revoked_logged;
} kp_peer;

struct ig_kpa {
	char cluster[IG_CLUSTER_MAX + 1], self[IG_ID_MAX + 1], ring_path[PATH_MAX];
	char via[IG_KPA_VIA_MAX][IG_ID_MAX + 1];
	size_t n_via;
	ig_kpa_publish_fn publish;
	void *publish_ctx;
	uint8_t file_key[32], pk[32];

	bool has_ring;
	ig_kp_params params;
	uint32_t *ids;                             /* m, ascending */
	uint8_t (*keys)[32];                       /* m, sodium_malloc'd */
	uint32_t *scratch, *scratch2;              /* m each: rings of peers */
	/* the revoked set of the ring's epoch (params copies the ring's) */
	bool rev_known;
	ig_kp_revoked rev;
	/* a verified statement of a later epoch than the ring, adopted with its ring */
	bool later_known;
	ig_kp_revoked later;

	char ring_nonce[IG_M2M_NONCE_HEX * 2 + 1];

	kp_session s[IG_KPA_SESSIONS_MAX];
	uint64_t next_order;
	kp_peer p[PEERS_MAX];
	struct {
		char id[IG_ID_MAX + 1];
		uint64_t start_ms;
		unsigned n;
	} relay[RELAY_TRACK];

	uint64_t sent, received, relayed;
	uint64_t drops[IG_KPA_DROP_COUNT];
	bool have_rx;
	ig_kpa_rx_info rx;
};

const char *ig_kpa_drop_name(int why)
{
	static const char *const names[] = {"no_ring", "wrong_epoch", "compromised", "bad_mac", "no_key",
	                                    "unexpected", "refused"};
	if (why >= 0 && why < IG_DROP_COUNT)
		return ig_m2m_drop_name((ig_m2m_drop)why);
	if (why >= IG_DROP_COUNT && why < IG_KPA_DROP_COUNT)
		return names[why - IG_DROP_COUNT];
	return "?";
}

/* ---- small helpers --------------------------------------------------------- */

static bool id_valid(const char *s)
{
	return s && ig_id_valid(s, strnlen(s, IG_ID_MAX + 1));
}

static void make_topic(const ig_kpa *k, char out[TOPIC_CAP], const char *to, const char *from)
{
	snprintf(out, TOPIC_CAP, "iotguard/%s/m2m/%s/%s", k->cluster, to, from);
}

static void publish(ig_kpa *k, const char *to, const uint8_t *msg, size_t len)
{
	char topic[TOPIC_CAP];
	make_topic(k, topic, to, k->self);
	if (k->publish)
		k->publish(k->publish_ctx, topic, msg, len);
}

static bool u32_in(const uint32_t *a, size_t n, uint32_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (a[mid] == x)
			return true;
		if (a[mid] < x)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

static const uint8_t *own_key(const ig_kpa *k, uint32_t id)
{
	size_t lo = 0, hi = k->params.ring;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (k->ids[mid] == id)
			return k->keys[mid];
		if (k->ids[mid] < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static bool dev_revoked(const ig_kpa *k, const char *id)
{
	if (!k->rev_known)
		return false;
	for (size_t i = 0; i < k->rev.n_devices; i++)
		if (strcmp(k->rev.devices[i], id) == 0)
			return true;
	return false;
}

static bool any_bad(const ig_kpa *k, const uint32_t *ids, size_t n)
{
	if (!k->rev_known)
		return false;
	for (size_t i = 0; i < n; i++)
		if (u32_in(k->rev.ids, k->rev.n_ids, ids[i]))
			return true;
	return false;
}

/* ring(a) ∩ ring(b) minus compromised, the lowest 64; a or b may be self. */
static size_t usable_between(ig_kpa *k, uint32_t *out, const char *a, const char *b)
{
	const uint32_t *ra = k->ids, *rb = k->ids;
	if (strcmp(a, k->self) != 0) {
		if (ig_kp_ring_ids(k->scratch, k->params.seed, a, k->params.pool, k->params.ring) != IG_OK)
			return 0;
		ra = k->scratch;
	}
	if (strcmp(b, k->self) != 0) {
		if (ig_kp_ring_ids(k->scratch2, k->params.seed, b, k->params.pool, k->params.ring) != IG_OK)
			return 0;
		rb = k->scratch2;
	}
	return ig_kp_shared(out, IG_KP_PAIR_MAX_IDS, ra, k->params.ring, rb, k->params.ring,
	                    k->rev_known ? k->rev.ids : NULL, k->rev_known ? k->rev.n_ids : 0);
}

/* Checks ids a peer chose for a key with us: q..64 of them, each in both
 * rings and not compromised. IG_OK, or the drop reason. */
static int check_ids(ig_kpa *k, const char *peer, const uint32_t *ids, size_t n)
{
	if (n < k->params.q || n > IG_KP_PAIR_MAX_IDS)
		return IG_KPA_DROP_NO_KEY;
	if (any_bad(k, ids, n))
		return IG_KPA_DROP_COMPROMISED;
	if (ig_kp_ring_ids(k->scratch, k->params.seed, peer, k->params.pool, k->params.ring) != IG_OK)
		return IG_KPA_DROP_NO_KEY;
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && ids[i] <= ids[i - 1])
			return IG_DROP_MALFORMED;
		if (!own_key(k, ids[i]) || !u32_in(k->scratch, k->params.ring, ids[i]))
			return IG_KPA_DROP_NO_KEY;
	}
	return IG_OK;
}

/* K_{self,peer} over ids (all in our ring). */
static int pair_key(const ig_kpa *k, uint8_t K[32], const char *peer, const uint32_t *ids, size_t n)
{
	uint8_t keys[IG_KP_PAIR_MAX_IDS][32];
	for (size_t i = 0; i < n; i++) {
		const uint8_t *key = own_key(k, ids[i]);
		if (!key) {
			sodium_memzero(keys, sizeof keys);
			return IG_ERR_INVAL;
		}
		memcpy(keys[i], key, 32);
	}
	int rc = ig_kp_pair_key(K, k->params.epoch, k->self, peer, ids, (const uint8_t(*)[32])keys, n);
	sodium_memzero(keys, sizeof keys);
	return rc;
}

static void key_id_prefix(char out[9], const uint8_t key_id[16])
{
	ig_key_id_prefix(out, key_id);
}

/* ---- peers and sessions ------------------------------------------------------ */

static void peer_wipe_hello(kp_peer *p)
{
	p->hello = false;
	p->tries = 0;
	sodium_memzero(p->K, sizeof p->K);
	sodium_memzero(&p->h, sizeof p->h);
	sodium_memzero(p->msg, sizeof p->msg);
	sodium_memzero(p->nas, sizeof p->nas);
	p->msg_len = 0;
}

static void peer_wipe_path(kp_peer *p)
{
	p->has_path = false;
	sodium_memzero(p->path_key, sizeof p->path_key);
	sodium_memzero(p->path_id, sizeof p->path_id);
	p->via[0] = '\0';
	p->pn = 0;
}

static kp_peer *peer_find(ig_kpa *k, const char *id)
{
	for (size_t i = 0; i < PEERS_MAX; i++)
		if (k->p[i].used && strcmp(k->p[i].id, id) == 0)
			return &k->p[i];
	return NULL;
}

static bool session_live_with(const ig_kpa *k, const char *peer);

/* The entry for id, made if needed; when the table is full, the least
 * recently active entry without anything outstanding goes (wiped). */
static kp_peer *peer_get(ig_kpa *k, const char *id, uint64_t now_ms)
{
	kp_peer *p = peer_find(k, id), *victim = NULL;
	if (p) {
		p->last_ms = now_ms;
		return p;
	}
	for (size_t i = 0; i < PEERS_MAX && !victim; i++)
		if (!k->p[i].used)
			victim = &k->p[i];
	for (int pass = 0; pass < 2 && !victim; pass++)
		for (size_t i = 0; i < PEERS_MAX; i++) {
			kp_peer *c = &k->p[i];
			if (pass == 0 && (c->hello || c->req || c->has_path))
				continue;
			if (!victim || c->last_ms < victim->last_ms)
				victim = c;
		}
	sodium_memzero(victim, sizeof *victim);
	victim->used = true;
	snprintf(victim->id, sizeof victim->id, "%s", id);
	victim->last_ms = now_ms;
	return victim;
}

static void session_wipe(kp_session *s, sess_state st)
{
	sodium_memzero(s->key, sizeof s->key);
	sodium_memzero(s->reply, sizeof s->reply);
	s->reply_len = 0;
	s->state = st;
}

static kp_session *session_by_id(ig_kpa *k, const uint8_t key_id[16])
{
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX; i++)
		if (k->s[i].state != S_EMPTY && memcmp(k->s[i].key_id, key_id, 16) == 0)
			return &k->s[i];
	return NULL;
}

/* The session to send to peer with: the newest live one not worn past its
 * hard limit (ig_kpa_tick expires sessions by age). */
static const kp_session *newest_live(const ig_kpa *k, const char *peer)
{
	const kp_session *best = NULL;
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX; i++) {
		const kp_session *s = &k->s[i];
		if (s->state != S_LIVE || strcmp(s->peer, peer) != 0 || s->sent >= SESSION_HARD_MSGS)
			continue;
		if (!best || s->order > best->order)
			best = s;
	}
	return best;
}

static bool session_live_with(const ig_kpa *k, const char *peer)
{
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX; i++)
		if (k->s[i].state == S_LIVE && strcmp(k->s[i].peer, peer) == 0)
			return true;
	return false;
}

/* A free slot for a new session with peer: at most IG_KPA_SESSIONS_PER_PEER
 * live per peer and IG_KPA_SESSIONS_MAX in all; tombstones go first, then the
 * oldest live session (wiped). */
static kp_session *session_slot(ig_kpa *k, const char *peer)
{
	size_t with_peer = 0;
	kp_session *oldest_peer = NULL, *victim = NULL;
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX; i++) {
		kp_session *s = &k->s[i];
		if (s->state == S_LIVE && strcmp(s->peer, peer) == 0) {
			with_peer++;
			if (!oldest_peer || s->order < oldest_peer->order)
				oldest_peer = s;
		}
	}
	if (with_peer >= IG_KPA_SESSIONS_PER_PEER)
		victim = oldest_peer;
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX && !victim; i++)
		if (k->s[i].state == S_EMPTY)
			victim = &k->s[i];
	for (int pass = 0; pass < 2 && !victim; pass++)
		for (size_t i = 0; i < IG_KPA_SESSIONS_MAX; i++) {
			kp_session *s = &k->s[i];
			if ((pass == 0) == (s->state == S_LIVE))
				continue;   /* tombstones first, then live sessions */
			if (!victim || s->order < victim->order)
				victim = s;
		}
	sodium_memzero(victim, sizeof *victim);
	return victim;
}

/* Makes a session from a completed hello. */
static kp_session *session_new(ig_kpa *k, const char *peer, const uint8_t K[32], const uint8_t na[32],
                               const uint8_t nb[32], bool initiator, bool path, const char *via,
                               const uint32_t *ids, size_t n, uint64_t now_ms)
{
	kp_session *s = session_slot(k, peer);
	s->state = S_LIVE;
	snprintf(s->peer, sizeof s->peer, "%s", peer);
	ig_kp_session(s->key, s->key_id, K, na, nb, initiator ? k->self : peer, initiator ? peer : k->self);
	s->direction = initiator ? 0 : 1;
	ig_replay_init(&s->rx);
	s->path = path;
	snprintf(s->via, sizeof s->via, "%s", path ? via : "");
	s->n = (uint16_t)n;
	memcpy(s->ids, ids, n * sizeof *ids);
	memcpy(s->na, na, 32);
	s->created_ms = now_ms;
	s->order = ++k->next_order;
	char kid[9];
	key_id_prefix(kid, s->key_id);
	if (path)
		ig_log(IG_LOG_INFO, "key ring session %s... with %s (via %s, %s)", kid, peer, via,
		       initiator ? "we asked" : "it asked");
	else
		ig_log(IG_LOG_INFO, "key ring session %s... with %s (direct, %zu shared ids, %s)", kid, peer, n,
		       initiator ? "we asked" : "it asked");
	return s;
}

/* ---- KEYFILE.ring -------------------------------------------------------------- */

typedef struct wbuf {
	uint8_t *p;
	size_t len, cap;
} wbuf;

static void w_bytes(wbuf *w, const void *b, size_t n)
{
	if (w->p && w->len + n <= w->cap)
		memcpy(w->p + w->len, b, n);
	w->len += n;
}
static void w_u8(wbuf *w, uint8_t v) { w_bytes(w, &v, 1); }
static void w_u32(wbuf *w, uint32_t v)
{
	uint8_t b[4];
	ig_put_u32(b, v);
	w_bytes(w, b, 4);
}
static void w_u64(wbuf *w, uint64_t v)
{
	uint8_t b[8];
	ig_put_u64(b, v);
	w_bytes(w, b, 8);
}
static void w_str(wbuf *w, const char *s)
{
	size_t n = strlen(s);
	w_u8(w, (uint8_t)n);
	w_bytes(w, s, n);
}

/* The A.9 plaintext of a ring and its revoked set. */
static size_t file_plain(uint8_t *out, size_t cap, const ig_kpa *k, const ig_kp_params *pr, const uint32_t *ids,
                         const uint8_t (*keys)[32], const ig_kp_revoked *rev)
{
	wbuf w = {out, 0, cap};
	w_str(&w, k->cluster);
	w_str(&w, k->self);
	w_u64(&w, pr->epoch);
	w_u32(&w, pr->pool);
	w_u32(&w, pr->ring);
	w_u8(&w, pr->q);
	w_bytes(&w, pr->seed, 32);
	for (uint32_t i = 0; i < pr->ring; i++) {
		w_u32(&w, ids[i]);
		w_bytes(&w, keys[i], 32);
	}
	w_u64(&w, rev ? rev->serial : 0);
	w_u32(&w, rev ? (uint32_t)rev->n_ids : 0);
	for (size_t i = 0; rev && i < rev->n_ids; i++)
		w_u32(&w, rev->ids[i]);
	w_u32(&w, rev ? (uint32_t)rev->n_devices : 0);
	for (size_t i = 0; rev && i < rev->n_devices; i++)
		w_str(&w, rev->devices[i]);
	return w.len;
}

static int file_write(const ig_kpa *k, const ig_kp_params *pr, const uint32_t *ids, const uint8_t (*keys)[32],
                      const ig_kp_revoked *rev, ig_error *err)
{
	size_t need = file_plain(NULL, 0, k, pr, ids, keys, rev);
	uint8_t *plain = malloc(need), *sealed = NULL;
	size_t sealed_len = 0;
	if (!plain)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the %s %s", RING_WHAT, k->ring_path);
	file_plain(plain, need, k, pr, ids, keys, rev);
	int rc = ig_kp_file_seal(&sealed, &sealed_len, k->file_key, k->pk, plain, need);
	sodium_memzero(plain, need);
	free(plain);
	if (rc != IG_OK)
		return ig_error_set(err, rc, "cannot encrypt the %s %s (error %d)", RING_WHAT, k->ring_path, rc);
	rc = ig_durable_replace(k->ring_path, sealed, sealed_len, RING_WHAT, err);
	free(sealed);
	return rc;
}

typedef struct rbuf {
	const uint8_t *p;
	size_t len, off;
	bool ok;
} rbuf;

static const uint8_t *r_bytes(rbuf *r, size_t n)
{
	if (!r->ok || r->len - r->off < n) {
		r->ok = false;
		return NULL;
	}
	const uint8_t *b = r->p + r->off;
	r->off += n;
	return b;
}
static uint8_t r_u8(rbuf *r)
{
	const uint8_t *b = r_bytes(r, 1);
	return b ? b[0] : 0;
}
static uint32_t r_u32(rbuf *r)
{
	const uint8_t *b = r_bytes(r, 4);
	return b ? ig_get_u32(b) : 0;
}
static uint64_t r_u64(rbuf *r)
{
	const uint8_t *b = r_bytes(r, 8);
	return b ? ig_get_u64(b) : 0;
}
static bool r_id(rbuf *r, char out[IG_ID_MAX + 1])
{
	uint8_t n = r_u8(r);
	const uint8_t *b = r_bytes(r, n);
	if (!b || n == 0 || n > IG_ID_MAX)
		return false;
	memcpy(out, b, n);
	out[n] = '\0';
	return ig_id_valid(out, n);
}

static void ring_free(ig_kpa *k)
{
	if (k->keys)
		sodium_free(k->keys);
	free(k->ids);
	free(k->scratch);
	free(k->scratch2);
	k->keys = NULL;
	k->ids = k->scratch = k->scratch2 = NULL;
	k->has_ring = false;
	sodium_memzero(&k->params, sizeof k->params);
}

/* Allocates a ring of m ids (keys in guarded memory). */
static int ring_alloc(uint32_t m, uint32_t **ids, uint8_t (**keys)[32], uint32_t **s1, uint32_t **s2)
{
	*ids = calloc(m, sizeof **ids);
	*s1 = calloc(m, sizeof **s1);
	*s2 = calloc(m, sizeof **s2);
	*keys = sodium_malloc((size_t)m * 32);
	if (!*ids || !*s1 || !*s2 || !*keys) {
		free(*ids);
		free(*s1);
		free(*s2);
		if (*keys)
			sodium_free(*keys);
		*ids = *s1 = *s2 = NULL;
		*keys = NULL;
		return IG_ERR_NOMEM;
	}
	return IG_OK;
}

/* Parses and checks a decrypted file into k (ring and revoked set). */
static int file_parse(ig_kpa *k, const uint8_t *plain, size_t len, const char **why)
{
	rbuf r = {plain, len, 0, true};
	char cluster[IG_CLUSTER_MAX + 1], id[IG_ID_MAX + 1];
	ig_kp_params pr = {0};
	*why = "it is truncated or malformed";
	if (!r_id(&r, cluster) || !r_id(&r, id))
		return IG_ERR_CORRUPT;
	if (strcmp(cluster, k->cluster) != 0 || strcmp(id, k->self) != 0) {
		*why = "it holds the ring of another cluster or device";
		return IG_ERR_CORRUPT;
	}
	pr.epoch = r_u64(&r);
	pr.pool = r_u32(&r);
	pr.ring = r_u32(&r);
	pr.q = r_u8(&r);
	const uint8_t *seed = r_bytes(&r, 32);
	if (!seed)
		return IG_ERR_CORRUPT;
	memcpy(pr.seed, seed, 32);
	ig_error perr = {0};
	if (ig_kp_params_check(&pr, &perr) != IG_OK) {
		*why = "its parameters are out of range";
		return IG_ERR_CORRUPT;
	}
	if ((size_t)pr.ring * 36 > len - r.off)
		return IG_ERR_CORRUPT;
	uint32_t *ids, *s1, *s2;
	uint8_t(*keys)[32];
	if (ring_alloc(pr.ring, &ids, &keys, &s1, &s2) != IG_OK) {
		*why = "out of memory";
		return IG_ERR_NOMEM;
	}
	for (uint32_t i = 0; i < pr.ring; i++) {
		ids[i] = r_u32(&r);
		const uint8_t *key = r_bytes(&r, 32);
		if (key)
			memcpy(keys[i], key, 32);
	}
	int rc = IG_ERR_CORRUPT;
	ig_kp_revoked rev = {0};
	if (!r.ok || ig_kp_ring_ids(s1, pr.seed, k->self, pr.pool, pr.ring) != IG_OK ||
	    memcmp(s1, ids, (size_t)pr.ring * sizeof *ids) != 0) {
		*why = "its ring ids are not this device's for its seed";
		goto fail;
	}
	rev.serial = r_u64(&r);
	uint32_t n_ids = r_u32(&r);
	if (!r.ok || (size_t)n_ids > (len - r.off) / 4)
		goto fail;
	rev.ids = calloc(n_ids ? n_ids : 1, sizeof *rev.ids);
	if (!rev.ids)
		goto nomem;
	rev.n_ids = n_ids;
	for (uint32_t i = 0; i < n_ids; i++) {
		rev.ids[i] = r_u32(&r);
		if (rev.ids[i] >= pr.pool || (i > 0 && rev.ids[i] <= rev.ids[i - 1])) {
			*why = "its compromised ids are not ascending ids of the pool";
			goto fail;
		}
	}
	uint32_t n_dev = r_u32(&r);
	if (!r.ok || (size_t)n_dev > (len - r.off) / 2)
		goto fail;
	rev.devices = calloc(n_dev ? n_dev : 1, sizeof *rev.devices);
	if (!rev.devices)
		goto nomem;
	rev.n_devices = n_dev;
	for (uint32_t i = 0; i < n_dev; i++)
		if (!r_id(&r, rev.devices[i]))
			goto fail;
	if (!r.ok || r.off != len)
		goto fail;
	snprintf(rev.cluster, sizeof rev.cluster, "%s", k->cluster);
	rev.params = pr;
	k->params = pr;
	k->ids = ids;
	k->keys = keys;
	k->scratch = s1;
	k->scratch2 = s2;
	k->has_ring = true;
	k->rev = rev;
	/* A file written before any statement holds serial 0 and empty lists. */
	k->rev_known = rev.serial != 0 || rev.n_ids || rev.n_devices;
	return IG_OK;
nomem:
	*why = "out of memory";
	rc = IG_ERR_NOMEM;
fail:
	ig_kp_revoked_free(&rev);
	free(ids);
	free(s1);
	free(s2);
	sodium_free(keys);
	return rc;
}

static int file_load(ig_kpa *k, ig_error *err)
{
	static const char fix[] = "move it aside; the agent asks the cluster head for a new ring at its next connect";
	struct stat st;
	if (lstat(k->ring_path, &st) != 0) {
		if (errno == ENOENT)
			return IG_OK;
		return ig_error_set(err, IG_ERR_IO, "cannot read the %s %s: %s", RING_WHAT, k->ring_path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return ig_error_set(err, IG_ERR_CORRUPT, "the %s %s is not a regular file: %s", RING_WHAT, k->ring_path,
		                    fix);
	if (st.st_mode & 077)
		return ig_error_set(err, IG_ERR_INVAL, "the %s %s is readable by group or others: chmod 600 %s", RING_WHAT,
		                    k->ring_path, k->ring_path);
	if (st.st_size < 0 || (uint64_t)st.st_size > FILE_MAX)
		return ig_error_set(err, IG_ERR_CORRUPT, "the %s %s is damaged (longer than any ring file): %s", RING_WHAT,
		                    k->ring_path, fix);
	size_t cap = (size_t)st.st_size + 1, len = 0;
	char *buf = malloc(cap);
	if (!buf)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the %s %s", RING_WHAT, k->ring_path);
	int rc = ig_durable_read(buf, cap, &len, k->ring_path, RING_WHAT, err);
	if (rc == IG_ERR_RANGE)
		rc = ig_error_set(err, IG_ERR_CORRUPT, "the %s %s changed while it was read: %s", RING_WHAT, k->ring_path,
		                  fix);
	if (rc != IG_OK) {
		free(buf);
		return rc;
	}
	uint8_t *plain = NULL;
	size_t plain_len = 0;
	rc = ig_kp_file_open(&plain, &plain_len, k->file_key, k->pk, (const uint8_t *)buf, len);
	free(buf);
	if (rc != IG_OK)
		return ig_error_set(err, IG_ERR_CORRUPT,
		                    "the %s %s is damaged or not this identity's (it does not decrypt with this key): %s",
		                    RING_WHAT, k->ring_path, fix);
	const char *why = "";
	rc = file_parse(k, plain, plain_len, &why);
	sodium_memzero(plain, plain_len);
	free(plain);
	if (rc != IG_OK)
		return ig_error_set(err, rc, "the %s %s is damaged (%s): %s", RING_WHAT, k->ring_path, why, fix);
	return IG_OK;
}

/* ---- life cycle --------------------------------------------------------------- */

int ig_kpa_new(ig_kpa **out, const ig_kpa_config *cfg, const uint8_t file_key[32], const uint8_t pk[32], ig_error *err)
{
	*out = NULL;
	if (!cfg || !cfg->cluster || !cfg->self_id || !cfg->ring_path || !file_key || !pk)
		return ig_error_set(err, IG_ERR_INVAL, "key ring: missing configuration");
	if (!id_valid(cfg->cluster) || !id_valid(cfg->self_id))
		return ig_error_set(err, IG_ERR_INVAL, "key ring: invalid cluster name or device id");
	if (strlen(cfg->ring_path) >= PATH_MAX)
		return ig_error_set(err, IG_ERR_RANGE, "key ring file path %s is too long", cfg->ring_path);
	if (cfg->n_via > IG_KPA_VIA_MAX)
		return ig_error_set(err, IG_ERR_RANGE, "--kp-via names %zu candidates; at most %d are allowed", cfg->n_via,
		                    IG_KPA_VIA_MAX);
	for (size_t i = 0; i < cfg->n_via; i++)
		if (!id_valid(cfg->via[i]))
			return ig_error_set(err, IG_ERR_INVAL, "--kp-via candidate \"%s\" is not a valid device id",
			                    cfg->via[i] ? cfg->via[i] : "");
	ig_kpa *k = calloc(1, sizeof *k);
	if (!k)
		return ig_error_set(err, IG_ERR_NOMEM, "out of memory for the key ring state");
	snprintf(k->cluster, sizeof k->cluster, "%s", cfg->cluster);
	snprintf(k->self, sizeof k->self, "%s", cfg->self_id);
	snprintf(k->ring_path, sizeof k->ring_path, "%s", cfg->ring_path);
	for (size_t i = 0; i < cfg->n_via; i++)
		snprintf(k->via[i], sizeof k->via[i], "%s", cfg->via[i]);
	k->n_via = cfg->n_via;
	k->publish = cfg->publish;
	k->publish_ctx = cfg->publish_ctx;
	memcpy(k->file_key, file_key, 32);
	memcpy(k->pk, pk, 32);
	int rc = file_load(k, err);
	if (rc != IG_OK) {
		ig_kpa_free(k);
		return rc;
	}
	*out = k;
	return IG_OK;
}

void ig_kpa_free(ig_kpa *k)
{
	if (!k)
		return;
	ring_free(k);
	ig_kp_revoked_free(&k->rev);
	ig_kp_revoked_free(&k->later);
	sodium_memzero(k, sizeof *k);
	free(k);
}

bool ig_kpa_has_ring(const ig_kpa *k)
{
	return k && k->has_ring;
}

uint64_t ig_kpa_epoch(const ig_kpa *k)
{
	return k && k->has_ring ? k->params.epoch : 0;
}

void ig_kpa_set_ring_nonce(ig_kpa *k, const char *nonce)
{
	snprintf(k->ring_nonce, sizeof k->ring_nonce, "%s", nonce ? nonce : "");
}

/* Forgets every session, path key and outstanding exchange (a new ring). */
static void forget_all(ig_kpa *k)
{
	sodium_memzero(k->s, sizeof k->s);
	sodium_memzero(k->p, sizeof k->p);
	sodium_memzero(k->relay, sizeof k->relay);
}

/* ---- accepting a ring ------------------------------------------------------------ */

static const char *str_field(const cJSON *msg, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(msg, name);
	return cJSON_IsString(v) ? v->valuestring : NULL;
}

static bool hex_field(uint8_t *out, size_t n, const cJSON *msg, const char *name)
{
	const char *s = str_field(msg, name);
	return s && ig_hex_decode(out, n, s, strlen(s)) == IG_OK;
}

static bool params_equal(const ig_kp_params *a, const ig_kp_params *b)
{
	return a->epoch == b->epoch && a->pool == b->pool && a->ring == b->ring && a->q == b->q &&
	       memcmp(a->seed, b->seed, 32) == 0;
}

int ig_kpa_accept_ring(ig_kpa *k, const cJSON *msg, const ig_box_key *bk, ig_error *err)
{
	uint64_t epoch, pool, ring, q;
	ig_kp_params clear = {0};
	uint8_t hash[32], box_nonce[crypto_box_NONCEBYTES];
	const char *type = str_field(msg, "type"), *box_b64 = str_field(msg, "box");
	const cJSON *nonce_item = cJSON_GetObjectItemCaseSensitive(msg, "nonce");
	if (!type || strcmp(type, "key_ring") != 0 || !box_b64 ||
	    ig_json_uint_field(&epoch, msg, "epoch", 1, IG_JSON_UINT_MAX) != IG_OK ||
	    ig_json_uint_field(&pool, msg, "pool", 2, IG_KP_POOL_MAX) != IG_OK ||
	    ig_json_uint_field(&ring, msg, "ring", 1, IG_KP_RING_MAX) != IG_OK ||
	    ig_json_uint_field(&q, msg, "q", 1, IG_KP_Q_MAX) != IG_OK || !hex_field(clear.seed, 32, msg, "seed") ||
	    !hex_field(hash, 32, msg, "ring_hash") || !hex_field(box_nonce, sizeof box_nonce, msg, "box_nonce") ||
	    (nonce_item && !cJSON_IsString(nonce_item)))
		return ig_error_set(err, IG_ERR_INVAL, "key_ring message lacks a field or has one of the wrong type");
	clear.epoch = epoch;
	clear.pool = (uint32_t)pool;
	clear.ring = (uint32_t)ring;
	clear.q = (uint8_t)q;

	size_t box_len = 0, b64_len = strlen(box_b64);
	if (b64_len > (RING_BOX_MAX + 2) / 3 * 4 + 4)
		return ig_error_set(err, IG_ERR_INVAL, "key_ring box is longer than any ring");
	uint8_t *box = malloc(RING_BOX_MAX), *plain = sodium_malloc(RING_PLAIN_MAX);
	uint32_t *ids = NULL, *s1 = NULL, *s2 = NULL;
	uint8_t(*keys)[32] = NULL;
	ig_kp_params boxed = {0};
	int rc;
	if (!box || !plain) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory for a key_ring message");
		goto out;
	}
	if (sodium_base642bin(box, RING_BOX_MAX, box_b64, b64_len, NULL, &box_len, NULL,
	                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    box_len < crypto_box_MACBYTES) {
		rc = ig_error_set(err, IG_ERR_INVAL, "key_ring box is not base64 of a box");
		goto out;
	}
	if (crypto_box_open_easy_afternm(plain, box, box_len, box_nonce, bk->k) != 0) {
		rc = ig_error_set(err, IG_ERR_CRYPTO, "key_ring box does not open with the pinned cluster head's key: "
		                                      "not from it, or tampered");
		goto out;
	}
	size_t plain_len = box_len - crypto_box_MACBYTES;
	if (ring_alloc((uint32_t)ring, &ids, &keys, &s1, &s2) != IG_OK) {
		rc = ig_error_set(err, IG_ERR_NOMEM, "out of memory for a key ring");
		goto out;
	}
	/* ids/keys hold `ring` entries; the boxed ring is refused unless it says the same m. */
	if (plain_len < 17 || ig_get_u32(plain + 12) != ring) {
		rc = ig_error_set(err, IG_ERR_INVAL, "key_ring cleartext fields contradict the boxed ring");
		goto out;
	}
	if (ig_kp_ring_plain_parse(&boxed, ids, keys, plain, plain_len, k->self) != IG_OK) {
		rc = ig_error_set(err, IG_ERR_INVAL, "key_ring boxed ring is malformed, not for %s, or its ids are not "
		                                     "the ones its seed gives", k->self);
		goto out;
	}
	if (!params_equal(&boxed, &clear)) {
		rc = ig_error_set(err, IG_ERR_INVAL, "key_ring cleartext fields contradict the boxed ring");
		goto out;
	}
	uint8_t got[32];
	ig_kp_ring_hash(got, boxed.epoch, k->self, ids, (const uint8_t(*)[32])keys, boxed.ring);
	if (sodium_memcmp(got, hash, 32) != 0) {
		rc = ig_error_set(err, IG_ERR_INVAL, "key_ring ring_hash does not match the boxed ring");
		goto out;
	}
	/* The same ring again (a duplicate delivery, an unasked deal after an
	 * asked one) is no news, whatever request it names. */
	if (k->has_ring && boxed.epoch == k->params.epoch && params_equal(&boxed, &k->params)) {
		uint8_t mine[32];
		ig_kp_ring_hash(mine, k->params.epoch, k->self, k->ids, (const uint8_t(*)[32])k->keys, k->params.ring);
		if (sodium_memcmp(mine, got, 32) == 0) {
			rc = ig_error_set(err, IG_ERR_EXISTS, "key ring of epoch %" PRIu64 " is already held", boxed.epoch);
			goto out;
		}
	}
	if (nonce_item && (!k->ring_nonce[0] || strcmp(nonce_item->valuestring, k->ring_nonce) != 0)) {
		rc = ig_error_set(err, IG_ERR_STATE, "key_ring message answers a request this device is not waiting for "
		                                     "(nonce %.32s); ignored", nonce_item->valuestring);
		goto out;
	}
	if (k->has_ring) {
		if (boxed.epoch < k->params.epoch) {
			rc = ig_error_set(err, IG_ERR_STATE, "key_ring of epoch %" PRIu64 " is older than the ring held "
			                  "(epoch %" PRIu64 "); ignored", boxed.epoch, k->params.epoch);
			goto out;
		}
		if (boxed.epoch == k->params.epoch) {
			rc = ig_error_set(err, IG_ERR_STATE, "key_ring for epoch %" PRIu64 " differs from the ring held for "
			                  "that epoch; kept the held one", boxed.epoch);
			goto out;
		}
	}
	/* The revoked set that goes with it: a statement already seen for its epoch, or none. */
	const ig_kp_revoked *rev = NULL;
	if (k->later_known && params_equal(&k->later.params, &boxed))
		rev = &k->later;
	rc = file_write(k, &boxed, ids, (const uint8_t(*)[32])keys, rev, err);
	if (rc != IG_OK)
		goto out;
	/* Durable: swap it in, and wipe the old epoch with every session made from it. */
	ring_free(k);
	forget_all(k);
	k->params = boxed;
	k->ids = ids;
	k->keys = keys;
	k->scratch = s1;
	k->scratch2 = s2;
	ids = s1 = s2 = NULL;
	keys = NULL;
	k->has_ring = true;
	ig_kp_revoked_free(&k->rev);
	k->rev_known = false;
	if (rev) {
		k->rev = k->later;
		memset(&k->later, 0, sizeof k->later);
		k->later_known = false;
		k->rev_known = true;
	}
	k->ring_nonce[0] = '\0';
	ig_log(IG_LOG_INFO, "key ring of epoch %" PRIu64 " (%u ids of a pool of %u, q = %u) stored in %s",
	       k->params.epoch, k->params.ring, k->params.pool, k->params.q, k->ring_path);
	rc = IG_OK;
out:
	free(box);
	if (plain)
		sodium_free(plain);
	free(ids);
	free(s1);
	free(s2);
	if (keys)
		sodium_free(keys);
	sodium_memzero(&boxed, sizeof boxed);
	return rc;
}

/* ---- the revoked statement --------------------------------------------------------- */

/* Drops what the (new) revoked set exposes; returns how many sessions went. */
static size_t apply_revoked(ig_kpa *k)
{
	size_t dropped = 0;
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX; i++) {
		kp_session *s = &k->s[i];
		if (s->state != S_LIVE)
			continue;
		if (dev_revoked(k, s->peer) || (s->path && dev_revoked(k, s->via)) || any_bad(k, s->ids, s->n)) {
			session_wipe(s, S_REVOKED);
			dropped++;
		}
	}
	for (size_t i = 0; i < PEERS_MAX; i++) {
		kp_peer *p = &k->p[i];
		if (!p->used)
			continue;
		bool gone = dev_revoked(k, p->id);
		if (p->has_path && (gone || dev_revoked(k, p->via) || any_bad(k, p->pids, p->pn)))
			peer_wipe_path(p);
		if (p->hello && (gone || any_bad(k, p->hids, p->hn) || (p->h.source == 1 && dev_revoked(k, p->h.via))))
			peer_wipe_hello(p);
		if (p->req && (gone || dev_revoked(k, p->req_via)))
			p->req = false;
		if (gone)
			p->wanted = false;
	}
	return dropped;
}

int ig_kpa_accept_revoked(ig_kpa *k, const uint8_t *json, size_t len, const uint8_t ch_pk[32], bool *newer_epoch,
                          uint64_t now_ms, ig_error *err)
{
	(void)now_ms;
	*newer_epoch = false;
	ig_kp_revoked r = {0};
	ig_error perr = {0};
	int rc = ig_kp_revoked_parse(&r, json, len, ch_pk, &perr);
	if (rc != IG_OK)
		return ig_error_set(err, rc, "revoked statement refused: %s", perr.msg[0] ? perr.msg : "malformed");
	if (strcmp(r.cluster, k->cluster) != 0) {
		ig_kp_revoked_free(&r);
		return ig_error_set(err, IG_ERR_INVAL, "revoked statement is for cluster %s, not %s; ignored", r.cluster,
		                    k->cluster);
	}
	uint64_t ring_epoch = k->has_ring ? k->params.epoch : 0;
	if (r.params.epoch < ring_epoch) {
		rc = ig_error_set(err, IG_ERR_STATE, "revoked statement of epoch %" PRIu64 " is older than the ring "
		                  "(epoch %" PRIu64 "); ignored", r.params.epoch, ring_epoch);
		ig_kp_revoked_free(&r);
		return rc;
	}
	if (r.params.epoch > ring_epoch) {
		/* About a ring we do not hold yet: kept in memory for it. */
		if (k->later_known && (k->later.params.epoch > r.params.epoch ||
		                       (k->later.params.epoch == r.params.epoch && k->later.serial > r.serial))) {
			ig_kp_revoked_free(&r);
			return ig_error_set(err, IG_ERR_STATE, "revoked statement is older than one already seen; ignored");
		}
		bool same = k->later_known && k->later.params.epoch == r.params.epoch && k->later.serial == r.serial;
		ig_kp_revoked_free(&k->later);
		k->later = r;
		k->later_known = true;
		*newer_epoch = true;
		if (same)
			return ig_error_set(err, IG_ERR_EXISTS, "revoked statement serial %" PRIu64 " already seen",
			                    k->later.serial);
		ig_log(IG_LOG_INFO, "revoked statement announces key ring epoch %" PRIu64 " (this device holds %s)",
		       r.params.epoch, ring_epoch ? "an older ring" : "no ring");
		return IG_OK;
	}
	if (!params_equal(&r.params, &k->params)) {
		ig_kp_revoked_free(&r);
		return ig_error_set(err, IG_ERR_INVAL, "revoked statement's parameters for epoch %" PRIu64 " contradict "
		                    "the ring held; ignored", ring_epoch);
	}
	if (k->rev_known && r.serial < k->rev.serial) {
		rc = ig_error_set(err, IG_ERR_STATE, "revoked statement serial %" PRIu64 " is lower than the one held "
		                  "(%" PRIu64 "); ignored", r.serial, k->rev.serial);
		ig_kp_revoked_free(&r);
		return rc;
	}
	if (k->rev_known && r.serial == k->rev.serial) {
		ig_kp_revoked_free(&r);
		return ig_error_set(err, IG_ERR_EXISTS, "revoked statement serial %" PRIu64 " already held", k->rev.serial);
	}
	/* Memory first (what it exposes must not be used a moment longer),
	 * then the file; an unwritten file is reported, and the retained
	 * statement arrives again at the next connect. */
	ig_kp_revoked_free(&k->rev);
	k->rev = r;
	k->rev_known = true;
	size_t dropped = apply_revoked(k);
	rc = file_write(k, &k->params, k->ids, (const uint8_t(*)[32])k->keys, &k->rev, err);
	ig_log(IG_LOG_INFO, "revoked statement serial %" PRIu64 ": %zu compromised ids, %zu revoked devices; dropped "
	       "%zu key ring sessions", k->rev.serial, k->rev.n_ids, k->rev.n_devices, dropped);
	return rc;
}

/* ---- starting sessions ---------------------------------------------------------------- */

static int send_hello(ig_kpa *k, kp_peer *p, const ig_kp_hello *h, const uint8_t K[32], const uint32_t *ids,
                      size_t n, uint64_t now_ms)
{
	char topic[TOPIC_CAP];
	make_topic(k, topic, p->id, k->self);
	peer_wipe_hello(p);
	p->h = *h;
	p->h.kind = 1;
	randombytes_buf(p->h.na, sizeof p->h.na);
	int len = ig_kp_hello_build(p->msg, sizeof p->msg, &p->h, K, topic);
	if (len < 0) {
		peer_wipe_hello(p);
		return len;
	}
	p->msg_len = (size_t)len;
	memcpy(p->K, K, 32);
	p->hn = (uint16_t)n;
	memcpy(p->hids, ids, n * sizeof *ids);
	p->hello = true;
	p->tries = 1;
	memcpy(p->nas[0], p->h.na, 32);
	p->hello_ms = now_ms;
	p->retry_ms = 0;
	if (k->publish)
		k->publish(k->publish_ctx, topic, p->msg, p->msg_len);
	return IG_OK;
}

static int hello_direct(ig_kpa *k, kp_peer *p, const uint32_t *ids, size_t n, uint64_t now_ms)
{
	ig_kp_hello h = {.kind = 1, .epoch = k->params.epoch, .source = 0, .n = (uint16_t)n};
	memcpy(h.ids, ids, n * sizeof *ids);
	uint8_t K[32];
	int rc = pair_key(k, K, p->id, ids, n);
	if (rc == IG_OK)
		rc = send_hello(k, p, &h, K, ids, n, now_ms);
	sodium_memzero(K, sizeof K);
	return rc;
}

static int hello_path(ig_kpa *k, kp_peer *p, uint64_t now_ms)
{
	ig_kp_hello h = {.kind = 1, .epoch = k->params.epoch, .source = 1};
	memcpy(h.path_id, p->path_id, 16);
	snprintf(h.via, sizeof h.via, "%s", p->via);
	p->path_ms = now_ms;
	return send_hello(k, p, &h, p->path_key, p->pids, p->pn, now_ms);
}

/* Sends a path request to the first usable --kp-via candidate from p->cand on. */
static int path_request(ig_kpa *k, kp_peer *p, uint64_t now_ms)
{
	uint32_t ids[IG_KP_PAIR_MAX_IDS], other[IG_KP_PAIR_MAX_IDS];
	for (size_t i = p->cand; i < k->n_via; i++) {
		const char *c = k->via[i];
		if (strcmp(c, k->self) == 0 || strcmp(c, p->id) == 0 || dev_revoked(k, c))
			continue;
		size_t n = usable_between(k, ids, k->self, c);
		if (n < k->params.q || usable_between(k, other, c, p->id) < k->params.q)
			continue;
		ig_kp_path req = {.kind = 1, .epoch = k->params.epoch, .n = (uint16_t)n};
		memcpy(req.ids, ids, n * sizeof *ids);
		snprintf(req.b, sizeof req.b, "%s", p->id);
		randombytes_buf(req.req_id, sizeof req.req_id);
		uint8_t K[32], msg[IG_KP_PATH_MAX];
		char topic[TOPIC_CAP];
		make_topic(k, topic, c, k->self);
		int rc = pair_key(k, K, c, ids, n);
		int len = rc == IG_OK ? ig_kp_path_request_build(msg, sizeof msg, &req, K, topic) : rc;
		sodium_memzero(K, sizeof K);
		if (len < 0)
			continue;
		p->req = true;
		memcpy(p->req_id, req.req_id, 16);
		p->cand = i;
		snprintf(p->req_via, sizeof p->req_via, "%s", c);
		p->req_ms = now_ms;
		p->retry_ms = 0;
		ig_log(IG_LOG_INFO, "asking %s for a path key to %s (too few usable shared key ring ids)", c, p->id);
		if (k->publish)
			k->publish(k->publish_ctx, topic, msg, (size_t)len);
		return IG_OK;
	}
	p->req = false;
	return IG_ERR_NOTFOUND;
}

/* force: even with a live session (an unknown key id, a worn session).
 * allow_request: may ask an intermediary. */
static int start(ig_kpa *k, const char *peer, uint64_t now_ms, bool force, bool allow_request)
{
	if (!k->has_ring)
		return IG_ERR_STATE;
	if (!id_valid(peer) || strcmp(peer, k->self) == 0)
		return IG_ERR_INVAL;
	kp_peer *p = peer_get(k, peer, now_ms);
	if (p->hello || p->req)
		return IG_OK;
	if (!force && newest_live(k, peer))
		return IG_OK;
	if (dev_revoked(k, peer)) {
		if (!p->revoked_logged)
			ig_log(IG_LOG_WARN, "no key ring session with %s: it is revoked", peer);
		p->revoked_logged = true;
		p->wanted = false;
		return IG_ERR_STATE;
	}
	if (!force && p->retry_ms && now_ms < p->retry_ms)
		return IG_ERR_NOTFOUND;
	p->wanted = true;
	uint32_t ids[IG_KP_PAIR_MAX_IDS];
	size_t n = usable_between(k, ids, k->self, peer);
	if (n >= k->params.q)
		return hello_direct(k, p, ids, n, now_ms);
	if (p->has_path)
		return hello_path(k, p, now_ms);
	if (allow_request) {
		p->cand = 0;
		if (path_request(k, p, now_ms) == IG_OK)
			return IG_OK;
	}
	ig_log(IG_LOG_WARN, "no key ring route to %s: %zu usable shared ids (q = %u)%s; retrying in %d s", peer, n,
	       k->params.q, k->n_via ? " and no --kp-via candidate shares q with both" : " and no --kp-via candidates",
	       IG_KPA_BACKOFF_MS / 1000);
	p->retry_ms = now_ms + IG_KPA_BACKOFF_MS;
	return IG_ERR_NOTFOUND;
}

int ig_kpa_want(ig_kpa *k, const char *peer, uint64_t now_ms)
{
	return start(k, peer, now_ms, false, true);
}

bool ig_kpa_ready(const ig_kpa *k, const char *peer)
{
	return k && peer && newest_live(k, peer) != NULL;
}

int ig_kpa_send(ig_kpa *k, const char *peer, const uint8_t *pt, size_t len, uint64_t now_ms)
{
	if (!k->has_ring)
		return IG_ERR_STATE;
	if (len > IG_M2M_MAX_PLAINTEXT)
		return IG_ERR_RANGE;
	kp_session *s = (kp_session *)newest_live(k, peer);
	if (s && now_ms >= s->created_ms + SESSION_HARD_MS) {
		session_wipe(s, S_EXPIRED);   /* the tick would have; never send past the limit */
		s = (kp_session *)newest_live(k, peer);
	}
	if (!s)
		return IG_ERR_STATE;
	size_t cap = IG_M2M_HEADER_BYTES + len + IG_AEAD_TAG_BYTES;
	uint8_t *msg = malloc(cap);
	if (!msg)
		return IG_ERR_NOMEM;
	char topic[TOPIC_CAP];
	make_topic(k, topic, peer, k->self);
	uint64_t counter = s->sent + 1;
	int n = ig_m2m_seal_v(msg, cap, 2, IG_SUITE_XCHACHA20POLY1305, s->key, s->key_id, s->direction, counter, topic,
	                      pt, len);
	if (n < 0) {
		free(msg);
		return n;
	}
	s->sent = counter;   /* a counter is spent once it was sealed under */
	if (k->publish)
		k->publish(k->publish_ctx, topic, msg, (size_t)n);
	k->sent++;
	free(msg);
	return IG_OK;
}

/* ---- receiving -------------------------------------------------------------------------- */

static int drop(ig_kpa *k, int *why, int reason)
{
	*why = reason;
	if (reason >= 0 && reason < IG_KPA_DROP_COUNT)
		k->drops[reason]++;
	return -1;
}

/* An unknown key id from peer: the sender holds a session we lost (we
 * restarted), so make a fresh one, at most once per peer per 10 s. */
static void rehello(ig_kpa *k, const char *peer, uint64_t now_ms)
{
	if (!k->has_ring || strcmp(peer, k->self) == 0 || dev_revoked(k, peer))
		return;
	kp_peer *p = peer_find(k, peer);
	if (p && p->rehello_ms && now_ms < p->rehello_ms + IG_KPA_REHELLO_MIN_MS)
		return;
	uint32_t ids[IG_KP_PAIR_MAX_IDS];
	if (usable_between(k, ids, k->self, peer) < k->params.q && !(p && p->has_path))
		return;
	p = peer_get(k, peer, now_ms);
	p->rehello_ms = now_ms;
	ig_log(IG_LOG_INFO, "m2m from %s under a key ring session this device does not hold: starting a new one", peer);
	(void)start(k, peer, now_ms, true, false);
}

static int on_data(ig_kpa *k, const char *topic, const char *from, const uint8_t *msg, size_t len, uint64_t now_ms,
                   uint8_t *pt, size_t pt_cap, int *why)
{
	ig_m2m_header h;
	if (ig_m2m_parse_header_v(msg, len, 2, &h) != IG_OK)
		return drop(k, why, IG_DROP_MALFORMED);
	kp_session *s = session_by_id(k, h.key_id);
	if (!s) {
		rehello(k, from, now_ms);
		return drop(k, why, IG_DROP_UNKNOWN_KEY);
	}
	if (s->state == S_REVOKED)
		return drop(k, why, IG_DROP_REVOKED);
	if (s->state != S_LIVE)
		return drop(k, why, IG_DROP_EXPIRED);
	if (strcmp(s->peer, from) != 0)
		return drop(k, why, IG_DROP_TAMPERED);
	switch (ig_replay_check(&s->rx, h.counter)) {
	case IG_REPLAY_OK: break;
	case IG_REPLAY_DUPLICATE: return drop(k, why, IG_DROP_REPLAYED);
	case IG_REPLAY_TOO_OLD: return drop(k, why, IG_DROP_TOO_OLD);
	default: return drop(k, why, IG_DROP_MALFORMED);
	}
	int n = ig_m2m_open_v(pt, pt_cap, msg, len, 2, s->key, (uint8_t)(s->direction ^ 1u), topic, &h);
	if (n < 0)
		return drop(k, why, n == IG_ERR_CRYPTO ? IG_DROP_TAMPERED : IG_DROP_MALFORMED);
	ig_replay_commit(&s->rx, h.counter);
	s->received++;
	k->received++;
	k->have_rx = true;
	memcpy(k->rx.key_id, s->key_id, 16);
	k->rx.counter = h.counter;
	k->rx.path = s->path;
	snprintf(k->rx.via, sizeof k->rx.via, "%s", s->via);
	return n;
}

/* A reply b matches the outstanding hello of p: same fields, and the NA of one of its tries. */
static bool hello_fields_match(const kp_peer *p, const ig_kp_hello *b)
{
	const ig_kp_hello *a = &p->h;
	bool na_ok = false;
	for (unsigned i = 0; i < p->tries && i < IG_KPA_HELLO_TRIES; i++)
		na_ok |= sodium_memcmp(p->nas[i], b->na, 32) == 0;
	if (!na_ok || a->epoch != b->epoch || a->source != b->source)
		return false;
	if (a->source == 0)
		return a->n == b->n && memcmp(a->ids, b->ids, a->n * sizeof *a->ids) == 0;
	return memcmp(a->path_id, b->path_id, 16) == 0 && strcmp(a->via, b->via) == 0;
}

static int on_hello(ig_kpa *k, const char *topic, const char *from, const uint8_t *msg, size_t len, uint64_t now_ms,
                    int *why)
{
	ig_kp_hello h;
	if (ig_kp_hello_parse(&h, msg, len) != IG_OK)
		return drop(k, why, IG_DROP_MALFORMED);
	if (h.epoch != k->params.epoch)
		return drop(k, why, IG_KPA_DROP_WRONG_EPOCH);
	if (dev_revoked(k, from) || (h.source == 1 && dev_revoked(k, h.via)))
		return drop(k, why, IG_KPA_DROP_COMPROMISED);

	if (h.kind == 2) {
		kp_peer *p = peer_find(k, from);
		if (!p || !p->hello || !hello_fields_match(p, &h))
			return drop(k, why, IG_KPA_DROP_UNEXPECTED);
		if (ig_kp_hello_verify(msg, len, p->K, topic) != IG_OK)
			return drop(k, why, IG_KPA_DROP_BAD_MAC);
		session_new(k, from, p->K, h.na, h.nb, true, h.source == 1, h.via, p->hids, p->hn, now_ms);
		peer_wipe_hello(p);
		p->wanted = false;
		p->retry_ms = 0;
		p->last_ms = now_ms;
		return 0;
	}

	uint8_t K[32];
	const uint32_t *ids;
	size_t n;
	kp_peer *p = NULL;
	if (h.source == 0) {
		int bad = check_ids(k, from, h.ids, h.n);
		if (bad != IG_OK)
			return drop(k, why, bad);
		if (pair_key(k, K, from, h.ids, h.n) != IG_OK)
			return drop(k, why, IG_KPA_DROP_NO_KEY);
		ids = h.ids;
		n = h.n;
	} else {
		p = peer_find(k, from);
		if (!p || !p->has_path || memcmp(p->path_id, h.path_id, 16) != 0 || strcmp(p->via, h.via) != 0)
			return drop(k, why, IG_KPA_DROP_NO_KEY);
		memcpy(K, p->path_key, 32);
		ids = p->pids;
		n = p->pn;
	}
	if (ig_kp_hello_verify(msg, len, K, topic) != IG_OK) {
		sodium_memzero(K, sizeof K);
		return drop(k, why, IG_KPA_DROP_BAD_MAC);
	}
	if (p)
		p->path_ms = now_ms;
	/* The same hello again (our reply was lost): the same reply, not a second session. */
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX; i++) {
		kp_session *s = &k->s[i];
		if (s->state == S_LIVE && s->reply_len && strcmp(s->peer, from) == 0 &&
		    sodium_memcmp(s->na, h.na, 32) == 0) {
			sodium_memzero(K, sizeof K);
			publish(k, from, s->reply, s->reply_len);
			return 0;
		}
	}
	ig_kp_hello r = h;
	r.kind = 2;
	randombytes_buf(r.nb, sizeof r.nb);
	char reply_topic[TOPIC_CAP];
	make_topic(k, reply_topic, from, k->self);
	uint8_t reply[IG_KP_HELLO_MAX];
	int rlen = ig_kp_hello_build(reply, sizeof reply, &r, K, reply_topic);
	if (rlen < 0) {
		sodium_memzero(K, sizeof K);
		return drop(k, why, IG_DROP_MALFORMED);
	}
	kp_session *s = session_new(k, from, K, h.na, r.nb, false, h.source == 1, h.via, ids, n, now_ms);
	sodium_memzero(K, sizeof K);
	memcpy(s->reply, reply, (size_t)rlen);
	s->reply_len = (size_t)rlen;
	if (k->publish)
		k->publish(k->publish_ctx, reply_topic, reply, (size_t)rlen);
	kp_peer *pp = peer_find(k, from);
	if (pp) {
		pp->wanted = false;
		pp->retry_ms = 0;
	}
	return 0;
}

/* Requests per requester in the current minute; false when over the limit. */
static bool relay_allowed(ig_kpa *k, const char *requester, uint64_t now_ms)
{
	size_t slot = RELAY_TRACK;
	for (size_t i = 0; i < RELAY_TRACK; i++)
		if (strcmp(k->relay[i].id, requester) == 0) {
			slot = i;
			break;
		}
	if (slot == RELAY_TRACK) {
		for (size_t i = 0; i < RELAY_TRACK; i++)
			if (slot == RELAY_TRACK || k->relay[i].start_ms < k->relay[slot].start_ms)
				slot = i;
		snprintf(k->relay[slot].id, sizeof k->relay[slot].id, "%s", requester);
		k->relay[slot].start_ms = now_ms;
		k->relay[slot].n = 0;
	}
	if (now_ms >= k->relay[slot].start_ms + RELAY_WINDOW_MS) {
		k->relay[slot].start_ms = now_ms;
		k->relay[slot].n = 0;
	}
	if (k->relay[slot].n >= IG_KPA_RELAYS_PER_MIN)
		return false;
	k->relay[slot].n++;
	return true;
}

/* Seals path_key for X (the requester or the target) under K_{self,X}. */
static int send_path_key(ig_kpa *k, const char *x, const ig_kp_path *base, const uint8_t path_key[32])
{
	ig_kp_path p = *base;
	uint8_t K[32], msg[IG_KP_PATH_MAX];
	char topic[TOPIC_CAP];
	size_t n = usable_between(k, p.ids, k->self, x);
	if (n < k->params.q)
		return IG_ERR_NOTFOUND;
	p.n = (uint16_t)n;
	memset(p.box_nonce, 0, sizeof p.box_nonce);
	make_topic(k, topic, x, k->self);
	int rc = pair_key(k, K, x, p.ids, n);
	int len = rc == IG_OK ? ig_kp_path_key_build(msg, sizeof msg, &p, K, topic, path_key) : rc;
	sodium_memzero(K, sizeof K);
	if (len < 0)
		return len;
	if (k->publish)
		k->publish(k->publish_ctx, topic, msg, (size_t)len);
	return IG_OK;
}

static int on_path_request(ig_kpa *k, const char *topic, const char *from, const ig_kp_path *req, const uint8_t *msg,
                           size_t len, uint64_t now_ms, int *why)
{
	if (dev_revoked(k, from) || dev_revoked(k, req->b))
		return drop(k, why, IG_KPA_DROP_COMPROMISED);
	int bad = check_ids(k, from, req->ids, req->n);
	if (bad != IG_OK)
		return drop(k, why, bad);
	uint8_t K[32];
	if (pair_key(k, K, from, req->ids, req->n) != IG_OK)
		return drop(k, why, IG_KPA_DROP_NO_KEY);
	int vrc = ig_kp_path_request_verify(msg, len, K, topic);
	sodium_memzero(K, sizeof K);
	if (vrc != IG_OK)
		return drop(k, why, IG_KPA_DROP_BAD_MAC);
	if (strcmp(req->b, from) == 0 || strcmp(req->b, k->self) == 0 || dev_revoked(k, k->self)) {
		ig_log(IG_LOG_WARN, "refused to relay a path key from %s to %s: %s", from, req->b,
		       dev_revoked(k, k->self) ? "this device is revoked" : "a path needs three different devices");
		return drop(k, why, IG_KPA_DROP_REFUSED);
	}
	if (!relay_allowed(k, from, now_ms)) {
		ig_log(IG_LOG_WARN, "refused to relay a path key from %s to %s: more than %d requests a minute", from,
		       req->b, IG_KPA_RELAYS_PER_MIN);
		return drop(k, why, IG_KPA_DROP_REFUSED);
	}
	uint32_t ids[IG_KP_PAIR_MAX_IDS];
	if (usable_between(k, ids, k->self, req->b) < k->params.q) {
		ig_log(IG_LOG_WARN, "cannot relay a path key from %s to %s: this device shares fewer than q = %u usable "
		       "key ring ids with %s", from, req->b, k->params.q, req->b);
		return drop(k, why, IG_KPA_DROP_NO_KEY);
	}
	ig_kp_path base = {.kind = 2, .epoch = k->params.epoch};
	snprintf(base.a, sizeof base.a, "%s", from);
	snprintf(base.b, sizeof base.b, "%s", req->b);
	memcpy(base.req_id, req->req_id, 16);
	randombytes_buf(base.path_id, sizeof base.path_id);
	uint8_t path_key[32];
	randombytes_buf(path_key, sizeof path_key);
	/* The target first, so its copy is there before the requester's hello. */
	int rc = send_path_key(k, req->b, &base, path_key);
	if (rc == IG_OK)
		rc = send_path_key(k, from, &base, path_key);
	sodium_memzero(path_key, sizeof path_key);
	if (rc != IG_OK)
		return drop(k, why, IG_DROP_MALFORMED);
	k->relayed++;
	ig_log(IG_LOG_INFO, "relayed a path key between %s and %s", from, req->b);
	return 0;
}

static int on_path_key(ig_kpa *k, const char *topic, const char *from, const ig_kp_path *pk, const uint8_t *msg,
                       size_t len, uint64_t now_ms, int *why)
{
	bool requester = strcmp(pk->a, k->self) == 0;
	if (!requester && strcmp(pk->b, k->self) != 0)
		return drop(k, why, IG_KPA_DROP_UNEXPECTED);
	const char *other = requester ? pk->b : pk->a;
	if (strcmp(other, k->self) == 0 || strcmp(other, from) == 0)
		return drop(k, why, IG_KPA_DROP_UNEXPECTED);
	if (dev_revoked(k, from) || dev_revoked(k, other))
		return drop(k, why, IG_KPA_DROP_COMPROMISED);
	kp_peer *p = peer_find(k, other);
	if (requester && (!p || !p->req || strcmp(p->req_via, from) != 0 || memcmp(p->req_id, pk->req_id, 16) != 0))
		return drop(k, why, IG_KPA_DROP_UNEXPECTED);
	int bad = check_ids(k, from, pk->ids, pk->n);
	if (bad != IG_OK)
		return drop(k, why, bad);
	uint8_t K[32], key[32];
	if (pair_key(k, K, from, pk->ids, pk->n) != IG_OK)
		return drop(k, why, IG_KPA_DROP_NO_KEY);
	int orc = ig_kp_path_key_open(key, msg, len, K, topic);
	sodium_memzero(K, sizeof K);
	if (orc != IG_OK)
		return drop(k, why, IG_KPA_DROP_BAD_MAC);
	if (!p)
		p = peer_get(k, other, now_ms);
	peer_wipe_path(p);
	p->has_path = true;
	memcpy(p->path_key, key, 32);
	sodium_memzero(key, sizeof key);
	memcpy(p->path_id, pk->path_id, 16);
	snprintf(p->via, sizeof p->via, "%s", from);
	p->pn = pk->n;
	memcpy(p->pids, pk->ids, pk->n * sizeof *pk->ids);
	p->path_ms = now_ms;
	p->last_ms = now_ms;
	ig_log(IG_LOG_INFO, "path key with %s via %s", other, from);
	if (requester) {
		p->req = false;
		peer_wipe_hello(p);
		if (hello_path(k, p, now_ms) != IG_OK)
			ig_log(IG_LOG_WARN, "cannot send a key ring hello to %s via %s", other, from);
	}
	return 0;
}

static int on_path(ig_kpa *k, const char *topic, const char *from, const uint8_t *msg, size_t len, uint64_t now_ms,
                   int *why)
{
	ig_kp_path p;
	if (ig_kp_path_parse(&p, msg, len) != IG_OK)
		return drop(k, why, IG_DROP_MALFORMED);
	if (p.epoch != k->params.epoch)
		return drop(k, why, IG_KPA_DROP_WRONG_EPOCH);
	if (p.kind == 1)
		return on_path_request(k, topic, from, &p, msg, len, now_ms, why);
	return on_path_key(k, topic, from, &p, msg, len, now_ms, why);
}

int ig_kpa_on_message(ig_kpa *k, const char *topic, const char *from, const uint8_t *msg, size_t len, uint64_t now_ms,
                      uint8_t *pt, size_t pt_cap, int *why)
{
	int dummy;
	if (!why)
		why = &dummy;
	*why = IG_DROP_MALFORMED;
	if (!k)
		return -1;
	char expect[TOPIC_CAP];
	if (!topic || !msg || len == 0 || !id_valid(from) || strcmp(from, k->self) == 0)
		return drop(k, why, IG_DROP_MALFORMED);
	/* Every mac and AAD binds the topic; it must be ours, from `from`. */
	make_topic(k, expect, k->self, from);
	if (strcmp(topic, expect) != 0)
		return drop(k, why, IG_DROP_MALFORMED);
	if (!k->has_ring)
		return drop(k, why, IG_KPA_DROP_NO_RING);
	switch (msg[0]) {
	case 2: return on_data(k, topic, from, msg, len, now_ms, pt, pt_cap, why);
	case 3: return on_hello(k, topic, from, msg, len, now_ms, why);
	case 4: return on_path(k, topic, from, msg, len, now_ms, why);
	default: return drop(k, why, IG_DROP_MALFORMED);
	}
}

bool ig_kpa_last_rx(const ig_kpa *k, ig_kpa_rx_info *out)
{
	if (!k || !k->have_rx)
		return false;
	*out = k->rx;
	return true;
}

/* ---- time --------------------------------------------------------------------------------- */

void ig_kpa_tick(ig_kpa *k, uint64_t now_ms)
{
	if (!k || !k->has_ring)
		return;
	/* Worn sessions: the newest one per peer asks for its successor; past
	 * twice the limits, none is used or accepted any more. */
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX; i++) {
		kp_session *s = &k->s[i];
		if (s->state != S_LIVE)
			continue;
		if (now_ms >= s->created_ms + SESSION_HARD_MS || s->sent >= SESSION_HARD_MSGS) {
			session_wipe(s, S_EXPIRED);
			continue;
		}
		bool worn = now_ms >= s->created_ms + IG_KPA_SESSION_MAX_MS || s->sent >= IG_KPA_SESSION_MAX_MSGS;
		if (worn && !s->rekey_asked && newest_live(k, s->peer) == s) {
			s->rekey_asked = true;
			char peer[IG_ID_MAX + 1];
			snprintf(peer, sizeof peer, "%s", s->peer);
			(void)start(k, peer, now_ms, true, true);
		}
	}
	for (size_t i = 0; i < PEERS_MAX; i++) {
		kp_peer *p = &k->p[i];
		if (!p->used)
			continue;
		if (p->hello && now_ms >= p->hello_ms + IG_KPA_HELLO_RETRY_MS) {
			/* The peer's own hello made a session since ours went out:
			 * that one serves both ends, a retry would only add another. */
			const kp_session *live = newest_live(k, p->id);
			if (live && live->created_ms >= p->hello_ms) {
				peer_wipe_hello(p);
				continue;
			}
		}
		if (p->hello && now_ms >= p->hello_ms + IG_KPA_HELLO_RETRY_MS) {
			char topic[TOPIC_CAP];
			make_topic(k, topic, p->id, k->self);
			int len = -1;
			if (p->tries < IG_KPA_HELLO_TRIES) {
				randombytes_buf(p->h.na, sizeof p->h.na);
				len = ig_kp_hello_build(p->msg, sizeof p->msg, &p->h, p->K, topic);
			}
			if (len > 0) {
				memcpy(p->nas[p->tries++], p->h.na, 32);
				p->msg_len = (size_t)len;
				p->hello_ms = now_ms;
				if (k->publish)
					k->publish(k->publish_ctx, topic, p->msg, p->msg_len);
			} else {
				bool via_path = p->h.source == 1;
				ig_log(IG_LOG_WARN, "no answer from %s to %d key ring hellos%s; retrying in %d s", p->id,
				       IG_KPA_HELLO_TRIES, via_path ? " (via path key)" : "", IG_KPA_BACKOFF_MS / 1000);
				peer_wipe_hello(p);
				/* Perhaps the target never got its copy: ask for a new path next time. */
				if (via_path)
					peer_wipe_path(p);
				p->retry_ms = now_ms + IG_KPA_BACKOFF_MS;
			}
		}
		if (p->req && now_ms >= p->req_ms + IG_KPA_PATH_RETRY_MS) {
			ig_log(IG_LOG_INFO, "no path key from %s for %s", p->req_via, p->id);
			p->req = false;
			p->cand++;
			if (path_request(k, p, now_ms) != IG_OK) {
				ig_log(IG_LOG_WARN, "no --kp-via candidate gave a path key to %s; retrying in %d s", p->id,
				       IG_KPA_BACKOFF_MS / 1000);
				p->retry_ms = now_ms + IG_KPA_BACKOFF_MS;
			}
		}
		if (p->has_path && now_ms >= p->path_ms + PATH_KEY_MAX_MS)
			peer_wipe_path(p);
		if (p->wanted && !p->hello && !p->req && p->retry_ms && now_ms >= p->retry_ms &&
		    !newest_live(k, p->id)) {
			p->retry_ms = 0;
			char peer[IG_ID_MAX + 1];
			snprintf(peer, sizeof peer, "%s", p->id);
			(void)start(k, peer, now_ms, false, true);
		}
		if (!p->wanted && !p->hello && !p->req && !p->has_path && now_ms >= p->last_ms + PEER_FORGET_MS &&
		    !session_live_with(k, p->id))
			sodium_memzero(p, sizeof *p);
	}
}

/* ---- status ---------------------------------------------------------------------------------- */

typedef struct sbuf {
	char *p;
	size_t len, cap;
} sbuf;

static void s_add(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_add(sbuf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(b->len < b->cap ? b->p + b->len : NULL, b->len < b->cap ? b->cap - b->len : 0, fmt, ap);
	va_end(ap);
	if (n > 0)
		b->len += (size_t)n;
}

static size_t status_with(const ig_kpa *k, char *out, size_t cap, size_t max_peers)
{
	sbuf b = {out, 0, cap};
	size_t live = 0;
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX; i++)
		live += k->s[i].state == S_LIVE;
	s_add(&b, ",\"kp\":{\"epoch\":%" PRIu64 ",\"ring\":%u,\"sessions\":%zu,\"peers\":[",
	      k->has_ring ? k->params.epoch : 0, k->has_ring ? k->params.ring : 0, live);
	/* One entry per peer: its newest live session. */
	size_t listed = 0;
	for (size_t i = 0; i < IG_KPA_SESSIONS_MAX && listed < max_peers; i++) {
		const kp_session *s = &k->s[i];
		if (s->state != S_LIVE || newest_live(k, s->peer) != s)
			continue;
		if (s->path)
			s_add(&b, "%s{\"peer\":\"%s\",\"key\":\"path\",\"via\":\"%s\"}", listed ? "," : "", s->peer, s->via);
		else
			s_add(&b, "%s{\"peer\":\"%s\",\"key\":\"direct\"}", listed ? "," : "", s->peer);
		listed++;
	}
	s_add(&b, "],\"relayed\":%" PRIu64 ",\"sent\":%" PRIu64 ",\"received\":%" PRIu64 ",\"drops\":{", k->relayed,
	      k->sent, k->received);
	bool first = true;
	for (int r = 0; r < IG_KPA_DROP_COUNT; r++) {
		if (!k->drops[r])
			continue;
		s_add(&b, "%s\"%s\":%" PRIu64, first ? "" : ",", ig_kpa_drop_name(r), k->drops[r]);
		first = false;
	}
	s_add(&b, "}}");
	return b.len;
}

size_t ig_kpa_status(const ig_kpa *k, char *out, size_t cap)
{
	if (!k)
		return cap;
	/* The heartbeat is small: list fewer peers rather than drop the member. */
	size_t max_peers = IG_KPA_SESSIONS_MAX;
	for (;;) {
		size_t n = status_with(k, out, cap, max_peers);
		if (n < cap || max_peers == 0)
			return n;
		max_peers = max_peers > 4 ? 4 : max_peers - 1;
	}
}
