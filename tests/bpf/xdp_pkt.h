/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Golden packets for the XDP/TC tests: a builder that writes Ethernet/VLAN/IPv4 (options, fragments)/IPv6
 * (an extension header)/TCP/UDP frames with checksums computed from scratch, and a checker that recomputes
 * them. Expected outputs are built independently with the same builder, never derived from the program.
 */
#ifndef XMESH_TEST_XDP_PKT_H
#define XMESH_TEST_XDP_PKT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define XP_MAX 2048 /* room for IPv6 frames above the 1280-byte minimum MTU (ICMPv6 too big) */

struct xp_spec {
	int family; /* 4 or 6 */
	int proto;  /* 6 TCP, 17 UDP, or another IP protocol (payload only) */
	const char *src, *dst;
	uint16_t sport, dport; /* host order */
	uint8_t tcp_flags;     /* default (0): SYN */
	int payload;	       /* payload bytes (a pattern) */
	bool vlan;	       /* one 802.1Q tag, VID 100 */
	int ip_opts;	       /* IPv4 option bytes (multiple of 4): NOPs then EOL */
	uint16_t frag_off;     /* IPv4 frag_off field, host order (0x2000 = MF) */
	uint8_t v6_ext;	       /* IPv6: an 8-byte extension header of this type before L4 (0 = none) */
	bool v6_frag;	       /* IPv6: a fragment header (first fragment, M=1) before L4 */
	bool udp_no_csum;      /* IPv4 UDP with checksum 0 */
	uint8_t tos;
};

/* Frame bytes into buf; returns the length. */
size_t xp_build(const struct xp_spec *s, uint8_t *buf);

/*
 * Same, wrapped: outer IPv4 (family 4) or IPv6 header src → dst around the L3 packet of s (IPIP/IP6IP6), as
 * xdp_lb writes it: TTL/hop limit 64, id 0, no DF, TOS/traffic class copied, IPv6 flow label given.
 */
size_t xp_build_tunnel(const struct xp_spec *s, const char *outer_src, const char *outer_dst, uint32_t flow_label,
		       uint8_t *buf);

/* Recomputes the IPv4 header and TCP/UDP checksums of a frame; false (and why) if any is wrong. */
bool xp_csums_ok(const uint8_t *frame, size_t len, char *why, size_t why_len);

/* One's-complement sum helpers shared by the builder and the checker. */
uint16_t xp_csum(const void *data, size_t len, uint32_t seed);

/* Hex dump of the first difference, for assertion messages. */
void xp_diff(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len, char *out, size_t out_len);

extern const uint8_t xp_client_mac[6], xp_node_mac[6];

#endif
