/*
 * testutil.h: the helpers every unit test needs, written once.
 *
 * Why this exists: each test file used to carry its own random generator,
 * hex helpers and temp-directory code, and the copies had drifted (two
 * generators, three buffer limits, two ways to remove a directory). One copy
 * means one seed to replay a failing fuzz case and one place to fix a bug.
 *
 * Random numbers are reproducible, never secret: xorshift64* from a fixed
 * seed, so a failure replays exactly. Set IG_TEST_SEED (decimal or 0x-hex) to
 * explore other sequences; a failing test prints the seed it ran with.
 * Each Criterion test runs in its own process, so each test starts from the
 * seed again, whatever order the tests run in.
 */
#ifndef IG_TESTUTIL_H
#define IG_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ig_common.h"

/* The seed used when IG_TEST_SEED is not set. */
#define TU_DEFAULT_SEED 0x9E3779B97F4A7C15ull

/* The seed this process runs with (IG_TEST_SEED, or the default). */
uint64_t tu_seed(void);
/* Restarts the sequence from seed (0 is mapped to the default: xorshift
 * never leaves zero). */
void tu_rng_seed(uint64_t seed);
uint64_t tu_rand(void);
uint32_t tu_rand32(void);
void tu_rand_bytes(uint8_t *out, size_t len);
/* A NUL-terminated string of 0..max characters drawn from alphabet; out
 * holds at least max + 1 bytes. */
void tu_rand_string(char *out, size_t max, const char *alphabet);

/* True if all n bytes at p are zero (a wiped secret). */
bool tu_all_zero(const void *p, size_t n);
/* out[i] = first + i: readable, fixed test material. */
void tu_seq_bytes(uint8_t *out, size_t len, uint8_t first);
/* An Ed25519 key pair from the seed first, first+1, ..., first+31. */
void tu_seed_keypair(uint8_t pk[32], uint8_t sk[64], uint8_t first);

/* The body of an ENROLL record (docs/LEDGER.md) for id with role and pk,
 * enrolled by by; fails the test if it does not fit cap. Returns its size. */
size_t tu_enroll_body(uint8_t *out, size_t cap, const char *id, ig_role role, const uint8_t pk[32], const char *by);

/* The body of an ENROLL record for device id, enrolled by "offline:test",
 * whose "public key" is BLAKE2b-256(id): distinct per id, which is all the
 * ledger tests need (it is no curve point). */
size_t tu_device_enroll_body(uint8_t *out, size_t cap, const char *id);

/* The body of a REVOKE record for id, revoked by by. Returns its size. */
size_t tu_revoke_body(uint8_t *out, size_t cap, const char *id, const char *by);

/* Decodes hex (whole string) into out; fails the test if it is not hex or
 * does not fit cap. Returns the byte count. */
size_t tu_unhex(uint8_t *out, size_t cap, const char *hex);
/* Fails the test unless bin[0..len) hex-encodes to exactly expect. */
void tu_assert_hex(const uint8_t *bin, size_t len, const char *expect);

/* Creates a fresh private directory ($TMPDIR or /tmp)/ig-test-<tag>-XXXXXX
 * into out. With auto_remove, it is removed with everything in it when the
 * test process exits, pass or fail. */
void tu_tempdir(char *out, size_t cap, const char *tag, int auto_remove);
/* A fresh directory like tu_tempdir's, removed when the test process exits;
 * the name lives until then. */
const char *tu_scratch_dir(const char *tag);
/* Removes path and everything below it; a missing path is not an error.
 * Returns 0, or -1 with errno set. */
int tu_rmtree(const char *path);

/* Writes len bytes to path (created or truncated, mode 0600); fails the test
 * on any error. */
void tu_write_file(const char *path, const void *data, size_t len);
/* Reads a whole file into a NUL-terminated malloc'd buffer (caller frees);
 * *len (if not NULL) gets its size. Fails the test if it cannot be read. */
char *tu_read_file(const char *path, size_t *len);
/* The text of docs/<name> in the source tree, read once per process. */
const char *tu_read_doc(const char *name);

/* Sends every ig_log line, from any thread, to buf (cap bytes, emptied
 * now), one line each, until the buffer is full. */
void tu_log_capture(char *buf, size_t cap);
/* True if the captured log holds needle (read under the writers' lock). */
bool tu_log_has(const char *needle);

/* Field name of JSON object o as a number / a string; fails the test when
 * it is missing or of another type. */
struct cJSON;
double tu_json_num(const struct cJSON *o, const char *name);
const char *tu_json_str(const struct cJSON *o, const char *name);

#endif
