// SPDX-License-Identifier: Apache-2.0
/*
 * CPU time of an HBONE connection with a full and with a resumed TLS 1.3 handshake (issue #15's "handshake
 * CPU time (full and resumed)"), over loopback, with the agent's own pieces: the tunnel library (agent/hbone),
 * ECDSA P-256 workload certificates minted by the agent's CA (a root generated in a temporary directory) and
 * the agent's peer check (verify_peer) on both ends.
 *
 *   hbone_handshake [-n N] [--json FILE]
 *
 * The server runs on a thread and loop of its own, the client on the main thread: each side's CPU time is its
 * thread's (CLOCK_THREAD_CPUTIME_ID), so the two are told apart. A connection is: TCP connect/accept, the TLS
 * handshake, HTTP/2 SETTINGS, one CONNECT that the server answers 400 (no target is dialled), and the close
 * (the pool's idle timeout is 1 ms). N connections with the client's resumption off (every handshake full: a
 * certificate each way, both chains verified, the server still issues its ticket) and N with it on (each
 * resumes the previous connection's ticket, the checks of tls.c's hb_tls_recheck included); 10 of each
 * first as warm-up. Prints µs of CPU per connection for each side, and with --json the same as one object.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/loop.h"
#include "hbone/hbone.h"
#include "identity/identity.h"

#define TD     "cluster.local"
#define SRC_ID "spiffe://cluster.local/ns/bench/sa/client"
#define DST_ID "spiffe://cluster.local/ns/bench/sa/server"

static struct xm_trust_bundle *bundle;
static struct xm_cert *server_cert, *client_cert;
static struct hbone_counters ctr;
static struct xm_loop *srv_loop, *cl_loop;

static void die(const char *what)
{
	fprintf(stderr, "hbone_handshake: %s\n", what);
	exit(1);
}

/* The agent's check: chain to the bundle, SPIFFE ID of our trust domain, the expected one on the client. */
static int verify(void *ctx, const char *expected, X509 *leaf, STACK_OF(X509) * chain, char *peer_id, size_t len)
{
	struct xm_spiffe_id id;

	(void)ctx;
	if (verify_peer(bundle, leaf, chain, TD, (int64_t)time(NULL), expected ? XM_PEER_SERVER : XM_PEER_CLIENT,
			&id) != XM_VERIFY_OK)
		return -EACCES;
	if (expected && strcmp(expected, id.uri))
		return -EACCES;
	snprintf(peer_id, len, "%s", id.uri);
	return 0;
}

static int pick_cert(void *ctx, const struct sockaddr_storage *local, X509 **cert, EVP_PKEY **key,
		     STACK_OF(X509) * *chain)
{
	(void)ctx, (void)local;
	*cert = cert_leaf(server_cert);
	*key = cert_key(server_cert);
	*chain = cert_chain(server_cert);
	return 0;
}

static int admit(void *ctx, const struct hbone_admit *a)
{
	(void)ctx, (void)a;
	return 400;
}

static void *server_thread(void *arg)
{
	(void)arg;
	if (loop_run(srv_loop))
		die("server loop");
	return NULL;
}

/* ---- one connection ---- */

static bool stream_done;

static void on_close(struct hbone_stream *s, void *ctx, int err)
{
	(void)s, (void)ctx, (void)err;
	stream_done = true;
}

static const struct hbone_stream_ops ops = { .on_close = on_close };

struct until {
	struct hbone_client *cl;
	uint64_t deadline;
	bool met;
};

static bool over(const struct until *u)
{
	return stream_done && hbone_client_connections(u->cl) == 0 &&
	       atomic_load(&ctr.connections_open[HBONE_SIDE_SERVER]) == 0;
}

static void tick(struct xm_loop *loop, struct xm_timer *t, void *arg)
{
	struct until *u = arg;

	(void)t;
	if (over(u)) {
		u->met = true;
		loop_stop(loop);
	} else if (loop_now_ms() > u->deadline) {
		loop_stop(loop);
	}
}

static void one(struct hbone_client *cl, const struct sockaddr_storage *dst)
{
	struct sockaddr_storage target = *dst;
	struct hbone_open req = {
		.src_id = SRC_ID,
		.dst_id = DST_ID,
		.dst = dst,
		.cert = cert_leaf(client_cert),
		.key = cert_key(client_cert),
		.chain = cert_chain(client_cert),
		.target = &target,
	};
	struct until u = { cl, loop_now_ms() + 5000, false };
	struct xm_timer *t;

	stream_done = false;
	if (!hbone_client_open(cl, &req, &ops, NULL))
		die("hbone_client_open");
	t = loop_timer_add(cl_loop, 1, 1, tick, &u);
	if (!t || loop_run(cl_loop))
		die("client loop");
	loop_timer_cancel(cl_loop, t);
	if (!u.met)
		die("a connection did not end within 5 s");
}

static double thread_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

struct result {
	double client_us, server_us;
};

static struct result run(X509_STORE *store, const struct sockaddr_storage *dst, clockid_t srv_clock, int n, bool resume)
{
	struct hbone_client_config cfg = {
		.trust = store,
		.verify = verify,
		.idle_timeout_ms = 1,
		.no_resumption = !resume,
	};
	struct hbone_client *cl = hbone_client_new(cl_loop, &cfg, &ctr);
	unsigned long long resumed0;
	double c0, s0;
	struct result r;
	int i;

	if (!cl)
		die("hbone_client_new");
	for (i = 0; i < 10; i++)
		one(cl, dst);
	resumed0 = atomic_load(&ctr.resumed[HBONE_SIDE_CLIENT]);
	c0 = thread_us(CLOCK_THREAD_CPUTIME_ID);
	s0 = thread_us(srv_clock);
	for (i = 0; i < n; i++)
		one(cl, dst);
	r.client_us = (thread_us(CLOCK_THREAD_CPUTIME_ID) - c0) / n;
	r.server_us = (thread_us(srv_clock) - s0) / n;
	if (atomic_load(&ctr.resumed[HBONE_SIDE_CLIENT]) - resumed0 != (resume ? (unsigned long long)n : 0))
		die(resume ? "not every connection resumed" : "a connection resumed");
	hbone_client_free(cl);
	return r;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "json", required_argument, NULL, 'j' }, { 0, 0, 0, 0 } };
	char dir[] = "/tmp/xmesh-hbone-bench-XXXXXX", err[256], cmd[320];
	struct xm_ca_opts co = { 0 };
	const char *json = NULL;
	struct sockaddr_storage addr;
	struct sockaddr_in *in = (struct sockaddr_in *)&addr;
	socklen_t alen = sizeof(*in);
	struct hbone_server_config scfg = { .verify = verify, .cert = pick_cert, .admit = admit };
	struct hbone_server *srv;
	struct result full, resumed;
	struct xm_ca *ca;
	pthread_t th;
	clockid_t srv_clock;
	int n = 200, c, lfd, e = 0, one_ = 1;

	while ((c = getopt_long(argc, argv, "n:", opts, NULL)) != -1) {
		if (c == 'n')
			n = atoi(optarg);
		else if (c == 'j')
			json = optarg;
		else
			die("usage: hbone_handshake [-n N] [--json FILE]");
	}
	if (n <= 0)
		die("-n must be positive");
	if (!mkdtemp(dir))
		die("mkdtemp");
	co.state_dir = dir;
	ca = ca_open(&co, (int64_t)time(NULL), err, sizeof(err));
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (!ca) {
		if (system(cmd)) {
		}
		die(err);
	}
	bundle = bundle_get(ca_bundle(ca));
	server_cert = ca_mint(ca, DST_ID, (int64_t)time(NULL), 3600, &e);
	client_cert = ca_mint(ca, SRC_ID, (int64_t)time(NULL), 3600, &e);
	ca_free(ca);
	if (system(cmd)) {
	}
	if (!server_cert || !client_cert)
		die("minting the certificates");

	lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	memset(&addr, 0, sizeof(addr));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one_, sizeof(one_));
	if (lfd < 0 || bind(lfd, (struct sockaddr *)in, sizeof(*in)) || listen(lfd, 1024) ||
	    getsockname(lfd, (struct sockaddr *)in, &alen))
		die("listening on 127.0.0.1");
	srv_loop = loop_new();
	cl_loop = loop_new();
	if (!srv_loop || !cl_loop)
		die("loop_new");
	scfg.trust = bundle_store(bundle);
	srv = hbone_server_new(srv_loop, lfd, &scfg, &ctr);
	if (!srv || pthread_create(&th, NULL, server_thread, NULL) || pthread_getcpuclockid(th, &srv_clock))
		die("starting the server");

	full = run(bundle_store(bundle), &addr, srv_clock, n, false);
	resumed = run(bundle_store(bundle), &addr, srv_clock, n, true);

	printf("hbone_handshake: CPU per connection (TCP + TLS 1.3 + SETTINGS + one CONNECT + close), %d each, "
	       "ECDSA P-256\n",
	       n);
	printf("  %-8s %10s %10s %10s\n", "", "client_us", "server_us", "total_us");
	printf("  %-8s %10.0f %10.0f %10.0f\n", "full", full.client_us, full.server_us,
	       full.client_us + full.server_us);
	printf("  %-8s %10.0f %10.0f %10.0f\n", "resumed", resumed.client_us, resumed.server_us,
	       resumed.client_us + resumed.server_us);
	printf("  resumed/full: client %.2f, server %.2f\n", resumed.client_us / full.client_us,
	       resumed.server_us / full.server_us);
	if (json) {
		FILE *f = fopen(json, "w");

		if (!f)
			die("--json: cannot write the file");
		fprintf(f,
			"{\"n\":%d,\"full\":{\"client_us\":%.1f,\"server_us\":%.1f},"
			"\"resumed\":{\"client_us\":%.1f,\"server_us\":%.1f}}\n",
			n, full.client_us, full.server_us, resumed.client_us, resumed.server_us);
		fclose(f);
	}

	loop_stop(srv_loop);
	pthread_join(th, NULL);
	hbone_server_free(srv);
	close(lfd);
	loop_free(srv_loop);
	loop_free(cl_loop);
	cert_put(server_cert);
	cert_put(client_cert);
	bundle_put(bundle);
	return 0;
}
