// SPDX-License-Identifier: Apache-2.0
/*
 * istio_tcp_* of tunnelled streams (metrics/tunnel_tcp.h): the labels a stream gets from the snapshot, the
 * peer's identity and its Forwarded header; the table the hbone thread writes and the scrape reads; the
 * rendering shared with the kernel's paths (metrics/istio_tcp.h); the Forwarded parser (hbone/forwarded.c).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "test_snapshot_of.h"

#include "compile/snapshot.h"
#include "core/strbuf.h"
#include "hbone/hbone.h"
#include "metrics/istio_tcp.h"
#include "metrics/registry.h"
#include "metrics/tunnel_tcp.h"
#include "test_metrics.h"

#define CLIENT "spiffe://cluster.local/ns/shop/sa/client"
#define WEB    "spiffe://cluster.local/ns/shop/sa/web"

/* ---- Forwarded ---- */

static void expect_for(const char *hdr, const char *addr, uint16_t port, const char *host)
{
	struct hbone_forwarded f;
	char buf[64] = "";

	cr_assert_eq(hbone_parse_forwarded(hdr, strlen(hdr), &f), 0, "%s", hdr);
	cr_expect_eq(f.has_for, addr != NULL, "%s", hdr);
	if (addr && f.for_addr.ss_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)&f.for_addr;

		inet_ntop(AF_INET, &in->sin_addr, buf, sizeof(buf));
		cr_expect_eq(ntohs(in->sin_port), port, "%s", hdr);
	} else if (addr) {
		const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&f.for_addr;

		cr_assert_eq(f.for_addr.ss_family, AF_INET6, "%s", hdr);
		inet_ntop(AF_INET6, &in6->sin6_addr, buf, sizeof(buf));
		cr_expect_eq(ntohs(in6->sin6_port), port, "%s", hdr);
	}
	if (addr)
		cr_expect_str_eq(buf, addr, "%s", hdr);
	cr_expect_str_eq(f.host, host, "%s", hdr);
}

Test(hbone_forwarded, what_ztunnel_sends_and_rfc7239)
{
	expect_for("for=\"10.0.0.1:40000\"", "10.0.0.1", 40000, "");
	expect_for("for=\"[fd00::1]:8080\";host=web.shop.svc.cluster.local", "fd00::1", 8080,
		   "web.shop.svc.cluster.local");
	expect_for("for=10.0.0.1", "10.0.0.1", 0, "");
	expect_for("For=\"10.0.0.1:1\" ; Host=\"a\\\"b\"", "10.0.0.1", 1, "a\"b");
	expect_for("proto=https;for=\"10.0.0.2:5\";by=x", "10.0.0.2", 5, "");
	/* the first element names the client; later ones are proxies */
	expect_for("for=\"10.0.0.3:7\", for=\"10.0.0.4:8\"", "10.0.0.3", 7, "");
	expect_for(";;for=\"10.0.0.5:9\";", "10.0.0.5", 9, "");
	/* no address: unknown, obfuscated, names, ports that are not numbers */
	expect_for("for=unknown", NULL, 0, "");
	expect_for("for=_hidden", NULL, 0, "");
	expect_for("for=\"[fd00::1]\"", "fd00::1", 0, "");
	expect_for("for=\"10.0.0.1:_p\"", NULL, 0, "");
	expect_for("for=\"10.0.0.1:65536\"", NULL, 0, "");
	expect_for("for=\"host.example:80\"", NULL, 0, "");
	expect_for("for=\"10.0.0.1:80:1\"", NULL, 0, "");
	expect_for("host=h", NULL, 0, "h");
	expect_for("", NULL, 0, "");
}

/* RFC 7239 §6: an IPv6 node is bracketed, and quoted (":" and "[" are no token characters). */
Test(hbone_forwarded, ipv6_nodes)
{
	struct hbone_forwarded f;

	expect_for("for=\"[fd00:200:1::11]:40000\"", "fd00:200:1::11", 40000, "");
	expect_for("for=\"[FD00::7]:1\";host=web", "fd00::7", 1, "web");
	expect_for("for=\"[::ffff:10.0.0.1]:5\"", "::ffff:10.0.0.1", 5, "");
	expect_for("for=\"[fd00::1]:_p\"", NULL, 0, "");
	expect_for("for=\"[fd00::1]:\"", NULL, 0, "");
	expect_for("for=\"[fe80::1%eth0]:80\"", NULL, 0, "");
	expect_for("for=\"[fd00::1]x\"", NULL, 0, "");
	expect_for("for=\"[]:80\"", NULL, 0, "");
	expect_for("for=\"fd00::1\"", NULL, 0, "");
	/* Unquoted, the value is no token: the header is malformed, not merely addressless. */
	cr_expect_eq(hbone_parse_forwarded("for=[fd00::1]:80", 16, &f), -EINVAL);
	cr_expect_not(f.has_for);
}

Test(hbone_forwarded, malformed_is_refused_whole)
{
	static const char *const bad[] = {
		"for",		    /* no value */
		"for=",		    /* empty token */
		"=1",		    /* no name */
		"for=\"10.0.0.1:1", /* unterminated quote */
		"for=\"a\\",	    /* escape at the end */
		"for=a b",	    /* junk after a value */
		"for=\"a\x01\"",    /* a control in a quoted string */
		"for=1;for=2",	    /* a parameter twice */
		"host=a;host=b",    /* the same */
		"f(r=1",	    /* not a token */
	};
	struct hbone_forwarded f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&f, 0xa5, sizeof(f));
		cr_expect_eq(hbone_parse_forwarded(bad[i], strlen(bad[i]), &f), -EINVAL, "%s", bad[i]);
		cr_expect_not(f.has_for, "%s: cleared", bad[i]);
		cr_expect_eq(f.host[0], '\0', "%s: cleared", bad[i]);
	}
	/* a NUL inside the value */
	cr_expect_eq(hbone_parse_forwarded("for=1\0x", 7, &f), -EINVAL);
	/* a host= that does not fit */
	{
		char big[HBONE_FORWARDED_VALUE_MAX + 16];

		memset(big, 'a', sizeof(big));
		memcpy(big, "host=", 5);
		cr_expect_eq(hbone_parse_forwarded(big, sizeof(big), &f), -EINVAL);
	}
}

/* ---- labels from a snapshot ---- */

#define POD(name, ip, node, sa)                                                                                        \
	"---\napiVersion: v1\nkind: Pod\nmetadata:\n  name: " name "\n  namespace: shop\n  labels:\n    app: " name    \
	"-app\nspec:\n  nodeName: " node "\n  serviceAccountName: " sa "\nstatus:\n  podIP: " ip "\n"
#define SVC(name, vip)                                                                                                 \
	"---\napiVersion: v1\nkind: Service\nmetadata:\n  name: " name "\n  namespace: shop\nspec:\n  clusterIP: " vip \
	"\n  ports:\n  - name: tcp\n    port: 80\n    protocol: TCP\n    targetPort: 8080\n"
#define SLICE(svc, ip)                                                                                                 \
	"---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: " svc "-1\n  namespace: shop\n" \
	"  labels:\n    kubernetes.io/service-name: " svc "\naddressType: IPv4\nports:\n- name: tcp\n  port: 8080\n"   \
	"  protocol: TCP\nendpoints:\n- addresses: [\"" ip "\"]\n  conditions: {ready: true}\n  nodeName: node-b\n"

/* client .11 (sa client) on node-a; web .21 (Service web), both .22 (Services web and web2), lone .23 on node-b */
static const char world[] = POD("client", "10.200.1.11", "node-a", "client") POD("web", "10.200.2.21", "node-b", "web")
    POD("both", "10.200.2.22", "node-b", "web") POD("lone", "10.200.2.23", "node-b", "lone") SVC("web", "10.96.0.10")
	SLICE("web", "10.200.2.21") SVC("web2", "10.96.0.11") SLICE("web2", "10.200.2.22") SVC("web3", "10.96.0.12")
	    SLICE("web3", "10.200.2.22");

static struct xm_snapshot *snap_of(const char *text)
{
	struct xm_compile_opts o = { .node_name = "node-b", .maglev_size = 251 };

	return snapshot_from_yaml(text, &o);
}

static struct sockaddr_storage v4(const char *ip, uint16_t port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *in = (struct sockaddr_in *)&ss;

	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	cr_assert_eq(inet_pton(AF_INET, ip, &in->sin_addr), 1);
	return ss;
}

Test(tunnel_tcp, labels_of_a_stream)
{
	struct xm_snapshot *s = snap_of(world);
	struct sockaddr_storage web = v4("10.200.2.21", 8080);
	struct tunnel_tcp_labels l;

	tunnel_tcp_resolve(s, CLIENT, &web, "for=\"10.200.1.11:40000\"", &l);
	cr_expect_str_eq(l.source_principal, CLIENT);
	cr_expect_str_eq(l.source_workload, "client-app", "Istio's workload name: the app label first");
	cr_expect_str_eq(l.source_ns, "shop");
	cr_expect_str_eq(l.source_app, "client-app");
	cr_expect_str_eq(l.service_name, "web");
	cr_expect_str_eq(l.service_ns, "shop");
	cr_expect_str_eq(l.destination_workload, "web-app");
	cr_expect_str_eq(l.destination_ns, "shop");
	cr_expect_str_eq(l.destination_principal, WEB);
	snapshot_put(s);
}

Test(tunnel_tcp, source_only_when_forwarded_names_a_pod_of_the_peer)
{
	struct xm_snapshot *s = snap_of(world);
	struct sockaddr_storage web = v4("10.200.2.21", 8080);
	static const char *const no_source[] = {
		NULL,
		"",
		"for=unknown",
		"for=\"10.200.1.99:1\"",	   /* no pod */
		"for=\"10.200.2.23:1\"",	   /* a pod of another identity (sa lone) */
		"for=\"10.200.1.11:1\";for=\"x\"", /* malformed */
	};
	struct tunnel_tcp_labels l;

	for (size_t i = 0; i < sizeof(no_source) / sizeof(no_source[0]); i++) {
		tunnel_tcp_resolve(s, CLIENT, &web, no_source[i], &l);
		cr_expect_str_eq(l.source_workload, "", "%s", no_source[i] ? no_source[i] : "(null)");
		cr_expect_str_eq(l.source_ns, "");
		cr_expect_str_eq(l.source_app, "");
		cr_expect_str_eq(l.source_principal, CLIENT, "the certificate's identity whatever the header says");
		cr_expect_str_eq(l.destination_workload, "web-app");
	}
	/* the same pod, but the peer proved another identity */
	tunnel_tcp_resolve(s, "spiffe://cluster.local/ns/shop/sa/lone", &web, "for=\"10.200.1.11:1\"", &l);
	cr_expect_str_eq(l.source_workload, "");
	snapshot_put(s);
}

Test(tunnel_tcp, service_of_the_target)
{
	struct xm_snapshot *s = snap_of(world);
	struct sockaddr_storage t;
	struct tunnel_tcp_labels l;

	/* a port no slice lists */
	t = v4("10.200.2.21", 9090);
	tunnel_tcp_resolve(s, CLIENT, &t, NULL, &l);
	cr_expect_str_eq(l.service_name, "");
	cr_expect_str_eq(l.destination_workload, "web-app");
	/* two Services list both:8080: none, unless host= names one of them */
	t = v4("10.200.2.22", 8080);
	tunnel_tcp_resolve(s, CLIENT, &t, NULL, &l);
	cr_expect_str_eq(l.service_name, "");
	tunnel_tcp_resolve(s, CLIENT, &t, "for=\"10.200.1.11:1\";host=web3.shop.svc.cluster.local", &l);
	cr_expect_str_eq(l.service_name, "web3");
	cr_expect_str_eq(l.source_workload, "client-app");
	/* host= cannot pick a Service that does not list the target */
	tunnel_tcp_resolve(s, CLIENT, &t, "host=web.shop.svc.cluster.local", &l);
	cr_expect_str_eq(l.service_name, "");
	/* an address that is no pod: unknown destination, no service */
	t = v4("10.200.2.99", 8080);
	tunnel_tcp_resolve(s, CLIENT, &t, NULL, &l);
	cr_expect_str_eq(l.destination_workload, "");
	cr_expect_str_eq(l.destination_principal, "");
	cr_expect_str_eq(l.service_name, "");
	/* without a snapshot: only the peer */
	t = v4("10.200.2.21", 8080);
	tunnel_tcp_resolve(NULL, CLIENT, &t, "for=\"10.200.1.11:1\"", &l);
	cr_expect_str_eq(l.source_principal, CLIENT);
	cr_expect_str_eq(l.destination_workload, "");
	snapshot_put(s);
}

/* ---- rendering ---- */

static char *render(void (*fill)(struct xm_scrape *sc, void *arg), void *arg)
{
	struct xm_scrape *sc = scrape_new();
	struct strbuf out = { 0 };

	cr_assert_not_null(sc);
	fill(sc, arg);
	scrape_render(sc, &out);
	scrape_free(sc);
	cr_assert(!out.oom);
	cr_assert_not_null(out.buf);
	return out.buf;
}

static void fill_no_service(struct xm_scrape *sc, void *arg)
{
	const struct istio_tcp_series s = {
		.reporter = ISTIO_TCP_DESTINATION,
		.source_principal = CLIENT,
		.destination_workload = "web",
		.destination_workload_namespace = "shop",
		.destination_principal = WEB,
		.security_policy = "mutual_tls",
	};
	const struct istio_tcp_counts c = { 1, 1, 3, 2 };

	(void)arg;
	istio_tcp_render(sc, &s, &c);
}

Test(tunnel_tcp, render_a_series_without_service)
{
	char *text = render(fill_no_service, NULL);
	const char *labels =
	    "{reporter=\"destination\",source_workload=\"unknown\",source_workload_namespace=\"unknown\","
	    "source_principal=\"" CLIENT "\",source_app=\"unknown\",destination_service=\"unknown\","
	    "destination_service_name=\"unknown\",destination_service_namespace=\"unknown\","
	    "destination_workload=\"web\",destination_workload_namespace=\"shop\","
	    "destination_principal=\"" WEB "\",request_protocol=\"tcp\","
	    "connection_security_policy=\"mutual_tls\",response_flags=\"-\"}";
	char line[2048];

	snprintf(line, sizeof(line), "\nistio_tcp_connections_opened_total%s 1\n", labels);
	cr_expect_not_null(strstr(text, line), "%s", text);
	snprintf(line, sizeof(line), "\nistio_tcp_connections_closed_total%s 1\n", labels);
	cr_expect_not_null(strstr(text, line), "%s", text);
	snprintf(line, sizeof(line), "\nistio_tcp_sent_bytes_total%s 3\n", labels);
	cr_expect_not_null(strstr(text, line), "%s", text);
	snprintf(line, sizeof(line), "\nistio_tcp_received_bytes_total%s 2\n", labels);
	cr_expect_not_null(strstr(text, line), "%s", text);
	free(text);
}

/* The kernel's paths keep their labels: the Service's, the snapshot's principals, security policy unknown. */
static void fill_kernel_path(struct xm_scrape *sc, void *arg)
{
	struct xm_snapshot *s = arg;
	const struct xm_lb_service *svc = NULL;

	for (size_t i = 0; i < s->lb.n_services; i++) {
		s->lb.services[i].svc_id = 100 + (uint32_t)i;
		for (size_t j = 0; j < s->lb.services[i].n_backends; j++)
			s->lb.services[i].backends[j].id = 1000 + 10 * (uint32_t)i + (uint32_t)j;
		if (!strcmp(s->lb.services[i].name, "web"))
			svc = &s->lb.services[i];
	}
	cr_assert_not_null(svc);
	cr_assert_eq(snapshot_index(s), 0);
	istio_tcp_add(sc, s, ISTIO_TCP_SOURCE, svc->svc_id, svc->backends[0].id, NULL,
		      &(struct istio_tcp_counts){ 5, 4, 30, 20 });
}

Test(tunnel_tcp, render_keeps_the_kernel_paths_labels)
{
	struct xm_snapshot *s = snap_of(world);
	char *text = render(fill_kernel_path, s);

	cr_expect_not_null(
	    strstr(text, "\nistio_tcp_connections_opened_total{reporter=\"source\",source_workload=\"unknown\","
			 "source_workload_namespace=\"unknown\",source_principal=\"unknown\",source_app=\"unknown\","
			 "destination_service=\"web.shop.svc.cluster.local\",destination_service_name=\"web\","
			 "destination_service_namespace=\"shop\",destination_workload=\"web-app\","
			 "destination_workload_namespace=\"shop\",destination_principal=\"" WEB "\","
			 "request_protocol=\"tcp\",connection_security_policy=\"unknown\",response_flags=\"-\"} 5\n"),
	    "%s", text);
	free(text);
	snapshot_put(s);
}

/* ---- the table ---- */

static void labels_n(struct tunnel_tcp_labels *l, int n)
{
	memset(l, 0, sizeof(*l));
	snprintf(l->source_principal, sizeof(l->source_principal), "%s", CLIENT);
	snprintf(l->source_workload, sizeof(l->source_workload), "w%d", n);
	snprintf(l->destination_workload, sizeof(l->destination_workload), "w%d", n);
	snprintf(l->destination_principal, sizeof(l->destination_principal), "%s", WEB);
}

static void fill_table(struct xm_scrape *sc, void *arg)
{
	tunnel_tcp_collect(arg, sc);
}

Test(tunnel_tcp, one_series_per_label_set)
{
	struct tunnel_tcp_table *t = tunnel_tcp_new(0);
	struct tunnel_tcp_labels a, b;
	struct hbone_stream_counts *ca, *cb;
	char *text;

	cr_assert_not_null(t);
	labels_n(&a, 1);
	labels_n(&b, 2);
	ca = tunnel_tcp_series(t, &a);
	cb = tunnel_tcp_series(t, &b);
	cr_assert_not_null(ca);
	cr_assert_not_null(cb);
	cr_expect_neq(ca, cb);
	cr_expect_eq(tunnel_tcp_series(t, &a), ca, "the same labels, the same counters");
	cr_expect_eq(tunnel_tcp_count(t), 2);
	atomic_fetch_add(&ca->opened, 2);
	atomic_fetch_add(&ca->closed, 1);
	atomic_fetch_add(&ca->received, 1000);
	atomic_fetch_add(&ca->sent, 2000);
	atomic_fetch_add(&cb->opened, 1);
	atomic_fetch_add(&cb->closed, 1);
	text = render(fill_table, t);
	cr_expect_eq(count_lines_with(text, "connection_security_policy=\"mutual_tls\""), 8, "%s", text);
	cr_expect_eq(count_lines_with(text, "reporter=\"destination\""), 8);
	cr_expect_not_null(strstr(text, "destination_workload=\"w1\",destination_workload_namespace=\"unknown\","
					"destination_principal=\"" WEB "\",request_protocol=\"tcp\","
					"connection_security_policy=\"mutual_tls\",response_flags=\"-\"} 2\n"),
			   "%s", text);
	cr_expect_eq(count_lines_with(text, "} 2000"), 1);
	cr_expect_eq(count_lines_with(text, "} 1000"), 1);
	cr_expect_not_null(strstr(text, "\nxmesh_hbone_metrics_overflow_total 0\n"));
	if (promtool_path()) {
		char out[4096];

		cr_expect_eq(promtool_check(text, out, sizeof(out)), 0, "%s", out);
	}
	free(text);
	tunnel_tcp_free(t);
}

Test(tunnel_tcp, a_full_table_counts_the_overflow)
{
	struct tunnel_tcp_table *t = tunnel_tcp_new(3);
	struct tunnel_tcp_labels l;
	char *text;

	cr_assert_not_null(t);
	for (int i = 0; i < 3; i++) {
		labels_n(&l, i);
		cr_expect_not_null(tunnel_tcp_series(t, &l));
	}
	labels_n(&l, 3);
	cr_expect_null(tunnel_tcp_series(t, &l));
	cr_expect_null(tunnel_tcp_series(t, &l));
	labels_n(&l, 1);
	cr_expect_not_null(tunnel_tcp_series(t, &l), "known series still count");
	cr_expect_eq(tunnel_tcp_count(t), 3);
	cr_expect_eq(tunnel_tcp_overflow(t), 2);
	text = render(fill_table, t);
	cr_expect_not_null(strstr(text, "\nxmesh_hbone_metrics_overflow_total 2\n"), "%s", text);
	free(text);
	tunnel_tcp_free(t);
}

Test(tunnel_tcp, closed_never_above_opened)
{
	struct tunnel_tcp_table *t = tunnel_tcp_new(0);
	struct tunnel_tcp_labels l;
	struct hbone_stream_counts *c;
	char *text;

	labels_n(&l, 0);
	c = tunnel_tcp_series(t, &l);
	cr_assert_not_null(c);
	atomic_store(&c->opened, 1);
	atomic_store(&c->closed, 2); /* as a reader may see them: closed loaded after a later increment */
	text = render(fill_table, t);
	cr_expect_eq(count_lines_with(text, "istio_tcp_connections_closed_total{"), 1);
	cr_expect_not_null(strstr(text, "istio_tcp_connections_closed_total{"), "%s", text);
	cr_expect_eq(count_lines_with(text, "} 2\n"), 0, "%s", text);
	free(text);
	tunnel_tcp_free(t);
}

/* A writer adds series while a reader scrapes: every series a scrape shows is whole (its two labels agree). */
struct race {
	struct tunnel_tcp_table *t;
	atomic_bool done;
	int bad, scrapes;
	size_t last_seen;
};

static void *race_writer(void *arg)
{
	struct race *r = arg;
	struct tunnel_tcp_labels l;

	for (int i = 0; i < TUNNEL_TCP_MAX_SERIES; i++) {
		labels_n(&l, i);
		atomic_fetch_add(&tunnel_tcp_series(r->t, &l)->opened, 1);
	}
	atomic_store(&r->done, true);
	return NULL;
}

static void race_check(struct race *r)
{
	char *text = render(fill_table, r->t);
	size_t seen = 0;

	for (const char *p = text; (p = strstr(p, "\nistio_tcp_connections_opened_total{")) != NULL; p++) {
		const char *sw = strstr(p, "source_workload=\"w"), *dw = strstr(p, "destination_workload=\"w");
		int a = -1, b = -2;

		if (sw && dw) {
			sscanf(sw, "source_workload=\"w%d\"", &a);
			sscanf(dw, "destination_workload=\"w%d\"", &b);
		}
		r->bad += a != b;
		seen++;
	}
	r->bad += seen < r->last_seen; /* series never disappear */
	r->last_seen = seen;
	r->scrapes++;
	free(text);
}

Test(tunnel_tcp, a_scrape_during_writes_sees_whole_series, .timeout = 60)
{
	struct race r = { .t = tunnel_tcp_new(0) };
	pthread_t w;

	cr_assert_not_null(r.t);
	cr_assert_eq(pthread_create(&w, NULL, race_writer, &r), 0);
	while (!atomic_load(&r.done))
		race_check(&r);
	pthread_join(w, NULL);
	race_check(&r);
	cr_log_info("%d scrapes while %d series were added", r.scrapes, TUNNEL_TCP_MAX_SERIES);
	cr_expect_eq(r.bad, 0);
	cr_expect_eq(r.last_seen, TUNNEL_TCP_MAX_SERIES);
	cr_expect_eq(tunnel_tcp_overflow(r.t), 0);
	tunnel_tcp_free(r.t);
}
