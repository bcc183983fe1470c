// SPDX-License-Identifier: Apache-2.0
/*
 * What the XDP path reports about the TCP flows it balances (bpf/lib/xdp_flow.h), through
 * BPF_PROG_TEST_RUN with crafted packets: handshake outcomes for outlier detection (a retransmitted SYN
 * and a local backend's RST are failures, the client's ACK and a local backend's SYN-ACK successes), an
 * ejection that the very next SYN already avoids, and Istio's TCP counters per (service port, backend).
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <xmesh/outlier.h>

#include "datapath/tcp_counters.h"
#include "skel/xdp_lb.skel.h"
#include "xdp_fixture.h"

#define CLIENT "198.51.100.7"
#define VIP    "10.97.0.40"
#define N_PODS 3

#define F_FIN 0x01
#define F_SYN 0x02
#define F_RST 0x04
#define F_ACK 0x10

static const char *const pods[N_PODS] = { "10.200.1.11", "10.200.1.12", "10.200.1.13" };

static void setup(void)
{
	xfx_setup();
}

TestSuite(xdp_flow, .init = setup, .fini = xfx_teardown, .timeout = XFX_SUITE_TIMEOUT);

/* The VIP over the first n local pods; with c5xx > 0, outlier detection (maxEjectionPercent 100). */
static void publish(int n, uint32_t c5xx)
{
	struct xfx_backend b[N_PODS];
	struct xm_outlier_detection od;
	int i;

	for (i = 0; i < n; i++)
		b[i] = (struct xfx_backend){ pods[i], 8080, true, true, NULL };
	memset(&od, 0, sizeof(od));
	config_outlier_defaults(&od);
	od.set = true;
	od.consecutive_5xx_errors = c5xx;
	od.base_ejection_time_ms = 30000;
	od.max_ejection_percent = 100;
	xfx_publish_od(VIP, 80, 6, b, n, c5xx ? &od : NULL);
}

static uint32_t svc_id(void)
{
	struct xm_svc_key k;

	memset(&k, 0, sizeof(k));
	k.family = XM_FAMILY_V4;
	inet_pton(AF_INET, VIP, k.vip.bytes);
	k.port = htons(80);
	k.proto = 6;
	return lbmap_svc_id(xfx.lbmap, &k);
}

static uint32_t backend_id(int pod)
{
	union xm_addr a;

	memset(&a, 0, sizeof(a));
	inet_pton(AF_INET, pods[pod], a.bytes);
	return lbmap_backend_id(xfx.lbmap, &a, htons(8080), XM_FAMILY_V4);
}

/* A client packet through XDP; returns the pod it was DNATed to, or -1. */
static int client(uint16_t sport, uint8_t flags, int payload)
{
	struct xp_spec s = { .family = 4, .proto = 6, .src = CLIENT, .dst = VIP, .sport = sport, .dport = 80 };
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len, out_len;
	char dst[INET_ADDRSTRLEN];
	int i;

	s.tcp_flags = flags;
	s.payload = payload;
	len = xp_build(&s, in);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_PASS, "client packet port %u flags %#x", sport, flags);
	inet_ntop(AF_INET, out + 14 + 16, dst, sizeof(dst));
	for (i = 0; i < N_PODS; i++)
		if (!strcmp(dst, pods[i]))
			return i;
	return -1;
}

/* A reply of pod through TC egress; checks that it was reverse-NATed (so its flow was found). */
static void reply(int pod, uint16_t cport, uint8_t flags, int payload)
{
	struct xp_spec s = { .family = 4, .proto = 6, .src = pods[pod], .dst = CLIENT, .sport = 8080, .dport = cport };
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len, out_len;
	char src[INET_ADDRSTRLEN];

	s.tcp_flags = flags;
	s.payload = payload;
	len = xp_build(&s, in);
	cr_assert_eq(xfx_run_tc(in, len, out, &out_len), 0);
	inet_ntop(AF_INET, out + 14 + 12, src, sizeof(src));
	cr_assert_str_eq(src, VIP, "reply of %s to port %u not reverse-NATed", pods[pod], cport);
}

static struct xm_outlier_state outlier_of(int pod)
{
	struct xm_outlier_key k = { .svc_id = svc_id(), .backend_id = backend_id(pod) };
	struct xm_outlier_state st;

	memset(&st, 0, sizeof(st));
	bpf_map_lookup_elem(xfx.fds.outlier, &k, &st);
	return st;
}

/* The pair's counters as the agent reads them (summed over CPUs); all zero when the pair has no position. */
static struct xm_xdp_tcp_metrics metrics_of_pair(uint32_t svc, uint32_t backend)
{
	struct xm_xdp_tcp_metrics *all, sum;
	int n = tcp_counters_read(bpf_map__fd(xfx.skel->maps.xm_xdp_tcp_counters), &all), i;

	cr_assert_geq(n, 0, "tcp_counters_read: %d", n);
	memset(&sum, 0, sizeof(sum));
	for (i = 0; i < n; i++)
		if (all[i].svc_id == svc && all[i].backend_id == backend)
			sum = all[i];
	free(all);
	return sum;
}

static struct xm_xdp_tcp_metrics metrics_of(int pod)
{
	return metrics_of_pair(svc_id(), backend_id(pod));
}

/* How many pairs have a position. */
static int placed_pairs(void)
{
	struct xm_xdp_tcp_metrics *all;
	int n = tcp_counters_read(bpf_map__fd(xfx.skel->maps.xm_xdp_tcp_counters), &all);

	free(all);
	return n;
}

static uint32_t ct_state(uint16_t sport)
{
	struct xm_ct_key k;
	struct xm_ct_value v;

	memset(&k, 0, sizeof(k));
	inet_pton(AF_INET, CLIENT, k.saddr.bytes);
	inet_pton(AF_INET, VIP, k.daddr.bytes);
	k.sport = htons(sport);
	k.dport = htons(80);
	k.proto = 6;
	k.family = XM_FAMILY_V4;
	cr_assert_eq(bpf_map_lookup_elem(bpf_map__fd(xfx.skel->maps.xm_ct), &k, &v), 0, "no flow for port %u", sport);
	return v.state;
}

/* A client port whose new flow Maglev gives to pod, starting the search at *next. */
static uint16_t port_for(int pod, uint16_t *next)
{
	while (*next < 60000) {
		uint16_t p = (*next)++;

		if (client(p, F_SYN, 0) == pod) {
			client(p, F_RST, 0); /* the client gives up: no verdict, the flow is done */
			return p;
		}
	}
	cr_assert_fail("no client port maps to %s", pods[pod]);
	return 0;
}

Test(xdp_flow, retransmitted_syn_is_one_failure_and_ack_a_success)
{
	publish(1, 5);
	cr_assert_eq(client(42000, F_SYN, 0), 0);
	cr_assert_eq(ct_state(42000), XM_CT_SYN_SENT);
	cr_assert_eq(outlier_of(0).consecutive_5xx, 0, "a first SYN is no failure");
	cr_assert_eq(client(42000, F_SYN, 0), 0);
	cr_assert_eq(outlier_of(0).consecutive_local, 1, "the retransmitted SYN is a local-origin failure");
	cr_assert_eq(outlier_of(0).consecutive_5xx, 1, "unsplit, it counts toward consecutive5xxErrors");
	cr_assert_eq(ct_state(42000), XM_CT_SYN_FAILED);
	client(42000, F_SYN, 0);
	client(42000, F_SYN, 0);
	cr_assert_eq(outlier_of(0).consecutive_5xx, 1, "one failure per connection, however many retransmissions");

	/* A second connection that also times out once: the run grows to 2. */
	client(42001, F_SYN, 0);
	client(42001, F_SYN, 0);
	cr_assert_eq(outlier_of(0).consecutive_5xx, 2);
	/* The first connection completes at last: the client's ACK is a success, the run starts over. */
	cr_assert_eq(client(42000, F_ACK, 0), 0);
	cr_assert_eq(ct_state(42000), XM_CT_OPEN);
	cr_assert_eq(outlier_of(0).consecutive_5xx, 0, "the ACK did not end the run of failures");
	cr_assert_eq(outlier_of(0).consecutive_local, 0);
	cr_assert_eq(metrics_of(0).opened, 1);
	/* Later ACKs change nothing. */
	client(42000, F_ACK, 10);
	cr_assert_eq(metrics_of(0).opened, 1);
}

Test(xdp_flow, local_backend_rst_is_failure_and_syn_ack_success)
{
	publish(1, 5);
	client(43000, F_SYN, 0);
	reply(0, 43000, F_RST | F_ACK, 0); /* connection refused */
	cr_assert_eq(outlier_of(0).consecutive_5xx, 1, "a refused SYN is a failure");
	cr_assert_eq(ct_state(43000), XM_CT_NONE);
	reply(0, 43000, F_RST | F_ACK, 0);
	cr_assert_eq(outlier_of(0).consecutive_5xx, 1, "a second RST of the same connection counts no more");
	cr_assert_eq(metrics_of(0).opened, 0, "a refused connection is not opened");
	cr_assert_eq(metrics_of(0).closed, 0, "a refused connection is not closed");

	/* Retransmitted, then refused: still one failure for the connection. */
	client(43001, F_SYN, 0);
	client(43001, F_SYN, 0);
	reply(0, 43001, F_RST | F_ACK, 0);
	cr_assert_eq(outlier_of(0).consecutive_5xx, 2);

	client(43002, F_SYN, 0);
	reply(0, 43002, F_SYN | F_ACK, 0);
	cr_assert_eq(ct_state(43002), XM_CT_OPEN);
	cr_assert_eq(outlier_of(0).consecutive_5xx, 0, "the SYN-ACK did not end the run of failures");
	cr_assert_eq(metrics_of(0).opened, 1);
	client(43002, F_ACK, 0); /* the client's ACK after it: the same connection, not opened twice */
	cr_assert_eq(metrics_of(0).opened, 1);
}

Test(xdp_flow, ejected_at_threshold_and_next_syn_avoids_it)
{
	uint16_t next = 44000, doomed[4];
	int i, n[N_PODS] = { 0 };

	publish(N_PODS, 3);
	for (i = 0; i < 4; i++)
		doomed[i] = port_for(2, &next);
	for (i = 0; i < 3; i++) {
		cr_assert_eq(client(doomed[i], F_SYN, 0), 2, "a reused port keeps its pinned backend");
		cr_assert_eq(outlier_of(2).ejected_until_ns, 0, "ejected after %d failures", i);
		reply(2, doomed[i], F_RST | F_ACK, 0);
	}
	cr_assert_neq(outlier_of(2).ejected_until_ns, 0, "3 refused connects did not eject %s", pods[2]);
	cr_assert_eq(outlier_of(2).times_ejected, 1);
	/* A new connection on a port pinned to the ejected pod goes elsewhere at once. */
	cr_assert_neq(client(doomed[3], F_SYN, 0), 2, "a new SYN still went to the ejected pod");
	for (i = 0; i < 300; i++) {
		int pod = client((uint16_t)(next + i), F_SYN, 0);

		cr_assert(pod >= 0, "flow %d not DNATed to a pod", i);
		n[pod]++;
	}
	cr_assert_eq(n[2], 0, "%d of 300 new flows went to the ejected pod", n[2]);
	cr_assert(n[0] > 60 && n[1] > 60, "new flows not spread over the others: %d/%d", n[0], n[1]);
}

Test(xdp_flow, retransmitted_syn_that_ejects_goes_elsewhere)
{
	uint16_t next = 45000, port;
	int pod;

	publish(N_PODS, 1);
	port = port_for(1, &next);
	cr_assert_eq(client(port, F_SYN, 0), 1);
	/* Its retransmission is the failure that ejects pod 1; the same packet already avoids it. */
	pod = client(port, F_SYN, 0);
	cr_assert_neq(outlier_of(1).ejected_until_ns, 0, "one timed-out SYN did not eject (consecutive5xxErrors 1)");
	cr_assert(pod == 0 || pod == 2, "the retransmitted SYN went to %d", pod);
	cr_assert_eq(ct_state(port), XM_CT_SYN_SENT, "re-pinned flow is a new attempt");
	reply(pod, port, F_SYN | F_ACK, 0);
	cr_assert_eq(metrics_of(pod).opened, 1);
	cr_assert_eq(metrics_of(1).opened, 0);
}

Test(xdp_flow, istio_tcp_counters)
{
	struct xm_xdp_tcp_metrics m;
	int i;

	publish(1, 0); /* no outlier detection: the metrics do not depend on it */
	for (i = 0; i < 4; i++) {
		uint16_t port = (uint16_t)(46000 + i);

		client(port, F_SYN, 0);
		reply(0, port, F_SYN | F_ACK, 0);
		client(port, F_ACK, 0);
		client(port, F_ACK, 100);		/* request */
		reply(0, port, F_ACK, 3);		/* response */
		reply(0, port, F_ACK, 40);		/* more response */
		client(port, F_FIN | F_ACK, i ? 0 : 7); /* the client closes (the first with a last request) */
		reply(0, port, F_FIN | F_ACK, 0);	/* the backend's FIN: the same close */
		client(port, F_ACK, 0);
	}
	/* A fifth connection that the backend resets. */
	client(46010, F_SYN, 0);
	reply(0, 46010, F_SYN | F_ACK, 0);
	client(46010, F_ACK, 20);
	reply(0, 46010, F_RST | F_ACK, 0);
	/* And a refused one: neither opened nor closed. */
	client(46011, F_SYN, 0);
	reply(0, 46011, F_RST | F_ACK, 0);
	m = metrics_of(0);
	cr_assert_eq(m.opened, 5, "opened %llu", (unsigned long long)m.opened);
	cr_assert_eq(m.closed, 5, "closed %llu", (unsigned long long)m.closed);
	cr_assert_eq(m.received_bytes, 4 * 100 + 7 + 20, "received %llu", (unsigned long long)m.received_bytes);
	cr_assert_eq(m.sent_bytes, 4 * 43, "sent %llu", (unsigned long long)m.sent_bytes);
}

Test(xdp_flow, udp_flows_count_nothing)
{
	struct xfx_backend b = { pods[0], 5353, true, true, NULL };
	struct xp_spec s = { .family = 4, .proto = 17, .src = CLIENT, .dst = VIP, .sport = 47000, .dport = 53 };
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len, out_len;
	int i;

	xfx_publish(VIP, 53, 17, &b, 1);
	cr_assert_eq(placed_pairs(), 0, "a UDP service port got TCP counters");
	s.payload = 12;
	len = xp_build(&s, in);
	for (i = 0; i < 3; i++)
		cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_PASS);
	cr_assert_eq(placed_pairs(), 0, "UDP packets created TCP counters");
}

/*
 * The agent gives every (service port, local backend) pair a position and frees those of pairs that are
 * gone; a flow still pinned to a gone backend counts nowhere, not even in a position given to another
 * pair since (the owner check).
 */
Test(xdp_flow, counters_follow_the_backend_set)
{
	uint16_t next = 48000, p0, p1;
	uint32_t gone;
	struct xm_xdp_tcp_metrics m;

	publish(N_PODS, 0);
	cr_assert_eq(placed_pairs(), N_PODS);
	p0 = port_for(0, &next);
	p1 = port_for(1, &next);
	client(p0, F_SYN, 0);
	client(p1, F_SYN, 0);
	client(p0, F_ACK, 10);
	client(p1, F_ACK, 20);
	cr_assert_eq(metrics_of(0).received_bytes, 10);
	cr_assert_eq(metrics_of(1).received_bytes, 20);
	gone = backend_id(1);

	publish(1, 0); /* pods 1 and 2 leave the service */
	cr_assert_eq(placed_pairs(), 1, "positions of gone pairs not freed");
	m = metrics_of(0);
	cr_assert_eq(m.received_bytes, 10, "a kept pair lost its counts: %llu", (unsigned long long)m.received_bytes);
	cr_assert_eq(client(p1, F_ACK, 30), 1, "the pinned flow keeps its backend");
	cr_assert_eq(metrics_of_pair(svc_id(), gone).received_bytes, 0);
	cr_assert_eq(metrics_of(0).received_bytes, 10, "a gone pair's flow counted in another pair's position");
	client(p0, F_ACK, 5);
	cr_assert_eq(metrics_of(0).received_bytes, 15);
}

/* Many pairs (3 service ports x 60 local backends): every one gets a position, probing past taken ones. */
Test(xdp_flow, counters_place_many_pairs)
{
	enum {
		N = 60
	};
	static char addrs[N][INET_ADDRSTRLEN];
	static const char *const vips[3] = { "10.97.0.41", "10.97.0.42", "10.97.0.43" };
	struct xfx_backend b[N];
	int i;

	for (i = 0; i < N; i++) {
		snprintf(addrs[i], sizeof(addrs[i]), "10.201.0.%d", 1 + i);
		b[i] = (struct xfx_backend){ addrs[i], 8080, true, true, NULL };
	}
	for (i = 0; i < 3; i++)
		xfx_publish(vips[i], 80, 6, b, N);
	cr_assert_eq(placed_pairs(), 3 * N);
}
