// SPDX-License-Identifier: Apache-2.0
/*
 * The L7 proxy's upstreams through the node's mTLS tunnel (docs/l7.md "Upstreams through the tunnel"), with a
 * fake tunnel function: endpoints that are pods of another node (node-b) are reached through a socketpair
 * whose far end the fake splices to the fixture's HTTP upstream after answering "opened" (as the HBONE client
 * does when its CONNECT got 200), or answers "refused"/"failed"/"timed out" and resets or closes it. The
 * answer (core/tunnel_done.h) is what the proxy goes by, never what the socket does. Checked: the request
 * goes through the tunnel with the client pod's SPIFFE id, the connection is pooled per client identity and
 * never mixed with plain ones, a refusal is a connect failure to retries and outlier detection (503 UF) even
 * when the socket closes cleanly, an opened tunnel that reads late is no failure, an answer after
 * connectTimeout is dropped, a client that is no pod is refused without a tunnel call and never sent in
 * plaintext, and the request metric says mutual_tls with both principals.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "compile/snapshot.h"
#include "core/post_gate.h"
#include "core/tunnel_done.h"
#include "core/strbuf.h"
#include "l7/proxy.h"
#include "l7/record.h"
#include "l7/stats.h"
#include "l7_proxy_fixture.h"
#include "metrics/registry.h"
#include "test_config.h"

static struct l7_proxy *proxy;
static struct xm_snapshot *snap;
static uint16_t port, up_port;

/* ---- the fake tunnel ---- */

#define CALLS_MAX 32

struct call {
	char addr[INET6_ADDRSTRLEN];
	uint16_t port;
	char src_id[256];
	char client[INET6_ADDRSTRLEN];
	bool traceparent;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct call calls[CALLS_MAX];
static int n_calls;
static atomic_int live_splices;

/*
 * 10.99.0.5: opened, spliced to the upstream; 10.99.0.6: refused (503) after 30 ms, then reset; 10.99.0.7:
 * failed at once (closed); 10.99.0.8: no answer for 1 s, then "timed out"; 10.99.0.9: opened, reads the head,
 * then closes; 10.99.0.10: opened, spliced, reading the proxy's bytes slowly (4 KiB each 2 ms: a stream window
 * that lags); 10.99.0.11: opened, but reads nothing for 400 ms (connectTimeout 200ms), then spliced;
 * 10.99.0.12: refused (401) after 30 ms, with a clean close (EOF, no reset).
 */
enum fake_mode {
	FAKE_SPLICE,
	FAKE_RESET,
	FAKE_CLOSE,
	FAKE_HANG,
	FAKE_DROP,
	FAKE_SLOW,
	FAKE_LATE_READ,
	FAKE_REFUSE_CLEAN
};

struct splice_arg {
	int fd;
	enum fake_mode mode;
	struct xm_tunnel_done done;
};

static void answer(const struct xm_tunnel_done *d, enum xm_tunnel_outcome o, int status, int err)
{
	struct xm_tunnel_result r = { .outcome = o, .status = status, .err = err };

	tunnel_done_post(d, &r);
}

static void reset_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };

	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

static void splice_loop(int a, int b, bool slow)
{
	char buf[16384];

	for (;;) {
		struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };

		if (poll(p, 2, 5000) <= 0)
			return;
		for (int i = 0; i < 2; i++) {
			int from = i ? b : a, to = i ? a : b;
			ssize_t n;

			if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			n = read(from, buf, slow && !i ? 4096 : sizeof(buf));
			if (n <= 0)
				return;
			if (slow && !i)
				usleep(2000);
			for (ssize_t off = 0; off < n;) {
				ssize_t k = write(to, buf + off, (size_t)(n - off));

				if (k <= 0)
					return;
				off += k;
			}
		}
	}
}

static void *fake_thread(void *arg)
{
	struct splice_arg *sa = arg;
	int fd = sa->fd;

	if (sa->mode == FAKE_RESET) {
		usleep(30000); /* the CONNECT's round trip, then the 503 */
		answer(&sa->done, XM_TUNNEL_REFUSED, 503, 0);
		reset_close(fd);
		fd = -1;
	} else if (sa->mode == FAKE_REFUSE_CLEAN) {
		char buf[4096];

		usleep(30000);
		answer(&sa->done, XM_TUNNEL_REFUSED, 401, 0);
		/* Whatever the proxy wrote is taken (nothing, it waits for the answer), then a clean EOF: by the
		 * socket alone (the SIOCOUTQ heuristic this replaced) "opened, then closed", UC, not retried. */
		while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
			;
		shutdown(fd, SHUT_RDWR);
	} else if (sa->mode == FAKE_HANG) {
		usleep(1000000);
		answer(&sa->done, XM_TUNNEL_TIMED_OUT, 0, -ETIMEDOUT); /* long after connectTimeout closed it */
	} else if (sa->mode == FAKE_DROP) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char buf[4096];

		/* 200, then the head is read; the remote pod closes before answering. */
		answer(&sa->done, XM_TUNNEL_OPENED, 200, 0);
		if (poll(&p, 1, 2000) == 1 && read(fd, buf, sizeof(buf)) > 0)
			usleep(20000);
	} else {
		struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(up_port) };
		int up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		/* The far end comes non-blocking (both ends of the pair are): the tunnel sets the mode it wants. */
		fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
		answer(&sa->done, XM_TUNNEL_OPENED, 200, 0);
		if (sa->mode == FAKE_LATE_READ)
			usleep(400000); /* the remote pod is slow to read: no business of connectTimeout */
		if (up >= 0 && !connect(up, (struct sockaddr *)&sin, sizeof(sin)))
			splice_loop(fd, up, sa->mode == FAKE_SLOW);
		if (up >= 0)
			close(up);
	}
	if (fd >= 0)
		close(fd);
	atomic_fetch_sub(&live_splices, 1);
	free(sa);
	return NULL;
}

/* Set: the fake answers as tunnel_submit before the HBONE client runs. */
static atomic_bool fake_unavailable;

static int fake_tunnel(void *ctx, int fd, const struct l7_tunnel_req *req, const struct xm_tunnel_done *done)
{
	struct splice_arg *sa;
	struct call *c = NULL;
	enum fake_mode mode;
	pthread_t t;

	(void)ctx;
	if (atomic_load(&fake_unavailable)) {
		close(fd);
		return -ENOTCONN;
	}
	pthread_mutex_lock(&lock);
	if (n_calls < CALLS_MAX)
		c = &calls[n_calls++];
	pthread_mutex_unlock(&lock);
	if (c) {
		inet_ntop(req->family == XM_FAMILY_V4 ? AF_INET : AF_INET6, req->addr.bytes, c->addr, sizeof(c->addr));
		c->port = req->port;
		snprintf(c->src_id, sizeof(c->src_id), "%s", req->src_id);
		if (req->client_family)
			inet_ntop(req->client_family == XM_FAMILY_V4 ? AF_INET : AF_INET6, req->client_addr.bytes,
				  c->client, sizeof(c->client));
		c->traceparent = req->traceparent && strlen(req->traceparent) == 55;
	}
	switch (req->addr.bytes[3]) {
	case 5:
		mode = FAKE_SPLICE;
		break;
	case 6:
		mode = FAKE_RESET;
		break;
	case 8:
		mode = FAKE_HANG;
		break;
	case 9:
		mode = FAKE_DROP;
		break;
	case 10:
		mode = FAKE_SLOW;
		break;
	case 11:
		mode = FAKE_LATE_READ;
		break;
	case 12:
		mode = FAKE_REFUSE_CLEAN;
		break;
	default:
		mode = FAKE_CLOSE;
	}
	cr_assert(done && done->gate && done->fn, "every tunnelled connection asks for the answer");
	if (mode == FAKE_CLOSE) {
		/* A TLS failure (no route, handshake): answered on the caller's thread, before it even returns. */
		post_gate_get(done->gate);
		answer(done, XM_TUNNEL_FAILED, 0, -EHOSTUNREACH);
		close(fd);
		return 0;
	}
	sa = malloc(sizeof(*sa));
	if (!sa) {
		close(fd);
		return -ENOMEM;
	}
	*sa = (struct splice_arg){ fd, mode, *done };
	post_gate_get(done->gate); /* l7_tunnel_fn's contract: dropped by the answer's post */
	atomic_fetch_add(&live_splices, 1);
	if (pthread_create(&t, NULL, fake_thread, sa)) {
		atomic_fetch_sub(&live_splices, 1);
		post_gate_put(done->gate);
		free(sa);
		close(fd);
		return -EAGAIN;
	}
	pthread_detach(t);
	return 0;
}

/* *v, read under lock (the fake tunnel's threads and the proxy's hooks write it). */
static int locked_read(const int *v)
{
	int n;

	pthread_mutex_lock(&lock);
	n = *v;
	pthread_mutex_unlock(&lock);
	return n;
}

static int calls_count(void)
{
	return locked_read(&n_calls);
}

/* ---- a plaintext trap: pod trap-0 of node-b (127.0.0.11) listens in plaintext; nothing may reach it ---- */

static int trap_fd = -1;
static uint16_t trap_port;
static pthread_t trap_thread;
static atomic_bool trap_stop;
static atomic_int trap_conns;

static void *trap_accept(void *arg)
{
	(void)arg;
	while (!atomic_load(&trap_stop)) {
		struct pollfd p = { .fd = trap_fd, .events = POLLIN };
		int fd;

		if (poll(&p, 1, 20) <= 0)
			continue;
		fd = accept(trap_fd, NULL, NULL);
		if (fd >= 0) {
			atomic_fetch_add(&trap_conns, 1);
			close(fd);
		}
	}
	return NULL;
}

static void trap_start(void)
{
	struct sockaddr_in sin = { .sin_family = AF_INET };
	socklen_t len = sizeof(sin);

	trap_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(trap_fd, 0);
	sin.sin_addr.s_addr = htonl(0x7f00000b);
	cr_assert_eq(bind(trap_fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	cr_assert_eq(listen(trap_fd, 16), 0);
	cr_assert_eq(getsockname(trap_fd, (struct sockaddr *)&sin, &len), 0);
	trap_port = ntohs(sin.sin_port);
	cr_assert_eq(pthread_create(&trap_thread, NULL, trap_accept, NULL), 0);
}

/* ---- records and outlier reports ---- */

struct rec {
	uint16_t status;
	uint32_t flags;
	bool tunnelled;
	char src_principal[1024], dst_principal[1024], details[128];
};

static struct rec recs[64];
static int n_recs;
static int connect_failed_reports;

static void on_record(void *ctx, size_t worker, const struct l7_record *r)
{
	(void)ctx, (void)worker;
	pthread_mutex_lock(&lock);
	if (n_recs < 64) {
		struct rec *x = &recs[n_recs++];

		x->status = r->status;
		x->flags = r->flags;
		x->tunnelled = r->tunnelled;
		snprintf(x->src_principal, sizeof(x->src_principal), "%s", r->source ? r->source->principal : "");
		snprintf(x->dst_principal, sizeof(x->dst_principal), "%s",
			 r->upstream_wl ? r->upstream_wl->principal : "");
		snprintf(x->details, sizeof(x->details), "%s", r->details ? r->details : "");
	}
	pthread_mutex_unlock(&lock);
}

static struct rec rec_wait(int i)
{
	struct rec r;

	for (int k = 0; k < 200; k++) {
		pthread_mutex_lock(&lock);
		if (n_recs > i) {
			r = recs[i];
			pthread_mutex_unlock(&lock);
			return r;
		}
		pthread_mutex_unlock(&lock);
		usleep(10000);
	}
	cr_assert_fail("record %d never came", i);
	return r;
}

static void report_hook(void *ctx, uint32_t svc_id, uint32_t backend_id, enum l7_connect_outcome outcome,
			uint16_t status)
{
	(void)ctx, (void)svc_id, (void)backend_id, (void)status;
	pthread_mutex_lock(&lock);
	if (outcome == L7_CONNECT_FAILED)
		connect_failed_reports++;
	pthread_mutex_unlock(&lock);
}

/* ---- the proxy ---- */

/* The listener's address picks the service: 127.0.0.1 web, .4 plain, .5 refused, .6 closed, .7 hang, .8 drop,
 * .9 slow, .10 trap, .12 late, .13 refclean. */
static int resolve_by_listener(void *ctx, int listen_fd, int fd, struct xm_svc_key *vip, uint32_t *svc_id)
{
	static const uint8_t last_of_vip[16] = {
		[1] = 10, [4] = 11, [5] = 12, [6] = 13, [7] = 14, [8] = 15, [9] = 16, [10] = 17, [12] = 18, [13] = 19
	};
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	uint8_t last;

	(void)ctx, (void)listen_fd;
	if (getsockname(fd, (struct sockaddr *)&sin, &len))
		return -1;
	last = ((uint8_t *)&sin.sin_addr)[3];
	if (last >= 16 || !last_of_vip[last])
		return -ENOENT;
	memset(vip, 0, sizeof(*vip));
	vip->vip.v4 = htonl(0x0a600000 | last_of_vip[last]);
	vip->port = htons(80);
	vip->proto = XM_PROTO_TCP;
	vip->family = XM_FAMILY_V4;
	*svc_id = 0;
	return 0;
}

#define SVC(name, ip, ep, target)                                                                                      \
	"apiVersion: v1\nkind: Service\nmetadata: {name: " name ", namespace: default}\n"                              \
	"spec: {clusterIP: " ip ", ports: [{name: http, port: 80, targetPort: " target "}]}\n"                         \
	"---\n"                                                                                                        \
	"apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n"                                                       \
	"metadata: {name: " name "-1, namespace: default, labels: {kubernetes.io/service-name: " name "}}\n"           \
	"addressType: IPv4\n"                                                                                          \
	"endpoints: [{addresses: [\"" ep "\"], conditions: {ready: true}}]\n"                                          \
	"ports: [{name: http, port: " target "}]\n"                                                                    \
	"---\n"

#define POD(name, sa, node, ip)                                                                                        \
	"apiVersion: v1\nkind: Pod\nmetadata: {name: " name ", namespace: default, labels: {app: " name "}}\n"         \
	"spec: {nodeName: " node ", serviceAccountName: " sa "}\nstatus: {podIP: " ip "}\n---\n"

/* clang-format off */
static const char config_fmt[] =
	SVC("web", "10.96.0.10", "10.99.0.5", "8080")
	SVC("plain", "10.96.0.11", "127.0.0.1", "%u")
	SVC("refused", "10.96.0.12", "10.99.0.6", "8080")
	SVC("closed", "10.96.0.13", "10.99.0.7", "8080")
	SVC("hang", "10.96.0.14", "10.99.0.8", "8080")
	SVC("drop", "10.96.0.15", "10.99.0.9", "8080")
	SVC("slow", "10.96.0.16", "10.99.0.10", "8080")
	SVC("trap", "10.96.0.17", "127.0.0.11", "%u")
	SVC("late", "10.96.0.18", "10.99.0.11", "8080")
	SVC("refclean", "10.96.0.19", "10.99.0.12", "8080")
	POD("client-a", "sleep", "node-a", "127.0.0.1")
	POD("client-b", "other", "node-a", "127.0.0.3")
	POD("web-0", "web", "node-b", "10.99.0.5")
	POD("refused-0", "web", "node-b", "10.99.0.6")
	POD("closed-0", "web", "node-b", "10.99.0.7")
	POD("hang-0", "web", "node-b", "10.99.0.8")
	POD("drop-0", "web", "node-b", "10.99.0.9")
	POD("slow-0", "web", "node-b", "10.99.0.10")
	POD("trap-0", "web", "node-b", "127.0.0.11")
	POD("late-0", "web", "node-b", "10.99.0.11")
	POD("refclean-0", "web", "node-b", "10.99.0.12")
	"apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: strict, namespace: default}\n"
	"spec: {mtls: {mode: STRICT}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: refused, namespace: default}\n"
	"spec: {host: refused, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1000}}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: closed, namespace: default}\n"
	"spec: {hosts: [closed], http: [{retries: {attempts: 0}, route: [{destination: {host: closed}}]}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: hang, namespace: default}\n"
	"spec: {host: hang, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 200ms}}}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: hang, namespace: default}\n"
	"spec: {hosts: [hang], http: [{retries: {attempts: 0}, route: [{destination: {host: hang}}]}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: slow, namespace: default}\n"
	"spec: {host: slow, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 200ms}}}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: trap, namespace: default}\n"
	"spec: {host: trap, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1000}}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: slow, namespace: default}\n"
	"spec: {hosts: [slow], http: [{retries: {attempts: 0}, route: [{destination: {host: slow}}]}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: late, namespace: default}\n"
	"spec: {host: late, trafficPolicy: {connectionPool: {tcp: {connectTimeout: 200ms}}}}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: late, namespace: default}\n"
	"spec: {hosts: [late], http: [{retries: {attempts: 0}, route: [{destination: {host: late}}]}]}\n"
	"---\n"
	"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: refclean, namespace: default}\n"
	"spec: {host: refclean, trafficPolicy: {outlierDetection: {consecutive5xxErrors: 1000}}}\n";
/* clang-format on */

static void setup(void)
{
	struct l7_proxy_opts opts = {
		.n_workers = 1,
		.resolve = resolve_by_listener,
		.on_record = on_record,
		.report = report_hook,
		.tunnel = fake_tunnel,
	};
	static const uint8_t lasts[10] = { 1, 4, 5, 6, 7, 8, 9, 10, 12, 13 };
	struct l7_proxy_addr addrs[10];
	struct xm_compile_opts copts = { .node_name = "node-a", .maglev_size = 251 };
	char text[sizeof(config_fmt) + 64];
	int err;

	up_port = upstream_start();
	cr_assert_neq(up_port, 0, "upstream did not start");
	trap_start();
	snprintf(text, sizeof(text), config_fmt, up_port, up_port, trap_port, trap_port);
	snap = fixture_snapshot(text, &copts);
	proxy = l7_proxy_new(&opts, &err);
	cr_assert_not_null(proxy, "l7_proxy_new: %d", err);
	cr_assert_eq(l7_proxy_apply(proxy, snap, &snap->routes), 0);
	for (int i = 0; i < 10; i++) {
		memset(&addrs[i], 0, sizeof(addrs[i]));
		addrs[i].family = XM_FAMILY_V4;
		addrs[i].addr.v4 = htonl(0x7f000000 | lasts[i]);
	}
	cr_assert_eq(l7_proxy_listen(proxy, addrs, 10), 0);
	port = l7_proxy_port(proxy);
	cr_assert_neq(port, 0);
}

static void teardown(void)
{
	l7_proxy_free(proxy);
	snapshot_put(snap);
	for (int i = 0; i < 300 && atomic_load(&live_splices); i++)
		usleep(10000);
	upstream_stop();
	atomic_store(&trap_stop, true);
	pthread_join(trap_thread, NULL);
	close(trap_fd);
}

TestSuite(l7_tunnel, .init = setup, .fini = teardown, .timeout = 30);

/* The value of the proxy's metric line starting with series (name and labels), -1 when absent. */
/* The proxy's own metrics as the scrape renders them (the caller frees), NULL when there are none. */
static char *proxy_metrics(void)
{
	struct xm_scrape *sc = scrape_new();
	struct strbuf out = { 0 };

	cr_assert_not_null(sc);
	l7_proxy_collect(proxy, sc);
	scrape_render(sc, &out);
	scrape_free(sc);
	cr_assert(!out.oom);
	return out.buf;
}

static long long metric(const char *series)
{
	char *text = proxy_metrics();
	long long v = -1;
	const char *p;

	for (p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
		if (!strncmp(p, series, strlen(series)) && p[strlen(series)] == ' ') {
			v = strtoll(p + strlen(series) + 1, NULL, 10);
			break;
		}
	free(text);
	return v;
}

/* Waits (up to 2 s) until series reaches want; its last value. */
static long long metric_wait(const char *series, long long want)
{
	long long v = -1;

	for (int i = 0; i < 200 && (v = metric(series)) < want; i++)
		usleep(10000);
	return v;
}

static void get(struct hclient *c, const char *host, const char *path, struct response *r)
{
	char head[256];
	int n = snprintf(head, sizeof(head), "GET %s HTTP/1.1\r\nHost: %s\r\n\r\n", path, host);

	hc_send(c, head, (size_t)n);
	cr_assert(hc_read(c, r, false), "no response to %s", path);
}

/* GET host path on a fresh connection from ip, expected to be answered 503: the record it left. */
static struct rec get_503(const char *ip, const char *host, const char *path)
{
	struct hclient a;
	struct response r;

	hc_open(&a, ip, port);
	get(&a, host, path, &r);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	hc_close(&a);
	return rec_wait(0);
}

/* How many connect failures the proxy reported to outlier detection. */
static int connect_failures(void)
{
	return locked_read(&connect_failed_reports);
}

Test(l7_tunnel, through_the_tunnel_as_the_client_pod_pooled_per_identity)
{
	struct hclient a, b;
	struct response r;
	char conn1[16], conn2[16], conn3[16];
	struct rec x;

	hc_open(&a, "127.0.0.1", port);
	cr_assert_geq(a.fd, 0);
	get(&a, "web", "/echo/1", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(response_header(&r, "x-conn", conn1, sizeof(conn1)));
	response_free(&r);
	get(&a, "web", "/echo/2", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(response_header(&r, "x-conn", conn2, sizeof(conn2)));
	response_free(&r);
	cr_expect_str_eq(conn1, conn2, "the tunnelled connection is reused by the same client");
	cr_assert_eq(calls_count(), 1);
	cr_expect_str_eq(calls[0].addr, "10.99.0.5");
	cr_expect_eq(calls[0].port, 8080);
	cr_expect_str_eq(calls[0].src_id, "spiffe://cluster.local/ns/default/sa/sleep");
	cr_expect_str_eq(calls[0].client, "127.0.0.1");
	cr_expect(calls[0].traceparent, "the request's trace goes to the tunnel's CONNECT");

	/* Another client pod: its own tunnelled connection, presenting its own identity. */
	hc_open_from(&b, "127.0.0.3", "127.0.0.1", port);
	cr_assert_geq(b.fd, 0);
	get(&b, "web", "/echo/3", &r);
	cr_assert_eq(r.status, 200);
	cr_assert(response_header(&r, "x-conn", conn3, sizeof(conn3)));
	response_free(&r);
	cr_expect_str_neq(conn3, conn1);
	cr_assert_eq(calls_count(), 2);
	cr_expect_str_eq(calls[1].src_id, "spiffe://cluster.local/ns/default/sa/other");
	hc_close(&b);
	hc_close(&a);

	/* A plain endpoint (127.0.0.1 is a pod of this node) is a TCP connect: no tunnel call. */
	hc_open(&a, "127.0.0.4", port);
	get(&a, "plain", "/echo/4", &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	hc_close(&a);
	cr_expect_eq(calls_count(), 2);

	x = rec_wait(0);
	cr_expect(x.tunnelled);
	cr_expect_str_eq(x.src_principal, "spiffe://cluster.local/ns/default/sa/sleep");
	cr_expect_str_eq(x.dst_principal, "spiffe://cluster.local/ns/default/sa/web");
	x = rec_wait(3);
	cr_expect(!x.tunnelled, "the plain request");
}

Test(l7_tunnel, request_metric_says_mutual_tls)
{
	struct l7_stats_shard *const *shards;
	struct hclient a;
	struct response r;
	struct strbuf out = { 0 };
	struct xm_scrape *sc;
	size_t n;

	hc_open(&a, "127.0.0.1", port);
	get(&a, "web", "/echo/m", &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	hc_close(&a);
	hc_open(&a, "127.0.0.4", port);
	get(&a, "plain", "/echo/p", &r);
	cr_assert_eq(r.status, 200);
	response_free(&r);
	hc_close(&a);
	rec_wait(1);
	shards = l7_proxy_shards(proxy, &n);
	sc = scrape_new();
	cr_assert_not_null(sc);
	l7_stats_collect(shards, n, sc);
	l7_proxy_collect(proxy, sc);
	scrape_render(sc, &out);
	scrape_free(sc);
	cr_assert(!out.oom);
	cr_expect_not_null(strstr(out.buf, "source_principal=\"spiffe://cluster.local/ns/default/sa/sleep\""));
	cr_expect_not_null(strstr(out.buf, "destination_principal=\"spiffe://cluster.local/ns/default/sa/web\""));
	cr_expect_not_null(strstr(out.buf, "destination_service=\"web.default.svc.cluster.local\","));
	/* One series each way: the tunnelled one mutual_tls, the plain one unknown. */
	{
		const char *t = strstr(out.buf, "istio_requests_total{reporter=\"source\"");
		int mtls = 0, plain = 0;

		cr_assert_not_null(t);
		for (const char *p = t; (p = strstr(p, "istio_requests_total{")); p++) {
			const char *end = strchr(p, '}');
			bool web = strstr(p, "destination_service_name=\"web\"") &&
				   strstr(p, "destination_service_name=\"web\"") < end;
			bool is_mtls = strstr(p, "connection_security_policy=\"mutual_tls\"") &&
				       strstr(p, "connection_security_policy=\"mutual_tls\"") < end;

			mtls += web && is_mtls;
			plain += !web && !is_mtls;
		}
		cr_expect_eq(mtls, 1, "%s", out.buf);
		cr_expect_eq(plain, 1, "%s", out.buf);
	}
	cr_expect_not_null(strstr(out.buf, "xmesh_l7_tunnel_upstream_connections_total 1\n"), "%s", out.buf);
	free(out.buf);
}

Test(l7_tunnel, a_refused_stream_is_a_connect_failure)
{
	struct rec x;

	/* Istio's default retries (2, connect-failure among them) try the only endpoint three times. */
	x = get_503("127.0.0.5", "refused", "/echo/r");
	cr_expect(x.flags & L7_RF_UF, "flags %#x", x.flags);
	cr_expect(!(x.flags & L7_RF_UC), "flags %#x: a refusal is no reset after connect", x.flags);
	cr_expect(x.flags & L7_RF_URX, "flags %#x: retries exhausted, as for a refused TCP connect", x.flags);
	cr_expect_eq(calls_count(), 3, "retried as a connect failure");
	cr_expect_eq(connect_failures(), 3, "each try reported to outlier detection as a connect failure");
	cr_expect_eq(metric("xmesh_l7_tunnel_answers_total{outcome=\"refused\"}"), 3);
	cr_expect_eq(metric("xmesh_l7_tunnel_answers_total{outcome=\"opened\"}"), 0);
	cr_expect_eq(metric("xmesh_l7_tunnel_refused_total{reason=\"connect\"}"), 3);
}

/* The peer refuses (401) and the tunnel's socket then closes cleanly: EOF, not a reset. By the socket alone it
 * looks like a tunnel that opened and closed (UC, no retry); the answer says refused: UF, retried, reported. */
Test(l7_tunnel, a_refusal_with_a_clean_close_is_a_connect_failure)
{
	struct hclient a;
	struct response r;
	struct rec x;

	hc_open(&a, "127.0.0.13", port);
	get(&a, "refclean", "/echo/rc", &r);
	cr_expect_eq(r.status, 503);
	cr_expect_eq(r.body_len, 91, "Envoy's body, byte-exact: %zu bytes", r.body_len);
	cr_expect_str_eq(r.body, "upstream connect error or disconnect/reset before headers. reset reason: connection "
				 "failure");
	response_free(&r);
	hc_close(&a);
	x = rec_wait(0);
	cr_expect(x.flags & L7_RF_UF, "flags %#x", x.flags);
	cr_expect(!(x.flags & L7_RF_UC), "flags %#x", x.flags);
	cr_expect(x.flags & L7_RF_URX, "flags %#x", x.flags);
	cr_expect_eq(calls_count(), 3, "retried as a connect failure (Istio's default retryOn)");
	cr_expect_eq(connect_failures(), 3, "each try reported to outlier detection");
	cr_expect_eq(metric("xmesh_l7_tunnel_answers_total{outcome=\"refused\"}"), 3);
}

/* Opened, but the remote pod reads nothing for twice connectTimeout: the tunnel opened, so connectTimeout is
 * over; a socket-based guess would have called it a connect failure at 200 ms. Byte-exact both ways. */
Test(l7_tunnel, an_opened_tunnel_that_reads_late_is_no_connect_failure)
{
	const size_t body = 200 * 1024;
	char head[256], *payload = malloc(body);
	struct hclient a;
	struct response r;
	struct rec x;
	int n;

	cr_assert_not_null(payload);
	for (size_t i = 0; i < body; i++)
		payload[i] = (char)('a' + (i * 7 + i / 251) % 26);
	hc_open(&a, "127.0.0.12", port);
	n = snprintf(head, sizeof(head), "POST /echo/late HTTP/1.1\r\nHost: late\r\ncontent-length: %zu\r\n\r\n", body);
	hc_send(&a, head, (size_t)n);
	hc_send(&a, payload, body);
	cr_assert(hc_read(&a, &r, false));
	cr_expect_eq(r.status, 200);
	cr_assert_eq(r.body_len, body);
	cr_expect(!memcmp(r.body, payload, body), "the body came back byte-exact");
	response_free(&r);
	hc_close(&a);
	free(payload);
	x = rec_wait(0);
	cr_expect_eq(x.flags, 0, "flags %#x", x.flags);
	cr_expect(x.tunnelled);
	cr_expect_eq(metric("xmesh_l7_tunnel_answers_total{outcome=\"opened\"}"), 1);
	cr_expect_eq(metric("xmesh_l7_tunnel_refused_total{reason=\"connect\"}"), 0);
}

Test(l7_tunnel, closed_before_a_byte_is_a_connect_failure)
{
	struct rec x;

	x = get_503("127.0.0.6", "closed", "/echo/c");
	cr_expect(x.flags & L7_RF_UF, "flags %#x", x.flags);
	cr_expect_eq(calls_count(), 1, "attempts: 0");
	cr_expect_eq(metric("xmesh_l7_tunnel_answers_total{outcome=\"failed\"}"), 1);
}

Test(l7_tunnel, a_client_that_is_no_pod_is_refused_never_plaintext)
{
	struct l7_stats_shard *const *shards;
	struct hclient a;
	struct response r;
	struct rec x;
	char *text;
	size_t n;

	/* The trap's endpoint is a pod of node-b: tunnelled, and reachable in plaintext if the proxy fell back. */
	hc_open_from(&a, "127.0.0.2", "127.0.0.10", port);
	cr_assert_geq(a.fd, 0);
	get(&a, "trap", "/echo/n", &r);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	hc_close(&a);
	x = rec_wait(0);
	cr_expect(x.flags & L7_RF_UF, "flags %#x", x.flags);
	cr_expect_str_eq(x.details,
			 "upstream_reset_before_response_started{connection_failure,tunnel:no_client_identity}");
	cr_expect_eq(calls_count(), 0, "no tunnel without an identity");
	cr_expect_eq(atomic_load(&trap_conns), 0, "never sent in plaintext");
	cr_expect_eq(connect_failures(), 0, "not held against the endpoint");
	shards = l7_proxy_shards(proxy, &n);
	(void)shards;
	text = proxy_metrics();
	cr_expect_not_null(strstr(text, "xmesh_l7_tunnel_refused_total{reason=\"no_identity\"} 3\n"), "%s", text);
	free(text);
}

Test(l7_tunnel, connect_timeout_covers_the_tunnels_opening)
{
	struct timespec t0, t1;
	struct hclient a;
	struct response r;
	struct rec x;
	long ms;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	hc_open(&a, "127.0.0.7", port);
	get(&a, "hang", "/echo/h", &r);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_expect_eq(r.status, 503);
	response_free(&r);
	hc_close(&a);
	ms = (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000;
	cr_expect(ms >= 190 && ms < 900, "answered after %ld ms, connectTimeout 200ms", ms);
	x = rec_wait(0);
	cr_expect(x.flags & L7_RF_UF, "flags %#x", x.flags);
	/* The tunnel's answer comes at 1 s, for a connection closed since: dropped, nothing touched. */
	cr_expect_eq(metric_wait("xmesh_l7_tunnel_answers_late_total", 1), 1);
	cr_expect_eq(metric("xmesh_l7_tunnel_answers_total{outcome=\"timed_out\"}"), 1);
}

Test(l7_tunnel, a_close_after_the_tunnel_opened_is_a_reset)
{
	struct rec x;

	x = get_503("127.0.0.8", "drop", "/echo/d");
	cr_expect(x.flags & L7_RF_UC, "flags %#x: the tunnel had read the head", x.flags);
	cr_expect(!(x.flags & L7_RF_UF), "flags %#x", x.flags);
	cr_expect_eq(calls_count(), 1, "a reset is not retried by Istio's default policy");
}

/* A body larger than the socketpair holds, read slowly by the opened tunnel, past connectTimeout: no failure. */
Test(l7_tunnel, a_slow_reader_opened_the_tunnel)
{
	const size_t body = 1024 * 1024;
	char head[256], *payload = malloc(body);
	struct hclient a;
	struct response r;
	struct rec x;
	int n;

	cr_assert_not_null(payload);
	memset(payload, 'b', body);
	hc_open(&a, "127.0.0.9", port);
	n = snprintf(head, sizeof(head), "POST /echo/slow HTTP/1.1\r\nHost: slow\r\ncontent-length: %zu\r\n\r\n", body);
	hc_send(&a, head, (size_t)n);
	hc_send(&a, payload, body);
	cr_assert(hc_read(&a, &r, false));
	cr_expect_eq(r.status, 200);
	cr_expect_eq(r.body_len, body);
	response_free(&r);
	hc_close(&a);
	free(payload);
	x = rec_wait(0);
	cr_expect_eq(x.flags, 0, "flags %#x", x.flags);
}

Test(l7_tunnel, no_tunnel_running_is_503_never_plaintext)
{
	char *text;
	struct rec x;

	atomic_store(&fake_unavailable, true);
	x = get_503("127.0.0.10", "trap", "/echo/u");
	cr_expect(x.flags & L7_RF_UF, "flags %#x", x.flags);
	cr_expect_str_eq(x.details, "upstream_reset_before_response_started{connection_failure,tunnel:unavailable}");
	cr_expect_eq(atomic_load(&trap_conns), 0, "never sent in plaintext");
	cr_expect_eq(connect_failures(), 0, "not held against the endpoint");
	text = proxy_metrics();
	cr_expect_not_null(strstr(text, "xmesh_l7_tunnel_refused_total{reason=\"unavailable\"} 3\n"), "%s", text);
	free(text);
	atomic_store(&fake_unavailable, false);
}
