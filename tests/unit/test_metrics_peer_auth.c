// SPDX-License-Identifier: Apache-2.0
/*
 * What the kernel refused at the pods' veths, as the scrape renders it: xmesh_plaintext_rejected_total from a
 * per-CPU hash like xm_mtls_rejected and xmesh_authz_plaintext_denied_total from one like xm_authz_plain_denied,
 * summed over CPUs and named through a snapshot (pods by address, policies by id).
 */
#include "test_snapshot_of.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <xmesh/mtls.h>

#include "compile/authz_plain.h"
#include "compile/snapshot.h"
#include "core/strbuf.h"
#include "metrics/peer_auth_metrics.h"
#include "metrics/registry.h"

static const char config_text[] = "---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: web\n  namespace: shop\n"
				  "spec:\n  nodeName: n\nstatus:\n  podIP: 10.1.0.5\n"
				  "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata:\n"
				  "  name: deny-range\n  namespace: shop\nspec:\n  action: DENY\n  rules:\n  - from:\n"
				  "    - source:\n        ipBlocks: [\"192.168.0.0/16\"]\n";

static struct xm_snapshot *snapshot_of_config(void)
{
	struct xm_compile_opts opts = { .node_name = "n", .maglev_size = 251 };

	return snapshot_from_yaml(config_text, &opts);
}

/* A per-CPU hash holding, for key, the values base, base + 1, ... on the CPUs; returns the fd. */
static int percpu_map(size_t key_size, size_t value_size, const void *key, uint64_t base, size_t n_fields)
{
	int ncpu = libbpf_num_possible_cpus(), fd;
	uint64_t *vals = calloc((size_t)ncpu * n_fields, sizeof(uint64_t));

	cr_assert_not_null(vals);
	fd = bpf_map_create(BPF_MAP_TYPE_PERCPU_HASH, "test_pa_metrics", (uint32_t)key_size, (uint32_t)value_size, 16,
			    NULL);
	cr_assert_geq(fd, 0, "bpf_map_create: %s (the unit tests run as root with CAP_BPF)", strerror(errno));
	for (int c = 0; c < ncpu; c++)
		for (size_t f = 0; f < n_fields; f++)
			vals[(size_t)c * n_fields + f] = base + (uint64_t)c + 1000 * f;
	cr_assert_eq(bpf_map_update_elem(fd, key, vals, BPF_ANY), 0);
	free(vals);
	return fd;
}

static uint64_t summed(uint64_t base, uint64_t field)
{
	uint64_t n = (uint64_t)libbpf_num_possible_cpus();

	return base * n + n * (n - 1) / 2 + 1000 * field * n;
}

static void expect_line(const struct strbuf *sb, const char *series, uint64_t v)
{
	char want[512];

	snprintf(want, sizeof(want), "\n%s %llu\n", series, (unsigned long long)v);
	cr_expect(strstr(sb->buf, want), "want %s in:\n%s", want, sb->buf);
}

Test(metrics_peer_auth, authz_plaintext_denials_by_pod_port_and_policy_name)
{
	struct xm_snapshot *snap = snapshot_of_config();
	struct xm_authz_plain_count_key k = { .family = XM_FAMILY_V4, .port = 8080 };
	struct xm_scrape *sc = scrape_new();
	struct strbuf sb = { 0 };
	int fd;

	inet_pton(AF_INET, "10.1.0.5", &k.addr.v4);
	k.policy = authz_policy_id("shop", "deny-range");
	fd = percpu_map(sizeof(k), sizeof(uint64_t), &k, 7, 1);
	k.policy = XM_AUTHZ_POLICY_NO_ALLOW;
	k.port = 9090;
	cr_assert_eq(bpf_map_update_elem(fd, &k, (uint64_t[256]){ 3 }, BPF_ANY), 0);
	k.policy = authz_policy_id("shop", "gone");
	k.port = 7070;
	cr_assert_eq(bpf_map_update_elem(fd, &k, (uint64_t[256]){ 2 }, BPF_ANY), 0);
	inet_pton(AF_INET, "10.9.9.9", &k.addr.v4); /* no pod has this address any more */
	cr_assert_eq(bpf_map_update_elem(fd, &k, (uint64_t[256]){ 1 }, BPF_ANY), 0);

	cr_assert_not_null(sc);
	cr_assert_eq(authz_plain_metrics_collect(fd, snap, sc), 0);
	scrape_render(sc, &sb);
	expect_line(&sb,
		    "xmesh_authz_plaintext_denied_total{namespace=\"shop\",pod=\"web\",port=\"8080\","
		    "policy=\"shop/deny-range\"}",
		    summed(7, 0));
	expect_line(&sb,
		    "xmesh_authz_plaintext_denied_total{namespace=\"shop\",pod=\"web\",port=\"9090\","
		    "policy=\"allow-not-matched\"}",
		    3);
	expect_line(&sb,
		    "xmesh_authz_plaintext_denied_total{namespace=\"shop\",pod=\"web\",port=\"7070\","
		    "policy=\"unknown\"}",
		    2);
	expect_line(&sb,
		    "xmesh_authz_plaintext_denied_total{namespace=\"unknown\",pod=\"unknown\",port=\"7070\","
		    "policy=\"unknown\"}",
		    1);
	cr_expect_eq(authz_plain_metrics_collect(-1, snap, sc), -EBADF);
	sb_free(&sb);
	scrape_free(sc);
	close(fd);
	snapshot_put(snap);
}

Test(metrics_peer_auth, strict_rejections_by_pod_and_port)
{
	struct xm_snapshot *snap = snapshot_of_config();
	struct xm_mtls_key k = { .family = XM_FAMILY_V4, .port = 8080 };
	struct xm_scrape *sc = scrape_new();
	struct strbuf sb = { 0 };
	int fd;

	inet_pton(AF_INET, "10.1.0.5", &k.addr.v4);
	fd = percpu_map(sizeof(k), sizeof(struct xm_mtls_rejected), &k, 5, 2);
	cr_assert_not_null(sc);
	cr_assert_eq(peer_auth_metrics_collect(fd, snap, sc), 0);
	scrape_render(sc, &sb);
	/* SYNs and fragments both count. */
	expect_line(&sb, "xmesh_plaintext_rejected_total{pod=\"web\",namespace=\"shop\",port=\"8080\"}",
		    summed(5, 0) + summed(5, 1));
	sb_free(&sb);
	scrape_free(sc);
	close(fd);
	snapshot_put(snap);
}

Test(metrics_peer_auth, closed_connections_by_pod_port_and_policy_strict_and_failures)
{
	struct xm_snapshot *snap = snapshot_of_config();
	struct plain_close_count v[3] = {
		{ .family = XM_FAMILY_V4, .port = 8080, .policy = authz_policy_id("shop", "deny-range"), .n = 4 },
		{ .family = XM_FAMILY_V4, .port = 9090, .strict = true, .n = 2 },
		{ .family = XM_FAMILY_V4, .port = 7070, .policy = XM_AUTHZ_POLICY_NO_ALLOW, .n = 1 },
	};
	struct plain_sweep_problems p = { .netns_not_found = 3, .destroy_unsupported = 5 };
	struct xm_scrape *sc = scrape_new();
	struct strbuf sb = { 0 };

	for (int i = 0; i < 3; i++)
		inet_pton(AF_INET, i == 2 ? "10.9.9.9" : "10.1.0.5", &v[i].addr.v4);
	cr_assert_not_null(sc);
	cr_assert_eq(authz_plain_closed_metrics_collect(v, 3, &p, snap, sc), 0);
	scrape_render(sc, &sb);
	expect_line(&sb,
		    "xmesh_authz_plaintext_closed_total{namespace=\"shop\",pod=\"web\",port=\"8080\","
		    "policy=\"shop/deny-range\"}",
		    4);
	expect_line(
	    &sb, "xmesh_authz_plaintext_closed_total{namespace=\"shop\",pod=\"web\",port=\"9090\",policy=\"strict\"}",
	    2);
	expect_line(&sb,
		    "xmesh_authz_plaintext_closed_total{namespace=\"unknown\",pod=\"unknown\",port=\"7070\","
		    "policy=\"allow-not-matched\"}",
		    1);
	expect_line(&sb, "xmesh_authz_plaintext_close_failures_total{reason=\"netns_not_found\"}", 3);
	expect_line(&sb, "xmesh_authz_plaintext_close_failures_total{reason=\"destroy_unsupported\"}", 5);
	expect_line(&sb, "xmesh_authz_plaintext_close_failures_total{reason=\"destroy_failed\"}", 0);
	sb_free(&sb);
	scrape_free(sc);
	snapshot_put(snap);
}
