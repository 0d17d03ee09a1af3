/* tests/fuzz/fuzz_m2m.c: fuzzes the device-to-device envelope.
 *
 * Why this exists: m2m payloads are relayed by the broker between devices and
 * opened by the receiving agent; a peer or anyone who can publish on the
 * topic controls every byte. Invariants: open never succeeds where the header
 * does not parse, agrees with the header parser, and with the docs' vector
 * key only opens messages sealed with it (whose plaintext is "hello"). */
#include "fuzz_common.h"
#include "ig_aead.h"
#include "ig_m2m.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TOPIC "iotguard/demo/m2m/b/a"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t key[IG_AEAD_KEY_BYTES];
	for (size_t i = 0; i < sizeof key; i++)
		key[i] = (uint8_t)i;
	static uint8_t out[65536];
	ig_m2m_header h, h2;
	memset(&h, 0, sizeof h);
	memset(&h2, 0, sizeof h2);
	int hp = ig_m2m_parse_header(data, size, &h);
	for (uint8_t dir = 0; dir < 2; dir++) {
		int n = ig_m2m_open(out, sizeof out, data, size, key, dir, TOPIC, &h2);
		if (n >= 0) {
			FUZZ_ASSERT(hp == 0);
			FUZZ_ASSERT(h.version == h2.version && h.suite == h2.suite && h.counter == h2.counter);
			FUZZ_ASSERT(memcmp(h.key_id, h2.key_id, sizeof h.key_id) == 0);
			FUZZ_ASSERT((size_t)n < size);
			/* Sealing the plaintext again under the same header gives the same bytes. */
			static uint8_t again[65536 + 128];
			int m = ig_m2m_seal(again, sizeof again, h2.suite, key, h2.key_id, dir, h2.counter, TOPIC, out,
			                    (size_t)n);
			FUZZ_ASSERT(m == (int)size && memcmp(again, data, size) == 0);
		}
	}
	return 0;
}
