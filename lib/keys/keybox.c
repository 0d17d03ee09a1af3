/*
 * keybox.c: the box that carries one copy of a session key from the cluster
 * head to one device.
 *
 * Why this exists: a session key is worth exactly as much as the guarantee
 * that only A and B hold it and that it came from the cluster head. Each
 * copy is a crypto_box from the cluster head's X25519 key (derived from its
 * Ed25519 identity, so devices need no second key) to the device's, and the
 * boxed plaintext binds the key to its id, peer, direction, expiry, suite
 * and request nonce. Parsing is strict: the cluster head is the only
 * writer, so anything unexpected means a bug or a forgery, never a feature.
 */
#include "ig_keybox.h"

#include <sodium.h>
#include <string.h>

/* 32 key | 16 key_id | 8 expires_at | 1 suite | 1 direction |
 * 1 peer_len | peer | 1 nonce_len | nonce */
#define KEYBOX_FIXED (IG_AEAD_KEY_BYTES + IG_KEY_ID_BYTES + 8 + 1 + 1 + 1 + 1)
#define KEYBOX_PT_MAX (KEYBOX_FIXED + IG_ID_MAX + IG_REQUEST_NONCE_MAX)

/* X25519 precomputation shared by both ends: the scalar of one side with the
 * point of the other gives the same crypto_box key. */
static int box_key(ig_box_key *bk, const uint8_t ed_sk[IG_SK_BYTES], const uint8_t ed_pk[IG_PK_BYTES])
{
	if (!bk || !ed_sk || !ed_pk)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;
	uint8_t x_sk[crypto_scalarmult_curve25519_BYTES], x_pk[crypto_scalarmult_curve25519_BYTES];
	int rc = IG_OK;
	/* pk_to_curve25519 refuses points not on the curve or of small order;
	 * beforenm refuses an all-zero shared secret. */
	if (crypto_sign_ed25519_pk_to_curve25519(x_pk, ed_pk) != 0 ||
	    crypto_sign_ed25519_sk_to_curve25519(x_sk, ed_sk) != 0 ||
	    crypto_box_beforenm(bk->k, x_pk, x_sk) != 0)
		rc = IG_ERR_CRYPTO;
	sodium_memzero(x_sk, sizeof x_sk);
	if (rc != IG_OK)
		sodium_memzero(bk->k, sizeof bk->k);
	return rc;
}

int ig_keybox_key_for_device(ig_box_key *bk, const uint8_t ch_sk[IG_SK_BYTES], const uint8_t device_pk[IG_PK_BYTES])
{
	return box_key(bk, ch_sk, device_pk);
}

int ig_keybox_key_for_ch(ig_box_key *bk, const uint8_t device_sk[IG_SK_BYTES], const uint8_t ch_pk[IG_PK_BYTES])
{
	return box_key(bk, device_sk, ch_pk);
}

static bool suite_valid(int s)
{
	return s == IG_SUITE_AES256GCM || s == IG_SUITE_XCHACHA20POLY1305;
}

/* Request nonces are echoed to the requester inside the box and shown in
 * logs; printable ASCII keeps them harmless everywhere. */
static bool nonce_valid(const char *s, size_t len)
{
	if (len > IG_REQUEST_NONCE_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

int ig_keybox_seal(uint8_t *out, size_t cap, uint8_t nonce[IG_KEYBOX_NONCE_BYTES], const ig_session_key *sk,
                   const ig_box_key *bk)
{
	if (!out || !nonce || !sk || !bk)
		return IG_ERR_INVAL;
	size_t peer_len = strnlen(sk->peer, sizeof sk->peer);
	size_t rn_len = strnlen(sk->request_nonce, sizeof sk->request_nonce);
	if (!ig_id_valid(sk->peer, peer_len) || !nonce_valid(sk->request_nonce, rn_len))
		return IG_ERR_INVAL;
	if (!suite_valid(sk->suite) || sk->direction > 1)
		return IG_ERR_INVAL;
	size_t pt_len = KEYBOX_FIXED + peer_len + rn_len;
	if (cap < pt_len + crypto_box_MACBYTES)
		return IG_ERR_RANGE;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;

	uint8_t pt[KEYBOX_PT_MAX];
	uint8_t *p = pt;
	memcpy(p, sk->key, IG_AEAD_KEY_BYTES);
	p += IG_AEAD_KEY_BYTES;
	memcpy(p, sk->key_id, IG_KEY_ID_BYTES);
	p += IG_KEY_ID_BYTES;
	ig_put_u64(p, sk->expires_at);
	p += 8;
	*p++ = (uint8_t)sk->suite;
	*p++ = sk->direction;
	*p++ = (uint8_t)peer_len;
	memcpy(p, sk->peer, peer_len);
	p += peer_len;
	*p++ = (uint8_t)rn_len;
	memcpy(p, sk->request_nonce, rn_len);
	p += rn_len;

	/* A random 24-byte nonce: boxes under one box key are rare (one per
	 * issued key) but unbounded over the device's life, so no counter. */
	randombytes_buf(nonce, IG_KEYBOX_NONCE_BYTES);
	int rc = crypto_box_easy_afternm(out, pt, pt_len, nonce, bk->k);
	sodium_memzero(pt, sizeof pt);
	if (rc != 0)
		return IG_ERR_CRYPTO;
	return (int)(pt_len + crypto_box_MACBYTES);
}

int ig_keybox_open(ig_session_key *sk, const uint8_t *box, size_t len, const uint8_t nonce[IG_KEYBOX_NONCE_BYTES],
                   const ig_box_key *bk)
{
	if (!sk || !box || !nonce || !bk)
		return IG_ERR_INVAL;
	memset(sk, 0, sizeof *sk);
	if (len < crypto_box_MACBYTES + KEYBOX_FIXED + 1 || len > crypto_box_MACBYTES + KEYBOX_PT_MAX)
		return IG_ERR_INVAL;
	if (ig_init() != IG_OK)
		return IG_ERR_CRYPTO;

	uint8_t pt[KEYBOX_PT_MAX];
	size_t pt_len = len - crypto_box_MACBYTES;
	if (crypto_box_open_easy_afternm(pt, box, len, nonce, bk->k) != 0) {
		sodium_memzero(pt, sizeof pt);
		return IG_ERR_CRYPTO;
	}

	int rc = IG_ERR_INVAL;
	const uint8_t *p = pt, *end = pt + pt_len;
	memcpy(sk->key, p, IG_AEAD_KEY_BYTES);
	p += IG_AEAD_KEY_BYTES;
	memcpy(sk->key_id, p, IG_KEY_ID_BYTES);
	p += IG_KEY_ID_BYTES;
	sk->expires_at = ig_get_u64(p);
	p += 8;
	uint8_t suite = *p++;
	uint8_t direction = *p++;
	uint8_t peer_len = *p++;
	if (!suite_valid(suite) || direction > 1)
		goto out;
	if (peer_len < 1 || peer_len > IG_ID_MAX || (size_t)(end - p) < (size_t)peer_len + 1)
		goto out;
	if (!ig_id_valid((const char *)p, peer_len))
		goto out;
	memcpy(sk->peer, p, peer_len);
	sk->peer[peer_len] = '\0';
	p += peer_len;
	uint8_t rn_len = *p++;
	/* The nonce must fill the rest exactly: no trailing bytes. */
	if (rn_len > IG_REQUEST_NONCE_MAX || (size_t)(end - p) != rn_len ||
	    !nonce_valid((const char *)p, rn_len))
		goto out;
	memcpy(sk->request_nonce, p, rn_len);
	sk->request_nonce[rn_len] = '\0';
	sk->suite = (ig_suite)suite;
	sk->direction = direction;
	rc = IG_OK;
out:
	sodium_memzero(pt, sizeof pt);
	if (rc != IG_OK)
		sodium_memzero(sk, sizeof *sk);
	return rc;
}
