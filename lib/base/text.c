/*
 * text.c: strict decimal, canonical base64 and line reading for the C2SP
 * texts (see ig_text.h for why there is one copy).
 */
#include "ig_text.h"

#include <sodium.h>
#include <string.h>

bool ig_text_u64(const char *s, size_t len, uint64_t *out)
{
	if (!s || len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return false;
	uint64_t v = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		uint64_t d = (uint64_t)(s[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*out = v;
	return true;
}

bool ig_text_b64(uint8_t *out, size_t cap, size_t *outlen, const char *b64, size_t len)
{
	if (!b64 || len == 0 || len % 4 != 0)
		return false;
	size_t got = 0;
	if (sodium_base642bin(out, cap, b64, len, NULL, &got, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
		return false;
	/* libsodium accepts nonzero unused bits; re-encoding, a chunk at a
	 * time, must give back exactly the input. */
	enum { CHUNK = 3 * 128 };
	char again[4 * (CHUNK / 3) + 1];
	size_t in = 0, pos = 0;
	while (in < got) {
		size_t take = got - in < CHUNK ? got - in : CHUNK;
		sodium_bin2base64(again, sizeof again, out + in, take, sodium_base64_VARIANT_ORIGINAL);
		size_t alen = strlen(again);
		if (pos + alen > len || memcmp(again, b64 + pos, alen) != 0)
			return false;
		in += take;
		pos += alen;
	}
	if (pos != len)
		return false;
	*outlen = got;
	return true;
}

void ig_text_reader_init(ig_text_reader *r, const char *text, size_t len)
{
	r->p = text;
	r->end = text + len;
	r->lineno = 0;
}

bool ig_text_line(ig_text_reader *r, const char **line, size_t *len)
{
	const char *nl = memchr(r->p, '\n', (size_t)(r->end - r->p));
	if (!nl)
		return false;
	*line = r->p;
	*len = (size_t)(nl - r->p);
	r->p = nl + 1;
	r->lineno++;
	return true;
}
