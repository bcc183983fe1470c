// SPDX-License-Identifier: Apache-2.0
/*
 * Map updates that the socket LB cannot make are counted in xm_map_errors (and so reach
 * xmesh_map_update_errors_total): the per-socket maps are loaded here as plain hashes of one entry, already
 * full, so the connect's insert fails the way a real one does under memory pressure. The socket still
 * connects: the counter is the only trace.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xmesh/lb.h>

#include "skel/sock_lb.skel.h"
#include "sock_lb_fixture.h"

#define VIP4  "10.96.0.10"
#define VPORT 80

/* One-entry hashes (no LRU eviction): a second key cannot go in. */
static void one_entry_maps(struct sock_lb *skel)
{
	cr_assert_eq(bpf_map__set_type(skel->maps.xm_udp_revnat, BPF_MAP_TYPE_HASH), 0);
	cr_assert_eq(bpf_map__set_max_entries(skel->maps.xm_udp_revnat, 1), 0);
	cr_assert_eq(bpf_map__set_type(skel->maps.xm_sock_state, BPF_MAP_TYPE_HASH), 0);
	cr_assert_eq(bpf_map__set_max_entries(skel->maps.xm_sock_state, 1), 0);
}

static void setup(void)
{
	fx_before_load = one_entry_maps;
	fx_setup();
}

TestSuite(sock_lb_map_errors, .init = setup, .fini = fx_teardown, .timeout = 30);

static uint64_t map_errors(enum xm_map_error idx)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	struct xm_counter per_cpu[ncpu];
	__u32 k = idx;
	uint64_t sum = 0;

	cr_assert_eq(bpf_map__lookup_elem(fx.skel->maps.xm_map_errors, &k, sizeof(k), per_cpu, sizeof(per_cpu), 0), 0);
	for (i = 0; i < ncpu; i++)
		sum += per_cpu[i].value;
	return sum;
}

/* Occupies the one entry of a map with a key no socket has. */
static void fill(struct bpf_map *map, size_t key_size, size_t value_size)
{
	char key[64], value[64];

	memset(key, 0xee, sizeof(key));
	memset(value, 0, sizeof(value));
	cr_assert_eq(bpf_map__update_elem(map, key, key_size, value, value_size, BPF_NOEXIST), 0);
}

Test(sock_lb_map_errors, full_udp_revnat_is_counted)
{
	struct sockaddr_in vip = { .sin_family = AF_INET, .sin_port = htons(VPORT) };
	int c;

	fx_listeners(1, SOCK_DGRAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_UDP, XM_LB_RANDOM, 1);
	fill(fx.skel->maps.xm_udp_revnat, sizeof(struct xm_udp_revnat_key), sizeof(struct xm_udp_revnat_value));
	inet_pton(AF_INET, VIP4, &vip.sin_addr);
	cr_assert_eq(map_errors(XM_MAPERR_UDP_REVNAT), 0);
	c = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(sendto(c, "ping", 4, 0, (struct sockaddr *)&vip, sizeof(vip)), 4, "sendto: %s", strerror(errno));
	cr_assert_eq(sendto(c, "ping", 4, 0, (struct sockaddr *)&vip, sizeof(vip)), 4, "sendto: %s", strerror(errno));
	cr_expect_eq(map_errors(XM_MAPERR_UDP_REVNAT), 2, "two sendmsgs whose revnat entry did not fit");
	cr_expect_eq(map_errors(XM_MAPERR_SOCK_STATE), 0);
	close(c);
}

Test(sock_lb_map_errors, full_sock_state_is_counted)
{
	int c;

	fx_listeners(1, SOCK_STREAM, false);
	fx_publish(VIP4, VPORT, IPPROTO_TCP, XM_LB_RANDOM, 1);
	fill(fx.skel->maps.xm_sock_state, sizeof(__u64), sizeof(struct xm_sock_state));
	c = fx_connect(VIP4, VPORT);
	cr_assert(c >= 0, "connect through the VIP: %s", strerror(-c));
	cr_expect_eq(map_errors(XM_MAPERR_SOCK_STATE), 1, "the connect whose socket state did not fit");
	cr_expect_eq(map_errors(XM_MAPERR_UDP_REVNAT), 0);
	close(c);
}
