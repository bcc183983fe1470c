// SPDX-License-Identifier: Apache-2.0
/*
 * Outlier state is per Service port, whatever address its clients use (issue #14; Envoy and Istio keep it
 * per cluster): an endpoint ejected through a Service port's ClusterIP entry (the L7 proxy's and the socket
 * LB's reports) is skipped by the XDP program for the same port's externalIP, and one ejected by XDP flows
 * to the externalIP is ejected for the ClusterIP too; another Service listing the same pod (the same backend
 * id) keeps sending to it. The xdp_lb object runs the packets (BPF_PROG_TEST_RUN); sock_lb's
 * xm_outlier_report, loaded on the same maps, is the door the agent's L7 proxy reports through.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include <xmesh/outlier.h>

#include "outlier/outlier.h"
#include "skel/sock_lb.skel.h"
#include "skel/xdp_lb.skel.h"
#include "xdp_fixture.h"

#define CLIENT	   "198.51.100.9"
#define CLUSTER_IP "10.96.0.40"
#define EXT_IP	   "10.97.0.40"
#define OTHER_IP   "10.97.0.41" /* another Service's externalIP, over the same pods */
#define N_PODS	   3

#define F_SYN 0x02
#define F_RST 0x04
#define F_ACK 0x10

static const char *const pods[N_PODS] = { "10.200.1.21", "10.200.1.22", "10.200.1.23" };
static struct sock_lb *report_skel;

/* sock_lb loaded unpinned on xdp_lb's maps where both have one: its report program sees XDP's state. */
static void setup(void)
{
	struct bpf_map *map, *mine;

	xfx_setup();
	if (xfx.skipped)
		return;
	report_skel = sock_lb__open();
	cr_assert(report_skel, "open sock_lb");
	bpf_object__for_each_map (map, report_skel->obj) {
		bpf_map__set_pin_path(map, NULL);
		mine = bpf_object__find_map_by_name(xfx.skel->obj, bpf_map__name(map));
		if (mine)
			cr_assert_eq(bpf_map__reuse_fd(map, bpf_map__fd(mine)), 0, "reuse %s", bpf_map__name(map));
	}
	cr_assert_eq(sock_lb__load(report_skel), 0, "load sock_lb on xdp_lb's maps");
}

static void teardown(void)
{
	sock_lb__destroy(report_skel);
	report_skel = NULL;
	xfx_teardown();
}

TestSuite(outlier_vip, .init = setup, .fini = teardown, .timeout = XFX_SUITE_TIMEOUT);

static struct xm_outlier_detection policy(void)
{
	struct xm_outlier_detection od;

	memset(&od, 0, sizeof(od));
	config_outlier_defaults(&od);
	od.set = true;
	od.consecutive_5xx_errors = 3;
	od.base_ejection_time_ms = 30000;
	od.max_ejection_percent = 100;
	return od;
}

/* Service test/web port 80 on its ClusterIP and its externalIP, test/other on OTHER_IP: the same pods. */
static void publish(void)
{
	struct xm_outlier_detection od = policy();
	struct xfx_backend b[N_PODS];
	int i;

	for (i = 0; i < N_PODS; i++)
		b[i] = (struct xfx_backend){ pods[i], 8080, true, true, NULL };
	xfx_publish_svc("web", CLUSTER_IP, false, 80, 6, b, N_PODS, &od);
	xfx_publish_svc("web", EXT_IP, true, 80, 6, b, N_PODS, &od);
	xfx_publish_svc("other", OTHER_IP, true, 80, 6, b, N_PODS, &od);
}

static struct xm_svc_key key_of(const char *vip)
{
	struct xm_svc_key k;

	memset(&k, 0, sizeof(k));
	k.family = XM_FAMILY_V4;
	inet_pton(AF_INET, vip, k.vip.bytes);
	k.port = htons(80);
	k.proto = 6;
	return k;
}

static uint32_t svc_id(const char *vip)
{
	struct xm_svc_key k = key_of(vip);
	uint32_t id = lbmap_svc_id(xfx.lbmap, &k);

	cr_assert_neq(id, 0, "%s not published", vip);
	return id;
}

static uint32_t outlier_id(const char *vip)
{
	struct xm_svc_key k = key_of(vip);

	return lbmap_outlier_id(xfx.lbmap, &k);
}

static uint32_t backend_id(int pod)
{
	union xm_addr a;

	memset(&a, 0, sizeof(a));
	inet_pton(AF_INET, pods[pod], a.bytes);
	return lbmap_backend_id(xfx.lbmap, &a, htons(8080), XM_FAMILY_V4);
}

/* A client packet to vip:80 through XDP: asserts XDP_PASS and returns the pod whose address the bytes carry. */
static int client(const char *vip, uint16_t sport, uint8_t flags)
{
	struct xp_spec s = { .family = 4, .proto = 6, .src = CLIENT, .dst = vip, .sport = sport, .dport = 80 };
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len, out_len;
	char dst[INET_ADDRSTRLEN], why[128];
	int i;

	s.tcp_flags = flags;
	len = xp_build(&s, in);
	cr_assert_eq(xfx_run_xdp(in, len, out, &out_len), XDP_PASS, "packet to %s port %u", vip, sport);
	cr_assert_eq(out_len, len, "a local backend's packet is DNATed in place");
	cr_assert(xp_csums_ok(out, out_len, why, sizeof(why)), "checksums after DNAT: %s", why);
	inet_ntop(AF_INET, out + 14 + 16, dst, sizeof(dst));
	for (i = 0; i < N_PODS; i++)
		if (!strcmp(dst, pods[i]))
			return i;
	cr_assert_fail("packet to %s DNATed to %s, no pod", vip, dst);
	return -1;
}

/* A local pod's reply through TC egress (reverse-NATed to vip: its flow was found). */
static void reply(const char *vip, int pod, uint16_t cport, uint8_t flags)
{
	struct xp_spec s = { .family = 4, .proto = 6, .src = pods[pod], .dst = CLIENT, .sport = 8080, .dport = cport };
	uint8_t in[XP_MAX], out[XP_MAX];
	size_t len, out_len;
	char src[INET_ADDRSTRLEN];

	s.tcp_flags = flags;
	len = xp_build(&s, in);
	cr_assert_eq(xfx_run_tc(in, len, out, &out_len), 0);
	inet_ntop(AF_INET, out + 14 + 12, src, sizeof(src));
	cr_assert_str_eq(src, vip, "reply of %s to port %u not reverse-NATed", pods[pod], cport);
}

/* New flows (SYNs from fresh ports, each abandoned with a RST) to vip, counted per pod. */
static void spread(const char *vip, uint16_t first_port, int flows, int n[N_PODS])
{
	memset(n, 0, N_PODS * sizeof(n[0]));
	for (int i = 0; i < flows; i++) {
		uint16_t port = (uint16_t)(first_port + i);

		n[client(vip, port, F_SYN)]++;
		client(vip, port, F_RST);
	}
}

/* Through the door the L7 proxy uses; PROBE answers 1 (XDP_DROP) while the endpoint is ejected. */
static int report(uint32_t svc, int pod, enum xm_outlier_report_kind kind, uint32_t status)
{
	int rc =
	    outlier_report(bpf_program__fd(report_skel->progs.xm_outlier_report), svc, backend_id(pod), kind, status);

	cr_assert(rc >= 0, "outlier_report: %s", strerror(-rc));
	return rc;
}

static bool has_state(uint32_t key_id, int pod)
{
	struct xm_outlier_key k = { .svc_id = key_id, .backend_id = backend_id(pod) };
	struct xm_outlier_state st;

	return bpf_map_lookup_elem(xfx.fds.outlier, &k, &st) == 0;
}

static int ejected_count(uint32_t oid)
{
	struct xm_outlier_svc s = { 0 };

	cr_assert_eq(bpf_map_lookup_elem(xfx.fds.outlier_svc, &oid, &s), 0);
	return s.ejected;
}

Test(outlier_vip, one_id_per_service_port)
{
	publish();
	cr_assert_neq(svc_id(CLUSTER_IP), svc_id(EXT_IP), "each VIP keeps its own svc_id (per-VIP counters)");
	cr_assert_eq(outlier_id(CLUSTER_IP), svc_id(CLUSTER_IP), "the ClusterIP's id keys the port's outlier state");
	cr_assert_eq(outlier_id(EXT_IP), svc_id(CLUSTER_IP), "the externalIP shares the ClusterIP's outlier state");
	cr_assert_eq(outlier_id(OTHER_IP), svc_id(OTHER_IP), "another Service has its own");
	/* The policy is published once, under the shared id. */
	{
		struct xm_outlier_cfg cfg;
		uint32_t ext = svc_id(EXT_IP), oid = outlier_id(EXT_IP);

		cr_assert_eq(bpf_map_lookup_elem(xfx.fds.outlier_cfg, &oid, &cfg), 0);
		cr_assert_eq(cfg.consecutive_5xx, 3);
		cr_assert_eq(cfg.n_endpoints, N_PODS);
		cr_assert_neq(bpf_map_lookup_elem(xfx.fds.outlier_cfg, &ext, &cfg), 0, "a policy under the VIP's id");
	}
}

Test(outlier_vip, ejected_through_cluster_ip_is_skipped_by_xdp_for_the_external_ip)
{
	int n[N_PODS], i;

	publish();
	spread(EXT_IP, 20000, 150, n);
	cr_assert(n[2] > 0, "before any ejection, no flow to %s went to pod 2", EXT_IP);

	/* The L7 proxy saw three 500s from pod 2 through the ClusterIP: consecutive5xxErrors 3 ejects it. */
	for (i = 0; i < 3; i++) {
		cr_assert_eq(report(svc_id(CLUSTER_IP), 2, XM_REPORT_PROBE, 0), 0, "ejected after %d 5xx", i);
		report(svc_id(CLUSTER_IP), 2, XM_REPORT_HTTP, 500);
	}
	cr_assert_eq(report(svc_id(CLUSTER_IP), 2, XM_REPORT_PROBE, 0), 1, "three 500s did not eject pod 2");
	cr_assert_eq(ejected_count(svc_id(CLUSTER_IP)), 1);
	cr_assert(!has_state(svc_id(EXT_IP), 2), "state kept under the externalIP's own id");

	/* XDP's new flows to the externalIP avoid it; the other Service's flows still reach it. */
	spread(EXT_IP, 21000, 300, n);
	cr_assert_eq(n[2], 0, "%d of 300 new flows to %s went to the ejected pod", n[2], EXT_IP);
	cr_assert(n[0] > 60 && n[1] > 60, "new flows not spread over the others: %d/%d", n[0], n[1]);
	spread(OTHER_IP, 22000, 300, n);
	cr_assert(n[2] > 40, "the unrelated Service's flows avoid pod 2 too: %d/%d/%d", n[0], n[1], n[2]);
	cr_assert_eq(report(svc_id(OTHER_IP), 2, XM_REPORT_PROBE, 0), 0, "pod 2 ejected for the other Service");
}

Test(outlier_vip, ejected_through_the_external_ip_is_ejected_for_the_cluster_ip)
{
	uint16_t port = 23000;
	int refused = 0, n[N_PODS];

	publish();
	/* Three connections to the externalIP that pod 2 refuses (RST from the local backend, seen by TC). */
	while (refused < 3) {
		cr_assert(port < 24000, "no flow to %s went to pod 2", EXT_IP);
		if (client(EXT_IP, port, F_SYN) == 2) {
			reply(EXT_IP, 2, port, F_RST | F_ACK);
			refused++;
		} else {
			client(EXT_IP, port, F_RST);
		}
		port++;
	}
	cr_assert(has_state(svc_id(CLUSTER_IP), 2), "XDP's reports went elsewhere than the port's state");
	cr_assert_eq(report(svc_id(EXT_IP), 2, XM_REPORT_PROBE, 0), 1, "three refused connects did not eject pod 2");
	cr_assert_eq(report(svc_id(CLUSTER_IP), 2, XM_REPORT_PROBE, 0), 1,
		     "pod 2, ejected through the externalIP, is not ejected for the ClusterIP");
	cr_assert_eq(ejected_count(outlier_id(CLUSTER_IP)), 1);
	cr_assert_eq(report(svc_id(OTHER_IP), 2, XM_REPORT_PROBE, 0), 0, "pod 2 ejected for the other Service");
	spread(OTHER_IP, 25000, 300, n);
	cr_assert(n[2] > 40, "the unrelated Service's flows avoid pod 2: %d/%d/%d", n[0], n[1], n[2]);

	/* A 500 from pod 1 through the ClusterIP counts in the state XDP's flows to the externalIP use. */
	cr_assert_eq(report(svc_id(CLUSTER_IP), 1, XM_REPORT_HTTP, 500), 0);
	{
		struct xm_outlier_key k = { .svc_id = outlier_id(EXT_IP), .backend_id = backend_id(1) };
		struct xm_outlier_state st;

		cr_assert_eq(bpf_map_lookup_elem(xfx.fds.outlier, &k, &st), 0);
		cr_assert_eq(st.consecutive_5xx, 1, "a 500 through the ClusterIP not counted in the port's state");
	}
}

Test(outlier_vip, an_external_ip_added_later_joins_the_ports_state)
{
	struct xm_outlier_detection od = policy();
	struct xfx_backend b[N_PODS];
	uint32_t cluster;
	int n[N_PODS], i;

	for (i = 0; i < N_PODS; i++)
		b[i] = (struct xfx_backend){ pods[i], 8080, true, true, NULL };
	xfx_publish_svc("web", CLUSTER_IP, false, 80, 6, b, N_PODS, &od);
	cluster = svc_id(CLUSTER_IP);
	for (i = 0; i < 3; i++)
		report(cluster, 0, XM_REPORT_HTTP, 503);
	cr_assert_eq(report(cluster, 0, XM_REPORT_PROBE, 0), 1, "three 503s did not eject pod 0");

	/* The Service gets an externalIP: it joins the port's state, the ejection holds for it at once. */
	xfx_publish_svc("web", EXT_IP, true, 80, 6, b, N_PODS, &od);
	cr_assert_eq(svc_id(CLUSTER_IP), cluster);
	cr_assert_eq(outlier_id(EXT_IP), cluster);
	cr_assert_eq(ejected_count(cluster), 1, "the port's ejected count was reset by the new VIP");
	spread(EXT_IP, 26000, 300, n);
	cr_assert_eq(n[0], 0, "%d of 300 flows to the new externalIP went to the ejected pod", n[0]);
	cr_assert(n[1] > 60 && n[2] > 60, "new flows not spread over the others: %d/%d", n[1], n[2]);
}

/* A VIP of Service test/NAME port 80 over the pods, with outlier detection, as the compiler makes it. */
static void service_of(struct xm_lb_service *s, struct xm_lb_backend *be, const char *name, const char *vip,
		       bool external, const struct xm_outlier_detection *od)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->ns, sizeof(s->ns), "test");
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->key = key_of(vip);
	s->algo = XM_LB_MAGLEV;
	s->flags = external ? XM_SVC_F_EXTERNAL : 0;
	s->maglev_size = XFX_MAGLEV;
	s->outlier_on = true;
	s->outlier = *od;
	for (int i = 0; i < N_PODS; i++) {
		memset(&be[i], 0, sizeof(be[i]));
		be[i].family = XM_FAMILY_V4;
		inet_pton(AF_INET, pods[i], be[i].addr.bytes);
		be[i].port = 8080;
		be[i].ready = true;
		be[i].local = true;
	}
	s->backends = be;
	s->n_backends = N_PODS;
	s->n_ready = N_PODS;
}

Test(outlier_vip, the_cluster_ip_removed_the_external_ip_takes_over_with_a_fresh_state)
{
	struct xm_outlier_detection od = policy();
	struct xm_lb_backend be[N_PODS];
	struct xm_lb_service ext;
	struct xm_lb_state st = { .services = &ext, .n_services = 1 };
	struct xm_lbmap_stats stats;
	struct xm_outlier_cfg cfg;
	uint32_t cluster, ext_id, mapped = 0;
	int n[N_PODS], i;

	publish();
	cluster = svc_id(CLUSTER_IP);
	ext_id = svc_id(EXT_IP);
	for (i = 0; i < 3; i++)
		report(cluster, 1, XM_REPORT_HTTP, 500);
	cr_assert_eq(report(ext_id, 1, XM_REPORT_PROBE, 0), 1, "three 500s did not eject pod 1");

	/* Only the externalIP is left (the other Service goes too): its own id keys the port's state now. */
	service_of(&ext, be, "web", EXT_IP, true, &od);
	cr_assert_eq(lbmap_apply(xfx.lbmap, &st, 1000000, &stats), 0);
	lbmap_assign_ids(xfx.lbmap, &st);
	cr_assert_eq(ext.svc_id, ext_id, "the externalIP kept its svc_id");
	cr_assert_eq(ext.outlier_id, ext_id, "the externalIP's outlier id is its own once the ClusterIP is gone");
	cr_assert_eq(bpf_map_lookup_elem(xfx.fds.outlier_ids, &ext_id, &mapped), 0);
	cr_assert_eq(mapped, ext_id, "xm_outlier_ids not updated before publishing");
	cr_assert_eq(bpf_map_lookup_elem(xfx.fds.outlier_cfg, &ext_id, &cfg), 0, "no policy under the new id");
	cr_assert_neq(bpf_map_lookup_elem(xfx.fds.outlier_cfg, &cluster, &cfg), 0, "the old id's policy stays");
	cr_assert(!has_state(cluster, 1), "the old id's endpoint state stays");
	cr_assert_eq(report(ext_id, 1, XM_REPORT_PROBE, 0), 0, "pod 1 still ejected under a fresh state");
	spread(EXT_IP, 27000, 300, n);
	cr_assert(n[1] > 40, "pod 1 gets no flows after the re-keying: %d/%d/%d", n[0], n[1], n[2]);
}
