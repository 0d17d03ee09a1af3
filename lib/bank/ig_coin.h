/*
 * ig_coin.h: one-use coins (seed 001, "ecoin"): the coin crypto.
 *
 * Why this exists: a coin is both an authorisation token and the key of one
 * payload. The collector seals the coin to the bank in a header next to the
 * payload; an analyst hands the header to the bank, which burns the coin
 * (durably, once) and returns the derived keys. Every byte layout of the
 * header, the data and result messages and their AAD is declared here, so
 * the collector, the bank and the analyst cannot drift apart. The data and
 * result messages (ig_coin_data_*, ig_coin_result_*) are named as parts of
 * the coin: each is keyed by a key derived from one coin and bound to that
 * coin's sealed header, and means nothing without it. Formats:
 * docs/PROTOCOL.md "Coins". The bank's records are ig_bank.h, its coin index
 * ig_coins.h.
 */
#ifndef IG_COIN_H
#define IG_COIN_H

#include "ig_suite.h"
#include "ig_common.h"

#define IG_COIN_BYTES 32
#define IG_COIN_NONCE_BYTES 24
#define IG_COIN_DATA_MAGIC "IGD1"
#define IG_COIN_RESULT_MAGIC "IGS1"
#define IG_COIN_DATA_MAX_PAYLOAD 65536

/* ---- coin crypto ---- */
#define IG_COIN_HEADER_VERSION 1
/* Header plaintext: 1 version | 32 coin | 24 nonce | 1 suite | 1 collector_len
 * | collector | 32 topic_hash = 91 + collector_len bytes (92..155). */
#define IG_COIN_HEADER_PLAIN_MIN (1 + IG_COIN_BYTES + IG_COIN_NONCE_BYTES + 1 + 1 + 1 + IG_HASH_BYTES)
#define IG_COIN_HEADER_PLAIN_MAX (IG_COIN_HEADER_PLAIN_MIN - 1 + IG_ID_MAX)
/* Sealed header = plaintext + 48 (crypto_box_SEALBYTES): 140..203 bytes. */
#define IG_COIN_HEADER_SEALED_MIN (IG_COIN_HEADER_PLAIN_MIN + 48)
#define IG_COIN_HEADER_SEALED_MAX (IG_COIN_HEADER_PLAIN_MAX + 48)
/* A data message is payload + at most this; a result is payload + exactly
 * IG_COIN_RESULT_OVERHEAD. */
#define IG_COIN_DATA_OVERHEAD_MAX (4 + 2 + IG_COIN_HEADER_SEALED_MAX + 1 + IG_COIN_NONCE_BYTES + 16)
#define IG_COIN_RESULT_OVERHEAD (4 + IG_HASH_BYTES + 1 + IG_COIN_NONCE_BYTES + 16)

void ig_coin_hash(uint8_t out[IG_HASH_BYTES], const uint8_t coin[IG_COIN_BYTES]);
/* BLAKE2b-256 of the full data topic string, as the header carries it. */
void ig_coin_topic_hash(uint8_t out[IG_HASH_BYTES], const char *topic);
/* BLAKE2b-256 of the sealed header bytes: what the result and the redeem
 * reply are bound to. */
void ig_coin_header_hash(uint8_t out[IG_HASH_BYTES], const uint8_t *sealed, size_t len);
/* payload_key / result_key per the design (HKDF-SHA256 of the coin). */
void ig_coin_keys(const uint8_t coin[IG_COIN_BYTES], uint8_t payload_key[32], uint8_t result_key[32]);

typedef struct ig_coin_header {
	uint8_t coin[IG_COIN_BYTES];
	uint8_t nonce[IG_COIN_NONCE_BYTES];
	ig_suite suite;
	char collector[IG_ID_MAX + 1];
	uint8_t topic_hash[IG_HASH_BYTES];
} ig_coin_header;

/* Collector side: seals a data message for topic with one coin. Returns the
 * message length (written to out) or IG_ERR_*. header_hash (BLAKE2b-256 of
 * the sealed header) is what the result will be bound to. */
int ig_coin_data_seal(uint8_t *out, size_t cap, const uint8_t bank_pk[IG_PK_BYTES], const uint8_t coin[IG_COIN_BYTES],
                      ig_suite suite, const char *collector, const char *topic, const uint8_t *payload, size_t len,
                      uint8_t header_hash[IG_HASH_BYTES]);
/* Anyone: splits a data message; header points into msg. */
int ig_coin_data_parse(const uint8_t *msg, size_t len, const uint8_t **header, size_t *header_len, ig_suite *suite,
                       const uint8_t **nonce, const uint8_t **ct, size_t *ct_len) IG_NODISCARD;
/* Header plaintext codec (the layout above), exposed for test vectors.
 * encode returns the length or IG_ERR_INVAL/IG_ERR_RANGE; decode is strict
 * (exact length, version 1, suite 1|2, valid collector id) and returns
 * IG_OK or IG_ERR_INVAL. */
int ig_coin_header_encode(uint8_t *out, size_t cap, const ig_coin_header *h);
int ig_coin_header_decode(ig_coin_header *h, const uint8_t *pt, size_t len);
/* Bank side: opens a sealed header with the bank's key (the cluster head's
 * Ed25519 secret key, converted to X25519). IG_OK; IG_ERR_INVAL for a
 * length outside 140..203 or a malformed plaintext; IG_ERR_CRYPTO if it
 * was not sealed to this bank or was tampered with. On failure h is wiped.
 * The caller wipes h->coin when done. */
int ig_coin_header_open(ig_coin_header *h, const uint8_t *sealed, size_t len, const uint8_t bank_sk[IG_SK_BYTES])
	IG_NODISCARD;
/* Bank side: true iff h->topic_hash is the hash of topic (the topic the
 * analyst says the data came from). */
bool ig_coin_header_matches_topic(const ig_coin_header *h, const char *topic);
/* Analyst side: decrypts a data message with the payload key the bank
 * returned. Returns plaintext length, IG_ERR_INVAL (malformed) or
 * IG_ERR_CRYPTO. With AES-256-GCM the tag covers only the first 12 of the
 * 24 nonce bytes; use ig_coin_data_open_redeemed, which also requires the
 * message's nonce to be the one the bank returned (from the sealed header),
 * so that every byte of the message is authenticated. */
int ig_coin_data_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                      const uint8_t payload_key[32]) IG_NODISCARD;
int ig_coin_data_open_redeemed(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                               const uint8_t payload_key[32], const uint8_t nonce[IG_COIN_NONCE_BYTES]) IG_NODISCARD;
/* Result message (analyst -> collector) and its opening. The collector
 * finds its request by ig_coin_result_parse_hash, then opens with that
 * request's result key and header hash (a result for another request
 * fails). With AES-256-GCM nonce bytes 12..23 must be zero; sealing writes
 * them, parsers refuse anything else, so every transmitted nonce byte is
 * authenticated. */
int ig_coin_result_seal(uint8_t *out, size_t cap, const uint8_t result_key[32], ig_suite suite,
                        const uint8_t header_hash[IG_HASH_BYTES], const char *topic, const uint8_t *payload,
                        size_t len);
int ig_coin_result_parse_hash(const uint8_t *msg, size_t len, uint8_t header_hash[IG_HASH_BYTES]);
int ig_coin_result_open(uint8_t *out, size_t cap, const uint8_t *msg, size_t len, const char *topic,
                        const uint8_t result_key[32], const uint8_t header_hash[IG_HASH_BYTES]) IG_NODISCARD;

#endif
