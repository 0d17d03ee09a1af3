/*
 * ig_common.h: the small vocabulary every part of iotguard shares.
 *
 * Why this exists: the ledger, the token code, the policy engine, the
 * plugin, the CLI and the agent all talk about identities, roles, errors and
 * time. Defining those once keeps the public API consistent
 * (ig_<area>_<verb>, explicit lengths, int return codes) and keeps error
 * messages in one shape: "what failed; what to do".
 */
#ifndef IG_COMMON_H
#define IG_COMMON_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define IG_ID_MAX 64          /* identity id: 1..64 chars of [A-Za-z0-9_.-] */
#define IG_CLUSTER_MAX 64     /* cluster name: same alphabet and length */
#define IG_PK_BYTES 32        /* Ed25519 public key */
#define IG_SK_BYTES 64        /* Ed25519 secret key (libsodium layout: seed || pk) */
#define IG_SEED_BYTES 32
#define IG_HASH_BYTES 32      /* BLAKE2b-256, used for records and the Merkle tree */

/* Return codes. 0 is success; every failure is negative. */
enum {
	IG_OK = 0,
	IG_ERR_INVAL = -1,      /* bad argument or malformed input */
	IG_ERR_NOMEM = -2,
	IG_ERR_IO = -3,         /* a system call failed; errno is in the message */
	IG_ERR_CORRUPT = -4,    /* ledger/checkpoint inconsistency: tampered or corrupt */
	IG_ERR_LOCKED = -5,     /* another writer holds the ledger */
	IG_ERR_EXISTS = -6,
	IG_ERR_NOTFOUND = -7,
	IG_ERR_CRYPTO = -8,     /* signature / AEAD failure */
	IG_ERR_RANGE = -9,      /* too large, too long, out of allowed range */
	IG_ERR_STATE = -10,     /* operation not valid in the current state */
	IG_ERR_CLOSED = -11,    /* the ledger is shutting down */
	IG_ERR_NOSPACE = -12,   /* the disk is full (ENOSPC/EDQUOT); nothing was written, retry later */
	IG_ERR_UNKNOWN = -13,   /* a write failed midway: the change may or may not be durable */
	IG_ERR_SEALED = -14,    /* the cluster-head key is sealed (custody): nothing that needs it can run yet */
	IG_ERR_CONFLICT = -15,  /* another broker changed the shared ledger first: the record no longer applies and
	                           was not written (a coin redeemed, a join code used elsewhere); final, not retriable */
	IG_ERR_UNAVAILABLE = -16, /* the shared ledger's database cannot be reached: nothing was written; retry later */
};

/* On every verify, open and parse function: ignoring its result would treat
 * unchecked (possibly forged or corrupt) input as checked, so the compiler
 * refuses it (-Werror). */
#define IG_NODISCARD __attribute__((warn_unused_result))

/* A failure report: a code plus one human sentence saying what failed and
 * what to do. Every function that can fail for reasons a user must act on
 * takes an optional `ig_error *` (NULL is allowed). */
typedef struct ig_error {
	int code;
	char msg[512];
} ig_error;

/* Sets err (if non-NULL) and returns code, so callers can write
 * `return ig_error_set(err, IG_ERR_IO, "open %s: %s", path, strerror(errno));` */
int ig_error_set(ig_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Prefixes an existing message: "ledger record 5: " + old text. */
int ig_error_prefix(ig_error *err, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Roles, in the order the on-disk role byte uses. 0 is never valid. */
typedef enum ig_role {
	IG_ROLE_NONE = 0,
	IG_ROLE_DEVICE = 1,
	IG_ROLE_ANALYST = 2,
	IG_ROLE_MONITOR = 3,
	IG_ROLE_ADMIN = 4,
	IG_ROLE_WITNESS = 5,    /* cosigns checkpoints (docs/PROTOCOL.md, "Witnesses") */
	IG_ROLE_BRIDGE = 6,     /* a broker's bridge connection (docs/PROTOCOL.md, "Several brokers") */
} ig_role;
#define IG_ROLE_COUNT 7

const char *ig_role_name(ig_role role);           /* "device", ...; "none" for invalid */
ig_role ig_role_parse(const char *name);           /* IG_ROLE_NONE if unknown */

/* True if s[0..len) is a valid identity id or cluster name. */
bool ig_id_valid(const char *s, size_t len);

/* Log sink. The library never prints on its own: the plugin routes this to
 * mosquitto_log_printf, the tools to stderr. Secrets are never passed here. */
typedef enum { IG_LOG_ERR, IG_LOG_WARN, IG_LOG_INFO, IG_LOG_DEBUG } ig_log_level;
typedef void (*ig_log_fn)(void *ctx, ig_log_level level, const char *msg);
void ig_log_set(ig_log_fn fn, void *ctx);
void ig_log(ig_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Wall clock, for record timestamps and token validity. */
uint64_t ig_now_ms(void);
/* Monotonic clock, for latency figures. */
uint64_t ig_mono_us(void);

/* Big-endian helpers: every multi-byte integer on the wire and on disk is
 * big-endian (network order). */
static inline void ig_put_u16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static inline void ig_put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void ig_put_u64(uint8_t *p, uint64_t v) { ig_put_u32(p, (uint32_t)(v >> 32)); ig_put_u32(p + 4, (uint32_t)v); }
static inline uint16_t ig_get_u16(const uint8_t *p) { return (uint16_t)((p[0] << 8) | p[1]); }
static inline uint32_t ig_get_u32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t ig_get_u64(const uint8_t *p) { return ((uint64_t)ig_get_u32(p) << 32) | ig_get_u32(p + 4); }

/* Hex with explicit lengths: out must hold 2*len+1. Lowercase. */
void ig_hex_encode(char *out, const uint8_t *in, size_t len);
/* Decodes exactly outlen bytes from a 2*outlen-char hex string; IG_ERR_INVAL otherwise. */
int ig_hex_decode(uint8_t *out, size_t outlen, const char *hex, size_t hexlen);

/* Initialises libsodium once; returns IG_OK or IG_ERR_CRYPTO. Thread-safe. */
int ig_init(void);

#endif
