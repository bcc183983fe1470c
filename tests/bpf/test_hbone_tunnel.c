// SPDX-License-Identifier: Apache-2.0
/*
 * The tunnel end to end in one process, on whatever kernel runs the BPF tests (the vmtests' 6.1 and 6.12
 * too): a client in the mesh cgroup dials a "remote pod" (127.0.0.1:ECHO, listed in xm_hbone_dsts); the
 * connect hook sends it to the outbound listener (127.0.0.1:15002) and sockops records where it was going;
 * the test, as the agent does, takes the original destination from the kernel and splices the socket
 * through an HBONE CONNECT stream (mutual TLS 1.3, HTTP/2) to the HBONE server on 127.0.0.1:15008, which
 * connects to the echo server. The client's own TLS connection to 15008 is made inside the mesh cgroup:
 * it must not be captured. 1 MiB goes both ways byte-exact; the client still sees the address it dialed.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <xmesh/hbone.h>

#include "../unit/hbone_fixture.h"
#include "core/loop.h"
#include "datapath/hbone_capture.h"
#include "hbone/hbone.h"
#include "sock_lb_fixture.h"

#define SRC_ID	   "spiffe://cluster.local/ns/a/sa/client"
#define DST_ID	   "spiffe://cluster.local/ns/b/sa/server"
#define TUNNEL_LEN (1u << 20)

static struct {
	struct xm_loop *loop;
	struct hbone_counters ctr;
	struct hbt_cert root, server_leaf, client_leaf;
	X509_STORE *store;
	struct hbt_echo *echo;
	struct sockaddr_storage echo_addr;
	int hbone_lfd, out_lfd;
	struct hbone_server *srv;
	struct hbone_client *cl;
	int captured, lookup_err, splice_err, splices_done;
	struct hbone_captured last;
	char admitted_target[64];
} tx;

static int pick_cert(void *ctx, const struct sockaddr_storage *local, X509 **cert, EVP_PKEY **key,
		     STACK_OF(X509) * *chain)
{
	(void)ctx, (void)local;
	*cert = tx.server_leaf.cert;
	*key = tx.server_leaf.key;
	*chain = NULL;
	return 0;
}

static int admit(void *ctx, const struct hbone_admit *a)
{
	(void)ctx;
	hbone_format_authority(a->target, tx.admitted_target, sizeof(tx.admitted_target));
	return 200;
}

/* A listening socket on 127.0.0.1:port; made in the mesh cgroup like everything here (listeners see no hook). */
static int listen_on(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET,
				 .sin_port = htons(port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	cr_assert_eq(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)), 0);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0, "bind %u: %s", port, strerror(errno));
	cr_assert_eq(listen(fd, 64), 0);
	return fd;
}

static void splice_done(void *ctx, int err)
{
	(void)ctx;
	tx.splice_err = err;
	tx.splices_done++;
}

/* The agent's accept path: the kernel's record of the destination, then a CONNECT stream for it. */
static void on_outbound(struct xm_loop *loop, int lfd, uint32_t events, void *ctx)
{
	struct sockaddr_storage dst;
	int fd;

	(void)events, (void)ctx;
	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct hbone_open req = { .src_id = SRC_ID, .dst_id = DST_ID };

		tx.lookup_err = hbone_capture_lookup(fx.fds.hbone_origdst, fd, &tx.last);
		if (tx.lookup_err) {
			close(fd);
			continue;
		}
		tx.captured++;
		dst = tx.last.target;
		((struct sockaddr_in *)&dst)->sin_port = htons(HBONE_PORT);
		req.dst = &dst;
		req.target = &tx.last.target;
		req.client = &tx.last.client;
		req.cert = tx.client_leaf.cert;
		req.key = tx.client_leaf.key;
		cr_assert_not_null(hbone_splice_open(tx.cl, loop, fd, &req, splice_done, NULL));
	}
}

static void setup(void)
{
	/* The agent's mark on its connections to targets: the connect hook never captures them (this process
	 * is in the mesh cgroup, as an agent serving the host's root cgroup is). */
	struct hbone_server_config scfg = {
		.verify = hbt_verify, .cert = pick_cert, .admit = admit, .target_mark = XM_MTLS_AGENT_MARK
	};
	struct hbone_client_config ccfg = { .verify = hbt_verify };

	fx_setup();
	if (fx.skipped)
		return;
	memset(&tx, 0, sizeof(tx));
	tx.loop = loop_new();
	cr_assert_not_null(tx.loop);
	tx.root = hbt_ca_new("root");
	tx.server_leaf = hbt_leaf_new(&tx.root, DST_ID);
	tx.client_leaf = hbt_leaf_new(&tx.root, SRC_ID);
	tx.store = hbt_store(&tx.root);
	scfg.trust = ccfg.trust = tx.store;
	tx.echo = hbt_echo_start(tx.loop, &tx.echo_addr);
	tx.hbone_lfd = listen_on(HBONE_PORT);
	tx.srv = hbone_server_new(tx.loop, tx.hbone_lfd, &scfg, &tx.ctr);
	cr_assert_not_null(tx.srv);
	tx.cl = hbone_client_new(tx.loop, &ccfg, &tx.ctr);
	cr_assert_not_null(tx.cl);
	tx.out_lfd = listen_on(XM_HBONE_OUTBOUND_PORT);
	cr_assert_eq(loop_add_fd(tx.loop, tx.out_lfd, EPOLLIN, on_outbound, NULL), 0);
}

static void teardown(void)
{
	if (!fx.skipped) {
		hbone_client_free(tx.cl);
		hbone_server_free(tx.srv);
		hbt_run_for(tx.loop, 5);
		hbt_echo_stop(tx.echo);
		loop_del_fd(tx.loop, tx.out_lfd);
		close(tx.out_lfd);
		close(tx.hbone_lfd);
		X509_STORE_free(tx.store);
		hbt_cert_free(&tx.root);
		hbt_cert_free(&tx.server_leaf);
		hbt_cert_free(&tx.client_leaf);
		loop_free(tx.loop);
	}
	fx_teardown();
}

TestSuite(hbone_tunnel, .init = setup, .fini = teardown, .timeout = 60);

/* Points the connect hook at the outbound listener and lists the echo server as a remote pod in mode. */
static void capture(uint8_t mode)
{
	struct l7_capture_proxy out = { .v4 = true, .port = XM_HBONE_OUTBOUND_PORT };
	struct xm_mtls_entry e = { .val.mode = mode };
	struct xm_mtls_table next = { .items = &e, .n = 1 };

	out.addr4.v4 = htonl(INADDR_LOOPBACK);
	e.key.addr.v4 = htonl(INADDR_LOOPBACK);
	e.key.port = ntohs(((struct sockaddr_in *)&tx.echo_addr)->sin_port);
	e.key.family = XM_FAMILY_V4;
	cr_assert_eq(hbone_capture_set_proxy(fx.fds.hbone_proxy, &out), 0);
	cr_assert_eq(hbone_capture_sync(fx.fds.hbone_dsts, NULL, &next), 0);
}

/* The application: connects to the echo server (blocking, in the mesh cgroup), sends and checks the echo. */
struct app {
	pthread_t thread;
	struct sockaddr_storage dialed, peer;
	atomic_bool done;
	int err;
	size_t got;
	bool mismatch;
};

static void *app_run(void *arg)
{
	struct app *a = arg;
	socklen_t pl = sizeof(a->peer);
	uint8_t buf[65536];
	size_t sent = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0 || connect(fd, (struct sockaddr *)&a->dialed, sizeof(struct sockaddr_in))) {
		a->err = errno;
		goto out;
	}
	getpeername(fd, (struct sockaddr *)&a->peer, &pl);
	/* Write a chunk, read what comes back, until all is echoed: the echo never holds more than a chunk. */
	while (a->got < TUNNEL_LEN) {
		size_t n = TUNNEL_LEN - sent < sizeof(buf) ? TUNNEL_LEN - sent : sizeof(buf);
		ssize_t r;

		for (size_t i = 0; i < n; i++)
			buf[i] = hbt_byte(7, sent + i);
		if (n && write(fd, buf, n) != (ssize_t)n) {
			a->err = errno;
			break;
		}
		sent += n;
		while (a->got < sent) {
			r = read(fd, buf, sizeof(buf));
			if (r <= 0) {
				a->err = r ? errno : EPIPE;
				goto out;
			}
			for (ssize_t i = 0; i < r; i++)
				a->mismatch |= buf[i] != hbt_byte(7, a->got + (size_t)i);
			a->got += (size_t)r;
		}
	}
out:
	if (fd >= 0)
		close(fd);
	atomic_store(&a->done, true);
	return NULL;
}

static bool app_done(void *arg)
{
	return atomic_load(&((struct app *)arg)->done);
}

Test(hbone_tunnel, a_captured_connection_rides_the_tunnel_byte_exact)
{
	struct app a = { .dialed = tx.echo_addr };

	if (fx.skipped)
		return;
	capture(XM_MTLS_MODE_STRICT);
	cr_assert_eq(pthread_create(&a.thread, NULL, app_run, &a), 0);
	cr_assert(hbt_run_until(tx.loop, app_done, &a, 30000), "the application did not finish");
	pthread_join(a.thread, NULL);
	cr_assert_eq(a.err, 0, "application: %s (captured %d, lookup %d)", strerror(a.err), tx.captured, tx.lookup_err);
	cr_assert_eq(a.got, TUNNEL_LEN);
	cr_assert_not(a.mismatch, "echoed bytes differ");
	cr_assert_eq(tx.captured, 1, "captured connections: %d", tx.captured);
	/* The kernel recorded the real destination; the application still sees what it dialed. */
	cr_assert_eq(memcmp(&((struct sockaddr_in *)&tx.last.target)->sin_addr,
			    &((struct sockaddr_in *)&tx.echo_addr)->sin_addr, 4),
		     0);
	cr_assert_eq(((struct sockaddr_in *)&tx.last.target)->sin_port,
		     ((struct sockaddr_in *)&tx.echo_addr)->sin_port);
	cr_assert_eq(((struct sockaddr_in *)&a.peer)->sin_port, ((struct sockaddr_in *)&tx.echo_addr)->sin_port,
		     "getpeername answers port %u", ntohs(((struct sockaddr_in *)&a.peer)->sin_port));
	cr_assert_eq(atomic_load(&tx.ctr.streams_opened[HBONE_SIDE_SERVER]), 1);
	cr_assert_eq(atomic_load(&tx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 1,
		     "the client's own connection to 15008 must not be captured");
}

Test(hbone_tunnel, disable_stays_plaintext)
{
	struct app a = { .dialed = tx.echo_addr };

	if (fx.skipped)
		return;
	capture(XM_MTLS_MODE_DISABLE);
	cr_assert_eq(pthread_create(&a.thread, NULL, app_run, &a), 0);
	cr_assert(hbt_run_until(tx.loop, app_done, &a, 30000), "the application did not finish");
	pthread_join(a.thread, NULL);
	cr_assert_eq(a.err, 0, "application: %s", strerror(a.err));
	cr_assert_eq(a.got, TUNNEL_LEN);
	cr_assert_eq(tx.captured, 0);
	cr_assert_eq(atomic_load(&tx.ctr.streams_opened[HBONE_SIDE_SERVER]), 0);
	cr_assert_eq(atomic_load(&tx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 0);
}
