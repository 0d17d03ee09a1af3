/*
 * suite.c: which AEAD suite this host runs and prefers.
 *
 * Why this exists: AES-256-GCM is only safe and fast with AES-NI, so the
 * choice between it and XChaCha20-Poly1305 depends on the CPU (probed by
 * libsodium) and on an operator's override; it is made in one place so a
 * key issuer and the code that uses the key agree. Names and numbers are
 * the wire values of ig_suite.h.
 */
#include "ig_suite.h"

#include <sodium.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

static atomic_bool force_fallback;

const char *ig_suite_name(ig_suite s)
{
	switch (s) {
	case IG_SUITE_AES256GCM: return "aes256gcm";
	case IG_SUITE_XCHACHA20POLY1305: return "xchacha20poly1305";
	case IG_SUITE_NONE: break;
	}
	return "none";
}

ig_suite ig_suite_parse(const char *name)
{
	if (!name)
		return IG_SUITE_NONE;
	if (strcmp(name, "aes256gcm") == 0)
		return IG_SUITE_AES256GCM;
	if (strcmp(name, "xchacha20poly1305") == 0)
		return IG_SUITE_XCHACHA20POLY1305;
	return IG_SUITE_NONE;
}

void ig_suite_force_fallback(bool on)
{
	atomic_store(&force_fallback, on);
}

static bool fallback_forced(void)
{
	if (atomic_load(&force_fallback))
		return true;
	/* Read on every call so a test (or an operator's wrapper script) can set
	 * it at any time; a suite is chosen once per issued key, not per byte. */
	const char *env = getenv("IOTGUARD_FORCE_XCHACHA");
	return env && strcmp(env, "1") == 0;
}

bool ig_suite_available(ig_suite s)
{
	switch (s) {
	case IG_SUITE_AES256GCM:
		/* libsodium's AES-GCM needs AES-NI and PCLMUL; its CPU probe runs in
		 * sodium_init, so the answer is only meaningful after ig_init. */
		return ig_init() == IG_OK && crypto_aead_aes256gcm_is_available() == 1;
	case IG_SUITE_XCHACHA20POLY1305:
		return true;
	case IG_SUITE_NONE:
		break;
	}
	return false;
}

ig_suite ig_suite_preferred(void)
{
	if (!fallback_forced() && ig_suite_available(IG_SUITE_AES256GCM))
		return IG_SUITE_AES256GCM;
	return IG_SUITE_XCHACHA20POLY1305;
}

size_t ig_suite_nonce_bytes(ig_suite s)
{
	switch (s) {
	case IG_SUITE_AES256GCM: return crypto_aead_aes256gcm_NPUBBYTES;
	case IG_SUITE_XCHACHA20POLY1305: return crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;
	case IG_SUITE_NONE: break;
	}
	return 0;
}
