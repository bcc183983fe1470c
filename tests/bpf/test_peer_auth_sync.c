// SPDX-License-Identifier: Apache-2.0
/*
 * The agent's side of PeerAuthentication in the kernel (agent/datapath/peer_auth.c): the object loaded with
 * its maps pinned (a restarted agent finds them), xm_mtls_policy made equal to each compiled table — from a
 * known previous table or, after a restart, from whatever the map holds — and the local mesh pods.
 */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "compile/local_addrs.h"
#include "datapath/peer_auth.h"
#include "datapath/pins.h"
#include "mtls_table_fixture.h"
#include "sandbox.h"
#include "skel/peer_auth.skel.h"

static char dir[128];
static struct xm_peer_auth_dp dp;

static void setup(void)
{
	const char *why = sandbox_unsupported();

	if (why)
		sandbox_cannot_run(why);
	snprintf(dir, sizeof(dir), "/sys/fs/bpf/xmesh-patest-%d", getpid());
	cr_assert_eq(peer_auth_dp_open(&dp, dir, NULL, 0), 0, "peer_auth_dp_open");
}

static void teardown(void)
{
	peer_auth_dp_close(&dp);
	if (dir[0])
		pins_remove_all(dir);
}

TestSuite(peer_auth_sync, .init = setup, .fini = teardown, .timeout = 30);

/* The map holds exactly t. */
static void assert_map_is(const struct xm_mtls_table *t)
{
	mtx_assert_map_is(bpf_map__fd(dp.skel->maps.xm_mtls_policy), t);
}

Test(peer_auth_sync, entries_follow_each_table)
{
	struct xm_mtls_entry a[] = {
		mtx_entry("10.200.1.11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
		mtx_entry("10.200.1.11", 8080, XM_MTLS_MODE_DISABLE, 0),
		mtx_entry("fd00:200:1::11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
	};
	struct xm_mtls_entry b[] = {
		mtx_entry("10.200.1.11", 0, XM_MTLS_MODE_PERMISSIVE, XM_MTLS_F_ANY_STRICT),
		mtx_entry("10.200.1.11", 9090, XM_MTLS_MODE_STRICT, 0),
		mtx_entry("10.200.1.12", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
	};
	struct xm_mtls_table ta = mtx_table(a, 3), tb = mtx_table(b, 3), empty = { 0 };

	cr_assert_eq(peer_auth_dp_sync(&dp, NULL, &ta), 0);
	assert_map_is(&ta);
	cr_assert_eq(peer_auth_dp_sync(&dp, &ta, &tb), 0);
	assert_map_is(&tb);
	cr_assert_eq(dp.n_entries, 3);
	cr_assert_eq(peer_auth_dp_sync(&dp, &tb, &empty), 0);
	assert_map_is(&empty);
}

Test(peer_auth_sync, a_restart_finds_the_pins_and_drops_what_is_stale)
{
	struct xm_mtls_entry a[] = {
		mtx_entry("10.200.1.11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
		mtx_entry("10.200.1.21", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
		mtx_entry("10.200.1.21", 80, XM_MTLS_MODE_PERMISSIVE, 0),
	};
	struct xm_mtls_entry b[] = { mtx_entry("10.200.1.11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT) };
	struct xm_mtls_table ta = mtx_table(a, 3), tb = mtx_table(b, 1);

	cr_assert_eq(peer_auth_dp_sync(&dp, NULL, &ta), 0);
	/* The next agent: the same pins, nothing known about their content. */
	peer_auth_dp_close(&dp);
	cr_assert_eq(peer_auth_dp_open(&dp, dir, NULL, 0), 0);
	assert_map_is(&ta);
	cr_assert_eq(peer_auth_dp_sync(&dp, NULL, &tb), 0);
	assert_map_is(&tb);
}

static size_t local_pods_in_map(void)
{
	int fd = bpf_map__fd(dp.skel->maps.xm_mtls_local_pods);
	struct xm_mtls_key k, *prev = NULL, next;
	size_t n = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}

Test(peer_auth_sync, local_mesh_pods_are_the_pods_of_this_node)
{
	struct xm_ip ip1 = { .family = 4 }, ip2 = { .family = 4 }, node_ip = { .family = 4 };
	struct xm_pod pods[2] = { { .ns = "default", .name = "a", .node_name = "n1", .ips = &ip1, .n_ips = 1 },
				  { .ns = "default", .name = "b", .node_name = "n1", .ips = &ip2, .n_ips = 1 } };
	struct xm_node node = { .name = "n1", .internal_ips = &node_ip, .n_internal_ips = 1 };
	struct xm_config cfg = { .pods = pods, .n_pods = 2, .nodes = &node, .n_nodes = 1 };
	struct xm_local_addrs one, two;

	inet_pton(AF_INET, "10.200.1.11", ip1.bytes);
	inet_pton(AF_INET, "10.200.1.12", ip2.bytes);
	inet_pton(AF_INET, "10.199.0.1", node_ip.bytes);
	cr_assert_eq(local_addrs_build(&cfg, "n1", &two), 0);
	cfg.n_pods = 1;
	cr_assert_eq(local_addrs_build(&cfg, "n1", &one), 0);
	cr_assert_eq(peer_auth_dp_sync_local(&dp, NULL, &two), 0);
	cr_assert_eq(local_pods_in_map(), 2, "the node's own address is no pod");
	cr_assert_eq(peer_auth_dp_sync_local(&dp, &two, &one), 0);
	cr_assert_eq(local_pods_in_map(), 1);
	local_addrs_free(&one);
	local_addrs_free(&two);
}
