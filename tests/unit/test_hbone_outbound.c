/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HBONE client side's hand-off (daemon/hbone_outbound.h, behind tunnel_submit in daemon/tunnel.h): the
 * loop runs on a thread of its own as the agent's hbone thread does, and other threads hand it one end of a
 * socketpair, which must come out at an echo pod behind a real HBONE server on loopback, byte-exact, with
 * the source workload's certificate (minted by the agent's CA code) and the target's identity checked. Then
 * the refusals: no certificate, not IPv4, an unknown target (reset after the hand-off), after stop; and
 * sockets still queued when the loop stopped are closed by hbone_outbound_free, not lost.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "core/post_gate.h"
#include "core/tunnel_done.h"
#include "daemon/hbone_outbound.h"
#include "hbone_fixture.h"
#include "identity/identity.h"

#define SRC_ID "spiffe://cluster.local/ns/default/sa/client"
#define DST_ID "spiffe://cluster.local/ns/default/sa/server"

static struct {
	char dir[64];
	struct xm_ca *ca;
	struct xm_cert *src, *dst;
	struct xm_loop *loop;
	pthread_t thread;
	bool running;
	struct hbone_counters ctr;
	int lfd;
	struct sockaddr_storage hbone_addr, echo_addr;
	struct hbt_echo *echo;
	struct hbone_server *srv, *srv2; /* srv2: the "next agent's" server on the same listener (drain tests) */
	struct hbone_server_config scfg;
	struct hbone_outbound *ob, *ob2; /* ob2: the "next agent's" client side (drain tests) */
	pthread_mutex_t mu;
	char last_forwarded[256], last_baggage[512], last_peer[HBONE_ID_MAX];
	int admitted, admitted_without_meta; /* streams admitted, those without the client's Forwarded/baggage */
	/* targets for the answers test: a port nothing listens on, one the server denies (401), one whose pod
	 * must prove another identity than the server's certificate */
	uint16_t closed_port, denied_port, impostor_port;
} fx;

#define BAGGAGE                                                                                                        \
	"k8s.cluster.name=Kubernetes,k8s.namespace.name=default,k8s.deployment.name=client,service.name=client,"       \
	"service.version=v1,cloud.region=,cloud.availability_zone="
/* What request() makes Forwarded say: the client pod, and the Service request_meta names. */
#define FORWARDED "for=\"10.200.11.11:40000\";host=web.default.svc.cluster.local"

static int admit(void *ctx, const struct hbone_admit *a)
{
	(void)ctx;
	pthread_mutex_lock(&fx.mu);
	snprintf(fx.last_forwarded, sizeof(fx.last_forwarded), "%s", a->forwarded);
	snprintf(fx.last_baggage, sizeof(fx.last_baggage), "%s", a->baggage);
	snprintf(fx.last_peer, sizeof(fx.last_peer), "%s", a->peer_id);
	fx.admitted++;
	if (strcmp(a->forwarded, FORWARDED) || strcmp(a->baggage, BAGGAGE))
		fx.admitted_without_meta++;
	pthread_mutex_unlock(&fx.mu);
	if (fx.denied_port && ((const struct sockaddr_in *)a->target)->sin_port == htons(fx.denied_port))
		return 401;
	return 200;
}

static int server_cert(void *ctx, const struct sockaddr_storage *local, X509 **cert, EVP_PKEY **key,
		       STACK_OF(X509) * *chain)
{
	(void)ctx, (void)local;
	*cert = cert_leaf(fx.dst);
	*key = cert_key(fx.dst);
	*chain = cert_chain(fx.dst);
	return 0;
}

static int local_workload(void *ctx, const struct sockaddr_storage *addr, char *id, size_t len)
{
	(void)ctx, (void)addr, (void)id, (void)len;
	return -ENOENT; /* no captured connection here */
}

static struct xm_cert *certificate(void *ctx, const char *id)
{
	(void)ctx;
	return strcmp(id, SRC_ID) ? NULL : cert_get(fx.src);
}

/* The echo pod is the only known one (and the answers test's targets, on its address). */
static int peer_identity(void *ctx, const struct sockaddr_storage *target, char *id, size_t len)
{
	uint16_t port = ntohs(((const struct sockaddr_in *)target)->sin_port);

	(void)ctx;
	if (fx.impostor_port && port == fx.impostor_port) {
		snprintf(id, len, "spiffe://cluster.local/ns/default/sa/someone-else");
		return 0;
	}
	if (port != ntohs(((const struct sockaddr_in *)&fx.echo_addr)->sin_port) &&
	    (!fx.closed_port || port != fx.closed_port) && (!fx.denied_port || port != fx.denied_port))
		return -ENOENT;
	snprintf(id, len, "%s", DST_ID);
	return 0;
}

/* The client pod of the requests: its baggage, and a Service hostname for Forwarded's host=. */
static void request_meta(void *ctx, const struct sockaddr_storage *client, uint32_t svc_id, char *baggage,
			 size_t baggage_len, char *host, size_t host_len)
{
	(void)ctx, (void)svc_id;
	if (client->ss_family != AF_INET ||
	    ((const struct sockaddr_in *)client)->sin_addr.s_addr != inet_addr("10.200.11.11"))
		return;
	snprintf(baggage, baggage_len, "%s", BAGGAGE);
	snprintf(host, host_len, "web.default.svc.cluster.local");
}

static void *loop_thread(void *arg)
{
	(void)arg;
	loop_run(fx.loop);
	return NULL;
}

static void setup(void)
{
	struct xm_ca_opts o = { 0 };
	char err[256];
	int e;

	memset(&fx, 0, sizeof(fx));
	pthread_mutex_init(&fx.mu, NULL);
	snprintf(fx.dir, sizeof(fx.dir), "/tmp/xm-hbone-ob-XXXXXX");
	cr_assert_not_null(mkdtemp(fx.dir));
	o.state_dir = fx.dir;
	fx.ca = ca_open(&o, (int64_t)time(NULL), err, sizeof(err));
	cr_assert_not_null(fx.ca, "ca_open: %s", err);
	fx.src = ca_mint(fx.ca, SRC_ID, (int64_t)time(NULL), 3600, &e);
	fx.dst = ca_mint(fx.ca, DST_ID, (int64_t)time(NULL), 3600, &e);
	cr_assert(fx.src && fx.dst);
	fx.loop = loop_new();
	cr_assert_not_null(fx.loop);
	fx.echo = hbt_echo_start(fx.loop, &fx.echo_addr);
	cr_assert_not_null(fx.echo);
	fx.lfd = hbt_listen(&fx.hbone_addr);
	cr_assert_geq(fx.lfd, 0);
	struct hbone_server_config scfg = {
		.trust = bundle_store(ca_bundle(fx.ca)),
		.verify = hbt_verify,
		.cert = server_cert,
		.admit = admit,
	};
	fx.scfg = scfg;
	fx.srv = hbone_server_new(fx.loop, fx.lfd, &scfg, &fx.ctr);
	cr_assert_not_null(fx.srv);
	struct hbone_outbound_config ocfg = {
		.loop = fx.loop,
		.trust = bundle_store(ca_bundle(fx.ca)),
		.verify = hbt_verify,
		.ops = { .local_workload = local_workload,
			 .certificate = certificate,
			 .peer_identity = peer_identity,
			 .request_meta = request_meta },
		.origdst_fd = -1,
		.hbone_port = ntohs(((struct sockaddr_in *)&fx.hbone_addr)->sin_port),
	};
	fx.ob = hbone_outbound_new(&ocfg, &fx.ctr);
	cr_assert_not_null(fx.ob);
}

static void start_loop(void)
{
	cr_assert_eq(pthread_create(&fx.thread, NULL, loop_thread, NULL), 0);
	fx.running = true;
}

static void teardown(void)
{
	hbone_outbound_stop(fx.ob);
	if (fx.running) {
		loop_stop(fx.loop);
		pthread_join(fx.thread, NULL);
	}
	hbone_outbound_free(fx.ob);
	hbone_outbound_free(fx.ob2);
	hbone_server_free(fx.srv);
	hbone_server_free(fx.srv2);
	hbt_echo_stop(fx.echo);
	close(fx.lfd);
	loop_free(fx.loop);
	cert_put(fx.src);
	cert_put(fx.dst);
	ca_free(fx.ca);
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", fx.dir);
	cr_expect_eq(system(cmd), 0);
	pthread_mutex_destroy(&fx.mu);
}

TestSuite(hbone_outbound, .init = setup, .fini = teardown, .timeout = 60);

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct xm_tunnel_req request(uint16_t target_port)
{
	struct xm_tunnel_req r = { 0 };
	struct sockaddr_in *t = (struct sockaddr_in *)&r.target, *c = (struct sockaddr_in *)&r.client;

	*t = *(struct sockaddr_in *)&fx.echo_addr;
	if (target_port)
		t->sin_port = htons(target_port);
	c->sin_family = AF_INET;
	c->sin_addr.s_addr = htonl(0x0ac80b0b); /* 10.200.11.11 */
	c->sin_port = htons(40000);
	snprintf(r.src_id, sizeof(r.src_id), "%s", SRC_ID);
	return r;
}

/*
 * Writes total pattern bytes into fd (non-blocking), half-closes, and reads the echo back until EOF:
 * returns the bytes read back that matched, or -1 at the first wrong byte, -2 on error or timeout.
 */
static long long echo_through(int fd, uint64_t seed, uint64_t total, uint64_t timeout_ms)
{
	static __thread uint8_t buf[65536];
	uint64_t sent = 0, got = 0, deadline = now_ms() + timeout_ms;
	bool shut = false;

	while (now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (shut ? 0 : POLLOUT) };

		if (poll(&p, 1, 100) < 0)
			return -2;
		if (!shut && (p.revents & POLLOUT)) {
			size_t n = total - sent < sizeof(buf) ? (size_t)(total - sent) : sizeof(buf);

			for (size_t i = 0; i < n; i++)
				buf[i] = hbt_byte(seed, sent + i);
			ssize_t w = n ? write(fd, buf, n) : 0;

			if (w > 0)
				sent += (uint64_t)w;
			else if (w < 0 && errno != EAGAIN)
				return -2;
			if (sent == total) {
				shutdown(fd, SHUT_WR);
				shut = true;
			}
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r == 0)
				return (long long)got;
			if (r < 0 && errno != EAGAIN)
				return -2;
			for (ssize_t i = 0; i < r; i++)
				if (buf[i] != hbt_byte(seed, got + (uint64_t)i))
					return -1;
			if (r > 0)
				got += (uint64_t)r;
		}
	}
	return -2;
}

/* Whether the peer of fd ended (EOF or reset) within timeout_ms, without a byte. */
static bool ended(int fd, uint64_t timeout_ms)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };
	char c;

	if (poll(&p, 1, (int)timeout_ms) != 1)
		return false;
	return read(fd, &c, 1) <= 0;
}

Test(hbone_outbound, submit_from_another_thread_4mib_byte_exact)
{
	int sv[2];
	struct xm_tunnel_req r = request(0);

	start_loop();
	cr_assert(hbone_outbound_available(fx.ob));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	/* The hbone side gets a blocking socket: the hand-off makes it non-blocking. */
	cr_assert_eq(fcntl(sv[1], F_SETFL, 0), 0);
	cr_assert_eq(hbone_outbound_submit(fx.ob, sv[1], &r, NULL), 0);
	cr_expect_eq(echo_through(sv[0], 7, 4u << 20, 20000), 4u << 20);
	close(sv[0]);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.streams_opened[HBONE_SIDE_CLIENT]), 1);
	cr_expect_eq(atomic_load(&hbone_outbound_stats(fx.ob)->submitted), 1);
	pthread_mutex_lock(&fx.mu);
	/* the request's headers on the wire, as ztunnel's create_hbone_request writes them */
	cr_expect_str_eq(fx.last_forwarded, FORWARDED);
	cr_expect_str_eq(fx.last_baggage, BAGGAGE);
	cr_expect_str_eq(fx.last_peer, SRC_ID); /* the server saw the source workload's certificate */
	pthread_mutex_unlock(&fx.mu);
}

#define THREADS	     4
#define PER_THREAD   25
#define THREAD_BYTES 65536

struct worker {
	int idx;
	int ok;
};

static void *worker(void *arg)
{
	struct worker *w = arg;
	int fds[PER_THREAD];

	for (int i = 0; i < PER_THREAD; i++) {
		int sv[2];
		struct xm_tunnel_req r = request(0);

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv))
			return NULL;
		fds[i] = sv[0];
		if (hbone_outbound_submit(fx.ob, sv[1], &r, NULL))
			return NULL;
	}
	for (int i = 0; i < PER_THREAD; i++) {
		if (echo_through(fds[i], (uint64_t)(w->idx * 1000 + i), THREAD_BYTES, 20000) == THREAD_BYTES)
			w->ok++;
		close(fds[i]);
	}
	return NULL;
}

Test(hbone_outbound, concurrent_submitters_share_one_tls_connection)
{
	pthread_t t[THREADS];
	struct worker w[THREADS] = { 0 };

	start_loop();
	for (int i = 0; i < THREADS; i++) {
		w[i].idx = i;
		cr_assert_eq(pthread_create(&t[i], NULL, worker, &w[i]), 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(w[i].ok, PER_THREAD, "thread %d: %d of %d byte-exact", i, w[i].ok, PER_THREAD);
	}
	/* 100 streams from four threads: one TLS connection of the pool (100 streams each), one handshake. */
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.streams_opened[HBONE_SIDE_CLIENT]), THREADS * PER_THREAD);
	cr_expect_eq(atomic_load(&hbone_outbound_stats(fx.ob)->submitted), THREADS * PER_THREAD);
}

Test(hbone_outbound, refusals)
{
	int sv[2];
	struct xm_tunnel_req r = request(0);
	const struct hbone_outbound_stats *st = hbone_outbound_stats(fx.ob);

	start_loop();
	/* No certificate for the source workload: -ENOENT at once, the socket closed. */
	snprintf(r.src_id, sizeof(r.src_id), "spiffe://cluster.local/ns/default/sa/nobody");
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r, NULL), -ENOENT);
	cr_expect(ended(sv[0], 1000));
	close(sv[0]);
	cr_expect_eq(atomic_load(&st->refused[HBONE_OB_NO_CERTIFICATE]), 1);

	/* Not IP (IPv4 and IPv6 are both carried). */
	r = request(0);
	r.target.ss_family = AF_UNIX;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r, NULL), -EINVAL);
	cr_expect(ended(sv[0], 1000));
	close(sv[0]);
	cr_expect_eq(atomic_load(&st->refused[HBONE_OB_BAD_REQUEST]), 1);

	/* A target that is no known pod: taken (0), then reset on the hbone thread. */
	r = request(9);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r, NULL), 0);
	cr_expect(ended(sv[0], 2000));
	close(sv[0]);
	cr_expect_eq(atomic_load(&st->refused[HBONE_OB_UNKNOWN_TARGET]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.streams_opened[HBONE_SIDE_CLIENT]), 0);

	/* Stopped: not available, -ENOTCONN. */
	hbone_outbound_stop(fx.ob);
	cr_expect_not(hbone_outbound_available(fx.ob));
	r = request(0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r, NULL), -ENOTCONN);
	cr_expect(ended(sv[0], 1000));
	close(sv[0]);
	cr_expect_not(hbone_outbound_available(NULL));
}

Test(hbone_outbound, queued_when_the_loop_stopped_are_closed_by_free)
{
	int sv[2];
	struct xm_tunnel_req r = request(0);

	/* The loop never runs: the socket waits in the queue, then free resets it. */
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r, NULL), 0);
	cr_expect_not(ended(sv[0], 50));
	hbone_outbound_free(fx.ob);
	fx.ob = NULL;
	cr_expect(ended(sv[0], 1000));
	close(sv[0]);
}

Test(hbone_outbound, listener_moves)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in first, second;
	int c;

	start_loop();
	cr_assert_eq(hbone_outbound_listen(fx.ob, &a), 0);
	first = hbone_outbound_address(fx.ob);
	cr_assert_neq(first.sin_port, 0);
	cr_assert_eq(hbone_outbound_listen(fx.ob, &a), 0);
	second = hbone_outbound_address(fx.ob);
	cr_assert_neq(second.sin_port, first.sin_port);
	/* A connection to the listener in force is accepted and, with no original destination, reset. */
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&second, sizeof(second)), 0);
	cr_expect(ended(c, 2000));
	close(c);
	cr_expect_eq(atomic_load(&hbone_outbound_stats(fx.ob)->refused[HBONE_OB_NO_ORIGDST]), 1);
	/* The first one was closed when the loop took the second over. */
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_expect_neq(connect(c, (struct sockaddr *)&first, sizeof(first)), 0);
	close(c);
}

/* One listener per family: the IPv6 one moves on its own, the IPv4 one stays, both are served. */
Test(hbone_outbound, ipv6_listener_next_to_ipv4)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in v4;
	struct sockaddr_in6 first, second;
	int c;

	start_loop();
	cr_expect_eq(hbone_outbound_address6(fx.ob).sin6_port, 0, "no IPv6 listener yet");
	cr_assert_eq(hbone_outbound_listen(fx.ob, &a), 0);
	cr_assert_eq(hbone_outbound_listen6(fx.ob, &a6), 0);
	first = hbone_outbound_address6(fx.ob);
	cr_assert_eq(first.sin6_family, AF_INET6);
	cr_assert_neq(first.sin6_port, 0);
	cr_assert_eq(hbone_outbound_listen6(fx.ob, &a6), 0);
	second = hbone_outbound_address6(fx.ob);
	cr_assert_neq(second.sin6_port, first.sin6_port);
	v4 = hbone_outbound_address(fx.ob);
	cr_assert_neq(v4.sin_port, 0, "the IPv4 listener stays");
	/* Each family's listener in force accepts (no original destination: reset). */
	c = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&second, sizeof(second)), 0);
	cr_expect(ended(c, 2000));
	close(c);
	c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(c, (struct sockaddr *)&v4, sizeof(v4)), 0);
	cr_expect(ended(c, 2000));
	close(c);
	cr_expect_eq(atomic_load(&hbone_outbound_stats(fx.ob)->refused[HBONE_OB_NO_ORIGDST]), 2);
	/* The first IPv6 one was closed when the loop took the second over. */
	c = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_expect_neq(connect(c, (struct sockaddr *)&first, sizeof(first)), 0);
	close(c);
}

/* ---- the answers (core/tunnel_done.h): posted to the submitter's loop, here one the test thread drains ---- */

#define ANSWERS_MAX 8

static struct {
	struct xm_tunnel_result r[ANSWERS_MAX];
	uint64_t handle[ANSWERS_MAX];
	int n;
	bool data_before; /* a byte came on the socket before its answer */
} ans;

static void on_answer(void *arg, uint64_t handle, const struct xm_tunnel_result *r)
{
	cr_assert_eq(arg, &ans);
	if (ans.n < ANSWERS_MAX) {
		ans.r[ans.n] = *r;
		ans.handle[ans.n++] = handle;
	}
}

/* Runs what was posted to loop until the answer for handle came (its index), or -1 after timeout_ms. */
static int answer_wait(struct xm_loop *loop, uint64_t handle, uint64_t timeout_ms)
{
	uint64_t deadline = now_ms() + timeout_ms;

	do {
		tunnel_done_flush(loop);
		for (int i = 0; i < ans.n; i++)
			if (ans.handle[i] == handle)
				return i;
		usleep(2000);
	} while (now_ms() < deadline);
	return -1;
}

/* A port of 127.0.0.1 nothing listens on (bound, then closed). */
static uint16_t free_port(void)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	close(fd);
	return ntohs(a.sin_port);
}

/* Submits a socketpair's end for target_port with an answer to gate under handle; returns the near end. */
static int submit_answered(struct xm_post_gate *gate, uint16_t target_port, uint64_t handle)
{
	struct xm_tunnel_req r = request(target_port);
	struct xm_tunnel_done d = { .gate = gate, .fn = on_answer, .arg = &ans, .handle = handle };
	int sv[2];

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	cr_assert_eq(hbone_outbound_submit(fx.ob, sv[1], &r, &d), 0);
	return sv[0];
}

Test(hbone_outbound, answers_reach_the_submitters_loop)
{
	struct xm_loop *mine = loop_new();
	struct xm_post_gate *gate = mine ? post_gate_new(mine) : NULL;
	struct xm_tunnel_req bad = request(0);
	struct xm_tunnel_done d;
	int fd, i, sv[2];
	char c;

	cr_assert_not_null(gate);
	memset(&ans, 0, sizeof(ans));
	fx.closed_port = free_port();
	fx.denied_port = 9;
	fx.impostor_port = 10;
	start_loop();

	/* Opened: the answer comes before any byte can, then bytes flow byte-exact. */
	fd = submit_answered(gate, 0, 1);
	i = answer_wait(mine, 1, 5000);
	cr_assert_geq(i, 0, "no answer for an open stream");
	cr_expect_eq(ans.r[i].outcome, XM_TUNNEL_OPENED);
	cr_expect_eq(ans.r[i].status, 200);
	cr_expect_eq(echo_through(fd, 3, 256 << 10, 10000), 256 << 10);
	close(fd);

	/* The pod's port is closed: the peer answers 503, then the socket is reset. */
	fd = submit_answered(gate, fx.closed_port, 2);
	i = answer_wait(mine, 2, 5000);
	cr_assert_geq(i, 0, "no answer for a closed port");
	cr_expect_eq(ans.r[i].outcome, XM_TUNNEL_REFUSED);
	cr_expect_eq(ans.r[i].status, 503);
	cr_expect(ended(fd, 2000));
	close(fd);

	/* Denied by the peer's policy: 401. */
	fd = submit_answered(gate, fx.denied_port, 3);
	i = answer_wait(mine, 3, 5000);
	cr_assert_geq(i, 0);
	cr_expect_eq(ans.r[i].outcome, XM_TUNNEL_REFUSED);
	cr_expect_eq(ans.r[i].status, 401);
	cr_expect(ended(fd, 2000));
	close(fd);

	/* The peer proves another identity than the target pod's: no stream (a TLS failure). */
	fd = submit_answered(gate, fx.impostor_port, 4);
	i = answer_wait(mine, 4, 5000);
	cr_assert_geq(i, 0);
	cr_expect_eq(ans.r[i].outcome, XM_TUNNEL_FAILED);
	cr_expect_lt(ans.r[i].err, 0);
	cr_expect(ended(fd, 2000));
	close(fd);

	/* No known pod at the target: failed on the hbone thread (-ENOENT). */
	fd = submit_answered(gate, 11, 5);
	i = answer_wait(mine, 5, 5000);
	cr_assert_geq(i, 0);
	cr_expect_eq(ans.r[i].outcome, XM_TUNNEL_FAILED);
	cr_expect_eq(ans.r[i].err, -ENOENT);
	close(fd);

	/* Refused at once (no certificate): an error, and no answer ever. */
	snprintf(bad.src_id, sizeof(bad.src_id), "spiffe://cluster.local/ns/default/sa/nobody");
	d = (struct xm_tunnel_done){ .gate = gate, .fn = on_answer, .arg = &ans, .handle = 6 };
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &bad, &d), -ENOENT);
	close(sv[0]);
	cr_expect_eq(answer_wait(mine, 6, 100), -1);
	cr_expect_eq(ans.n, 5, "one answer per accepted submission");

	/* The submitter went away (its gate closed) before the answer: dropped, nothing touched. */
	fd = submit_answered(gate, 0, 7);
	post_gate_close(gate); /* the hbone side still holds the reference for 7 */
	usleep(300000);
	tunnel_done_flush(mine);
	cr_expect_eq(ans.n, 5, "no answer through a closed gate");
	errno = 0;
	cr_expect(read(fd, &c, 1) == -1 && errno == EAGAIN, "the stream opened: the socket lives on (%d)", errno);
	close(fd);
	loop_free(mine);
}

Test(hbone_outbound, queued_at_free_are_answered_failed)
{
	struct xm_loop *mine = loop_new();
	struct xm_post_gate *gate = mine ? post_gate_new(mine) : NULL;
	int fd, i;

	cr_assert_not_null(gate);
	memset(&ans, 0, sizeof(ans));
	fd = submit_answered(gate, 0, 1); /* the hbone loop never runs */
	hbone_outbound_free(fx.ob);
	fx.ob = NULL;
	i = answer_wait(mine, 1, 1000);
	cr_assert_geq(i, 0);
	cr_expect_eq(ans.r[i].outcome, XM_TUNNEL_FAILED);
	cr_expect_eq(ans.r[i].err, -ENOTCONN);
	cr_expect(ended(fd, 1000));
	close(fd);
	post_gate_close(gate);
	loop_free(mine);
}

/* ---- draining (an agent restart, docs/mtls.md "Restart") ---- */

struct posted {
	void (*fn)(void);
	atomic_bool done;
};

static void run_posted(struct xm_loop *loop, void *arg)
{
	struct posted *p = arg;

	(void)loop;
	p->fn();
	atomic_store(&p->done, true);
}

/* Runs fn on the loop's thread and waits for it. */
static void on_loop(void (*fn)(void))
{
	struct posted p = { .fn = fn };

	cr_assert_eq(loop_post(fx.loop, run_posted, &p), 0);
	while (!atomic_load(&p.done))
		usleep(1000);
}

/* Runs fn before the loop's thread starts (the test's thread owns the loop then). */
static void on_loop_before_start(void (*fn)(void))
{
	cr_assert_not(fx.running);
	fn();
}

static void drain_server(void)
{
	hbone_server_drain(fx.srv);
}

static void drain_both(void)
{
	int lfds[HBONE_OB_FAMILIES];

	hbone_server_drain(fx.srv);
	cr_assert_eq(hbone_outbound_drain(fx.ob, lfds), 0, "no outbound listener here");
	cr_assert(lfds[0] == -1 && lfds[1] == -1);
}

static void next_server(void)
{
	fx.srv2 = hbone_server_new(fx.loop, fx.lfd, &fx.scfg, &fx.ctr);
}

/* Writes n pattern bytes (from offset off) into fd and reads the same n back: whether all came back equal. */
static bool exchange(int fd, uint64_t seed, uint64_t off, size_t n)
{
	uint8_t buf[4096];
	size_t sent = 0, got = 0;
	uint64_t deadline = now_ms() + 10000;

	while (got < n && now_ms() < deadline) {
		struct pollfd p = { .fd = fd, .events = POLLIN | (sent < n ? POLLOUT : 0) };

		if (poll(&p, 1, 100) < 0)
			return false;
		if (sent < n && (p.revents & POLLOUT)) {
			size_t k = n - sent < sizeof(buf) ? n - sent : sizeof(buf);
			ssize_t w;

			for (size_t i = 0; i < k; i++)
				buf[i] = hbt_byte(seed, off + sent + i);
			w = write(fd, buf, k);
			if (w > 0)
				sent += (size_t)w;
			else if (w < 0 && errno != EAGAIN)
				return false;
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t r = read(fd, buf, sizeof(buf));

			if (r == 0 || (r < 0 && errno != EAGAIN))
				return false;
			for (ssize_t i = 0; r > 0 && i < r; i++)
				if (buf[i] != hbt_byte(seed, off + got + (uint64_t)i))
					return false;
			if (r > 0)
				got += (size_t)r;
		}
	}
	return got == n;
}

static int submit_pair(int *app)
{
	int sv[2];
	struct xm_tunnel_req r = request(0);

	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	*app = sv[0];
	return hbone_outbound_submit(fx.ob, sv[1], &r, NULL);
}

static unsigned long long tls_open(void)
{
	return atomic_load(&fx.ctr.connections_open[HBONE_SIDE_SERVER]) +
	       atomic_load(&fx.ctr.connections_open[HBONE_SIDE_CLIENT]);
}

/*
 * Both sides drain (the agent stops): a stream open before goes on, byte-exact, through both GOAWAYs; a new
 * hand-off is refused; once the stream ends both TLS connections close (not after the pool's 5 min idle).
 */
Test(hbone_outbound, drain_keeps_open_streams_and_closes_when_they_end)
{
	int app, app2;
	uint64_t t0;

	start_loop();
	cr_assert_eq(submit_pair(&app), 0);
	cr_assert(exchange(app, 3, 0, 65536), "before the drain");
	cr_assert_eq(tls_open(), 2);
	on_loop(drain_both);
	usleep(3 * HBONE_DRAIN_NOTICE_MS * 1000); /* the notice, then the final GOAWAY went out */
	cr_expect(exchange(app, 3, 65536, 65536), "the open stream after both GOAWAYs");
	cr_expect_eq(tls_open(), 2, "a connection with an open stream closed");
	cr_expect_eq(submit_pair(&app2), -ENOTCONN, "a hand-off while draining");
	close(app2);
	shutdown(app, SHUT_WR);
	cr_expect(ended(app, 5000), "the stream did not end");
	t0 = now_ms();
	while (tls_open() && now_ms() - t0 < 3000)
		usleep(10000);
	cr_expect_eq(tls_open(), 0, "TLS connections still open %llu ms after their last stream ended",
		     (unsigned long long)(now_ms() - t0));
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_STREAM_LIMIT]), 0);
	close(app);
}

/*
 * The server drains (the peer node's agent stops) and the next server takes its listener: the client's stream on
 * the draining connection goes on, and a new stream goes to a new TLS connection, which the next server
 * serves; no stream is refused.
 */
Test(hbone_outbound, server_drain_moves_new_streams_to_the_next_server)
{
	int app, app2;

	start_loop();
	cr_assert_eq(submit_pair(&app), 0);
	cr_assert(exchange(app, 5, 0, 65536), "before the drain");
	on_loop(drain_server);
	usleep(3 * HBONE_DRAIN_NOTICE_MS * 1000);
	on_loop(next_server);
	cr_assert_not_null(fx.srv2);
	cr_assert_eq(submit_pair(&app2), 0);
	cr_expect(exchange(app2, 6, 0, 65536), "a new stream after the server's GOAWAY");
	cr_expect(exchange(app, 5, 65536, 65536), "the stream open before the drain");
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 2,
		     "the new stream took a new TLS connection");
	for (int r = 0; r < HBONE_REFUSALS; r++)
		cr_expect_eq(atomic_load(&fx.ctr.streams_refused[r]), 0, "refused: %s", hbone_refusal_name(r));
	close(app);
	close(app2);
}

static void drain_client(void)
{
	int lfds[HBONE_OB_FAMILIES];

	cr_assert_eq(hbone_outbound_drain(fx.ob, lfds), 0);
}

/*
 * Only the client drains (this node's agent stops, the peer's runs on): its pooled connection takes no new
 * stream, the open one goes on, and the connection closes once that stream ended (its GOAWAY), not after the
 * pool's idle timeout.
 */
Test(hbone_outbound, client_drain_closes_its_pool_when_streams_end)
{
	int app;
	uint64_t t0;

	start_loop();
	cr_assert_eq(submit_pair(&app), 0);
	cr_assert(exchange(app, 9, 0, 65536), "before the drain");
	on_loop(drain_client);
	usleep(200 * 1000);
	cr_expect(exchange(app, 9, 65536, 65536), "the open stream after the client's GOAWAY");
	cr_expect_eq(tls_open(), 2, "a connection with an open stream closed");
	shutdown(app, SHUT_WR);
	cr_expect(ended(app, 5000), "the stream did not end");
	t0 = now_ms();
	while (tls_open() && now_ms() - t0 < 3000)
		usleep(10000);
	cr_expect_eq(tls_open(), 0, "TLS connections still open %llu ms after their last stream ended",
		     (unsigned long long)(now_ms() - t0));
	close(app);
}

static void small_server(void)
{
	struct hbone_server_config scfg = fx.scfg;

	hbone_server_free(fx.srv);
	scfg.max_streams = 2;
	fx.srv = hbone_server_new(fx.loop, fx.lfd, &scfg, &fx.ctr);
}

/*
 * Streams the server refuses unprocessed (REFUSED_STREAM: here beyond its limit of 2, sent before its SETTINGS
 * arrived; in a restart, a GOAWAY crossing them) are carried again on another connection, not reset.
 */
Test(hbone_outbound, refused_streams_are_carried_again)
{
	int app[5];

	on_loop_before_start(small_server);
	cr_assert_not_null(fx.srv);
	for (int i = 0; i < 5; i++)
		cr_assert_eq(submit_pair(&app[i]), 0);
	start_loop();
	for (int i = 0; i < 5; i++) {
		cr_expect(exchange(app[i], 40 + (uint64_t)i, 0, 16384), "connection %d", i);
		close(app[i]);
	}
	cr_expect_geq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_STREAM_LIMIT]), 1,
		      "nothing was refused: the test did not test the retry");
	cr_expect_eq(atomic_load(&fx.ctr.streams_opened[HBONE_SIDE_CLIENT]), 5);
}

/*
 * The same with answers wanted (tunnel_done): a stream carried again keeps its request (Forwarded with the
 * Service's host=, baggage) and its submitter hears one answer, the final one (opened), not the refusal.
 */
Test(hbone_outbound, refused_streams_carried_again_keep_headers_and_answer_once)
{
	struct xm_loop *mine = loop_new();
	struct xm_post_gate *gate = mine ? post_gate_new(mine) : NULL;
	int app[5], i;

	cr_assert_not_null(gate);
	memset(&ans, 0, sizeof(ans));
	on_loop_before_start(small_server);
	cr_assert_not_null(fx.srv);
	for (i = 0; i < 5; i++)
		app[i] = submit_answered(gate, 0, 100 + (uint64_t)i);
	start_loop();
	for (i = 0; i < 5; i++) {
		int k = answer_wait(mine, 100 + (uint64_t)i, 10000);

		cr_assert_geq(k, 0, "no answer for connection %d", i);
		cr_expect_eq(ans.r[k].outcome, XM_TUNNEL_OPENED, "connection %d: outcome %d err %d", i,
			     ans.r[k].outcome, ans.r[k].err);
		cr_expect(exchange(app[i], 60 + (uint64_t)i, 0, 16384), "connection %d", i);
		close(app[i]);
	}
	usleep(200000);
	tunnel_done_flush(mine);
	cr_expect_eq(ans.n, 5, "one answer per submission (%d)", ans.n);
	cr_expect_geq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_STREAM_LIMIT]), 1,
		      "nothing was refused: the test did not test the retry");
	pthread_mutex_lock(&fx.mu);
	cr_expect_eq(fx.admitted, 5);
	cr_expect_eq(fx.admitted_without_meta, 0, "a stream carried again lost its Forwarded or baggage");
	pthread_mutex_unlock(&fx.mu);
	post_gate_close(gate);
	tunnel_done_flush(mine);
	loop_free(mine);
}

static int drained_lfds[HBONE_OB_FAMILIES], drained_n;

static void drain_listeners(void)
{
	drained_n = hbone_outbound_drain(fx.ob, drained_lfds);
}

/* The next agent's client side on the same loop (the test's listeners are the handed-over ones). */
static struct hbone_outbound *next_outbound(void)
{
	struct hbone_outbound_config ocfg = {
		.loop = fx.loop,
		.trust = bundle_store(ca_bundle(fx.ca)),
		.verify = hbt_verify,
		.ops = { .local_workload = local_workload, .certificate = certificate, .peer_identity = peer_identity },
		.origdst_fd = -1,
	};

	return hbone_outbound_new(&ocfg, &fx.ctr);
}

/*
 * A restart with both families: the drain stops accepting on the IPv4 and the IPv6 outbound listener and
 * hands both back; connections made meanwhile wait in their queues; the next agent adopts each into its
 * family's slot and accepts what queued (here, with no original destination, reset).
 */
Test(hbone_outbound, drain_hands_both_families_listeners_to_the_next_agent)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct sockaddr_in v4;
	struct sockaddr_in6 v6;
	int c4, c6;

	start_loop();
	cr_assert_eq(hbone_outbound_listen(fx.ob, &a), 0);
	cr_assert_eq(hbone_outbound_listen6(fx.ob, &a6), 0);
	v4 = hbone_outbound_address(fx.ob);
	v6 = hbone_outbound_address6(fx.ob);
	on_loop(drain_listeners);
	cr_assert_eq(drained_n, 2);
	cr_assert_geq(drained_lfds[0], 0);
	cr_assert_geq(drained_lfds[1], 0);
	/* Made while no agent accepts: they wait in the queues, nobody resets them. */
	c4 = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	c6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_eq(connect(c4, (struct sockaddr *)&v4, sizeof(v4)), 0);
	cr_assert_eq(connect(c6, (struct sockaddr *)&v6, sizeof(v6)), 0);
	cr_expect_not(ended(c4, 300), "the drained IPv4 listener accepted");
	cr_expect_not(ended(c6, 50), "the drained IPv6 listener accepted");
	cr_expect_eq(atomic_load(&hbone_outbound_stats(fx.ob)->captured), 0);
	/* The holder's copies go to the next agent, IPv6 first: each lands in its family's slot. */
	fx.ob2 = next_outbound();
	cr_assert_not_null(fx.ob2);
	cr_assert_eq(hbone_outbound_adopt(fx.ob2, dup(drained_lfds[1])), 0);
	cr_assert_eq(hbone_outbound_adopt(fx.ob2, dup(drained_lfds[0])), 0);
	cr_expect_eq(hbone_outbound_address(fx.ob2).sin_port, v4.sin_port);
	cr_expect_eq(hbone_outbound_address6(fx.ob2).sin6_port, v6.sin6_port);
	cr_expect(ended(c4, 2000), "the IPv4 connection that queued was not accepted");
	cr_expect(ended(c6, 2000), "the IPv6 connection that queued was not accepted");
	cr_expect_eq(atomic_load(&hbone_outbound_stats(fx.ob2)->captured), 2);
	cr_expect_eq(atomic_load(&hbone_outbound_stats(fx.ob2)->refused[HBONE_OB_NO_ORIGDST]), 2);
	close(c4);
	close(c6);
}
