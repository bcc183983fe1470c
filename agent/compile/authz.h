/* SPDX-License-Identifier: Apache-2.0 */
/*
 * AuthorizationPolicy as the HBONE server enforces it on this node (docs/mtls.md "AuthorizationPolicy"): the
 * policies of a config, copied into the snapshot, and Istio's evaluation of one CONNECT against those that
 * apply to its destination workload (root namespace: every workload; other namespaces: their workloads;
 * selector.matchLabels: the workloads whose labels it names). Any matching DENY denies; else, when an ALLOW
 * policy applies, one of its rules must match; else the connection is allowed. The matching is ztunnel's
 * (src/rbac.rs): principals and namespaces by exact, prefix*, *suffix or * (present) match.
 */
#ifndef XMESH_COMPILE_AUTHZ_H
#define XMESH_COMPILE_AUTHZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/authz_policy.h"
#include "config/model.h"

/* The enforced policies (ALLOW and DENY, not targetRef-bound), sorted by namespace and name. */
struct xm_authz_table {
	struct xm_authz_policy *items;
	size_t n;
	char root_ns[64]; /* --root-namespace: its selector-less policies are mesh-wide */
};

/* root_ns NULL: istio-system. 0, or -ENOMEM (out empty). */
int authz_table_build(const struct xm_config *cfg, const char *root_ns, struct xm_authz_table *out);
void authz_table_free(struct xm_authz_table *t);
/* Whether a and b enforce the same policies (loc aside): when not, admitted streams are checked again. */
bool authz_table_equal(const struct xm_authz_table *a, const struct xm_authz_table *b);

/* One CONNECT as the policies see it. */
struct xm_authz_request {
	const char *peer_id;	  /* the verified client identity, spiffe://TD/ns/NS/sa/SA ("" or NULL: none) */
	const char *trust_domain; /* the agent's: a principal written as cluster.local/... also names it */
	const struct xm_ip *src;  /* the client's address (NULL: unknown, no ipBlocks matches) */
	const struct xm_ip *dst;  /* the target pod's address */
	uint16_t dport;		  /* the target port */
};

struct xm_authz_verdict {
	bool allowed;
	/* Denied: the DENY policy that matched, or NULL when ALLOW policies applied and none matched. */
	const struct xm_authz_policy *policy;
	size_t n_applied; /* policies that applied to the workload */
};

/* Pre-parses value v of attribute attr (authz_table_build does it for every value it copies). */
void authz_match_compile(enum xm_authz_attr attr, const char *v, struct xm_authz_match *m);
/* Whether p applies to a workload of namespace ns with these labels. */
bool authz_policy_applies(const struct xm_authz_table *t, const struct xm_authz_policy *p, const char *ns,
			  const struct xm_label *labels, size_t n_labels);
/* Whether one of p's rules matches req. */
bool authz_policy_matches(const struct xm_authz_policy *p, const struct xm_authz_request *req);
/* The decision for req to the workload of namespace ns with these labels. */
void authz_evaluate(const struct xm_authz_table *t, const char *ns, const struct xm_label *labels, size_t n_labels,
		    const struct xm_authz_request *req, struct xm_authz_verdict *out);

#endif
