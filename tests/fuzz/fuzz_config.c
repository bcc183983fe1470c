// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the config loader as `xmesh validate` and the agent's apply run it. YAML bytes in a
 * memfd (a regular file behind /proc/self/fd/N, read by config_load as any path) → model → validation →
 * the snapshot (compile_lb, identities, the L7 route table, rendered as `xmesh routes` does), then twice through the
 * agent's per-file cache (a miss, then a hit). The snapshot's AuthorizationPolicies judge a few CONNECTs to every
 * workload (compile/authz.c), and the snapshot compiles their plaintext table for the pods of node-a
 * (compile/authz_plain.c; seed corpus/config/authz_plaintext.yaml). Everything allocated is freed (the cache lives for
 * the run): LeakSanitizer runs at the end of the fuzzing run.
 */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "compile/authz.h"
#include "compile/compile.h"
#include "compile/snapshot.h"
#include "core/strbuf.h"
#include "config/model.h"
#include "core/log.h"

static int config_fd = -1;
static char config_path[64];
static FILE *devnull;
static struct xm_config_cache *cache;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int setup(void)
{
	config_fd = memfd_create("fuzz_config.yaml", MFD_CLOEXEC);
	if (config_fd < 0)
		return -1;
	snprintf(config_path, sizeof(config_path), "/proc/self/fd/%d", config_fd);
	devnull = fopen("/dev/null", "we");
	cache = config_cache_new();
	/* compile_lb warns about what validation lets through: the fuzzer's output is no place for it. */
	xm_log_set_level(XM_LOG_ERROR);
	return devnull && cache ? 0 : -1;
}

/* Each workload against requests with and without an identity, IPv4 and IPv6, from the policies' own ports. */
static void judge(const struct xm_snapshot *snap)
{
	static const char *const peers[] = { "spiffe://cluster.local/ns/default/sa/sleep",
					     "spiffe://example.org/ns/foo/sa/a", "", NULL };
	struct xm_ip v4 = { .family = 4, .bytes = { 10, 1, 2, 3 } }, v6 = { .family = 6, .bytes = { 0xfd, 0, 9 } };
	struct xm_authz_verdict v;

	for (size_t w = 0; w < snap->identities.n_workloads; w++) {
		const struct xm_workload *wl = &snap->identities.workloads[w];

		for (size_t p = 0; p < sizeof(peers) / sizeof(peers[0]); p++) {
			struct xm_authz_request req = { .peer_id = peers[p],
							.trust_domain = "example.org",
							.src = p % 2 ? &v6 : &v4,
							.dst = p % 2 ? &v6 : &v4,
							.dport = (uint16_t)(p * 4000) };

			authz_evaluate(&snap->authz, wl->ns, wl->labels, wl->n_labels, &req, &v);
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct xm_compile_opts opts = { .node_name = "node-a", .maglev_size = 16381 };
	const char *paths[] = { config_path };
	struct xm_config cfg;
	struct xm_diags diags = { 0 };
	struct xm_lb_state st;
	struct xm_snapshot *snap;
	struct strbuf routes = { 0 };
	int err;

	if (config_fd < 0 && setup())
		return -1;
	if (ftruncate(config_fd, 0) || pwrite(config_fd, data, size, 0) != (ssize_t)size)
		return -1;
	/* As `xmesh validate` reads it; as the agent applies: compile only a config without errors. */
	if (config_load(paths, 1, &cfg, &diags) == 0 && (snap = snapshot_build(&cfg, &opts, &err))) {
		l7_routes_render(&snap->routes, false, &routes);
		l7_routes_render(&snap->routes, true, &routes);
		sb_free(&routes);
		judge(snap);
		snapshot_put(snap);
	}
	diags_print(&diags, devnull);
	diags_free(&diags);
	config_free(&cfg);
	/* The agent's reloads: parsed into the cache (the file changed), then taken from it (it did not). */
	for (int round = 0; round < 2; round++) {
		if (config_load_cached(cache, paths, 1, &cfg, &diags) == 0 && compile_lb(&cfg, &opts, &st) == 0)
			lb_state_free(&st);
		diags_free(&diags);
		config_free(&cfg);
	}
	return 0;
}
