// SPDX-License-Identifier: Apache-2.0
/*
 * The reverse-NAT table's draining (agent/datapath/xdp_nat.c) on real kernel maps: a backend that the
 * config stops selecting keeps its (backend, VIP:port) pair while a connection-table flow pins it, loses
 * it once no flow does or after XM_NAT_DRAIN_MAX_MS, and a selected one is written as before.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <criterion/criterion.h>
#include <string.h>
#include <unistd.h>

#include "datapath/xdp_nat.h"

#define VIP "10.97.0.10"

static int nat_fd = -1, ct_fd = -1;
static struct xm_nat_drain drain;

static void setup(void)
{
	nat_fd = bpf_map_create(BPF_MAP_TYPE_HASH, "t_nat", sizeof(struct xm_nat_backend_key),
				sizeof(struct xm_nat_backend_value), 64, NULL);
	ct_fd = bpf_map_create(BPF_MAP_TYPE_LRU_HASH, "t_ct", sizeof(struct xm_ct_key), sizeof(struct xm_ct_value),
			       1024, NULL);
	cr_assert(nat_fd >= 0 && ct_fd >= 0, "bpf_map_create");
	memset(&drain, 0, sizeof(drain));
}

static void teardown(void)
{
	xdp_nat_drain_free(&drain);
	close(nat_fd);
	close(ct_fd);
}

TestSuite(xdp_nat, .init = setup, .fini = teardown, .timeout = 30);

static struct xm_lb_backend pod(const char *ip, bool ready)
{
	struct xm_lb_backend b;

	memset(&b, 0, sizeof(b));
	inet_pton(AF_INET, ip, &b.addr.v4);
	b.port = 8080;
	b.family = XM_FAMILY_V4;
	b.ready = ready;
	b.local = true;
	return b;
}

/* The external VIP:80/TCP over backends b (ready or not as given). */
static void serve(struct xm_lb_state *st, struct xm_lb_service *s, struct xm_lb_backend *b, size_t n)
{
	memset(s, 0, sizeof(*s));
	inet_pton(AF_INET, VIP, &s->key.vip.v4);
	s->key.port = htons(80);
	s->key.proto = IPPROTO_TCP;
	s->key.family = XM_FAMILY_V4;
	s->flags = XM_SVC_F_EXTERNAL;
	s->backends = b;
	s->n_backends = n;
	st->services = s;
	st->n_services = 1;
}

static struct xm_nat_backend_key key_of(const char *ip)
{
	struct xm_nat_backend_key k;

	memset(&k, 0, sizeof(k));
	inet_pton(AF_INET, ip, &k.addr.v4);
	k.port = htons(8080);
	k.proto = IPPROTO_TCP;
	k.family = XM_FAMILY_V4;
	return k;
}

/* A flow from a client to the VIP, pinned to the local backend ip. */
static struct xm_ct_key pin_flow(const char *ip, uint16_t cport)
{
	struct xm_ct_key k;
	struct xm_ct_value v;

	memset(&k, 0, sizeof(k));
	memset(&v, 0, sizeof(v));
	inet_pton(AF_INET, "198.51.100.7", &k.saddr.v4);
	inet_pton(AF_INET, VIP, &k.daddr.v4);
	k.sport = htons(cport);
	k.dport = htons(80);
	k.proto = IPPROTO_TCP;
	k.family = XM_FAMILY_V4;
	inet_pton(AF_INET, ip, &v.addr.v4);
	v.port = htons(8080);
	v.family = XM_FAMILY_V4;
	v.flags = XM_BACKEND_F_LOCAL;
	cr_assert_eq(bpf_map_update_elem(ct_fd, &k, &v, BPF_ANY), 0);
	return k;
}

static bool has_pair(const char *ip)
{
	struct xm_nat_backend_key k = key_of(ip);
	struct xm_nat_backend_value v;
	uint32_t vip;

	inet_pton(AF_INET, VIP, &vip);
	return bpf_map_lookup_elem(nat_fd, &k, &v) == 0 && v.count == 1 && v.vips[0].vip.v4 == vip &&
	       v.vips[0].vport == htons(80);
}

Test(xdp_nat, pinned_flow_keeps_a_terminating_backend_then_lets_it_go)
{
	struct xm_lb_backend b[2] = { pod("10.200.1.11", true), pod("10.200.1.12", true) };
	struct xm_lb_service s;
	struct xm_lb_state st;
	struct xm_ct_key flow;

	serve(&st, &s, b, 2);
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 1000), 0);
	cr_assert(has_pair("10.200.1.11") && has_pair("10.200.1.12"));
	flow = pin_flow("10.200.1.11", 40000);
	pin_flow("10.200.1.12", 40001);

	b[0].ready = false; /* terminating: no longer selected */
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 2000), 0);
	cr_assert(has_pair("10.200.1.11"), "a pinned flow's backend lost its reverse NAT when it turned not ready");
	cr_assert_eq(xdp_nat_draining(&drain), 1);

	serve(&st, &s, &b[1], 1); /* removed outright */
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 3000), 0);
	cr_assert(has_pair("10.200.1.11"), "a pinned flow's backend lost its reverse NAT when it was removed");

	cr_assert_eq(bpf_map_delete_elem(ct_fd, &flow), 0); /* the flow is gone (evicted) */
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 4000), 0);
	cr_assert_not(has_pair("10.200.1.11"), "a backend without flows still drains");
	cr_assert_eq(xdp_nat_draining(&drain), 0);
	cr_assert(has_pair("10.200.1.12"));
}

Test(xdp_nat, drain_is_bounded)
{
	struct xm_lb_backend b[1] = { pod("10.200.1.11", true) };
	struct xm_lb_service s;
	struct xm_lb_state st;

	serve(&st, &s, b, 1);
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 1000), 0);
	pin_flow("10.200.1.11", 40000);
	serve(&st, &s, b, 0);
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 2000), 0);
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 2000 + XM_NAT_DRAIN_MAX_MS - 1), 0);
	cr_assert(has_pair("10.200.1.11"), "left before its drain limit");
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 2000 + XM_NAT_DRAIN_MAX_MS), 0);
	cr_assert_not(has_pair("10.200.1.11"), "still there after its drain limit");
}

Test(xdp_nat, flow_of_another_vip_does_not_hold_it)
{
	struct xm_lb_backend b[1] = { pod("10.200.1.11", true) };
	struct xm_lb_service s;
	struct xm_lb_state st;
	struct xm_ct_key k;
	struct xm_ct_value v;

	serve(&st, &s, b, 1);
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 1000), 0);
	k = pin_flow("10.200.1.11", 40000);
	cr_assert_eq(bpf_map_lookup_elem(ct_fd, &k, &v), 0);
	cr_assert_eq(bpf_map_delete_elem(ct_fd, &k), 0);
	k.dport = htons(443); /* the same backend through another VIP port */
	cr_assert_eq(bpf_map_update_elem(ct_fd, &k, &v, BPF_ANY), 0);
	serve(&st, &s, b, 0);
	cr_assert_eq(xdp_nat_backends_sync(&drain, nat_fd, ct_fd, &st, 2000), 0);
	cr_assert_not(has_pair("10.200.1.11"));
}
