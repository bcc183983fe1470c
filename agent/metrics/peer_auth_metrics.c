// SPDX-License-Identifier: Apache-2.0
#include "metrics/peer_auth_metrics.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdio.h>

#include <xmesh/mtls.h>

#include "compile/authz_plain.h"
#include "compile/snapshot.h"
#include "core/percpu.h"
#include "metrics/registry.h"

int peer_auth_metrics_collect(int rejected_fd, const struct xm_snapshot *snap, struct xm_scrape *sc)
{
	static const char *const names[] = { "pod", "namespace", "port" };
	struct xm_mtls_key k, *prev = NULL, next;
	struct xm_scrape_family *f;

	if (rejected_fd < 0)
		return -EBADF;
	f = scrape_family(sc, "xmesh_plaintext_rejected_total", "counter",
			  "Plaintext TCP connection attempts the kernel refused because the pod port is STRICT "
			  "(PeerAuthentication), by pod and port.");
	while (bpf_map_get_next_key(rejected_fd, prev, &next) == 0) {
		const struct xm_identity *id;
		uint64_t v[2];
		char port[8];

		k = next;
		prev = &k;
		if (percpu_lookup_sum(rejected_fd, &k, 2, v))
			continue;
		id = snap ? identities_find(&snap->identities, &k.addr, k.family) : NULL;
		snprintf(port, sizeof(port), "%u", k.port);
		{
			const char *values[] = { id && id->wl ? id->wl->pod : "unknown", id ? id->ns : "unknown",
						 port };

			scrape_u64(f, names, values, 3, v[0] + v[1]);
		}
	}
	return 0;
}

int authz_plain_metrics_collect(int denied_fd, const struct xm_snapshot *snap, struct xm_scrape *sc)
{
	static const char *const names[] = { "namespace", "pod", "port", "policy" };
	struct xm_authz_plain_count_key k, *prev = NULL, next;
	struct xm_scrape_family *f;

	if (denied_fd < 0)
		return -EBADF;
	f = scrape_family(sc, "xmesh_authz_plaintext_denied_total", "counter",
			  "Plaintext TCP connection attempts to local pods that AuthorizationPolicy denies, refused by "
			  "the kernel, by pod, port and the policy that denied.");
	while (bpf_map_get_next_key(denied_fd, prev, &next) == 0) {
		const struct xm_identity *id;
		char port[8], buf[64 + XM_NAME_MAX + 1];
		const char *policy;
		uint64_t v;

		k = next;
		prev = &k;
		if (percpu_lookup_sum(denied_fd, &k, 1, &v))
			continue;
		id = snap ? identities_find(&snap->identities, &k.addr, k.family) : NULL;
		snprintf(port, sizeof(port), "%u", k.port);
		policy = snap ? authz_plain_policy_name(&snap->authz, k.policy, buf, sizeof(buf)) : NULL;
		{
			const char *values[] = { id ? id->ns : "unknown", id && id->wl ? id->wl->pod : "unknown", port,
						 policy ? policy : "unknown" };

			scrape_u64(f, names, values, 4, v);
		}
	}
	return 0;
}

int authz_plain_closed_metrics_collect(const struct plain_close_count *v, size_t n,
				       const struct plain_sweep_problems *p, const struct xm_snapshot *snap,
				       struct xm_scrape *sc)
{
	static const char *const names[] = { "namespace", "pod", "port", "policy" };
	static const char *const reason[] = { "reason" };
	struct xm_scrape_family *f;

	f = scrape_family(
	    sc, "xmesh_authz_plaintext_closed_total", "counter",
	    "Established plaintext TCP connections to local pods the agent closed (SOCK_DESTROY) because a "
	    "policy change denies them now, by pod, port and the policy that denies (\"strict\": "
	    "PeerAuthentication STRICT).");
	for (size_t i = 0; i < n; i++) {
		const struct xm_identity *id =
		    snap ? identities_find(&snap->identities, &v[i].addr, v[i].family) : NULL;
		char port[8], buf[64 + XM_NAME_MAX + 1];
		const char *policy = v[i].strict ? "strict"
				     : snap	 ? authz_plain_policy_name(&snap->authz, v[i].policy, buf, sizeof(buf))
						 : NULL;

		snprintf(port, sizeof(port), "%u", v[i].port);
		{
			const char *values[] = { id ? id->ns : "unknown", id && id->wl ? id->wl->pod : "unknown", port,
						 policy ? policy : "unknown" };

			scrape_u64(f, names, values, 4, v[i].n);
		}
	}
	f = scrape_family(sc, "xmesh_authz_plaintext_close_failures_total", "counter",
			  "What the sweeps closing denied plaintext connections could not do: pods whose network "
			  "namespace was not found (netns_not_found), connections the kernel would not destroy "
			  "(destroy_unsupported: no CONFIG_INET_DIAG_DESTROY; destroy_failed).");
	{
		const char *nf[] = { "netns_not_found" }, *un[] = { "destroy_unsupported" },
			   *fa[] = { "destroy_failed" };

		scrape_u64(f, reason, nf, 1, p->netns_not_found);
		scrape_u64(f, reason, un, 1, p->destroy_unsupported);
		scrape_u64(f, reason, fa, 1, p->destroy_failed);
	}
	return 0;
}
