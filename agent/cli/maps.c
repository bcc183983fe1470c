// SPDX-License-Identifier: Apache-2.0
/* `xmesh maps [NAME] [--json] [--bpffs DIR]`: decodes the pinned maps; works without the agent. */
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <xmesh/hbone.h>
#include <xmesh/l7.h>
#include <xmesh/lb.h>
#include <xmesh/mtls.h>
#include <xmesh/outlier.h>
#include <xmesh/sockmap.h>
#include <xmesh/xdp.h>

#include "cli/cli.h"
#include "compile/compile.h"
#include "core/percpu.h"
#include "core/strbuf.h"
#include "datapath/pins.h"
#include "metrics/map_errors.h"

/* Appends one entry as "field": value pairs (JSON members without braces). */
typedef void (*decode_fn)(const void *key, const void *value, struct strbuf *out);

struct map_desc {
	const char *name;
	const char *what;
	decode_fn decode;
	bool percpu;	       /* value is per CPU: decode the sum (of every 8-byte field) */
	size_t percpu_sum_len; /* percpu: sum only the leading bytes (the rest is CPU 0's); 0: all */
	bool skip_zero;	       /* arrays: hide entries whose value is all zero */
	bool locked;	       /* value holds a bpf_spin_lock: read under it */
	bool optional;	       /* only there when the feature runs (XDP on --iface) */
};

static void addr_str(const union xm_addr *a, uint8_t family, char *buf, size_t len)
{
	if (!inet_ntop(family == XM_FAMILY_V4 ? AF_INET : AF_INET6, a->bytes, buf, (socklen_t)len))
		snprintf(buf, len, "?");
}

static void dec_services(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_svc_value *sv = v;
	char key[80];

	lb_format_key(k, key, sizeof(key));
	sb_printf(out, "\"service\":\"%s\",\"table_id\":%u,\"count\":%u,\"svc_id\":%u,\"algo\":\"%s\",\"flags\":%u",
		  key, sv->table_id, sv->count, sv->svc_id, lb_algo_name(sv->algo), sv->flags);
}

static void dec_slots(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_slot_key *sk = k;

	sb_printf(out, "\"table_id\":%u,\"slot\":%u,\"backend_id\":%u", sk->table_id, sk->slot,
		  ((const struct xm_slot_value *)v)->backend_id);
}

static void dec_backends(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_backend *b = v;
	char ip[INET6_ADDRSTRLEN];

	addr_str(&b->addr, b->family, ip, sizeof(ip));
	sb_printf(out, "\"backend_id\":%u,\"address\":\"%s\",\"port\":%u,\"family\":%u,\"local\":%s", *(const __u32 *)k,
		  ip, ntohs(b->port), b->family, b->flags & XM_BACKEND_F_LOCAL ? "true" : "false");
}

static void dec_conns(const void *k, const void *v, struct strbuf *out)
{
	sb_printf(out, "\"backend_id\":%u,\"active\":%lld", *(const __u32 *)k,
		  (long long)((const struct xm_backend_conns *)v)->active);
}

static void dec_counter(const void *k, const void *v, struct strbuf *out)
{
	static const char *const names[] = { "sock_lb_tcp", "sock_lb_udp", "no_backend",  "lookup_miss",
					     "revnat",	    "l7_capture",  "l7_no_proxy", "hbone_capture" };
	__u32 idx = *(const __u32 *)k;

	sb_printf(out, "\"counter\":\"%s\",\"value\":%llu", idx < XM_STAT_SOCK_MAX ? names[idx] : "?",
		  (unsigned long long)((const struct xm_counter *)v)->value);
}

static void dec_rr(const void *k, const void *v, struct strbuf *out)
{
	sb_printf(out, "\"svc_id\":%u,\"position\":%llu", *(const __u32 *)k,
		  (unsigned long long)((const struct xm_counter *)v)->value);
}

static void dec_revnat(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_udp_revnat_key *rk = k;
	const struct xm_udp_revnat_value *rv = v;
	char b[INET6_ADDRSTRLEN], vip[INET6_ADDRSTRLEN];

	addr_str(&rk->backend, rk->family, b, sizeof(b));
	addr_str(&rv->vip, rk->family, vip, sizeof(vip));
	sb_printf(out, "\"cookie\":%llu,\"backend\":\"%s\",\"backend_port\":%u,\"vip\":\"%s\",\"vip_port\":%u",
		  (unsigned long long)rk->cookie, b, ntohs(rk->port), vip, ntohs(rv->vport));
}

static void dec_maglev(const void *k, const void *v, struct strbuf *out)
{
	__u32 inner_id = *(const __u32 *)v, size = 0;
	int fd = bpf_map_get_fd_by_id(inner_id);

	if (fd >= 0) {
		struct bpf_map_info info;
		__u32 len = sizeof(info);

		memset(&info, 0, sizeof(info));
		if (!bpf_obj_get_info_by_fd(fd, &info, &len))
			size = info.max_entries;
		close(fd);
	}
	sb_printf(out, "\"table_id\":%u,\"inner_map_id\":%u,\"size\":%u", *(const __u32 *)k, inner_id, size);
}

static const char *ct_state_name(uint32_t state)
{
	switch (state) {
	case XM_CT_NONE:
		return "none";
	case XM_CT_OPEN:
		return "open";
	case XM_CT_SYN_SENT:
		return "syn_sent";
	case XM_CT_SYN_FAILED:
		return "syn_failed";
	default:
		return "unknown";
	}
}

static void dec_ct(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_ct_key *ck = k;
	const struct xm_ct_value *cv = v;
	char c[INET6_ADDRSTRLEN], vip[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];

	addr_str(&ck->saddr, ck->family, c, sizeof(c));
	addr_str(&ck->daddr, ck->family, vip, sizeof(vip));
	addr_str(&cv->addr, cv->family, b, sizeof(b));
	sb_printf(out,
		  "\"client\":\"%s:%u\",\"vip\":\"%s:%u\",\"proto\":%u,\"backend\":\"%s:%u\",\"backend_id\":%u,"
		  "\"svc_id\":%u,\"local\":%s,\"state\":\"%s\"",
		  c, ntohs(ck->sport), vip, ntohs(ck->dport), ck->proto, b, ntohs(cv->port), cv->backend_id, cv->svc_id,
		  cv->flags & XM_BACKEND_F_LOCAL ? "true" : "false", ct_state_name(cv->state));
}

static void dec_map_errors(const void *k, const void *v, struct strbuf *out)
{
	sb_printf(out, "\"map\":\"%s\",\"update_errors\":%llu", map_error_name(*(const __u32 *)k),
		  (unsigned long long)((const struct xm_counter *)v)->value);
}

static void dec_node_addrs(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_node_addr_key *nk = k;
	char a[INET6_ADDRSTRLEN];

	(void)v;
	addr_str(&nk->addr, nk->family, a, sizeof(a));
	sb_printf(out, "\"node_address\":\"%s\",\"family\":%u", a, nk->family);
}

static void dec_mtls_key(const struct xm_mtls_key *mk, struct strbuf *out)
{
	char a[INET6_ADDRSTRLEN];

	addr_str(&mk->addr, mk->family, a, sizeof(a));
	sb_printf(out, "\"address\":\"%s\",\"port\":%u,\"family\":%u", a, mk->port, mk->family);
}

static void dec_mtls_policy(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_mtls_policy *p = v;

	dec_mtls_key(k, out);
	sb_printf(out, ",\"mode\":\"%s\",\"any_strict\":%s",
		  p->mode == XM_MTLS_MODE_STRICT    ? "STRICT"
		  : p->mode == XM_MTLS_MODE_DISABLE ? "DISABLE"
						    : "PERMISSIVE",
		  p->flags & XM_MTLS_F_ANY_STRICT ? "true" : "false");
}

static void dec_mtls_local_pod(const void *k, const void *v, struct strbuf *out)
{
	(void)v;
	dec_mtls_key(k, out);
}

static void dec_mtls_rejected(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_mtls_rejected *r = v;

	dec_mtls_key(k, out);
	sb_printf(out, ",\"syns\":%llu,\"fragments\":%llu", (unsigned long long)r->syns,
		  (unsigned long long)r->fragments);
}

static void dec_authz_plain(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_authz_plain_key *ak = k;
	const struct xm_authz_plain_verdict *p = v;
	char d[INET6_ADDRSTRLEN], s[INET6_ADDRSTRLEN];

	addr_str(&ak->dst, ak->family, d, sizeof(d));
	addr_str(&ak->src, ak->family, s, sizeof(s));
	sb_printf(out,
		  "\"pod\":\"%s\",\"port\":%u,\"family\":%u,\"client\":\"%s/%u\",\"deny\":%s,\"policy\":%u,"
		  "\"deny_local\":%s,\"policy_local\":%u",
		  d, ak->port, ak->family, s,
		  ak->prefixlen > XM_AUTHZ_PLAIN_FIXED_BITS ? ak->prefixlen - XM_AUTHZ_PLAIN_FIXED_BITS : 0,
		  p->deny ? "true" : "false", p->policy, p->deny_local ? "true" : "false", p->policy_local);
}

static void dec_authz_plain_denied(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_authz_plain_count_key *ck = k;
	char a[INET6_ADDRSTRLEN];

	addr_str(&ck->addr, ck->family, a, sizeof(a));
	sb_printf(out, "\"address\":\"%s\",\"port\":%u,\"family\":%u,\"policy\":%u,\"syns\":%llu", a, ck->port,
		  ck->family, ck->policy, (unsigned long long)*(const __u64 *)v);
}

static void dec_xdp_tcp_counters(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_xdp_tcp_metrics *m = v;

	sb_printf(out,
		  "\"position\":%u,\"svc_id\":%u,\"backend_id\":%u,\"opened\":%llu,\"closed\":%llu,"
		  "\"sent_bytes\":%llu,\"received_bytes\":%llu",
		  *(const __u32 *)k, m->svc_id, m->backend_id, (unsigned long long)m->opened,
		  (unsigned long long)m->closed, (unsigned long long)m->sent_bytes,
		  (unsigned long long)m->received_bytes);
}

static void dec_outlier(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_outlier_key *ok = k;
	const struct xm_outlier_state *st = v;

	sb_printf(out,
		  "\"svc_id\":%u,\"backend_id\":%u,\"consecutive_local\":%u,\"consecutive_5xx\":%u,"
		  "\"consecutive_gateway\":%u,\"backoff\":%u,\"ejected_until_ns\":%llu,\"times_ejected\":%llu",
		  ok->svc_id, ok->backend_id, st->consecutive_local, st->consecutive_5xx, st->consecutive_gateway,
		  st->backoff, (unsigned long long)st->ejected_until_ns, (unsigned long long)st->times_ejected);
}

static void dec_outlier_cfg(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_outlier_cfg *c = v;

	sb_printf(out,
		  "\"svc_id\":%u,\"consecutive_5xx\":%u,\"consecutive_gateway\":%u,\"consecutive_local_origin\":%u,"
		  "\"split\":%u,\"base_ejection_ms\":%u,\"interval_ms\":%u,\"max_ejection_pct\":%u,"
		  "\"min_health_pct\":%u,\"endpoints\":%u",
		  *(const __u32 *)k, c->consecutive_5xx, c->consecutive_gateway, c->consecutive_local_origin,
		  c->split_local_origin, c->base_ejection_ms, c->interval_ms, c->max_ejection_pct, c->min_health_pct,
		  c->n_endpoints);
}

static void dec_outlier_svc(const void *k, const void *v, struct strbuf *out)
{
	sb_printf(out, "\"svc_id\":%u,\"ejected\":%d", *(const __u32 *)k, ((const struct xm_outlier_svc *)v)->ejected);
}

static void dec_outlier_ids(const void *k, const void *v, struct strbuf *out)
{
	sb_printf(out, "\"svc_id\":%u,\"outlier_id\":%u", *(const __u32 *)k, *(const __u32 *)v);
}

static void dec_conn_metrics(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_conn_metrics_key *mk = k;
	const struct xm_conn_metrics *m = v;
	char c[INET6_ADDRSTRLEN];

	addr_str(&mk->client, mk->family, c, sizeof(c));
	sb_printf(out,
		  "\"client\":\"%s\",\"svc_id\":%u,\"backend_id\":%u,\"mtls\":%s,\"opened\":%llu,\"closed\":%llu,"
		  "\"sent_bytes\":%llu,\"received_bytes\":%llu",
		  c, mk->svc_id, mk->backend_id, (mk->flags & XM_CONN_F_MTLS) ? "true" : "false",
		  (unsigned long long)m->opened, (unsigned long long)m->closed, (unsigned long long)m->sent_bytes,
		  (unsigned long long)m->received_bytes);
}

static void dec_nat_backends(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_nat_backend_key *nk = k;
	const struct xm_nat_backend_value *nv = v;
	char b[INET6_ADDRSTRLEN], vip[INET6_ADDRSTRLEN];
	__u32 i;

	addr_str(&nk->addr, nk->family, b, sizeof(b));
	sb_printf(out, "\"backend\":\"%s\",\"port\":%u,\"proto\":%u,\"family\":%u,\"vips\":[", b, ntohs(nk->port),
		  nk->proto, nk->family);
	for (i = 0; i < nv->count && i < XM_NAT_MAX_VIPS; i++) {
		addr_str(&nv->vips[i].vip, nk->family, vip, sizeof(vip));
		sb_printf(out, "%s\"%s%s%s:%u\"", i ? "," : "", nk->family == XM_FAMILY_V6 ? "[" : "", vip,
			  nk->family == XM_FAMILY_V6 ? "]" : "", ntohs(nv->vips[i].vport));
	}
	sb_puts(out, "]");
}

static void dec_xdp_ifaces(const void *k, const void *v, struct strbuf *out)
{
	static const union xm_addr none;
	const struct xm_xdp_iface *ifc = v;
	char a4[INET6_ADDRSTRLEN] = "", a6[INET6_ADDRSTRLEN] = "";

	if (memcmp(&ifc->addr4, &none, sizeof(none)))
		addr_str(&ifc->addr4, XM_FAMILY_V4, a4, sizeof(a4));
	if (memcmp(&ifc->addr6, &none, sizeof(none)))
		addr_str(&ifc->addr6, XM_FAMILY_V6, a6, sizeof(a6));
	sb_printf(out, "\"ifindex\":%u,\"addr4\":\"%s\",\"addr6\":\"%s\"", *(const __u32 *)k, a4, a6);
}

static void dec_local_ips(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_local_ip_key *lk = k;
	__u32 flags = ((const struct xm_local_ip *)v)->flags;
	char a[INET6_ADDRSTRLEN];

	addr_str(&lk->addr, lk->family, a, sizeof(a));
	sb_printf(out, "\"address\":\"%s\",\"pod\":%s,\"endpoint\":%s,\"node\":%s", a,
		  flags & XM_LOCAL_IP_POD ? "true" : "false", flags & XM_LOCAL_IP_ENDPOINT ? "true" : "false",
		  flags & XM_LOCAL_IP_NODE ? "true" : "false");
}

/* A sockhash's value read from user space is the socket's cookie. */
static void dec_sock_pairs(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_sock_pair_key *sk = k;
	char l[INET6_ADDRSTRLEN], r[INET6_ADDRSTRLEN];

	addr_str(&sk->local, sk->family, l, sizeof(l));
	addr_str(&sk->remote, sk->family, r, sizeof(r));
	sb_printf(out,
		  "\"local\":\"%s\",\"local_port\":%u,\"remote\":\"%s\",\"remote_port\":%u,\"netns\":%llu,"
		  "\"cookie\":%llu",
		  l, sk->local_port, r, sk->remote_port, (unsigned long long)sk->netns,
		  (unsigned long long)*(const __u64 *)v);
}

static void dec_l7_proxy(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_l7_proxy *p = v;
	char a4[INET6_ADDRSTRLEN], a6[INET6_ADDRSTRLEN];

	(void)k;
	addr_str(&p->addr4, XM_FAMILY_V4, a4, sizeof(a4));
	addr_str(&p->addr6, XM_FAMILY_V6, a6, sizeof(a6));
	sb_printf(out, "\"address4\":\"%s\",\"address6\":\"%s\",\"port\":%u,\"v4\":%s,\"v6\":%s", a4, a6,
		  ntohs(p->port), p->flags & XM_L7_PROXY_F_V4 ? "true" : "false",
		  p->flags & XM_L7_PROXY_F_V6 ? "true" : "false");
}

static void dec_l7_origdst(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_l7_origdst_key *ok = k;
	const struct xm_l7_origdst *o = v;
	char c[INET6_ADDRSTRLEN], p[INET6_ADDRSTRLEN], vip[INET6_ADDRSTRLEN];

	addr_str(&ok->client, ok->family, c, sizeof(c));
	addr_str(&ok->proxy, ok->family, p, sizeof(p));
	addr_str(&o->vip, o->family, vip, sizeof(vip));
	sb_printf(out,
		  "\"client\":\"%s\",\"client_port\":%u,\"proxy\":\"%s\",\"proxy_port\":%u,\"vip\":\"%s\","
		  "\"vport\":%u,\"svc_id\":%u,\"netns\":%llu",
		  c, ntohs(ok->client_port), p, ntohs(ok->proxy_port), vip, ntohs(o->vport), o->svc_id,
		  (unsigned long long)o->netns);
}

static void dec_hbone_origdst(const void *k, const void *v, struct strbuf *out)
{
	const struct xm_l7_origdst_key *ok = k;
	const struct xm_hbone_origdst *o = v;
	char c[INET6_ADDRSTRLEN], l[INET6_ADDRSTRLEN], t[INET6_ADDRSTRLEN], vip[INET6_ADDRSTRLEN];

	addr_str(&ok->client, ok->family, c, sizeof(c));
	addr_str(&ok->proxy, ok->family, l, sizeof(l));
	addr_str(&o->target, o->family, t, sizeof(t));
	addr_str(&o->vip, o->family, vip, sizeof(vip));
	sb_printf(out,
		  "\"client\":\"%s\",\"client_port\":%u,\"listener\":\"%s\",\"listener_port\":%u,\"target\":\"%s\","
		  "\"target_port\":%u,\"dialed\":\"%s\",\"dialed_port\":%u,\"svc_id\":%u,\"netns\":%llu",
		  c, ntohs(ok->client_port), l, ntohs(ok->proxy_port), t, ntohs(o->tport), vip, ntohs(o->vport),
		  o->svc_id, (unsigned long long)o->netns);
}

#define MAP(n, w, d, ...)                                                                                              \
	{                                                                                                              \
		.name = n, .what = w, .decode = d, __VA_ARGS__                                                         \
	}

static const struct map_desc maps[] = {
	MAP("xm_services", "service VIP:port → backend list", dec_services),
	MAP("xm_slots", "backend lists: (table, slot) → backend", dec_slots),
	MAP("xm_backends", "backend id → address", dec_backends),
	MAP("xm_backend_conns", "live connections per backend", dec_conns, .skip_zero = true),
	MAP("xm_maglev", "Maglev tables of consistent-hash services", dec_maglev),
	MAP("xm_rr_state", "round-robin positions (summed over CPUs)", dec_rr, .percpu = true, .skip_zero = true),
	MAP("xm_udp_revnat", "UDP (socket, backend) → VIP", dec_revnat),
	MAP("xm_sock_stats", "socket LB counters (summed over CPUs)", dec_counter, .percpu = true),
	MAP("xm_map_errors", "failed map updates of the BPF programs (summed over CPUs)", dec_map_errors,
	    .percpu = true),
	MAP("xm_conn_metrics", "Istio TCP counters per client, service port, backend", dec_conn_metrics),
	MAP("xm_outlier_cfg", "outlier-detection policy per service port", dec_outlier_cfg),
	MAP("xm_outlier", "outlier state per service port and endpoint", dec_outlier, .locked = true),
	MAP("xm_outlier_svc", "ejected endpoints per service port", dec_outlier_svc, .skip_zero = true),
	MAP("xm_outlier_ids", "outlier id (key of the outlier maps) per VIP port", dec_outlier_ids, .skip_zero = true),
	MAP("xm_l7_proxy", "where the L7 proxy listens (captured HTTP connects go there)", dec_l7_proxy),
	MAP("xm_l7_origdst", "captured connections not yet accepted: 4-tuple → service VIP:port", dec_l7_origdst),
	MAP("xm_hbone_proxy", "where the HBONE tunnel listens (connects to tunnelled pods go there)", dec_l7_proxy),
	MAP("xm_hbone_dsts", "pods of other nodes: (pod IP, port) → mode (tunnelled unless DISABLE)", dec_mtls_policy),
	MAP("xm_hbone_origdst", "tunnelled connections not yet accepted: 4-tuple → pod IP:port, dialed address",
	    dec_hbone_origdst),
	MAP("xm_ct", "XDP connection table: client flow → backend", dec_ct, .optional = true),
	MAP("xm_node_addrs", "node addresses XDP decapsulates IPIP/IP6IP6 from", dec_node_addrs, .optional = true),
	MAP("xm_xdp_tcp_counters", "Istio TCP counters of XDP flows per service port, local backend (summed over CPUs)",
	    dec_xdp_tcp_counters, .percpu = true, .percpu_sum_len = XM_XDP_TCP_COUNTERS_LEN, .skip_zero = true,
	    .optional = true),
	MAP("xm_nat_backends", "XDP reverse NAT: local backend → the external VIP:ports it serves", dec_nat_backends,
	    .optional = true),
	MAP("xm_xdp_ifaces", "XDP uplinks: ifindex → own addresses (IPIP outer source and destination)", dec_xdp_ifaces,
	    .optional = true),
	MAP("xm_local_ips", "addresses on this node (same-node socket redirection)", dec_local_ips, .optional = true),
	MAP("xm_sock_pairs", "sockets redirected on this node: key → socket cookie", dec_sock_pairs, .optional = true),
	MAP("xm_mtls_policy", "PeerAuthentication of local pods with a STRICT port: (pod IP, port) → mode",
	    dec_mtls_policy, .optional = true),
	MAP("xm_mtls_local_pods", "mesh pods of this node (same-node plaintext passes STRICT)", dec_mtls_local_pod,
	    .optional = true),
	MAP("xm_mtls_rejected", "plaintext refused under STRICT per pod port (summed over CPUs)", dec_mtls_rejected,
	    .percpu = true, .optional = true),
	MAP("xm_authz_plain", "AuthorizationPolicy for plaintext clients: (pod IP, port, client prefix) → verdict",
	    dec_authz_plain, .optional = true),
	MAP("xm_authz_plain_denied",
	    "plaintext denied by AuthorizationPolicy per pod port and policy (summed over CPUs)",
	    dec_authz_plain_denied, .percpu = true, .optional = true),
};

static bool all_zero(const void *p, size_t n)
{
	const unsigned char *c = p;

	while (n--)
		if (*c++)
			return false;
	return true;
}

static int dump_map(const char *bpffs, const struct map_desc *d, bool json, bool first, struct strbuf *out)
{
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	void *key = NULL, *next = NULL, *value = NULL;
	int fd, err = 0, n = 0;
	bool have_prev = false;

	fd = pins_open(bpffs, d->name);
	if (fd < 0)
		return fd;
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len) < 0) {
		err = -errno;
		goto out;
	}
	key = calloc(1, info.key_size);
	next = calloc(1, info.key_size);
	value = calloc(1, info.value_size);
	if (!key || !next || !value) {
		err = -ENOMEM;
		goto out;
	}
	if (json)
		sb_printf(out, "%s\"%s\":[", first ? "" : ",", d->name);
	else
		sb_printf(out, "%s%s (%s), max %u entries\n", first ? "" : "\n", d->name, d->what, info.max_entries);
	while (bpf_map_get_next_key(fd, have_prev ? key : NULL, next) == 0) {
		memcpy(key, next, info.key_size);
		have_prev = true;
		if (d->percpu ? percpu_lookup_value(fd, key, info.value_size,
						    d->percpu_sum_len ? d->percpu_sum_len : info.value_size, value)
			      : bpf_map_lookup_elem_flags(fd, key, value, d->locked ? BPF_F_LOCK : 0) < 0)
			continue;
		if (d->skip_zero && all_zero(value, info.value_size))
			continue;
		if (json) {
			sb_puts(out, n ? ",{" : "{");
			d->decode(key, value, out);
			sb_puts(out, "}");
		} else {
			struct strbuf line = { 0 };

			d->decode(key, value, &line);
			/* Text form: the JSON members as name=value, separators only outside strings. */
			bool in_str = false;

			sb_puts(out, "  ");
			for (const char *p = line.buf ? line.buf : ""; *p; p++) {
				if (*p == '"')
					in_str = !in_str;
				else if (!in_str && *p == ',')
					sb_puts(out, " ");
				else if (!in_str && *p == ':')
					sb_puts(out, "=");
				else
					sb_printf(out, "%c", *p);
			}
			sb_puts(out, "\n");
			sb_free(&line);
		}
		n++;
	}
	if (json)
		sb_puts(out, "]");
	else if (!n)
		sb_puts(out, "  (empty)\n");
out:
	free(key);
	free(next);
	free(value);
	close(fd);
	return err;
}

/* Whether dir holds any of xmesh's maps: when none, one line says so instead of one error per map. */
static bool any_pinned(const char *dir)
{
	char path[4096];
	size_t i;

	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, maps[i].name);
		if (access(path, F_OK) == 0)
			return true;
	}
	return false;
}

int cmd_maps(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "bpffs", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *bpffs = XM_DEFAULT_BPFFS, *only = NULL;
	struct strbuf out = { 0 };
	bool json = false, first = true;
	int c, rc = 0;
	size_t i;

	optind = 1;
	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'b':
			bpffs = optarg;
			break;
		case 'h':
			printf("usage: xmesh maps [NAME] [--json] [--bpffs DIR]\n");
			return 0;
		default:
			fprintf(stderr, "usage: xmesh maps [NAME] [--json] [--bpffs DIR]\n");
			return 2;
		}
	}
	if (optind < argc)
		only = argv[optind];
	if (!any_pinned(bpffs)) {
		fprintf(stderr, "xmesh maps: no xmesh pins under %s\n", bpffs);
		return 1;
	}
	if (json)
		sb_puts(&out, "{");
	for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++) {
		int err;

		if (only && strcmp(only, maps[i].name))
			continue;
		err = dump_map(bpffs, &maps[i], json, first, &out);
		if (err == -ENOENT && maps[i].optional && !only)
			continue;
		if (err) {
			fprintf(stderr, "xmesh maps: %s/%s: %s\n", bpffs, maps[i].name, strerror(-err));
			rc = 1;
			continue;
		}
		first = false;
	}
	if (only && first && !rc) {
		fprintf(stderr, "xmesh maps: no map named %s (", only);
		for (i = 0; i < sizeof(maps) / sizeof(maps[0]); i++)
			fprintf(stderr, "%s%s", i ? ", " : "", maps[i].name);
		fprintf(stderr, ")\n");
		rc = 2;
	}
	if (json)
		sb_puts(&out, "}\n");
	if (out.buf)
		fputs(out.buf, stdout);
	sb_free(&out);
	return rc;
}
