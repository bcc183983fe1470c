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
	struct hbone_outbound *ob;
	pthread_mutex_t mu;
	char last_forwarded[256], last_peer[HBONE_ID_MAX];
} fx;

static int admit(void *ctx, const struct hbone_admit *a)
{
	(void)ctx;
	pthread_mutex_lock(&fx.mu);
	snprintf(fx.last_forwarded, sizeof(fx.last_forwarded), "%s", a->forwarded);
	snprintf(fx.last_peer, sizeof(fx.last_peer), "%s", a->peer_id);
	pthread_mutex_unlock(&fx.mu);
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

/* The echo pod is the only known one. */
static int peer_identity(void *ctx, const struct sockaddr_storage *target, char *id, size_t len)
{
	(void)ctx;
	if (((const struct sockaddr_in *)target)->sin_port != ((const struct sockaddr_in *)&fx.echo_addr)->sin_port)
		return -ENOENT;
	snprintf(id, len, "%s", DST_ID);
	return 0;
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
		.ops = { .local_workload = local_workload, .certificate = certificate, .peer_identity = peer_identity },
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
	cr_assert_eq(hbone_outbound_submit(fx.ob, sv[1], &r), 0);
	cr_expect_eq(echo_through(sv[0], 7, 4u << 20, 20000), 4u << 20);
	close(sv[0]);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.streams_opened[HBONE_SIDE_CLIENT]), 1);
	cr_expect_eq(atomic_load(&hbone_outbound_stats(fx.ob)->submitted), 1);
	pthread_mutex_lock(&fx.mu);
	cr_expect_str_eq(fx.last_forwarded, "for=\"10.200.11.11:40000\"");
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
		if (hbone_outbound_submit(fx.ob, sv[1], &r))
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
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r), -ENOENT);
	cr_expect(ended(sv[0], 1000));
	close(sv[0]);
	cr_expect_eq(atomic_load(&st->refused[HBONE_OB_NO_CERTIFICATE]), 1);

	/* Not IPv4. */
	r = request(0);
	r.target.ss_family = AF_INET6;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r), -EINVAL);
	cr_expect(ended(sv[0], 1000));
	close(sv[0]);
	cr_expect_eq(atomic_load(&st->refused[HBONE_OB_BAD_REQUEST]), 1);

	/* A target that is no known pod: taken (0), then reset on the hbone thread. */
	r = request(9);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r), 0);
	cr_expect(ended(sv[0], 2000));
	close(sv[0]);
	cr_expect_eq(atomic_load(&st->refused[HBONE_OB_UNKNOWN_TARGET]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.streams_opened[HBONE_SIDE_CLIENT]), 0);

	/* Stopped: not available, -ENOTCONN. */
	hbone_outbound_stop(fx.ob);
	cr_expect_not(hbone_outbound_available(fx.ob));
	r = request(0);
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r), -ENOTCONN);
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
	cr_expect_eq(hbone_outbound_submit(fx.ob, sv[1], &r), 0);
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
	hbone_server_drain(fx.srv);
	cr_assert_geq(hbone_outbound_drain(fx.ob), -1);
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
	return hbone_outbound_submit(fx.ob, sv[1], &r);
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
	cr_assert_geq(hbone_outbound_drain(fx.ob), -1);
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
