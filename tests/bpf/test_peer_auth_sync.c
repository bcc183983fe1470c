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

static struct xm_mtls_entry entry(const char *ip, uint16_t port, uint8_t mode, uint8_t flags)
{
	struct xm_mtls_entry e;

	memset(&e, 0, sizeof(e));
	e.key.family = strchr(ip, ':') ? XM_FAMILY_V6 : XM_FAMILY_V4;
	cr_assert_eq(inet_pton(e.key.family == XM_FAMILY_V6 ? AF_INET6 : AF_INET, ip, e.key.addr.bytes), 1);
	e.key.port = port;
	e.val.mode = mode;
	e.val.flags = flags;
	return e;
}

static int entry_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_mtls_key));
}

static struct xm_mtls_table table(struct xm_mtls_entry *items, size_t n)
{
	qsort(items, n, sizeof(*items), entry_cmp);
	return (struct xm_mtls_table){ .items = items, .n = n };
}

/* The map holds exactly t. */
static void assert_map_is(const struct xm_mtls_table *t)
{
	int fd = bpf_map__fd(dp.skel->maps.xm_mtls_policy);
	struct xm_mtls_key k, *prev = NULL, next;
	size_t n = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		const struct xm_mtls_entry *want = mtls_table_find(t, &next);
		struct xm_mtls_policy v;

		k = next;
		prev = &k;
		n++;
		cr_assert_not_null(want, "the map holds a key (port %u) the table does not", k.port);
		cr_assert_eq(bpf_map_lookup_elem(fd, &k, &v), 0);
		cr_assert(!memcmp(&v, &want->val, sizeof(v)), "port %u: mode %u flags %u, want %u %u", k.port, v.mode,
			  v.flags, want->val.mode, want->val.flags);
	}
	cr_assert_eq(n, t->n, "the map holds %zu entries, want %zu", n, t->n);
}

Test(peer_auth_sync, entries_follow_each_table)
{
	struct xm_mtls_entry a[] = {
		entry("10.200.1.11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
		entry("10.200.1.11", 8080, XM_MTLS_MODE_DISABLE, 0),
		entry("fd00:200:1::11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
	};
	struct xm_mtls_entry b[] = {
		entry("10.200.1.11", 0, XM_MTLS_MODE_PERMISSIVE, XM_MTLS_F_ANY_STRICT),
		entry("10.200.1.11", 9090, XM_MTLS_MODE_STRICT, 0),
		entry("10.200.1.12", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
	};
	struct xm_mtls_table ta = table(a, 3), tb = table(b, 3), empty = { 0 };

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
		entry("10.200.1.11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
		entry("10.200.1.21", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT),
		entry("10.200.1.21", 80, XM_MTLS_MODE_PERMISSIVE, 0),
	};
	struct xm_mtls_entry b[] = { entry("10.200.1.11", 0, XM_MTLS_MODE_STRICT, XM_MTLS_F_ANY_STRICT) };
	struct xm_mtls_table ta = table(a, 3), tb = table(b, 1);

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
