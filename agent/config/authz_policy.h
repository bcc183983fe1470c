/* SPDX-License-Identifier: Apache-2.0 */
/*
 * security.istio.io AuthorizationPolicy, the L4 subset that ambient's ztunnel enforces (docs/mtls.md
 * "AuthorizationPolicy"). The shape follows ztunnel's: a policy holds rules (any may match); a rule holds
 * clauses (all must match: its from, its to, each when); a clause holds alternatives (any may match: the
 * entries of from or to); an alternative holds conditions (all must hold); a condition is one attribute with
 * the values it must (or, negated, must not) take. HTTP-only attributes are gone by then: in an ALLOW policy a
 * rule that names one never matches (rule.never), in a DENY policy they are dropped and the rest is enforced.
 */
#ifndef XMESH_CONFIG_AUTHZ_POLICY_H
#define XMESH_CONFIG_AUTHZ_POLICY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config/model.h"

enum xm_authz_action {
	XM_AUTHZ_ALLOW = 0, /* absent: ALLOW */
	XM_AUTHZ_DENY,
	XM_AUTHZ_AUDIT, /* accepted, never enforced (no audit sink) */
};

enum xm_authz_attr {
	XM_AUTHZ_PRINCIPAL,	  /* principals, source.principal: "td/ns/NS/sa/SA" with a leading or trailing '*' */
	XM_AUTHZ_NAMESPACE,	  /* namespaces, source.namespace: the peer identity's namespace */
	XM_AUTHZ_SERVICE_ACCOUNT, /* serviceAccounts: "NS/SA" (resolved against the policy's namespace) */
	XM_AUTHZ_SOURCE_IP,	  /* ipBlocks, source.ip: an address or CIDR */
	XM_AUTHZ_DEST_IP,	  /* destination.ip: an address or CIDR */
	XM_AUTHZ_DEST_PORT,	  /* ports, destination.port: a decimal port */
};

/*
 * A value as the per-CONNECT check compares it (compile/authz.c authz_match_compile): an address block, a port
 * or a string matcher by Istio's rules, parsed once. A value that cannot match (a port or CIDR that does not
 * parse) is XM_AUTHZ_NEVER.
 */
enum xm_authz_match_kind {
	XM_AUTHZ_NEVER,
	XM_AUTHZ_ANY,	 /* "*": any non-empty string */
	XM_AUTHZ_EXACT,	 /* s[0..len) */
	XM_AUTHZ_PREFIX, /* "s*" */
	XM_AUTHZ_SUFFIX, /* "*s" */
	XM_AUTHZ_CIDR,
	XM_AUTHZ_PORT,
};

struct xm_authz_match {
	uint8_t kind; /* enum xm_authz_match_kind */
	uint8_t bits; /* CIDR: the prefix length */
	uint16_t port;
	uint32_t len;  /* string: bytes of s compared */
	const char *s; /* string: into the value it was compiled from */
	struct xm_ip ip;
};

struct xm_authz_cond {
	enum xm_authz_attr attr;
	bool negated; /* notPrincipals, notValues, ...: holds when no value matches */
	char **values;
	size_t n_values;
	struct xm_authz_match *match; /* values[i] compiled (a snapshot's copy; NULL in a config: compiled per use) */
};

/* All conditions must hold; none (an entry that named only HTTP attributes, in a DENY policy) always holds. */
struct xm_authz_alt {
	struct xm_authz_cond *conds;
	size_t n_conds;
};

/* Any alternative may hold. */
struct xm_authz_clause {
	struct xm_authz_alt *alts;
	size_t n_alts;
};

/* All clauses must hold (none: `rules: [{}]`, which matches everything). */
struct xm_authz_rule {
	struct xm_authz_clause *clauses;
	size_t n_clauses;
	bool never; /* an ALLOW rule that named an HTTP attribute: ztunnel drops it */
};

struct xm_authz_policy {
	char ns[64];
	char name[XM_NAME_MAX];
	struct xm_label *selector; /* selector.matchLabels; none: namespace-wide (mesh-wide in the root ns) */
	size_t n_selector;
	enum xm_authz_action action;
	bool targeted; /* targetRef(s): for a waypoint, never applied here (as istiod leaves them out for ztunnel) */
	struct xm_authz_rule *rules; /* none: matches nothing (an ALLOW policy without rules denies all) */
	size_t n_rules;
	struct xm_loc loc;
};

void authz_policy_free(struct xm_authz_policy *p);
/* A deep copy, without loc.file (it may outlive the config). 0 or -ENOMEM (dst freed and zeroed). */
int authz_policy_copy(struct xm_authz_policy *dst, const struct xm_authz_policy *src);

/*
 * An ipBlocks value: "10.1.2.3", "10.1.0.0/16", "fd00::1", "fd00::/64" (the address bits past the prefix are
 * ignored, as Go's netip.ParsePrefix keeps them but Contains masks). 0, or -EINVAL.
 */
int authz_cidr_parse(const char *s, struct xm_ip *addr, uint8_t *bits);
/* Whether ip (same family as the block's) is inside it. */
bool authz_cidr_contains(const struct xm_ip *block, uint8_t bits, const struct xm_ip *ip);

#endif
