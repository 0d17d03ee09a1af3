/*
 * ig_suite.h: which AEAD suite protects a message.
 *
 * Why this exists: session keys protect traffic with AES-256-GCM where the
 * CPU has AES-NI, and XChaCha20-Poly1305 everywhere else; the suite is named
 * in every m2m message, coin header and key grant so both ends agree. The
 * choice (which suites this host can run, which it prefers, and the switch
 * that forces the portable one) is kept apart from the cipher calls
 * (ig_aead.h) because key issuers and message formats decide on a suite
 * without encrypting anything.
 */
#ifndef IG_SUITE_H
#define IG_SUITE_H

#include "ig_common.h"

typedef enum ig_suite {
	IG_SUITE_NONE = 0,
	IG_SUITE_AES256GCM = 1,
	IG_SUITE_XCHACHA20POLY1305 = 2,
} ig_suite;

const char *ig_suite_name(ig_suite s);     /* "aes256gcm", "xchacha20poly1305" */
ig_suite ig_suite_parse(const char *name);
/* AES-256-GCM if crypto_aead_aes256gcm_is_available() and not forced off,
 * else XChaCha20-Poly1305. */
ig_suite ig_suite_preferred(void);
/* For tests and for hosts that must interoperate with non-AES-NI peers:
 * forces ig_suite_preferred() to XChaCha20-Poly1305. Also set by the
 * environment variable IOTGUARD_FORCE_XCHACHA=1. */
void ig_suite_force_fallback(bool on);
bool ig_suite_available(ig_suite s);
/* 12 bytes (GCM), 24 bytes (XChaCha), 0 for IG_SUITE_NONE. */
size_t ig_suite_nonce_bytes(ig_suite s);

#endif
