/*
 * bench_mqtt.c: MQTT 3.1.1 encoding for the benches (see bench_mqtt.h for
 * why there is one).
 */
#include "bench_mqtt.h"

#include <string.h>

#include "bench.h"

size_t bench_mqtt_put_varint(uint8_t *p, size_t v)
{
	size_t n = 0;
	do {
		uint8_t b = v % 128;
		v /= 128;
		p[n++] = (uint8_t)(b | (v ? 0x80 : 0));
	} while (v);
	return n;
}

size_t bench_mqtt_put_str(uint8_t *p, const char *s, size_t len)
{
	p[0] = (uint8_t)(len >> 8);
	p[1] = (uint8_t)len;
	memcpy(p + 2, s, len);
	return len + 2;
}

size_t bench_mqtt_connect(uint8_t *out, size_t cap, const char *id, const char *user, const char *pw)
{
	size_t idl = strlen(id), ul = user ? strlen(user) : 0, pwl = pw ? strlen(pw) : 0;
	size_t n = 10 + 2 + idl + (user ? 2 + ul : 0) + (pw ? 2 + pwl : 0);
	if (n > 65535 || 5 + n > cap)
		bench_die("client id or password too long for the benchmark client", id);
	size_t h = 0;
	out[h++] = 0x10;
	h += bench_mqtt_put_varint(out + h, n);
	h += bench_mqtt_put_str(out + h, "MQTT", 4);
	out[h++] = 4;                                                            /* protocol level 3.1.1 */
	out[h++] = (uint8_t)(0x02 | (user ? 0x80 : 0) | (pw ? 0x40 : 0));      /* clean session */
	out[h++] = 0;
	out[h++] = 0;                                                            /* no keepalive: runs are short */
	h += bench_mqtt_put_str(out + h, id, idl);
	if (user)
		h += bench_mqtt_put_str(out + h, user, ul);
	if (pw)
		h += bench_mqtt_put_str(out + h, pw, pwl);
	return h;
}

size_t bench_mqtt_subscribe(uint8_t *out, const char *filter, size_t flen, int qos)
{
	size_t rem = 2 + 2 + flen + 1, h = 0;
	out[h++] = 0x82;
	h += bench_mqtt_put_varint(out + h, rem);
	out[h++] = 0;
	out[h++] = 1;                                                            /* packet id */
	h += bench_mqtt_put_str(out + h, filter, flen);
	out[h++] = (uint8_t)qos;
	return h;
}

size_t bench_mqtt_publish_header(uint8_t *out, const char *topic, size_t tlen, size_t plen, int qos, uint16_t pid,
                                 size_t *pid_off)
{
	size_t rem = 2 + tlen + (qos ? 2 : 0) + plen, h = 0;
	out[h++] = (uint8_t)(0x30 | (qos << 1));
	h += bench_mqtt_put_varint(out + h, rem);
	h += bench_mqtt_put_str(out + h, topic, tlen);
	*pid_off = 0;
	if (qos) {
		*pid_off = h;
		out[h++] = (uint8_t)(pid >> 8);
		out[h++] = (uint8_t)pid;
	}
	return h;
}

bool bench_mqtt_frame(const uint8_t *p, size_t avail, size_t *hdr, size_t *body)
{
	size_t len = 0, mult = 1, h = 1;
	bool complete = false;
	for (; h < 5 && h < avail; h++) {
		uint8_t b = p[h];
		len += (b & 127u) * mult;
		mult *= 128;
		if (!(b & 128)) {
			complete = true;
			h++;
			break;
		}
	}
	if (!complete || h + len > avail)
		return false;
	*hdr = h;
	*body = len;
	return true;
}

size_t bench_mqtt_packet_len(const uint8_t *p)
{
	size_t len = 0, mult = 1, h = 1;
	for (; h < 5; h++) {
		len += (p[h] & 127u) * mult;
		mult *= 128;
		if (!(p[h] & 128))
			break;
	}
	return h + 1 + len;
}

bool bench_mqtt_publish_parts(uint8_t type, const uint8_t *b, size_t len, const char **topic, size_t *tlen,
                              const uint8_t **pid, const uint8_t **payload, size_t *plen)
{
	int qos = (type >> 1) & 3;
	if (len < 2)
		return false;
	*tlen = ((size_t)b[0] << 8) | b[1];
	size_t off = 2 + *tlen + (qos ? 2 : 0);
	if (off > len)
		return false;
	*topic = (const char *)b + 2;
	*pid = qos ? b + 2 + *tlen : NULL;
	*payload = b + off;
	*plen = len - off;
	return true;
}
