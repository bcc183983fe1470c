// SPDX-License-Identifier: Apache-2.0
/*
 * PeerAuthentication STRICT at the pod's host-side veth (bpf/peer_auth.bpf.c) through BPF_PROG_TEST_RUN: a
 * plaintext SYN to a STRICT pod port comes back as the pod's RST|ACK (bytes and checksums checked against a
 * reply built here), counted per pod port; PERMISSIVE and DISABLE ports, the agent's marked SYNs, later
 * segments and non-TCP packets pass unchanged; TCP fragments that hide their header are dropped. Then the
 * plaintext AuthorizationPolicy verdicts (authz_*): the same reset for a denied client, counted per policy.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include <xmesh/mtls.h>

#include "sandbox.h"
#include "skel/peer_auth.skel.h"
#include "xdp_pkt.h"

#define POD4	"10.200.2.11"
#define POD6	"fd00:200:2::11"
#define CLIENT4 "10.199.0.100"
#define CLIENT6 "fd00:199::100"

#define TC_ACT_OK_	 0
#define TC_ACT_SHOT_	 2
#define TC_ACT_REDIRECT_ 7

static struct peer_auth *skel;

static void setup(void)
{
	const char *why = sandbox_unsupported();
	struct bpf_map *map;

	if (why)
		sandbox_cannot_run(why);
	skel = peer_auth__open();
	cr_assert(skel, "open peer_auth: %s", strerror(errno));
	bpf_object__for_each_map (map, skel->obj)
		bpf_map__set_pin_path(map, NULL);
	cr_assert_eq(peer_auth__load(skel), 0, "load peer_auth (verifier)");
}

static void teardown(void)
{
	peer_auth__destroy(skel);
	skel = NULL;
}

TestSuite(peer_auth, .init = setup, .fini = teardown, .timeout = 30);

static struct xm_mtls_key key_of(const char *ip, uint16_t port)
{
	struct xm_mtls_key k;

	memset(&k, 0, sizeof(k));
	if (strchr(ip, ':')) {
		k.family = XM_FAMILY_V6;
		cr_assert_eq(inet_pton(AF_INET6, ip, k.addr.bytes), 1);
	} else {
		k.family = XM_FAMILY_V4;
		cr_assert_eq(inet_pton(AF_INET, ip, k.addr.bytes), 1);
	}
	k.port = port;
	return k;
}

static void set_policy(const char *ip, uint16_t port, uint8_t mode, uint8_t flags)
{
	struct xm_mtls_key k = key_of(ip, port);
	struct xm_mtls_policy v = { .mode = mode, .flags = flags };

	cr_assert_eq(bpf_map__update_elem(skel->maps.xm_mtls_policy, &k, sizeof(k), &v, sizeof(v), 0), 0);
}

/* The rejection counters of (ip, port) summed over CPUs. */
static struct xm_mtls_rejected rejected(const char *ip, uint16_t port)
{
	int n = libbpf_num_possible_cpus();
	struct xm_mtls_rejected per[n], sum = { 0 };
	struct xm_mtls_key k = key_of(ip, port);

	if (bpf_map__lookup_elem(skel->maps.xm_mtls_rejected, &k, sizeof(k), per, sizeof(per), 0))
		return sum;
	for (int i = 0; i < n; i++) {
		sum.syns += per[i].syns;
		sum.fragments += per[i].fragments;
	}
	return sum;
}

#define UPLINK	 9 /* an interface the program does not guard (the node's uplink) */
#define POD_VETH 5 /* a guarded pod veth */

/* The interface the packet entered the node through (0: sent by the node itself); each test starts on the uplink. */
static uint32_t ingress_ifindex = UPLINK;

static int run(const uint8_t *in, size_t len, uint32_t mark, uint8_t *out, size_t *out_len)
{
	struct __sk_buff ctx = { .mark = mark, .ingress_ifindex = ingress_ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (uint32_t)len, .data_out = out,
		    .data_size_out = XP_MAX, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);

	cr_assert_eq(bpf_prog_test_run_opts(bpf_program__fd(skel->progs.xm_peer_auth), &o), 0, "test_run: %s",
		     strerror(errno));
	*out_len = o.data_size_out;
	return (int)o.retval;
}

/* The packet passes unchanged. */
static void assert_passes(const struct xp_spec *s, uint32_t mark, const char *what)
{
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len = xp_build(s, in), out_len;
	char diff[256];

	cr_assert_eq(run(in, len, mark, out, &out_len), TC_ACT_OK_, "%s: not passed", what);
	xp_diff(out, out_len, in, len, diff, sizeof(diff));
	cr_assert(out_len == len && !memcmp(out, in, len), "%s: changed: %s", what, diff);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* The RST|ACK the pod answers syn with (seq 0, ack = seq + 1, window 0, TTL 64, no options), full checksums. */
static size_t expected_rst(const struct xp_spec *syn, uint8_t *buf)
{
	struct xp_spec r = *syn;
	size_t len, l3 = 14, l4;
	uint8_t *ip, *tcp, pseudo[40];
	uint32_t s = 0;

	r.src = syn->dst;
	r.dst = syn->src;
	r.sport = syn->dport;
	r.dport = syn->sport;
	r.tcp_flags = 0x14;
	r.payload = 0;
	len = xp_build(&r, buf);
	memcpy(buf, xp_client_mac, 6);
	memcpy(buf + 6, xp_node_mac, 6);
	ip = buf + l3;
	if (syn->family == 4) {
		put16(ip + 4, 0);      /* id */
		put16(ip + 6, 0x4000); /* DF */
		ip[8] = 64;
		put16(ip + 10, 0);
		put16(ip + 10, xp_csum(ip, 20, 0));
		l4 = l3 + 20;
		memcpy(pseudo, ip + 12, 8);
		s = 8;
	} else {
		ip[7] = 64;
		l4 = l3 + 40;
		memcpy(pseudo, ip + 8, 32);
		s = 32;
	}
	tcp = buf + l4;
	memset(tcp + 4, 0, 4);	/* seq 0 */
	put16(tcp + 8, 0x1234); /* ack = the SYN's 0x12345678 + 1 */
	put16(tcp + 10, 0x5679);
	put16(tcp + 14, 0); /* window */
	put16(tcp + 16, 0);
	{
		uint32_t sum = 6 + 20;

		for (uint32_t i = 0; i < s; i += 2)
			sum += (uint32_t)(pseudo[i] << 8 | pseudo[i + 1]);
		put16(tcp + 16, xp_csum(tcp, 20, sum));
	}
	return len;
}

static void assert_reset(const struct xp_spec *syn, uint32_t mark, const char *what)
{
	uint8_t in[XP_MAX], out[XP_MAX], want[XP_MAX];
	size_t len = xp_build(syn, in), out_len, want_len = expected_rst(syn, want);
	char diff[256], why[128];

	cr_assert_eq(run(in, len, mark, out, &out_len), TC_ACT_REDIRECT_, "%s: not answered with a reset", what);
	cr_assert(xp_csums_ok(out, out_len, why, sizeof(why)), "%s: %s", what, why);
	xp_diff(out, out_len, want, want_len, diff, sizeof(diff));
	cr_assert(out_len == want_len && !memcmp(out, want, want_len), "%s: reset differs: %s", what, diff);
}

Test(peer_auth, strict_v4_syn_is_reset_and_counted)
{
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 40000, .dport = 8080
	};

	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_reset(&syn, 0, "STRICT v4");
	assert_reset(&syn, 0, "STRICT v4, retransmitted");
	cr_assert_eq(rejected(POD4, 8080).syns, 2);
	cr_assert_eq(rejected(POD4, 0).syns, 0, "counted under the pod's port, not the policy's key");
}

Test(peer_auth, strict_v6_syn_is_reset_and_counted)
{
	const struct xp_spec syn = {
		.family = 6, .proto = 6, .src = CLIENT6, .dst = POD6, .sport = 40001, .dport = 8080
	};

	set_policy(POD6, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_reset(&syn, 0, "STRICT v6");
	cr_assert_eq(rejected(POD6, 8080).syns, 1);
}

Test(peer_auth, a_syn_with_options_loses_them_in_the_reset)
{
	struct xp_spec syn = { .family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 40002, .dport = 8080 };
	uint8_t in[XP_MAX], out[XP_MAX], want[XP_MAX];
	size_t len, out_len, want_len;
	char why[128], diff[256];

	/* A SYN with 20 bytes of TCP options (NOPs), as real stacks send (MSS, SACK, timestamps, wscale). */
	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	len = xp_build(&syn, in);
	memmove(in + len + 20, in + len, 0);
	memset(in + len, 1, 20);
	in[14 + 20 + 12] = 10 << 4;
	put16(in + 14 + 2, 60);
	put16(in + 14 + 10, 0);
	put16(in + 14 + 10, xp_csum(in + 14, 20, 0));
	{
		uint8_t *tcp = in + 34;
		uint32_t sum = 6 + 40;

		for (int i = 0; i < 8; i += 2)
			sum += (uint32_t)(in[26 + i] << 8 | in[27 + i]);
		put16(tcp + 16, 0);
		put16(tcp + 16, xp_csum(tcp, 40, sum));
	}
	len += 20;
	cr_assert(xp_csums_ok(in, len, why, sizeof(why)), "test SYN: %s", why);
	want_len = expected_rst(&syn, want);
	cr_assert_eq(run(in, len, 0, out, &out_len), TC_ACT_REDIRECT_);
	xp_diff(out, out_len, want, want_len, diff, sizeof(diff));
	cr_assert(out_len == want_len && !memcmp(out, want, want_len), "reset differs: %s", diff);
}

Test(peer_auth, partial_checksum_syn_gets_a_partial_checksum_reset)
{
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 40003, .dport = 8080
	};
	uint8_t in[XP_MAX], out[XP_MAX], want[XP_MAX];
	size_t len = xp_build(&syn, in), out_len, want_len = expected_rst(&syn, want);
	uint32_t s;

	/* CHECKSUM_PARTIAL: the field holds the folded pseudo header sum, the device adds the rest. */
	s = 6 + 20;
	for (int i = 0; i < 8; i += 2)
		s += (uint32_t)(in[26 + i] << 8 | in[27 + i]);
	put16(in + 34 + 16, (uint16_t)~xp_csum(NULL, 0, s));
	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	cr_assert_eq(run(in, len, 0, out, &out_len), TC_ACT_REDIRECT_);
	/* The reset's field: its own pseudo header's sum (same addresses and length 20: the same value). */
	put16(want + 34 + 16, (uint16_t)~xp_csum(NULL, 0, s));
	cr_assert(out_len == want_len && !memcmp(out, want, want_len), "partial reset differs");
}

Test(peer_auth, a_corrupt_syn_is_dropped)
{
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 40004, .dport = 8080
	};
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len = xp_build(&syn, in), out_len;

	in[34 + 16] ^= 0x5a;
	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	cr_assert_eq(run(in, len, 0, out, &out_len), TC_ACT_SHOT_);
	cr_assert_eq(rejected(POD4, 8080).syns, 1);
}

Test(peer_auth, permissive_disable_and_unknown_pods_accept)
{
	struct xp_spec syn = { .family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 40010, .dport = 8080 };

	assert_passes(&syn, 0, "no policy entry (PERMISSIVE by default)");
	set_policy(POD4, 0, XM_MTLS_MODE_PERMISSIVE, 0);
	assert_passes(&syn, 0, "PERMISSIVE");
	set_policy(POD4, 0, XM_MTLS_MODE_DISABLE, 0);
	assert_passes(&syn, 0, "DISABLE");
	syn.dst = "10.200.2.12";
	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_passes(&syn, 0, "another pod of a STRICT pod's subnet");
	cr_assert_eq(rejected(POD4, 8080).syns, 0);
}

Test(peer_auth, port_level_modes_override_the_workload)
{
	struct xp_spec syn = { .family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 40020, .dport = 8080 };

	/* STRICT workload, 9090 DISABLE (Istio's "leave port 8080 to plaintext" example, on another port). */
	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	set_policy(POD4, 9090, XM_MTLS_MODE_DISABLE, 0);
	assert_reset(&syn, 0, "8080 under the workload's STRICT");
	syn.dport = 9090;
	assert_passes(&syn, 0, "9090 DISABLE");

	/* PERMISSIVE workload, 8080 STRICT. */
	set_policy(POD4, 0, XM_MTLS_MODE_PERMISSIVE, XM_MTLS_F_ANY_STRICT);
	set_policy(POD4, 8080, XM_MTLS_MODE_STRICT, 0);
	syn.dport = 8080;
	assert_reset(&syn, 0, "8080 STRICT under a PERMISSIVE workload");
	syn.dport = 80;
	assert_passes(&syn, 0, "80 under the PERMISSIVE workload");
	cr_assert_eq(rejected(POD4, 8080).syns, 2);
	cr_assert_eq(rejected(POD4, 9090).syns, 0);
}

Test(peer_auth, the_agents_mark_is_accepted_and_only_it)
{
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = "10.200.2.1", .dst = POD4, .sport = 40030, .dport = 8080
	};

	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_passes(&syn, XM_MTLS_AGENT_MARK, "marked by the agent's tunnel termination");
	assert_reset(&syn, XM_MTLS_AGENT_MARK & 0xffff, "the mark's low half only");
	assert_reset(&syn, XM_MTLS_AGENT_MARK | 0x80000000u, "the mark with another bit set");
	assert_reset(&syn, 0x539, "Istio's ztunnel mark");
	cr_assert_eq(rejected(POD4, 8080).syns, 3);
}

/* The node's own connections (kubelet's probes, hostNetwork pods) pass STRICT, as ambient lets host traffic bypass
 * ztunnel. */
Test(peer_auth, the_node_itself_passes_strict)
{
	uint8_t in[XP_MAX], out[XP_MAX];
	struct xp_spec syn = {
		.family = 4, .proto = 6, .src = "10.200.2.1", .dst = POD4, .sport = 40032, .dport = 8080
	};
	size_t len, out_len;

	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_reset(&syn, 0, "the node's address, forwarded from the uplink");
	ingress_ifindex = 0;
	assert_passes(&syn, 0, "sent by the node itself, unmarked");
	syn.frag_off = 0x2000;
	len = xp_build(&syn, in);
	cr_assert_eq(run(in, len, 0, out, &out_len), TC_ACT_OK_, "the node's fragment");
	syn = (struct xp_spec){ .family = 6, .proto = 6, .src = CLIENT6, .dst = POD6, .sport = 40033, .dport = 8080 };
	set_policy(POD6, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_passes(&syn, 0, "sent by the node itself, IPv6");
	cr_assert_eq(rejected(POD4, 8080).syns, 1);
	cr_assert_eq(rejected(POD4, 0).fragments, 0);
}

Test(peer_auth, only_the_first_segment_is_judged)
{
	struct xp_spec s = { .family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 40040, .dport = 8080 };

	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	s.tcp_flags = 0x10;
	assert_passes(&s, 0, "ACK of an established connection");
	s.tcp_flags = 0x12;
	assert_passes(&s, 0, "SYN-ACK (the pod's own active open answered)");
	s.tcp_flags = 0x18;
	s.payload = 100;
	assert_passes(&s, 0, "data");
	cr_assert_eq(rejected(POD4, 8080).syns, 0);
}

Test(peer_auth, non_tcp_is_untouched)
{
	struct xp_spec s = {
		.family = 4, .proto = 17, .src = CLIENT4, .dst = POD4, .sport = 40050, .dport = 8080, .payload = 32
	};

	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	set_policy(POD6, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_passes(&s, 0, "UDP v4");
	s.proto = 1;
	assert_passes(&s, 0, "ICMP v4");
	s.proto = 17;
	s.frag_off = 0x2000;
	assert_passes(&s, 0, "a UDP first fragment");
	s.family = 6;
	s.src = CLIENT6;
	s.dst = POD6;
	s.frag_off = 0;
	assert_passes(&s, 0, "UDP v6");
}

Test(peer_auth, tcp_fragments_to_a_strict_pod_are_dropped)
{
	uint8_t in[XP_MAX], out[XP_MAX];
	struct xp_spec s = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 40060, .dport = 8080, .frag_off = 0x2000
	};
	size_t len, out_len;

	set_policy(POD4, 0, XM_MTLS_MODE_PERMISSIVE, XM_MTLS_F_ANY_STRICT);
	set_policy(POD4, 8080, XM_MTLS_MODE_STRICT, 0);
	len = xp_build(&s, in);
	cr_assert_eq(run(in, len, 0, out, &out_len), TC_ACT_SHOT_, "v4 TCP first fragment");
	s.frag_off = 0x0003; /* a later fragment */
	len = xp_build(&s, in);
	cr_assert_eq(run(in, len, 0, out, &out_len), TC_ACT_SHOT_, "v4 TCP later fragment");
	assert_passes(&s, XM_MTLS_AGENT_MARK, "the agent's fragments");
	s = (struct xp_spec){
		.family = 6, .proto = 6, .src = CLIENT6, .dst = POD6, .sport = 40061, .dport = 8080, .v6_frag = true
	};
	set_policy(POD6, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	len = xp_build(&s, in);
	cr_assert_eq(run(in, len, 0, out, &out_len), TC_ACT_SHOT_, "v6 fragment header");
	s.v6_frag = false;
	s.v6_ext = 60;
	len = xp_build(&s, in);
	cr_assert_eq(run(in, len, 0, out, &out_len), TC_ACT_SHOT_, "v6 destination options before TCP");
	cr_assert_eq(rejected(POD4, 0).fragments, 2);
	cr_assert_eq(rejected(POD6, 0).fragments, 2);

	/* A pod without STRICT ports gets its fragments. */
	set_policy(POD4, 0, XM_MTLS_MODE_PERMISSIVE, 0);
	s = (struct xp_spec){
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 40062, .dport = 80, .frag_off = 0x2000
	};
	assert_passes(&s, 0, "fragment to a pod without STRICT ports");
}

static void add_local_pod(const char *ip)
{
	struct xm_mtls_key k = key_of(ip, 0);
	uint32_t one = 1;

	cr_assert_eq(bpf_map__update_elem(skel->maps.xm_mtls_local_pods, &k, sizeof(k), &one, sizeof(one), 0), 0);
}

static void add_guarded_iface(uint32_t ifindex)
{
	uint32_t one = 1;

	cr_assert_eq(bpf_map__update_elem(skel->maps.xm_mtls_ifaces, &ifindex, sizeof(ifindex), &one, sizeof(one), 0),
		     0);
}

Test(peer_auth, same_node_mesh_pods_pass_others_do_not)
{
	struct xp_spec syn = {
		.family = 4, .proto = 6, .src = "10.200.2.12", .dst = POD4, .sport = 40070, .dport = 8080
	};

	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	add_local_pod("10.200.2.12");
	add_guarded_iface(5);
	ingress_ifindex = 5;
	assert_passes(&syn, 0, "a mesh pod of this node, from its veth");
	ingress_ifindex = 9;
	assert_reset(&syn, 0, "a mesh pod's address arriving on the uplink (spoofed)");
	ingress_ifindex = 5;
	syn.src = "10.200.2.13";
	assert_reset(&syn, 0, "a pod of this node that is not in the mesh");
	cr_assert_eq(rejected(POD4, 8080).syns, 2);
}

/* The same over IPv6 (a dual-stack node's mesh pods reach a STRICT pod's IPv6 address in plaintext). */
Test(peer_auth, same_node_mesh_pods_pass_others_do_not_v6)
{
	struct xp_spec syn = {
		.family = 6, .proto = 6, .src = "fd00:200:2::12", .dst = POD6, .sport = 40071, .dport = 8080
	};

	set_policy(POD6, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	add_local_pod("fd00:200:2::12");
	add_local_pod("10.200.2.12"); /* its IPv4 address: no answer for the IPv6 one */
	add_guarded_iface(5);
	ingress_ifindex = 5;
	assert_passes(&syn, 0, "a mesh pod of this node, from its veth");
	ingress_ifindex = 9;
	assert_reset(&syn, 0, "a mesh pod's address arriving on the uplink (spoofed)");
	ingress_ifindex = 5;
	syn.src = "fd00:200:2::13";
	assert_reset(&syn, 0, "a pod of this node that is not in the mesh");
	syn.src = "::ffff:10.200.2.12";
	assert_reset(&syn, 0, "the IPv4 mesh pod's address, v4-mapped in an IPv6 packet");
	cr_assert_eq(rejected(POD6, 8080).syns, 3);
}

/*
 * AuthorizationPolicy for plaintext clients (xm_authz_plain): the agent's verdicts by (pod, port, client prefix);
 * a denied SYN gets the same reset as STRICT's and counts in xm_authz_plain_denied by policy.
 */

struct authz_verdict {
	uint8_t deny, deny_local;
	uint32_t policy, policy_local;
};

static void set_authz(const char *pod, uint16_t port, const char *client, uint32_t plen, struct authz_verdict d)
{
	struct xm_mtls_key dst = key_of(pod, 0), src = key_of(client, 0);
	struct xm_authz_plain_key k;
	struct xm_authz_plain_verdict v;

	cr_assert_eq(dst.family, src.family);
	memset(&k, 0, sizeof(k));
	k.prefixlen = XM_AUTHZ_PLAIN_FIXED_BITS + plen;
	k.family = dst.family;
	k.port = port;
	k.dst = dst.addr;
	k.src = src.addr;
	memset(&v, 0, sizeof(v));
	v.deny = d.deny;
	v.deny_local = d.deny_local;
	v.policy = d.policy;
	v.policy_local = d.policy_local;
	cr_assert_eq(bpf_map__update_elem(skel->maps.xm_authz_plain, &k, sizeof(k), &v, sizeof(v), 0), 0);
}

/* The same verdict for every client of the prefix, local pod or not. */
static struct authz_verdict deny_by(uint32_t policy)
{
	return (struct authz_verdict){ .deny = 1, .deny_local = 1, .policy = policy, .policy_local = policy };
}

static const struct authz_verdict allow = { 0 };

static struct xm_authz_plain_count_key count_key(const char *pod, uint16_t port, uint32_t policy)
{
	struct xm_mtls_key m = key_of(pod, 0);
	struct xm_authz_plain_count_key k;

	memset(&k, 0, sizeof(k));
	k.addr = m.addr;
	k.family = m.family;
	k.port = port;
	k.policy = policy;
	return k;
}

/* Denied SYNs to (pod, port) by policy, summed over CPUs. */
static uint64_t denied(const char *pod, uint16_t port, uint32_t policy)
{
	int n = libbpf_num_possible_cpus();
	struct xm_authz_plain_count_key k = count_key(pod, port, policy);
	uint64_t per[n], sum = 0;

	if (bpf_map__lookup_elem(skel->maps.xm_authz_plain_denied, &k, sizeof(k), per, sizeof(per), 0))
		return 0;
	for (int i = 0; i < n; i++)
		sum += per[i];
	return sum;
}

/* Entries in the denial counter (each (pod, port, policy) that was counted). */
static int denied_entries(void)
{
	struct xm_authz_plain_count_key k, next;
	int fd = bpf_map__fd(skel->maps.xm_authz_plain_denied), n = 0;

	for (int err = bpf_map_get_next_key(fd, NULL, &next); !err; err = bpf_map_get_next_key(fd, &k, &next)) {
		k = next;
		n++;
	}
	return n;
}

Test(peer_auth, authz_deny_answers_an_external_client_with_a_reset_and_counts_the_policy)
{
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 41000, .dport = 8080
	};

	set_authz(POD4, 8080, "0.0.0.0", 0, deny_by(7));
	ingress_ifindex = UPLINK;
	assert_reset(&syn, 0, "denied for every client");
	assert_reset(&syn, 0, "denied, retransmitted");
	cr_assert_eq(denied(POD4, 8080, 7), 2);
	cr_assert_eq(denied_entries(), 1, "one counter: (pod, port, policy)");
	cr_assert_eq(rejected(POD4, 8080).syns, 0, "not a STRICT refusal");
}

Test(peer_auth, authz_allow_passes_untouched)
{
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 41010, .dport = 8080
	};

	set_authz(POD4, 8080, "0.0.0.0", 0, allow);
	ingress_ifindex = UPLINK;
	assert_passes(&syn, 0, "allowed for every client");
	cr_assert_eq(denied_entries(), 0);
}

Test(peer_auth, authz_the_longest_client_prefix_decides)
{
	struct xp_spec syn = { .family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 41020, .dport = 8080 };

	ingress_ifindex = UPLINK;
	/* 8080: denied to all but 10.199.0.0/16, and inside it denied again to one /32. */
	set_authz(POD4, 8080, "0.0.0.0", 0, deny_by(1));
	set_authz(POD4, 8080, "10.199.0.0", 16, allow);
	set_authz(POD4, 8080, "10.199.0.7", 32, deny_by(2));
	assert_passes(&syn, 0, "10.199.0.100 inside the allowed /16");
	syn.src = "10.198.255.1";
	assert_reset(&syn, 0, "10.198.255.1 outside it");
	syn.src = "10.199.0.7";
	assert_reset(&syn, 0, "the /32 denied inside the /16");
	cr_assert_eq(denied(POD4, 8080, 1), 1);
	cr_assert_eq(denied(POD4, 8080, 2), 1);

	/* 9090, the reverse: allowed to all but 10.199.0.0/16. */
	set_authz(POD4, 9090, "0.0.0.0", 0, allow);
	set_authz(POD4, 9090, "10.199.0.0", 16, deny_by(3));
	syn.dport = 9090;
	syn.src = CLIENT4;
	assert_reset(&syn, 0, "10.199.0.100 inside the denied /16");
	syn.src = "10.198.255.1";
	assert_passes(&syn, 0, "10.198.255.1 outside it");
	cr_assert_eq(denied(POD4, 9090, 3), 1);
	cr_assert_eq(denied_entries(), 3);
}

Test(peer_auth, authz_a_port_without_entries_falls_back_to_port_0)
{
	struct xp_spec syn = { .family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 41030, .dport = 9090 };

	ingress_ifindex = UPLINK;
	set_authz(POD4, 0, "0.0.0.0", 0, deny_by(4));
	set_authz(POD4, 8080, "0.0.0.0", 0, allow);
	set_authz(POD4, 7070, "0.0.0.0", 0, deny_by(5));
	set_authz(POD4, 6060, "0.0.0.0", 0, allow);
	assert_reset(&syn, 0, "9090: no entry of its own, the pod's port 0 denies");
	syn.dport = 8080;
	assert_passes(&syn, 0, "8080: its own entry allows");
	syn.dport = 7070;
	assert_reset(&syn, 0, "7070: its own entry denies");
	cr_assert_eq(denied(POD4, 9090, 4), 1, "counted under the attempted port");
	cr_assert_eq(denied(POD4, 0, 4), 0);
	cr_assert_eq(denied(POD4, 7070, 5), 1);

	/* A pod allowed on port 0, one port denied. */
	set_authz(POD4, 0, "0.0.0.0", 0, allow);
	syn.dport = 9090;
	assert_passes(&syn, 0, "9090 under the pod's allowing port 0");
	syn.dport = 7070;
	assert_reset(&syn, 0, "7070 still denied by its own entry");
	syn.dport = 6060;
	assert_passes(&syn, 0, "6060 allowed by its own entry");
	cr_assert_eq(denied(POD4, 7070, 5), 2);
	cr_assert_eq(denied_entries(), 2);
}

Test(peer_auth, authz_no_entry_passes)
{
	struct xp_spec syn = { .family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 41040, .dport = 8080 };

	ingress_ifindex = UPLINK;
	assert_passes(&syn, 0, "no entries at all");
	set_authz("10.200.2.12", 0, "0.0.0.0", 0, deny_by(1)); /* another pod of the same subnet */
	set_authz(POD6, 0, "::", 0, deny_by(1));	       /* the pod's IPv6 address */
	set_authz(POD4, 9090, "0.0.0.0", 0, deny_by(1));       /* another port, no port 0 */
	assert_passes(&syn, 0, "entries for another pod, family and port only");
	cr_assert_eq(denied_entries(), 0);
}

Test(peer_auth, authz_the_agents_mark_passes_a_denied_client)
{
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 41050, .dport = 8080
	};

	set_authz(POD4, 0, "0.0.0.0", 0, deny_by(1));
	ingress_ifindex = UPLINK;
	assert_passes(&syn, XM_MTLS_AGENT_MARK, "the agent's tunnel termination (the tunnel judged it)");
	ingress_ifindex = 0;
	assert_passes(&syn, XM_MTLS_AGENT_MARK, "the agent's mark, no ingress interface");
	ingress_ifindex = UPLINK;
	assert_reset(&syn, XM_MTLS_AGENT_MARK | 0x80000000u, "the mark with another bit set");
	cr_assert_eq(denied(POD4, 8080, 1), 1);
}

Test(peer_auth, authz_the_node_itself_is_not_judged)
{
	struct xp_spec syn = {
		.family = 4, .proto = 6, .src = "10.200.2.1", .dst = POD4, .sport = 41060, .dport = 8080
	};

	set_authz(POD4, 0, "0.0.0.0", 0, deny_by(1));
	ingress_ifindex = 0;
	assert_passes(&syn, 0, "sent by the node (kubelet's probe from the bridge address)");
	syn.src = CLIENT4;
	assert_passes(&syn, 0, "sent by the node (a hostNetwork pod, any source address)");
	ingress_ifindex = UPLINK;
	assert_reset(&syn, 0, "the same SYN from the uplink");
	cr_assert_eq(denied(POD4, 8080, 1), 1);
}

Test(peer_auth, authz_a_local_mesh_pod_gets_deny_local_from_its_veth_only)
{
	struct xp_spec syn = {
		.family = 4, .proto = 6, .src = "10.200.2.12", .dst = POD4, .sport = 41070, .dport = 8080
	};

	add_local_pod("10.200.2.12");
	add_guarded_iface(POD_VETH);
	/* Its identity is allowed, clients without one are not (policy 6). */
	set_authz(POD4, 0, "0.0.0.0", 0, deny_by(6));
	set_authz(POD4, 0, "10.200.2.12", 32, (struct authz_verdict){ .deny = 1, .policy = 6, .deny_local = 0 });
	ingress_ifindex = POD_VETH;
	assert_passes(&syn, 0, "the mesh pod, from its veth: deny_local");
	ingress_ifindex = UPLINK;
	assert_reset(&syn, 0, "its address from the uplink: deny");
	cr_assert_eq(denied(POD4, 8080, 6), 1);

	/* The reverse: its identity is denied (policy 8), a plaintext client of that address is not. */
	set_authz(POD4, 0, "10.200.2.12", 32,
		  (struct authz_verdict){ .deny = 0, .deny_local = 1, .policy = 0, .policy_local = 8 });
	assert_passes(&syn, 0, "its address from the uplink: deny (allowed)");
	ingress_ifindex = POD_VETH;
	assert_reset(&syn, 0, "the mesh pod, from its veth: deny_local (denied)");
	cr_assert_eq(denied(POD4, 8080, 8), 1, "counted with policy_local");

	/* A STRICT port: the mesh pod passes STRICT, then its policy refuses it (counted there, not as STRICT). */
	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	assert_reset(&syn, 0, "STRICT passed, deny_local refused");
	cr_assert_eq(denied(POD4, 8080, 8), 2);
	cr_assert_eq(rejected(POD4, 8080).syns, 0);
}

Test(peer_auth, authz_v6)
{
	struct xp_spec syn = { .family = 6, .proto = 6, .src = CLIENT6, .dst = POD6, .sport = 41080, .dport = 8080 };

	ingress_ifindex = UPLINK;
	set_authz(POD6, 0, "::", 0, deny_by(9));
	set_authz(POD6, 0, "fd00:199::", 32, allow);
	set_authz(POD6, 0, "fd00:199::7", 128, deny_by(10)); /* decided by the address's last bits */
	set_authz(POD4, 0, "0.0.0.0", 0, allow);	     /* the pod's IPv4 address: no answer for IPv6 */
	assert_passes(&syn, 0, "fd00:199::100 inside the allowed /32");
	syn.src = "fd00:198::100";
	assert_reset(&syn, 0, "fd00:198::100 outside it");
	syn.src = "::ffff:10.199.0.100";
	assert_reset(&syn, 0, "a v4-mapped client");
	syn.src = "fd00:199::7";
	assert_reset(&syn, 0, "the /128 denied inside the /32");
	cr_assert_eq(denied(POD6, 8080, 9), 2);
	cr_assert_eq(denied(POD6, 8080, 10), 1);
	cr_assert_eq(denied_entries(), 2);
}

Test(peer_auth, authz_only_the_first_segment_is_judged)
{
	struct xp_spec s = { .family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 41090, .dport = 8080 };

	set_authz(POD4, 0, "0.0.0.0", 0, deny_by(1));
	ingress_ifindex = UPLINK;
	s.tcp_flags = 0x10;
	assert_passes(&s, 0, "ACK of an established connection");
	s.tcp_flags = 0x12;
	assert_passes(&s, 0, "SYN-ACK");
	s.tcp_flags = 0x18;
	s.payload = 100;
	assert_passes(&s, 0, "data");
	s = (struct xp_spec){
		.family = 4, .proto = 17, .src = CLIENT4, .dst = POD4, .sport = 41091, .dport = 8080, .payload = 32
	};
	assert_passes(&s, 0, "UDP");
	cr_assert_eq(denied_entries(), 0);
}

Test(peer_auth, authz_strict_refusal_wins_and_counts_as_strict)
{
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 41100, .dport = 8080
	};

	set_policy(POD4, 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT);
	set_authz(POD4, 0, "0.0.0.0", 0, deny_by(1));
	ingress_ifindex = UPLINK;
	assert_reset(&syn, 0, "both refuse");
	cr_assert_eq(rejected(POD4, 8080).syns, 1);
	cr_assert_eq(denied_entries(), 0, "not counted by the policies");
}

Test(peer_auth, authz_a_full_counter_still_refuses)
{
	const struct xp_spec syn = {
		.family = 4, .proto = 6, .src = CLIENT4, .dst = POD4, .sport = 41110, .dport = 8080
	};
	int n = libbpf_num_possible_cpus();
	uint64_t zero[n];

	memset(zero, 0, sizeof(zero));
	for (uint32_t i = 0; i < XM_MAX_AUTHZ_PLAIN_DENIED; i++) {
		struct xm_authz_plain_count_key k = count_key("10.200.2.99", 1, 1000 + i);

		cr_assert_eq(bpf_map__update_elem(skel->maps.xm_authz_plain_denied, &k, sizeof(k), zero, sizeof(zero),
						  BPF_NOEXIST),
			     0, "fill %u", i);
	}
	set_authz(POD4, 0, "0.0.0.0", 0, deny_by(1));
	ingress_ifindex = UPLINK;
	assert_reset(&syn, 0, "denied with the counter full");
	cr_assert_eq(denied(POD4, 8080, 1), 0, "not counted");
}
