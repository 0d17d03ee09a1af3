/*
 * ig_keyfile.h: Ed25519 identity key files.
 *
 * Why this exists: every identity and the cluster head keep a secret key on
 * disk, and the rules for that file (mode 0600, created atomically, never
 * world-readable, wiped from memory after use) must hold everywhere.
 *
 * File format (text, one line):
 *   iotguard-ed25519-secret-v1 <64 lowercase hex chars: the 32-byte seed>\n
 */
#ifndef IG_KEYFILE_H
#define IG_KEYFILE_H

#include "ig_common.h"

#define IG_KEYFILE_PREFIX "iotguard-ed25519-secret-v1 "

/* Generates a new key pair. */
int ig_keyfile_generate(uint8_t pk[IG_PK_BYTES], uint8_t sk[IG_SK_BYTES]);

/* Writes sk to path with mode 0600 (O_CREAT|O_EXCL unless overwrite), fsyncs
 * file and directory. Refuses to replace an existing file unless overwrite. */
int ig_keyfile_write(const char *path, const uint8_t sk[IG_SK_BYTES], bool overwrite, ig_error *err);

/* Reads a key file, derives pk. Refuses files readable by group or others
 * ("chmod 600 FILE"). sk must be wiped by the caller with sodium_memzero. */
int ig_keyfile_read(const char *path, uint8_t sk[IG_SK_BYTES], uint8_t pk[IG_PK_BYTES], ig_error *err) IG_NODISCARD;

/* The format check and key derivation of ig_keyfile_read, on len bytes
 * already in memory (the path loader calls it on what it read). Exactly the
 * prefix, 64 lowercase hex characters and at most one trailing newline;
 * anything else is IG_ERR_INVAL. name labels the error messages ("key file
 * NAME ..."; NULL = "(buffer)"), which never quote the bytes. On failure sk
 * and pk are wiped; on success the caller wipes sk. */
int ig_keyfile_parse(uint8_t sk[IG_SK_BYTES], uint8_t pk[IG_PK_BYTES], const void *buf, size_t len, const char *name,
                     ig_error *err) IG_NODISCARD;

#endif
