// SPDX-License-Identifier: Apache-2.0
#include "xdp_pkt.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

const uint8_t xp_client_mac[6] = { 0x02, 0xc1, 0, 0, 0, 0x01 };
const uint8_t xp_node_mac[6] = { 0x02, 0x00, 0, 0, 0, 0x01 };

static uint32_t sum16(const void *data, size_t len, uint32_t s)
{
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i + 1 < len; i += 2)
		s += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		s += (uint32_t)p[len - 1] << 8;
	return s;
}

uint16_t xp_csum(const void *data, size_t len, uint32_t seed)
{
	uint32_t s = sum16(data, len, seed);

	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static size_t put_l2(const struct xp_spec *s, uint8_t *buf)
{
	size_t off = 12;

	memcpy(buf, xp_node_mac, 6);
	memcpy(buf + 6, xp_client_mac, 6);
	if (s->vlan) {
		put16(buf + 12, 0x8100);
		put16(buf + 14, 100);
		off = 16;
	}
	put16(buf + off, s->family == 4 ? 0x0800 : 0x86dd);
	return off + 2;
}

/* L4 header + payload at p (len bytes), checksum over the pseudo-header sum `pseudo`. */
static void put_l4(const struct xp_spec *s, uint8_t *p, size_t l4_len, uint32_t pseudo)
{
	size_t hl = s->proto == 6 ? 20 : s->proto == 17 ? 8 : 0, i;
	uint16_t c;

	for (i = hl; i < l4_len; i++)
		p[i] = (uint8_t)(0x41 + i % 26);
	if (s->proto == 6) {
		put16(p, s->sport);
		put16(p + 2, s->dport);
		put16(p + 4, 0x1234);
		put16(p + 6, 0x5678);
		p[12] = 5 << 4;
		p[13] = s->tcp_flags ? s->tcp_flags : 0x02;
		put16(p + 14, 64240);
		c = xp_csum(p, l4_len, pseudo);
		put16(p + 16, c);
	} else if (s->proto == 17) {
		put16(p, s->sport);
		put16(p + 2, s->dport);
		put16(p + 4, (uint16_t)l4_len);
		if (!s->udp_no_csum) {
			c = xp_csum(p, l4_len, pseudo);
			put16(p + 6, c ? c : 0xffff);
		}
	}
}

static size_t put_l3(const struct xp_spec *s, uint8_t *p)
{
	size_t hl = s->proto == 6 ? 20 : s->proto == 17 ? 8 : 0;
	size_t l4_len = hl + (size_t)s->payload;
	uint8_t a[16], b[16];
	uint32_t pseudo;

	if (s->family == 4) {
		size_t ihl = 20 + (size_t)s->ip_opts;

		inet_pton(AF_INET, s->src, a);
		inet_pton(AF_INET, s->dst, b);
		memset(p, 0, ihl);
		p[0] = (uint8_t)(0x40 | ihl / 4);
		p[1] = s->tos;
		put16(p + 2, (uint16_t)(ihl + l4_len));
		put16(p + 4, 0x0101);
		put16(p + 6, s->frag_off);
		p[8] = 63;
		p[9] = (uint8_t)s->proto;
		memcpy(p + 12, a, 4);
		memcpy(p + 16, b, 4);
		if (s->ip_opts)
			memset(p + 20, 1, (size_t)s->ip_opts - 1); /* NOPs, the last byte EOL */
		put16(p + 10, xp_csum(p, ihl, 0));
		pseudo = sum16(a, 4, sum16(b, 4, (uint32_t)s->proto + (uint32_t)l4_len));
		put_l4(s, p + ihl, l4_len, pseudo);
		return ihl + l4_len;
	}
	inet_pton(AF_INET6, s->src, a);
	inet_pton(AF_INET6, s->dst, b);
	{
		size_t ext = s->v6_ext || s->v6_frag ? 8 : 0;
		uint8_t *l4 = p + 40 + ext;

		memset(p, 0, 40 + ext);
		p[0] = (uint8_t)(0x60 | s->tos >> 4);
		p[1] = (uint8_t)(s->tos << 4);
		put16(p + 4, (uint16_t)(ext + l4_len));
		p[6] = s->v6_frag ? 44 : ext ? s->v6_ext : (uint8_t)s->proto;
		p[7] = 63;
		memcpy(p + 8, a, 16);
		memcpy(p + 24, b, 16);
		if (ext) {
			p[40] = (uint8_t)s->proto; /* next header; hdr ext len 0 = 8 bytes; PadN */
			if (s->v6_frag) {
				p[43] = 1; /* offset 0, M=1 */
				put16(p + 46, 0x4242);
			} else {
				p[42] = 1;
				p[43] = 4;
			}
		}
		pseudo = sum16(a, 16, sum16(b, 16, (uint32_t)s->proto + (uint32_t)l4_len));
		put_l4(s, l4, l4_len, pseudo);
		return 40 + ext + l4_len;
	}
}

size_t xp_build(const struct xp_spec *s, uint8_t *buf)
{
	size_t l2;

	memset(buf, 0, XP_MAX);
	l2 = put_l2(s, buf);
	return l2 + put_l3(s, buf + l2);
}

size_t xp_build_tunnel(const struct xp_spec *s, const char *outer_src, const char *outer_dst, uint32_t flow_label,
		       uint8_t *buf)
{
	size_t l2, oh = s->family == 4 ? 20 : 40, inner;
	uint8_t *o;

	memset(buf, 0, XP_MAX);
	l2 = put_l2(s, buf);
	inner = put_l3(s, buf + l2 + oh);
	o = buf + l2;
	if (s->family == 4) {
		o[0] = 0x45;
		o[1] = s->tos;
		put16(o + 2, (uint16_t)(20 + inner));
		o[8] = 64;
		o[9] = 4;
		inet_pton(AF_INET, outer_src, o + 12);
		inet_pton(AF_INET, outer_dst, o + 16);
		put16(o + 10, xp_csum(o, 20, 0));
	} else {
		o[0] = (uint8_t)(0x60 | s->tos >> 4);
		o[1] = (uint8_t)(s->tos << 4 | (flow_label >> 16 & 0xf));
		put16(o + 2, (uint16_t)flow_label);
		put16(o + 4, (uint16_t)inner);
		o[6] = 41;
		o[7] = 64;
		inet_pton(AF_INET6, outer_src, o + 8);
		inet_pton(AF_INET6, outer_dst, o + 24);
	}
	return l2 + oh + inner;
}

bool xp_csums_ok(const uint8_t *f, size_t len, char *why, size_t why_len)
{
	size_t off = 14, hl, l4_len;
	uint16_t et = (uint16_t)(f[12] << 8 | f[13]);
	uint32_t pseudo;
	int proto;

	if (et == 0x8100) {
		et = (uint16_t)(f[16] << 8 | f[17]);
		off = 18;
	}
	if (et == 0x0800) {
		const uint8_t *ip = f + off;

		hl = (size_t)(ip[0] & 15) * 4;
		if (xp_csum(ip, hl, 0)) {
			snprintf(why, why_len, "IPv4 header checksum 0x%04x is wrong", ip[10] << 8 | ip[11]);
			return false;
		}
		proto = ip[9];
		l4_len = (size_t)(ip[2] << 8 | ip[3]) - hl;
		pseudo = sum16(ip + 12, 8, (uint32_t)proto + (uint32_t)l4_len);
	} else {
		const uint8_t *ip = f + off;

		hl = 40;
		proto = ip[6];
		l4_len = (size_t)(ip[4] << 8 | ip[5]);
		pseudo = sum16(ip + 8, 32, (uint32_t)proto + (uint32_t)l4_len);
	}
	if (off + hl + l4_len > len) {
		snprintf(why, why_len, "frame shorter than its IP length");
		return false;
	}
	if (proto == 17 && et == 0x0800 && !(f[off + hl + 6] | f[off + hl + 7]))
		return true; /* no UDP checksum */
	if ((proto == 6 || proto == 17) && xp_csum(f + off + hl, l4_len, pseudo)) {
		snprintf(why, why_len, "%s checksum 0x%02x%02x is wrong", proto == 6 ? "TCP" : "UDP",
			 f[off + hl + (proto == 6 ? 16 : 6)], f[off + hl + (proto == 6 ? 17 : 7)]);
		return false;
	}
	return true;
}

void xp_diff(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len, char *out, size_t out_len)
{
	size_t i, n = got_len < want_len ? got_len : want_len;

	for (i = 0; i < n && got[i] == want[i]; i++)
		;
	if (i == n && got_len == want_len) {
		snprintf(out, out_len, "identical");
		return;
	}
	snprintf(out, out_len, "length got %zu want %zu; first difference at byte %zu: got %02x want %02x", got_len,
		 want_len, i, i < got_len ? got[i] : 0, i < want_len ? want[i] : 0);
}
