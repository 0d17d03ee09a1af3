/*
 * mktiles.c: writes the C2SP tiles of a made-up log with lib/ledger/tiles.c,
 * for tests/tlog/test_tiles_py.py.
 *
 * Why this exists: the independent Python reader (tiles.py) must read what
 * the C writer wrote, also when a real web server (Mosquitto's http_dir)
 * serves it. This driver gives the Python test C-written tiles without a
 * whole ledger. Entry i is the ASCII decimal of i, appended in batches of
 * 1..MAXBATCH records drawn from a fixed-seed generator.
 *
 * Usage: tlog_mktiles LEDGER_DIR N [MAXBATCH]   (prints the root, hex)
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ig_merkle.h"
#include "ig_tiles.h"

int main(int argc, char **argv)
{
	if (argc < 3 || argc > 4) {
		fprintf(stderr, "usage: tlog_mktiles LEDGER_DIR N [MAXBATCH]\n");
		return 2;
	}
	uint64_t n = strtoull(argv[2], NULL, 10);
	uint64_t maxbatch = argc == 4 ? strtoull(argv[3], NULL, 10) : 1000;
	if (maxbatch == 0 || maxbatch > 100000 || ig_init() != IG_OK) {
		fprintf(stderr, "tlog_mktiles: MAXBATCH must be 1..100000\n");
		return 2;
	}
	ig_tiles *t;
	ig_error err = {0};
	if (ig_tiles_open(&t, argv[1], 0, &err) != IG_OK) {
		fprintf(stderr, "tlog_mktiles: %s\n", err.msg);
		return 1;
	}
	uint8_t (*leaf)[IG_HASH_BYTES] = malloc(maxbatch * IG_HASH_BYTES);
	char (*text)[24] = malloc(maxbatch * sizeof *text);
	const uint8_t **entry = malloc(maxbatch * sizeof *entry);
	size_t *len = malloc(maxbatch * sizeof *len);
	if (!leaf || !text || !entry || !len) {
		fprintf(stderr, "tlog_mktiles: out of memory\n");
		return 1;
	}
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (uint64_t done = 0; done < n;) {
		x ^= x >> 12, x ^= x << 25, x ^= x >> 27;
		uint64_t b = 1 + (x * 0x2545F4914F6CDD1Dull) % maxbatch;
		if (b > n - done)
			b = n - done;
		for (uint64_t i = 0; i < b; i++) {
			len[i] = (size_t)snprintf(text[i], sizeof text[i], "%" PRIu64, done + i);
			entry[i] = (const uint8_t *)text[i];
			ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf[i], entry[i], len[i]);
		}
		if (ig_tiles_append(t, (const uint8_t (*)[IG_HASH_BYTES])leaf, entry, len, (size_t)b, &err) != IG_OK) {
			fprintf(stderr, "tlog_mktiles: %s\n", err.msg);
			return 1;
		}
		done += b;
	}
	uint8_t root[IG_HASH_BYTES];
	char hex[2 * IG_HASH_BYTES + 1];
	ig_tiles_root(t, root);
	ig_hex_encode(hex, root, sizeof root);
	char cp[256];
	int cl = snprintf(cp, sizeof cp, "tlog_mktiles\n%" PRIu64 "\n%s\n", n, hex);
	if (ig_tiles_publish(t, cp, (size_t)cl, &err) != IG_OK) {
		fprintf(stderr, "tlog_mktiles: %s\n", err.msg);
		return 1;
	}
	ig_tiles_close(t);
	printf("%s\n", hex);
	free(leaf);
	free(text);
	free(entry);
	free(len);
	return 0;
}
