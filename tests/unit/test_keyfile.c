/*
 * test_keyfile.c: key files must round-trip, stay 0600 whatever the umask,
 * never be replaced by accident, and be refused when loose or malformed.
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ig_keyfile.h"
#include "testutil.h"

static char dir[256];
static char path[300];

static void setup(void)
{
	cr_assert_eq(ig_init(), IG_OK);
	tu_tempdir(dir, sizeof dir, "keyfile", 0);
	snprintf(path, sizeof path, "%s/id.key", dir);
}

static void teardown(void)
{
	cr_assert_eq(tu_rmtree(dir), 0, "cannot remove %s", dir);
}

TestSuite(keyfile, .init = setup, .fini = teardown);

static void write_raw(const char *p, const char *text, mode_t mode)
{
	unlink(p);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	cr_assert(fd >= 0);
	size_t len = strlen(text);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	cr_assert_eq(fchmod(fd, mode), 0);
	close(fd);
}

Test(keyfile, round_trip)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64];
	ig_error err = {0};
	cr_assert_eq(ig_keyfile_generate(pk, sk), IG_OK);
	cr_assert_eq(ig_keyfile_write(path, sk, false, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_keyfile_read(path, sk2, pk2, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(memcmp(pk, pk2, 32), 0);
	cr_assert_eq(memcmp(sk, sk2, 64), 0);
}

Test(keyfile, exact_format)
{
	uint8_t pk[32], sk[64];
	tu_seed_keypair(pk, sk, 0x00);
	cr_assert_eq(ig_keyfile_write(path, sk, false, NULL), IG_OK);
	char buf[200] = {0};
	FILE *f = fopen(path, "r");
	cr_assert_not_null(f);
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	cr_assert_eq(n, strlen(buf));
	cr_assert_str_eq(buf, "iotguard-ed25519-secret-v1 "
	                      "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n");
}

Test(keyfile, mode_0600_despite_umask)
{
	uint8_t pk[32], sk[64];
	ig_keyfile_generate(pk, sk);
	mode_t old = umask(0);
	int rc = ig_keyfile_write(path, sk, false, NULL);
	umask(old);
	cr_assert_eq(rc, IG_OK);
	struct stat st;
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);

	/* overwrite path too */
	old = umask(0);
	rc = ig_keyfile_write(path, sk, true, NULL);
	umask(old);
	cr_assert_eq(rc, IG_OK);
	cr_assert_eq(stat(path, &st), 0);
	cr_assert_eq(st.st_mode & 07777, 0600);
}

Test(keyfile, refuses_to_replace_without_overwrite)
{
	uint8_t pk[32], sk[64], pk2[32], sk2[64], rpk[32], rsk[64];
	ig_error err = {0};
	ig_keyfile_generate(pk, sk);
	ig_keyfile_generate(pk2, sk2);
	cr_assert_eq(ig_keyfile_write(path, sk, false, NULL), IG_OK);
	cr_assert_eq(ig_keyfile_write(path, sk2, false, &err), IG_ERR_EXISTS);
	cr_assert_not_null(strstr(err.msg, "already exists"), "%s", err.msg);
	cr_assert_eq(ig_keyfile_read(path, rsk, rpk, NULL), IG_OK);
	cr_assert_eq(memcmp(rpk, pk, 32), 0, "the original key must survive");

	cr_assert_eq(ig_keyfile_write(path, sk2, true, &err), IG_OK, "%s", err.msg);
	cr_assert_eq(ig_keyfile_read(path, rsk, rpk, NULL), IG_OK);
	cr_assert_eq(memcmp(rpk, pk2, 32), 0);

	/* no temp files left behind */
	char tmpglob[400];
	snprintf(tmpglob, sizeof tmpglob, "test $(ls -A '%s' | wc -l) -eq 1", dir);
	cr_assert_eq(system(tmpglob), 0);
}

Test(keyfile, does_not_follow_symlink)
{
	uint8_t pk[32], sk[64];
	char target[320];
	ig_keyfile_generate(pk, sk);
	snprintf(target, sizeof target, "%s/target", dir);
	cr_assert_eq(symlink(target, path), 0);
	cr_assert_neq(ig_keyfile_write(path, sk, false, NULL), IG_OK);
	cr_assert_eq(access(target, F_OK), -1, "must not create the symlink target");
}

Test(keyfile, refuses_loose_mode)
{
	uint8_t pk[32], sk[64];
	ig_error err = {0};
	ig_keyfile_generate(pk, sk);
	cr_assert_eq(ig_keyfile_write(path, sk, false, NULL), IG_OK);
	cr_assert_eq(chmod(path, 0644), 0);
	cr_assert_neq(ig_keyfile_read(path, sk, pk, &err), IG_OK);
	char want[700];
	snprintf(want, sizeof want, "key file %s is readable by others (mode 0644); run chmod 600 %s", path, path);
	cr_assert_str_eq(err.msg, want);
	const mode_t loose[] = {0640, 0604, 0660, 0602, 0620, 0601, 0610, 0700 | 0007};
	for (size_t i = 0; i < sizeof loose / sizeof loose[0]; i++) {
		cr_assert_eq(chmod(path, loose[i]), 0);
		cr_assert_neq(ig_keyfile_read(path, sk, pk, NULL), IG_OK, "mode %o", loose[i]);
	}
	cr_assert_eq(chmod(path, 0400), 0);
	cr_assert_eq(ig_keyfile_read(path, sk, pk, NULL), IG_OK);
}

Test(keyfile, missing_file)
{
	uint8_t pk[32], sk[64];
	ig_error err = {0};
	cr_assert_eq(ig_keyfile_read(path, sk, pk, &err), IG_ERR_NOTFOUND);
	cr_assert_not_null(strstr(err.msg, path));
}

Test(keyfile, malformed_files_refused)
{
	const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
	char good[200];
	snprintf(good, sizeof good, "iotguard-ed25519-secret-v1 %s\n", hex);
	uint8_t pk[32], sk[64];

	/* the good one, with and without its newline */
	write_raw(path, good, 0600);
	cr_assert_eq(ig_keyfile_read(path, sk, pk, NULL), IG_OK);
	char nonl[200];
	snprintf(nonl, sizeof nonl, "iotguard-ed25519-secret-v1 %s", hex);
	write_raw(path, nonl, 0600);
	cr_assert_eq(ig_keyfile_read(path, sk, pk, NULL), IG_OK);

	const char *bad[] = {
		"",
		"\n",
		"iotguard-ed25519-secret-v1 \n",
		"iotguard-ed25519-secret-v2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		"iotguard-ed25519-secret-v1  000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
		"iotguard-ed25519-secret-v1 000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f\n",
		"iotguard-ed25519-secret-v1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1\n",
		"iotguard-ed25519-secret-v1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f0\n",
		"iotguard-ed25519-secret-v1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1g\n",
		"iotguard-ed25519-secret-v1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n\n",
		"iotguard-ed25519-secret-v1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\r\n",
		"iotguard-ed25519-secret-v1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\nextra\n",
		" iotguard-ed25519-secret-v1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		ig_error err = {0};
		write_raw(path, bad[i], 0600);
		memset(sk, 0xaa, sizeof sk);
		cr_assert_eq(ig_keyfile_read(path, sk, pk, &err), IG_ERR_INVAL, "case %zu accepted", i);
		cr_assert_not_null(strstr(err.msg, path), "case %zu: %s", i, err.msg);
		for (size_t j = 0; j < sizeof sk; j++)
			cr_assert_eq(sk[j], 0, "case %zu: sk not wiped on failure", i);
	}

	/* truncation at every length of a good file */
	for (size_t cut = 0; cut < strlen(good) - 1; cut++) {
		char t[200];
		memcpy(t, good, cut);
		t[cut] = '\0';
		write_raw(path, t, 0600);
		cr_assert_neq(ig_keyfile_read(path, sk, pk, NULL), IG_OK, "truncated at %zu", cut);
	}
}

Test(keyfile, directory_refused)
{
	uint8_t pk[32], sk[64];
	cr_assert_eq(chmod(dir, 0700), 0);
	cr_assert_neq(ig_keyfile_read(dir, sk, pk, NULL), IG_OK);
}

Test(keyfile, derived_key_signs)
{
	uint8_t pk[32], sk[64], rpk[32], rsk[64], sig[64];
	const uint8_t msg[] = "hello";
	ig_keyfile_generate(pk, sk);
	cr_assert_eq(ig_keyfile_write(path, sk, false, NULL), IG_OK);
	cr_assert_eq(ig_keyfile_read(path, rsk, rpk, NULL), IG_OK);
	crypto_sign_detached(sig, NULL, msg, sizeof msg, rsk);
	cr_assert_eq(crypto_sign_verify_detached(sig, msg, sizeof msg, pk), 0);
}

Test(keyfile, bad_arguments)
{
	uint8_t pk[32], sk[64];
	ig_keyfile_generate(pk, sk);
	cr_assert_eq(ig_keyfile_write(NULL, sk, false, NULL), IG_ERR_INVAL);
	cr_assert_eq(ig_keyfile_write("", sk, false, NULL), IG_ERR_INVAL);
	cr_assert_eq(ig_keyfile_read(NULL, sk, pk, NULL), IG_ERR_INVAL);
	cr_assert_neq(ig_keyfile_write("/nonexistent-dir-ig/x.key", sk, false, NULL), IG_OK);
}

/* ---- ig_keyfile_parse: the same rules on bytes in memory ---------------- */

#define DOC_LINE "iotguard-ed25519-secret-v1 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

/* docs/PROTOCOL.md, "Key file format" and the token vectors: seed 00..1f. */
Test(keyfile, parse_doc_vector)
{
	const char *doc = tu_read_doc("PROTOCOL.md");
	cr_assert_not_null(strstr(doc, DOC_LINE), "PROTOCOL.md no longer shows the example key file");
	uint8_t pk[32], sk[64];
	ig_error err = {0};
	cr_assert_eq(ig_keyfile_parse(sk, pk, DOC_LINE "\n", sizeof DOC_LINE, "doc", &err), IG_OK, "%s", err.msg);
	tu_assert_hex(pk, sizeof pk, "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
	uint8_t seed[32];
	tu_seq_bytes(seed, sizeof seed, 0);
	cr_assert_eq(memcmp(sk, seed, 32), 0, "sk must be seed || pk");
	cr_assert_eq(memcmp(sk + 32, pk, 32), 0);
	/* without the newline too */
	cr_assert_eq(ig_keyfile_parse(sk, pk, DOC_LINE, sizeof DOC_LINE - 1, "doc", &err), IG_OK, "%s", err.msg);
	tu_assert_hex(pk, sizeof pk, "03a107bff3ce10be1d70dd18e74bc09967e4d6309ba50d5f1ddc8664125531b8");
}

/* The buffer is not a C string: the length decides, a NUL inside is just a
 * bad byte, and nothing past len is read (ASan watches the heap copy). */
Test(keyfile, parse_uses_length_not_nul)
{
	uint8_t pk[32], sk[64];
	size_t n = sizeof DOC_LINE - 1;
	char *exact = malloc(n);
	cr_assert_not_null(exact);
	memcpy(exact, DOC_LINE, n);
	cr_assert_eq(ig_keyfile_parse(sk, pk, exact, n, NULL, NULL), IG_OK);
	exact[n - 5] = '\0';
	memset(sk, 0xaa, sizeof sk);
	ig_error err = {0};
	cr_assert_eq(ig_keyfile_parse(sk, pk, exact, n, NULL, &err), IG_ERR_INVAL);
	cr_assert(tu_all_zero(sk, sizeof sk) && tu_all_zero(pk, sizeof pk), "outputs not wiped on failure");
	cr_assert_not_null(strstr(err.msg, "(buffer)"), "%s", err.msg);
	/* one byte short of the whole line */
	cr_assert_eq(ig_keyfile_parse(sk, pk, DOC_LINE, n - 1, NULL, NULL), IG_ERR_INVAL);
	cr_assert_eq(ig_keyfile_parse(sk, pk, NULL, 0, NULL, NULL), IG_ERR_INVAL);
	cr_assert_eq(ig_keyfile_parse(NULL, pk, DOC_LINE, n, NULL, NULL), IG_ERR_INVAL);
	cr_assert_eq(ig_keyfile_parse(sk, NULL, DOC_LINE, n, NULL, NULL), IG_ERR_INVAL);
	free(exact);
}

/* Each malformation gets its own sentence, naming the source and never
 * quoting the secret hex. */
Test(keyfile, parse_refusals_name_the_source)
{
	static const struct {
		const char *text;
		const char *says;
	} cases[] = {
		{"", "does not start with"},
		{"iotguard-ed25519-secret-v2 000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", "does not start with"},
		{DOC_LINE "0", "wrong length"},
		{DOC_LINE "\n\n", "wrong length"},
		{DOC_LINE "\r\n", "wrong length"},
		{"iotguard-ed25519-secret-v1 000102030405060708090A0B0C0D0E0F101112131415161718191a1b1c1d1e1f", "lowercase hex"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		uint8_t pk[32], sk[64];
		memset(sk, 0x55, sizeof sk);
		ig_error err = {0};
		cr_assert_eq(ig_keyfile_parse(sk, pk, cases[i].text, strlen(cases[i].text), "agent.key", &err), IG_ERR_INVAL,
		             "case %zu accepted", i);
		cr_assert_not_null(strstr(err.msg, "key file agent.key"), "case %zu: %s", i, err.msg);
		cr_assert_not_null(strstr(err.msg, cases[i].says), "case %zu: %s", i, err.msg);
		cr_assert_null(strstr(err.msg, "0a0b0c0d"), "case %zu quotes the seed: %s", i, err.msg);
		cr_assert(tu_all_zero(sk, sizeof sk), "case %zu: sk not wiped", i);
	}
}

/* The path loader is the buffer parser plus the file rules: a file and its
 * bytes give the same key, and the same refusal. */
Test(keyfile, read_agrees_with_parse)
{
	uint8_t pk1[32], sk1[64], pk2[32], sk2[64];
	write_raw(path, DOC_LINE "\n", 0600);
	cr_assert_eq(ig_keyfile_read(path, sk1, pk1, NULL), IG_OK);
	cr_assert_eq(ig_keyfile_parse(sk2, pk2, DOC_LINE "\n", sizeof DOC_LINE, path, NULL), IG_OK);
	cr_assert_eq(memcmp(sk1, sk2, sizeof sk1), 0);
	cr_assert_eq(memcmp(pk1, pk2, sizeof pk1), 0);
	ig_error e1 = {0}, e2 = {0};
	write_raw(path, DOC_LINE "x\n", 0600);
	cr_assert_eq(ig_keyfile_read(path, sk1, pk1, &e1), IG_ERR_INVAL);
	cr_assert_eq(ig_keyfile_parse(sk2, pk2, DOC_LINE "x\n", sizeof DOC_LINE + 1, path, &e2), IG_ERR_INVAL);
	cr_assert_str_eq(e1.msg, e2.msg);
}
