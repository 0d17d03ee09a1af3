/*
 * bench_tiles.c: what writing C2SP tiles costs the ledger's append path.
 *
 * Why this exists: a format-2 ledger writes its tlog tiles from the writer
 * thread after each commit, and the ledger must still make >= 100k records
 * durable per second. This measures ig_tiles_append alone (leaves hashed
 * beforehand, as the writer has them) and with the leaf hash
 * SHA-256(0x00 || frame) included, in batches of 1, 64 and 4096 records
 * (one group commit each), so the figure can be set against bench_ledger's.
 *
 * Usage: bench_tiles [--dir DIR] [--records N] [--entry-bytes B]
 * (default: a fresh directory under /var/tmp, removed at the end; 1,000,000
 * records for batches of 64 and 4096, a tenth of that for batches of 1;
 * 160-byte entries, about an enrolment frame).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bench.h"
#include "ig_merkle.h"
#include "ig_tiles.h"

/* Appends `records` entries in batches of `batch`; returns records/s. */
static double run(const char *dir, uint64_t records, size_t batch, size_t entry_bytes, int hash_leaves)
{
	ig_tiles *t;
	ig_error err = {0};
	uint8_t (*leaf)[IG_HASH_BYTES] = bench_xrealloc(NULL, batch * IG_HASH_BYTES);
	const uint8_t **entry = bench_xrealloc(NULL, batch * sizeof *entry);
	size_t *len = bench_xrealloc(NULL, batch * sizeof *len);
	uint8_t *frames = bench_xrealloc(NULL, batch * entry_bytes);

	if (ig_tiles_open(&t, dir, 0, &err) != IG_OK)
		bench_die("open", err.msg);
	for (size_t i = 0; i < batch; i++) {
		entry[i] = frames + i * entry_bytes;
		len[i] = entry_bytes;
	}
	double start = bench_now_s();
	for (uint64_t done = 0; done < records;) {
		size_t n = records - done < batch ? (size_t)(records - done) : batch;
		for (size_t i = 0; i < n; i++) {
			/* Distinct frames: the record index in the first bytes. */
			uint64_t v = bench_splitmix64(done + i);
			memcpy(frames + i * entry_bytes, &v, sizeof v < entry_bytes ? sizeof v : entry_bytes);
			if (hash_leaves || done == 0)
				ig_merkle_hash_leaf(IG_MERKLE_SHA256, leaf[i], entry[i], len[i]);
		}
		if (ig_tiles_append(t, (const uint8_t (*)[IG_HASH_BYTES])leaf, entry, len, n, &err) != IG_OK)
			bench_die("append", err.msg);
		done += n;
	}
	double secs = bench_now_s() - start;
	ig_tiles_close(t);
	free(leaf);
	free(entry);
	free(len);
	free(frames);
	return (double)records / secs;
}

int main(int argc, char **argv)
{
	const char *dir = NULL;
	uint64_t records = 1000000, entry_bytes = 160;
	const cli_option opts[] = {
		CLI_TEXT("dir", 0, &dir),
		CLI_NUMBER("records", 0, &records, 1000, UINT32_MAX),
		CLI_NUMBER("entry-bytes", 0, &entry_bytes, 1, IG_TILES_ENTRY_MAX),
		CLI_HELP_OPTION(0),
		CLI_OPTIONS_END,
	};

	bench_name = "bench_tiles";
	bench_parse(argc, argv, NULL, opts, "usage: bench_tiles [--dir DIR] [--records N] [--entry-bytes B]\n");
	if (ig_init() != IG_OK)
		bench_die("libsodium", "init failed");
	bool made;
	dir = bench_work_dir(dir, &made);

	const size_t batches[] = {1, 64, 4096};
	printf("tiles: %" PRIu64 "-byte entries, ig_tiles_append in batches (records/s; files are written, never "
	       "fsynced)\n", entry_bytes);
	printf("%8s %12s %16s %22s\n", "batch", "records", "append only/s", "with leaf SHA-256/s");
	for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
		uint64_t n = batches[i] == 1 ? records / 10 : records;
		double a = run(dir, n, batches[i], (size_t)entry_bytes, 0);
		double b = run(dir, n, batches[i], (size_t)entry_bytes, 1);
		printf("%8zu %12" PRIu64 " %16.0f %22.0f\n", batches[i], n, a, b);
		fflush(stdout);
	}
	bench_work_dir_done(dir, made, "BENCH_TILES_KEEP");
	return 0;
}
