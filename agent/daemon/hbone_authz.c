// SPDX-License-Identifier: Apache-2.0
/* AuthorizationPolicy in the HBONE server's admit callback (daemon/hbone_authz.h). */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "compile/authz.h"
#include "core/log.h"
#include "daemon/hbone_authz.h"
#include "datapath/sock_ends.h"

static bool ip_port_of(const struct sockaddr_storage *ss, struct xm_ip *ip, union xm_addr *a, uint16_t *port)
{
	uint8_t family;

	if (!ss || sock_ends_addr_of(ss, a, port, &family))
		return false;
	memset(ip, 0, sizeof(*ip));
	ip->family = family;
	memcpy(ip->bytes, a->bytes, family == XM_FAMILY_V4 ? 4 : 16);
	*port = ntohs(*port);
	return true;
}

/* The client pod's address: Forwarded for= when that pod is the peer's identity, else the connection's. */
static bool client_ip(const struct xm_snapshot *s, const struct hbone_admit *req, struct xm_ip *ip)
{
	struct hbone_forwarded fw;
	union xm_addr a;
	uint16_t port;

	if (req->forwarded && req->forwarded[0] &&
	    !hbone_parse_forwarded(req->forwarded, strlen(req->forwarded), &fw) && fw.has_for &&
	    ip_port_of(&fw.for_addr, ip, &a, &port)) {
		const struct xm_identity *id = identities_find(&s->identities, &a, ip->family);

		if (id && id->wl && req->peer_id && !strcmp(id->principal, req->peer_id))
			return true;
	}
	return ip_port_of(req->peer, ip, &a, &port);
}

static int decide(const struct xm_snapshot *s, const char *trust_domain, const struct hbone_admit *req,
		  struct authz_denied *denied, bool open_stream)
{
	struct xm_authz_request ar = { .peer_id = req->peer_id, .trust_domain = trust_domain };
	struct xm_authz_verdict v;
	const struct xm_identity *dst;
	struct xm_ip src, dst_ip;
	union xm_addr a;
	char policy[64 + XM_NAME_MAX + 1];

	if (!s || !s->authz.n)
		return 200;
	if (!ip_port_of(req->target, &dst_ip, &a, &ar.dport))
		return 401;
	dst = identities_find(&s->identities, &a, dst_ip.family);
	if (!dst || !dst->wl)
		return open_stream ? 200 : 401; /* admit checked it is a pod of this node: unreachable, fail closed;
						 * a pod gone since is no policy decision: its stream stays */
	ar.dst = &dst_ip;
	if (client_ip(s, req, &src))
		ar.src = &src;
	authz_evaluate(&s->authz, dst->wl->ns, dst->wl->labels, dst->wl->n_labels, &ar, &v);
	if (v.allowed)
		return 200;
	if (v.policy)
		snprintf(policy, sizeof(policy), "%s/%s", v.policy->ns, v.policy->name);
	else
		snprintf(policy, sizeof(policy), "%s", AUTHZ_DENIED_NO_ALLOW);
	if (authz_denied_add(denied, dst->wl->ns, dst->wl->pod, policy))
		log_info("hbone: AuthorizationPolicy %s %s to %s/%s port %u (%s; logged once per pod and policy)",
			 open_stream ? "re-checked: closed a stream of" : "denied",
			 req->peer_id ? req->peer_id : "(no identity)", dst->wl->ns, dst->wl->pod, ar.dport,
			 v.policy ? policy : "no ALLOW policy matched");
	return 401;
}

int hbone_authz_check(const struct xm_snapshot *s, const char *trust_domain, const struct hbone_admit *req,
		      struct authz_denied *denied)
{
	return decide(s, trust_domain, req, denied, false);
}

int hbone_authz_recheck(const struct xm_snapshot *s, const char *trust_domain, const struct hbone_admit *req,
			struct authz_denied *closed)
{
	return decide(s, trust_domain, req, closed, true);
}

static bool addr_in_scope(const struct authz_recheck_scope *scope, const struct sockaddr_storage *ss)
{
	union xm_addr a;
	uint16_t port;
	uint8_t family;

	return ss && !sock_ends_addr_of(ss, &a, &port, &family) && authz_recheck_scope_has(scope, family, &a);
}

bool hbone_authz_recheck_affected(const struct authz_recheck_scope *scope, const struct hbone_admit *req)
{
	struct hbone_forwarded fw;

	if (scope->all)
		return true;
	if (addr_in_scope(scope, req->target) || addr_in_scope(scope, req->peer))
		return true;
	return req->forwarded && req->forwarded[0] &&
	       !hbone_parse_forwarded(req->forwarded, strlen(req->forwarded), &fw) && fw.has_for &&
	       addr_in_scope(scope, &fw.for_addr);
}
