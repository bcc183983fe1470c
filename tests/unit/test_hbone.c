/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HBONE tunnel (hbone/hbone.h): client and server over loopback in one process and one loop, with
 * certificates made here: many streams on one TLS connection, a byte-exact 10 MiB echo, backpressure with
 * a reader that does not read, the refusals (no or foreign client certificate, bad :authority, policy,
 * refused target), the stream limit on both sides, and the pool's idle timeout.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#include <sys/epoll.h>

#include "core/loop.h"
#include "hbone/internal.h"
#include "hbone_fixture.h"
#include "hbone_pipe.h"

#define SRC_ID "spiffe://cluster.local/ns/a/sa/client"
#define DST_ID "spiffe://cluster.local/ns/b/sa/server"

static struct {
	struct xm_loop *loop;
	struct hbone_counters ctr;
	struct hbt_cert root, other_root, server_leaf, client_leaf, foreign_leaf;
	X509_STORE *store;
	int lfd;
	struct sockaddr_storage hbone_addr, echo_addr;
	struct hbt_echo *echo;
	struct hbone_server *srv;
	struct hbone_client *cl;
	int verdict; /* what admit answers */
	int admits;
	char last_peer[HBONE_ID_MAX], last_forwarded[256], last_baggage[512], last_traceparent[64];
} fx;

static int admit(void *ctx, const struct hbone_admit *a)
{
	(void)ctx;
	fx.admits++;
	snprintf(fx.last_peer, sizeof(fx.last_peer), "%s", a->peer_id);
	snprintf(fx.last_forwarded, sizeof(fx.last_forwarded), "%s", a->forwarded);
	snprintf(fx.last_baggage, sizeof(fx.last_baggage), "%s", a->baggage);
	snprintf(fx.last_traceparent, sizeof(fx.last_traceparent), "%s", a->traceparent);
	return fx.verdict;
}

static int pick_cert(void *ctx, const struct sockaddr_storage *local, X509 **cert, EVP_PKEY **key,
		     STACK_OF(X509) * *chain)
{
	(void)ctx, (void)local;
	*cert = fx.server_leaf.cert;
	*key = fx.server_leaf.key;
	*chain = NULL;
	return 0;
}

static void start_client(uint32_t max_streams, uint64_t idle_ms)
{
	struct hbone_client_config ccfg = {
		.trust = fx.store,
		.verify = hbt_verify,
		.max_streams_per_conn = max_streams,
		.idle_timeout_ms = idle_ms,
	};

	fx.cl = hbone_client_new(fx.loop, &ccfg, &fx.ctr);
	cr_assert_not_null(fx.cl);
}

static void setup_with(uint32_t server_max_streams)
{
	struct hbone_server_config scfg = {
		.verify = hbt_verify,
		.cert = pick_cert,
		.admit = admit,
		.max_streams = server_max_streams,
	};

	memset(&fx, 0, sizeof(fx));
	fx.loop = loop_new();
	cr_assert_not_null(fx.loop);
	fx.root = hbt_ca_new("root");
	fx.other_root = hbt_ca_new("other");
	fx.server_leaf = hbt_leaf_new(&fx.root, DST_ID);
	fx.client_leaf = hbt_leaf_new(&fx.root, SRC_ID);
	fx.foreign_leaf = hbt_leaf_new(&fx.other_root, SRC_ID);
	fx.store = hbt_store(&fx.root);
	scfg.trust = fx.store;
	fx.verdict = 200;
	fx.echo = hbt_echo_start(fx.loop, &fx.echo_addr);
	fx.lfd = hbt_listen(&fx.hbone_addr);
	fx.srv = hbone_server_new(fx.loop, fx.lfd, &scfg, &fx.ctr);
	cr_assert_not_null(fx.srv);
}

static void setup(void)
{
	setup_with(0);
	start_client(0, 0);
}

static void teardown(void)
{
	hbone_client_free(fx.cl);
	hbone_server_free(fx.srv);
	hbt_run_for(fx.loop, 5); /* posted work of the connections just closed */
	hbt_echo_stop(fx.echo);
	close(fx.lfd);
	X509_STORE_free(fx.store);
	hbt_cert_free(&fx.root);
	hbt_cert_free(&fx.other_root);
	hbt_cert_free(&fx.server_leaf);
	hbt_cert_free(&fx.client_leaf);
	hbt_cert_free(&fx.foreign_leaf);
	loop_free(fx.loop);
}

/* ---- a stream that writes a pattern and checks what comes back ---- */

static void open_pipe(struct hbt_pipe *p, uint64_t seed, uint64_t total, const struct sockaddr_storage *target)
{
	struct hbone_open req = {
		.src_id = SRC_ID,
		.dst_id = DST_ID,
		.dst = &fx.hbone_addr,
		.cert = fx.client_leaf.cert,
		.key = fx.client_leaf.key,
		.target = target,
		.baggage = "k8s.cluster.name=Kubernetes,k8s.namespace.name=a",
	};

	hbt_pipe_open(p, fx.cl, &req, seed, total);
}

TestSuite(hbone, .init = setup, .fini = teardown, .timeout = 60);

Test(hbone, authority)
{
	static const struct {
		const char *s;
		bool ok;
	} cases[] = {
		{ "10.0.0.1:80", true },
		{ "[fd00::1]:8080", true },
		{ "[::1]:1", true },
		{ "255.255.255.255:65535", true },
		{ "10.0.0.1", false },
		{ "10.0.0.1:", false },
		{ "10.0.0.1:0", false },
		{ "10.0.0.1:65536", false },
		{ "10.0.0.1:080", false },
		{ "host:80", false },
		{ "[fd00::1]", false },
		{ "fd00::1:80", false },
		{ "[fd00::1]80", false },
		{ ":80", false },
		{ "10.0.0.1:80x", false },
		{ "[10.0.0.1]:80", false },
		{ "", false },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		char back[64];
		int rc = hbone_parse_authority(cases[i].s, strlen(cases[i].s), &ss);

		cr_expect_eq(rc == 0, cases[i].ok, "%s: %d", cases[i].s, rc);
		if (rc == 0) {
			cr_assert_gt(hbone_format_authority(&ss, back, sizeof(back)), 0);
			cr_expect_str_eq(back, cases[i].s);
		}
	}
}

/*
 * IPv6 as RFC 3986 (IP-literal = "[" IPv6address "]") and ztunnel (a Rust SocketAddrV6 printed) write it:
 * hex in either case, embedded IPv4; no zone (pod IPs have none), no IPvFuture, nothing outside the brackets.
 */
Test(hbone, authority_ipv6)
{
	static const struct {
		const char *s, *canonical; /* NULL: refused */
	} cases[] = {
		{ "[FD00:200:2::11]:8080", "[fd00:200:2::11]:8080" },
		{ "[fd00:200:2:0:0:0:0:11]:80", "[fd00:200:2::11]:80" },
		{ "[::ffff:10.0.0.1]:80", "[::ffff:10.0.0.1]:80" },
		{ "[2001:db8::1.2.3.4]:1", "[2001:db8::102:304]:1" },
		{ "[::]:65535", "[::]:65535" },
		{ "[fe80::1%eth0]:80", NULL },
		{ "[fe80::1%25eth0]:80", NULL },
		{ "[v1.fe]:80", NULL },
		{ "[]:80", NULL },
		{ "[fd00::1]:", NULL },
		{ "[fd00::1]:0", NULL },
		{ "[fd00::1]:65536", NULL },
		{ "[fd00::1]:+80", NULL },
		{ "[fd00::1]]:80", NULL },
		{ "[[fd00::1]]:80", NULL },
		{ "[fd00::1:80", NULL },
		{ "fd00::1]:80", NULL },
		{ "[fd00::g]:80", NULL },
		{ "[fd00:0:0:0:0:0:0:0:1]:80", NULL },
		{ "[ fd00::1]:80", NULL },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sockaddr_storage ss;
		char back[64];
		int rc = hbone_parse_authority(cases[i].s, strlen(cases[i].s), &ss);

		cr_expect_eq(rc == 0, cases[i].canonical != NULL, "%s: %d", cases[i].s, rc);
		if (rc || !cases[i].canonical)
			continue;
		cr_expect_eq(ss.ss_family, AF_INET6, "%s", cases[i].s);
		cr_assert_gt(hbone_format_authority(&ss, back, sizeof(back)), 0);
		cr_expect_str_eq(back, cases[i].canonical);
	}
	/* The length given is the authority: a longer buffer's tail is not read. */
	cr_expect_eq(hbone_parse_authority("[fd00::1]:80xyz", 12, &(struct sockaddr_storage){ 0 }), 0);
}

Test(hbone, echo_10mib_byte_exact)
{
	struct hbt_pipe p;
	uint64_t t0 = loop_now_ms();

	open_pipe(&p, 7, 10u << 20, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 30000), "sent %lu got %lu", p.sent, p.got);
	cr_log_info("10 MiB echoed in %lu ms (client, server and echo on one thread)", loop_now_ms() - t0);
	cr_expect_eq(p.status, 200);
	cr_expect_eq(p.close_err, 0);
	cr_expect_eq(p.got, 10u << 20);
	cr_expect_not(p.mismatch);
	/* what the server saw: the client's identity and ztunnel's request headers */
	cr_expect_str_eq(fx.last_peer, SRC_ID);
	cr_expect_str_eq(fx.last_forwarded, "for=\"10.1.2.3:40000\"");
	cr_expect_str_eq(fx.last_baggage, "k8s.cluster.name=Kubernetes,k8s.namespace.name=a");
	cr_expect_eq(strlen(fx.last_traceparent), 55, "%s", fx.last_traceparent);
	cr_expect_eq(strncmp(fx.last_traceparent, "00-", 3), 0);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_SUCCESS]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.streams_opened[HBONE_SIDE_SERVER]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.bytes_received[HBONE_SIDE_SERVER]), 10u << 20);
	cr_expect_eq(atomic_load(&fx.ctr.bytes_received[HBONE_SIDE_CLIENT]), 10u << 20);
}

struct many {
	struct hbt_pipe p[120];
	size_t n;
};

static bool all_done(void *arg)
{
	struct many *m = arg;
	size_t i;

	for (i = 0; i < m->n; i++)
		if (!m->p[i].closed)
			return false;
	return true;
}

Test(hbone, fifty_streams_one_connection)
{
	static struct many m;
	size_t i;

	m.n = 50;
	for (i = 0; i < m.n; i++)
		open_pipe(&m.p[i], 100 + i, 100000 + i * 1000, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, all_done, &m, 30000));
	for (i = 0; i < m.n; i++) {
		cr_expect_eq(m.p[i].status, 200, "stream %zu", i);
		cr_expect_eq(m.p[i].got, m.p[i].total, "stream %zu", i);
		cr_expect_not(m.p[i].mismatch, "stream %zu", i);
	}
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_SUCCESS]), 1);
	cr_expect_eq(hbone_client_connections(fx.cl), 1);
	cr_expect_eq(hbone_server_connections(fx.srv), 1);
	cr_expect_eq(atomic_load(&fx.ctr.streams_opened[HBONE_SIDE_CLIENT]), 50);
}

static bool count_open(void *arg)
{
	struct many *m = arg;
	size_t i, n = 0;

	for (i = 0; i < m->n; i++)
		n += m->p[i].opened;
	return n >= 100;
}

/* The pool puts at most 100 streams on a connection, then opens another (ztunnel's pool). */
Test(hbone, pool_opens_second_connection_at_100_streams)
{
	static struct many m;
	size_t i;

	m.n = 101;
	for (i = 0; i < m.n; i++)
		open_pipe(&m.p[i], i, 0, &fx.echo_addr);
	for (i = 0; i < m.n; i++)
		m.p[i].shut = true; /* keep them open: nothing to send, no END_STREAM yet */
	cr_assert(hbt_run_until(fx.loop, count_open, &m, 10000));
	hbt_run_for(fx.loop, 50);
	for (i = 0; i < m.n; i++)
		cr_expect_eq(m.p[i].status, 200, "stream %zu", i);
	cr_expect_eq(hbone_client_connections(fx.cl), 2);
	cr_expect_eq(hbone_server_connections(fx.srv), 2);
	for (i = 0; i < m.n; i++)
		hbone_stream_shutdown(m.p[i].s);
	cr_assert(hbt_run_until(fx.loop, all_done, &m, 10000));
}

TestSuite(hbone_limits, .fini = teardown, .timeout = 60);

/* A client allowed more than the server advertises queues the 101st until a stream ends. */
Test(hbone_limits, server_limit_queues_the_101st)
{
	static struct many m;
	size_t i, n_open = 0;

	setup_with(0);
	start_client(200, 0);
	m.n = 101;
	for (i = 0; i < m.n; i++) {
		open_pipe(&m.p[i], i, 0, &fx.echo_addr);
		m.p[i].shut = true;
	}
	cr_assert(hbt_run_until(fx.loop, count_open, &m, 10000));
	hbt_run_for(fx.loop, 100);
	for (i = 0; i < m.n; i++)
		n_open += m.p[i].opened;
	cr_expect_eq(n_open, 100, "the server took %zu streams", n_open);
	for (i = 0; i < m.n; i++)
		cr_assert_not(m.p[i].closed, "stream %zu closed: status %d err %d", i, m.p[i].status, m.p[i].close_err);
	cr_expect_eq(hbone_client_connections(fx.cl), 1);
	hbone_stream_shutdown(m.p[0].s);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_opened, &m.p[100], 5000), "the 101st never opened");
	for (i = 1; i < m.n; i++)
		hbone_stream_shutdown(m.p[i].s);
	cr_assert(hbt_run_until(fx.loop, all_done, &m, 10000));
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_STREAM_LIMIT]), 0);
}

/* ---- backpressure ---- */

static bool write_blocked(void *arg)
{
	struct hbt_pipe *p = arg;

	return p->opened && p->sent < p->total && p->s && p->s->want_writable;
}

Test(hbone, backpressure_slow_reader_bounded)
{
	struct hbt_pipe p;
	struct hbone_stream *ss;
	size_t server_rx = 0, server_tx = 0;
	uint64_t sent;
	int i;

	open_pipe(&p, 3, 256u << 20, &fx.echo_addr);
	p.paused_reader = true;
	cr_assert(hbt_run_until(fx.loop, write_blocked, &p, 20000), "writes never blocked: sent %lu", p.sent);
	/* stalled: nothing more taken during 300 ms (within 20 s: sanitizers are slow) */
	for (i = 0; i < 60; i++) {
		sent = p.sent;
		hbt_run_for(fx.loop, 300);
		if (p.sent == sent)
			break;
	}
	cr_expect_eq(p.sent, sent, "still writing after %d rounds: %lu then %lu", i, sent, p.sent);
	cr_expect_lt(p.sent, 64u << 20, "sent %lu", p.sent);
	cr_expect_gt(p.s->rx.len, 0);
	cr_expect_leq(p.s->rx.len, HBONE_STREAM_WINDOW);
	cr_expect_leq(p.s->tx.len, HBONE_STREAM_BUFFER);
	/* the server side of the stream: its buffers are bounded the same way */
	ss = hb_server_conns(fx.srv)->streams;
	cr_assert_not_null(ss);
	server_rx = ss->rx.len;
	server_tx = ss->tx.len;
	cr_expect_leq(server_rx, HBONE_STREAM_WINDOW);
	cr_expect_leq(server_tx, HBONE_STREAM_BUFFER);
	cr_log_info("stalled after %lu bytes: client rx %zu tx %zu, server rx %zu tx %zu", p.sent, p.s->rx.len,
		    p.s->tx.len, server_rx, server_tx);
	/* reading resumes: everything arrives, byte-exact */
	p.paused_reader = false;
	p.total = p.sent + (1u << 20);
	hbt_pipe_ops.on_readable(p.s, &p);
	hbt_pipe_pump(&p);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 60000), "sent %lu got %lu", p.sent, p.got);
	cr_expect_eq(p.got, p.total);
	cr_expect_not(p.mismatch);
}

/* ---- refusals over TLS ---- */

static void refused_by_policy(int verdict, int want_status, enum hbone_refusal why)
{
	struct hbt_pipe p;

	fx.verdict = verdict;
	open_pipe(&p, 1, 1000, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.status, want_status);
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[why]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_STATUS]), 1);
	cr_expect_eq(hbt_echo_connections(fx.echo), 0);
	/* the connection keeps working */
	fx.verdict = 200;
	open_pipe(&p, 2, 5000, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.status, 200);
	cr_expect_eq(p.got, 5000);
	cr_expect_eq(hbone_client_connections(fx.cl), 1);
}

Test(hbone, denied_401)
{
	refused_by_policy(401, 401, HBONE_REFUSED_DENIED);
}

Test(hbone, not_local_400)
{
	refused_by_policy(400, 400, HBONE_REFUSED_NOT_LOCAL);
}

Test(hbone, target_refuses_503)
{
	struct sockaddr_storage closed;
	struct hbt_pipe p;

	hbt_closed_port(&closed);
	open_pipe(&p, 1, 1000, &closed);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.status, 503);
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_TARGET]), 1);
}

/* ---- re-admission after a policy change (hbone_server_recheck) ---- */

struct recheck_ctx {
	uint16_t deny_port; /* network order */
	int asked;
	char peer[HBONE_ID_MAX], forwarded[256];
};

static int recheck_port(void *ctx, const struct hbone_admit *a)
{
	struct recheck_ctx *r = ctx;

	r->asked++;
	snprintf(r->peer, sizeof(r->peer), "%s", a->peer_id);
	snprintf(r->forwarded, sizeof(r->forwarded), "%s", a->forwarded);
	return ((const struct sockaddr_in *)a->target)->sin_port == r->deny_port ? 401 : 200;
}

static bool got_all(void *arg)
{
	struct hbt_pipe *p = arg;

	return p->got >= p->total;
}

static bool both_got_all(void *arg)
{
	struct hbt_pipe *p = arg;

	return got_all(&p[0]) && got_all(&p[1]);
}

static bool echo_idle(void *arg)
{
	return hbt_echo_connections(arg) == 0;
}

Test(hbone, recheck_resets_the_denied_stream_and_its_target_only)
{
	struct sockaddr_storage other_addr;
	struct hbt_echo *other = hbt_echo_start(fx.loop, &other_addr);
	/* [0] stays allowed, [1] (to other) is denied; static: teardown closes [0]'s stream after the return */
	static struct hbt_pipe p[2];
	struct recheck_ctx r = { .deny_port = ((struct sockaddr_in *)&other_addr)->sin_port };
	uint64_t admits = 0;

	cr_assert_not_null(other);
	open_pipe(&p[0], 1, 5000, &fx.echo_addr);
	open_pipe(&p[1], 2, 5000, &other_addr);
	p[0].hold = p[1].hold = true;
	cr_assert(hbt_run_until(fx.loop, both_got_all, p, 5000));
	cr_expect_eq(hbt_echo_connections(fx.echo), 1);
	cr_expect_eq(hbt_echo_connections(other), 1);
	admits = (uint64_t)fx.admits;

	/* each admitted stream is asked once, with the request it was admitted with; only the denied one ends */
	cr_expect_eq(hbone_server_recheck(fx.srv, recheck_port, &r), 1);
	cr_expect_eq(r.asked, 2);
	cr_expect_str_eq(r.peer, SRC_ID);
	cr_expect_str_eq(r.forwarded, "for=\"10.1.2.3:40000\"");
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p[1], 5000), "the denied stream was not closed");
	cr_expect_eq(p[1].close_err, -ECONNRESET);
	cr_assert(hbt_run_until(fx.loop, echo_idle, other, 5000), "the denied stream's target connection stayed");

	/* the allowed stream is untouched: it still echoes, on the same TLS connection */
	p[0].total += 70000;
	hbt_pipe_pump(&p[0]);
	cr_assert(hbt_run_until(fx.loop, got_all, &p[0], 5000));
	cr_expect_not(p[0].closed);
	cr_expect_not(p[0].mismatch);
	cr_expect_eq(hbt_echo_connections(fx.echo), 1);
	cr_expect_eq(hbone_client_connections(fx.cl), 1);
	/* nothing is refused at open, admit is not called again; a second walk finds only the allowed stream */
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_DENIED]), 0);
	cr_expect_eq((uint64_t)fx.admits, admits);
	r.asked = 0;
	cr_expect_eq(hbone_server_recheck(fx.srv, recheck_port, &r), 0);
	cr_expect_eq(r.asked, 1);
	/* a new stream to the denied target is still the admit callback's business (it says 200 here) */
	hbt_echo_stop(other);
}

Test(hbone, recheck_skips_the_streams_being_reset)
{
	struct hbt_pipe p;
	struct recheck_ctx r = { .deny_port = ((struct sockaddr_in *)&fx.echo_addr)->sin_port };

	open_pipe(&p, 3, 1000, &fx.echo_addr);
	p.hold = true;
	cr_assert(hbt_run_until(fx.loop, got_all, &p, 5000));
	/* two changes before the loop ran again: the stream is reset once, asked once */
	cr_expect_eq(hbone_server_recheck(fx.srv, recheck_port, &r), 1);
	cr_expect_eq(hbone_server_recheck(fx.srv, recheck_port, &r), 0);
	cr_expect_eq(r.asked, 1);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.close_err, -ECONNRESET);
	cr_assert(hbt_run_until(fx.loop, echo_idle, fx.echo, 5000));
}

static bool refused_denied(void *arg)
{
	(void)arg;
	return atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_DENIED]) > 0;
}

/* A stream still connecting to its pod when the policy changes answers 401, not the 200 it was admitted for. */
Test(hbone, recheck_answers_401_to_a_stream_still_connecting)
{
	struct sockaddr_storage slow;
	struct sockaddr_in *si = (struct sockaddr_in *)&slow;
	socklen_t len = sizeof(*si);
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0),
	    filler = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct recheck_ctx r = { 0 };
	struct hbt_pipe p;

	/* A listener whose accept queue is full: the kernel drops the next SYN, that connect stays in progress. */
	memset(&slow, 0, sizeof(slow));
	si->sin_family = AF_INET;
	si->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert(lfd >= 0 && filler >= 0);
	cr_assert_eq(bind(lfd, (struct sockaddr *)si, sizeof(*si)), 0);
	cr_assert_eq(listen(lfd, 0), 0);
	cr_assert_eq(getsockname(lfd, (struct sockaddr *)si, &len), 0);
	cr_assert_eq(connect(filler, (struct sockaddr *)si, sizeof(*si)), 0);
	r.deny_port = si->sin_port;
	open_pipe(&p, 4, 100, &slow);
	hbt_run_for(fx.loop, 300);
	cr_assert_not(p.opened, "the target connection was not left in progress (status %d)", p.status);
	cr_expect_eq(hbone_server_recheck(fx.srv, recheck_port, &r), 1);
	cr_expect_eq(r.asked, 1);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.status, 401);
	cr_expect(refused_denied(NULL));
	close(filler);
	close(lfd);
}

static void open_with(struct hbt_pipe *p, const struct hbt_cert *cert, const char *dst_id)
{
	struct hbone_open req = {
		.src_id = SRC_ID,
		.dst_id = dst_id,
		.dst = &fx.hbone_addr,
		.cert = cert->cert,
		.key = cert->key,
		.target = &fx.echo_addr,
	};

	memset(p, 0, sizeof(*p));
	p->total = 100;
	p->s = hbone_client_open(fx.cl, &req, &hbt_pipe_ops, p);
	cr_assert_not_null(p->s);
}

static bool server_failed_handshake(void *arg)
{
	(void)arg;
	return atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_FAILURE]) > 0;
}

Test(hbone, client_cert_from_another_root_refused)
{
	struct hbt_pipe p;

	open_with(&p, &fx.foreign_leaf, DST_ID);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_lt(p.status, 0, "status %d", p.status);
	cr_assert(hbt_run_until(fx.loop, server_failed_handshake, NULL, 5000));
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_SUCCESS]), 0);
	cr_expect_eq(fx.admits, 0);
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_CONNECT_FAILED]), 1);
}

Test(hbone, server_identity_not_the_expected_one)
{
	struct hbt_pipe p;

	open_with(&p, &fx.client_leaf, "spiffe://cluster.local/ns/b/sa/someone-else");
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_lt(p.status, 0, "status %d", p.status);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_FAILURE]), 1);
	cr_expect_eq(fx.admits, 0);
}

/* A TLS client without a certificate, blocking, on its own thread while the loop serves. */
struct nocert {
	struct sockaddr_storage addr;
	atomic_bool done;
	bool refused;
};

static void *nocert_thread(void *arg)
{
	struct nocert *nc = arg;
	static const unsigned char alpn[] = { 2, 'h', '2' };
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	SSL *ssl;
	char buf[64];
	int rc;

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
	connect(fd, (struct sockaddr *)&nc->addr, sizeof(struct sockaddr_in));
	ssl = SSL_new(ctx);
	SSL_set_fd(ssl, fd);
	rc = SSL_connect(ssl);
	if (rc == 1) {
		/* TLS 1.3: the client finishes first; the server's verdict comes with the next read */
		SSL_write(ssl, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 24);
		rc = SSL_read(ssl, buf, sizeof(buf));
	}
	nc->refused = rc <= 0;
	SSL_free(ssl);
	close(fd);
	SSL_CTX_free(ctx);
	atomic_store(&nc->done, true);
	return NULL;
}

static bool nocert_done(void *arg)
{
	return atomic_load(&((struct nocert *)arg)->done);
}

Test(hbone, no_client_cert_refused)
{
	struct nocert nc = { .addr = fx.hbone_addr };
	pthread_t t;

	cr_assert_eq(pthread_create(&t, NULL, nocert_thread, &nc), 0);
	cr_assert(hbt_run_until(fx.loop, nocert_done, &nc, 10000));
	pthread_join(t, NULL);
	cr_expect(nc.refused);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_FAILURE]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_SUCCESS]), 0);
	cr_expect_eq(hbone_server_connections(fx.srv), 0);
}

/* ---- the pool's idle timeout ---- */

static bool no_connections(void *arg)
{
	(void)arg;
	return hbone_client_connections(fx.cl) == 0 && hbone_server_connections(fx.srv) == 0;
}

Test(hbone_limits, idle_connection_closes_after_timeout)
{
	struct hbt_pipe p;
	uint64_t t0;

	setup_with(0);
	start_client(0, 300);
	open_pipe(&p, 5, 1000, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.got, 1000);
	t0 = loop_now_ms();
	hbt_run_for(fx.loop, 150);
	cr_expect_eq(hbone_client_connections(fx.cl), 1, "closed before its idle timeout");
	cr_assert(hbt_run_until(fx.loop, no_connections, NULL, 3000));
	cr_expect_geq(loop_now_ms() - t0, 250);
	/* a new stream opens a new connection */
	open_pipe(&p, 6, 1000, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.got, 1000);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 2);
}

/* ---- raw HTTP/2 against the server's session (memory transport, an nghttp2 client that breaks rules) ---- */

struct raw {
	nghttp2_session *cl;
	struct hb_conn *sc;
	uint8_t *out;
	size_t out_len;
	int status[512];
	uint32_t rst[512];
	bool goaway;
};

static void raw_sink(void *arg, const uint8_t *data, size_t len)
{
	struct raw *r = arg;

	r->out = realloc(r->out, r->out_len + len);
	cr_assert_not_null(r->out);
	memcpy(r->out + r->out_len, data, len);
	r->out_len += len;
}

static int raw_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
		      const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
	struct raw *r = ud;

	(void)s, (void)flags;
	if (namelen == 7 && !memcmp(name, ":status", 7) && f->hd.stream_id < 512)
		r->status[f->hd.stream_id] = atoi((const char *)value) + 0 * (int)valuelen;
	return 0;
}

static int raw_frame(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
	struct raw *r = ud;

	(void)s;
	if (f->hd.type == NGHTTP2_GOAWAY)
		r->goaway = true;
	if (f->hd.type == NGHTTP2_RST_STREAM && f->hd.stream_id < 512)
		r->rst[f->hd.stream_id] = f->rst_stream.error_code;
	return 0;
}

static void raw_start(struct raw *r, uint32_t assume_max_streams)
{
	nghttp2_session_callbacks *cb;
	nghttp2_option *opt;

	memset(r, 0, sizeof(*r));
	r->sc = hb_server_conn_mem(fx.srv, SRC_ID);
	cr_assert_not_null(r->sc);
	r->sc->mem_sink = raw_sink;
	r->sc->mem_arg = r;
	nghttp2_session_callbacks_new(&cb);
	nghttp2_session_callbacks_set_on_header_callback(cb, raw_header);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cb, raw_frame);
	nghttp2_option_new(&opt);
	/* never told otherwise before it sends: it believes the server takes this many streams */
	nghttp2_option_set_peer_max_concurrent_streams(opt, assume_max_streams);
	nghttp2_option_set_max_send_header_block_length(opt, 1 << 20);
	cr_assert_eq(nghttp2_session_client_new2(&r->cl, cb, r, opt), 0);
	nghttp2_option_del(opt);
	nghttp2_session_callbacks_del(cb);
	cr_assert_eq(nghttp2_submit_settings(r->cl, NGHTTP2_FLAG_NONE, NULL, 0), 0);
}

static void raw_request(struct raw *r, const char *method, const char *authority)
{
	nghttp2_nv nv[4];
	size_t n = 0;

#define NV(a, b) (nghttp2_nv){ (uint8_t *)(a), (uint8_t *)(b), strlen(a), strlen(b), NGHTTP2_NV_FLAG_NONE }
	nv[n++] = NV(":method", method);
	if (strcmp(method, "CONNECT")) {
		nv[n++] = NV(":scheme", "http");
		nv[n++] = NV(":path", "/");
	}
	nv[n++] = NV(":authority", authority);
#undef NV
	cr_assert_gt(nghttp2_submit_request(r->cl, NULL, nv, n, NULL, NULL), 0);
}

/* Everything the client has goes to the server in one piece; the server's answer comes back. */
static void raw_exchange(struct raw *r)
{
	uint8_t *buf = NULL;
	size_t len = 0;
	const uint8_t *data;
	ssize_t n;

	while ((n = nghttp2_session_mem_send(r->cl, &data)) > 0) {
		buf = realloc(buf, len + (size_t)n);
		memcpy(buf + len, data, (size_t)n);
		len += (size_t)n;
	}
	if (hbone_server_connections(fx.srv) && len) {
		if (hb_conn_input(r->sc, buf, len))
			hb_conn_fail(r->sc, -EPROTO);
		else
			hb_conn_progress(r->sc);
	}
	free(buf);
	if (r->out_len)
		cr_assert_geq(nghttp2_session_mem_recv(r->cl, r->out, r->out_len), 0);
	r->out_len = 0;
}

static void raw_end(struct raw *r)
{
	if (hbone_server_connections(fx.srv)) {
		r->sc->mem_sink = NULL;
		hb_conn_fail(r->sc, 0);
	}
	nghttp2_session_del(r->cl);
	free(r->out);
}

Test(hbone, bad_requests_400)
{
	struct raw r;

	raw_start(&r, 100);
	raw_request(&r, "CONNECT", "example.com:80");  /* stream 1: a name, not an IP */
	raw_request(&r, "CONNECT", "10.0.0.1");	       /* 3: no port */
	raw_request(&r, "CONNECT", "[fd00::1]:99999"); /* 5: port out of range */
	raw_request(&r, "GET", "10.0.0.1:80");	       /* 7: not CONNECT */
	raw_exchange(&r);
	raw_exchange(&r);
	cr_expect_eq(r.status[1], 400);
	cr_expect_eq(r.status[3], 400);
	cr_expect_eq(r.status[5], 400);
	cr_expect_eq(r.status[7], 400);
	cr_expect_eq(fx.admits, 0);
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_BAD_REQUEST]), 4);
	cr_expect_not(r.goaway);
	cr_expect_eq(hbone_server_connections(fx.srv), 1);
	raw_end(&r);
}

Test(hbone, stream_flood_refused)
{
	struct raw r;
	struct hbt_pipe p;
	int i;

	fx.verdict = 401; /* the streams need no target */
	raw_start(&r, 1000);
	for (i = 0; i < 101; i++)
		raw_request(&r, "CONNECT", "10.0.0.1:80");
	raw_exchange(&r);
	/* Sent before our SETTINGS could be acknowledged: the 101st is refused alone (REFUSED_STREAM, as
	 * ztunnel's h2 does); after the acknowledgement nghttp2 would end the connection (GOAWAY). */
	cr_expect_eq(r.rst[201], NGHTTP2_REFUSED_STREAM, "stream 201: rst %u status %d", r.rst[201], r.status[201]);
	cr_expect_eq(r.status[199], 401);
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_STREAM_LIMIT]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_DENIED]), 100);
	raw_end(&r);
	/* every other connection keeps working */
	fx.verdict = 200;
	open_pipe(&p, 9, 20000, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.got, 20000);
}

Test(hbone, oversized_headers_reset)
{
	struct raw r;
	static char big[30001];
	nghttp2_nv nv[5];

	memset(big, 'a', sizeof(big) - 1);
	raw_start(&r, 100);
	nv[0] = (nghttp2_nv){ (uint8_t *)":method", (uint8_t *)"CONNECT", 7, 7, NGHTTP2_NV_FLAG_NONE };
	nv[1] = (nghttp2_nv){ (uint8_t *)":authority", (uint8_t *)"10.0.0.1:80", 10, 11, NGHTTP2_NV_FLAG_NONE };
	nv[2] = (nghttp2_nv){ (uint8_t *)"x-big1", (uint8_t *)big, 6, 30000, NGHTTP2_NV_FLAG_NONE };
	nv[3] = (nghttp2_nv){ (uint8_t *)"x-big2", (uint8_t *)big, 6, 30000, NGHTTP2_NV_FLAG_NONE };
	nv[4] = (nghttp2_nv){ (uint8_t *)"x-big3", (uint8_t *)big, 6, 30000, NGHTTP2_NV_FLAG_NONE };
	cr_assert_gt(nghttp2_submit_request(r.cl, NULL, nv, 5, NULL, NULL), 0);
	raw_exchange(&r);
	raw_exchange(&r);
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_HEADERS]), 1, "status %d rst %u admits %d",
		     r.status[1], r.rst[1], fx.admits);
	cr_expect_eq(fx.admits, 0);
	cr_expect_eq(hbone_server_connections(fx.srv), 1);
	raw_end(&r);
}

/* ---- keep-alive, garbage and silence on the HBONE port ---- */

static void setup_fast_pings(uint64_t interval, uint64_t timeout, uint64_t hs_timeout)
{
	struct hbone_server_config scfg = {
		.verify = hbt_verify,
		.cert = pick_cert,
		.admit = admit,
		.ping_interval_ms = interval,
		.ping_timeout_ms = timeout,
		.handshake_timeout_ms = hs_timeout,
	};
	struct hbone_client_config ccfg = {
		.verify = hbt_verify,
		.ping_interval_ms = interval,
		.ping_timeout_ms = timeout,
	};

	setup_with(0);
	hbone_server_free(fx.srv);
	scfg.trust = ccfg.trust = fx.store;
	fx.srv = hbone_server_new(fx.loop, fx.lfd, &scfg, &fx.ctr);
	fx.cl = hbone_client_new(fx.loop, &ccfg, &fx.ctr);
	cr_assert(fx.srv && fx.cl);
}

/* PINGs answered keep an idle stream's connection up across many intervals. */
Test(hbone_limits, keepalive_pings_answered)
{
	struct hbt_pipe p;

	setup_fast_pings(30, 60, 0);
	open_pipe(&p, 11, 1000, &fx.echo_addr);
	p.shut = true; /* send nothing yet */
	p.total = 0;
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_opened, &p, 5000));
	hbt_run_for(fx.loop, 400);
	cr_expect_not(p.closed, "the connection died: %d", p.close_err);
	cr_expect_eq(hbone_client_connections(fx.cl), 1);
	cr_assert_eq(hbone_stream_write(p.s, "ping", 4), 4);
	hbone_stream_shutdown(p.s);
	p.seed = 0;
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.got, 4);
	cr_expect_eq(p.close_err, 0);
}

/* A TLS peer that completes the handshake with ALPN h2, then never answers (not even PINGs). */
struct silent {
	struct sockaddr_storage addr;
	int lfd;
	atomic_bool stop;
};

static int alpn_h2(SSL *ssl, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
		   unsigned int inlen, void *arg)
{
	static const unsigned char h2[] = { 2, 'h', '2' };

	(void)ssl, (void)arg;
	return SSL_select_next_proto((unsigned char **)out, outlen, h2, sizeof(h2), in, inlen) == OPENSSL_NPN_NEGOTIATED
		   ? SSL_TLSEXT_ERR_OK
		   : SSL_TLSEXT_ERR_ALERT_FATAL;
}

static void *silent_server(void *arg)
{
	struct silent *sv = arg;
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
	SSL *ssl = NULL;
	int fd = -1;

	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_use_certificate(ctx, fx.server_leaf.cert);
	SSL_CTX_use_PrivateKey(ctx, fx.server_leaf.key);
	SSL_CTX_set_alpn_select_cb(ctx, alpn_h2, NULL);
	while (!atomic_load(&sv->stop) && fd < 0) {
		fd = accept(sv->lfd, NULL, NULL);
		if (fd < 0)
			usleep(1000);
	}
	if (fd >= 0) {
		int flags = 0;

		ioctl(fd, FIONBIO, &flags); /* blocking, for the handshake */
		ssl = SSL_new(ctx);
		SSL_set_fd(ssl, fd);
		SSL_accept(ssl);
		while (!atomic_load(&sv->stop))
			usleep(1000); /* reads nothing, answers nothing */
		SSL_free(ssl);
		close(fd);
	}
	SSL_CTX_free(ctx);
	return NULL;
}

/* An unanswered PING ends the connection after the timeout; its stream hears it. */
Test(hbone_limits, keepalive_ping_timeout)
{
	struct silent sv = { 0 };
	struct hbt_pipe p;
	pthread_t t;
	uint64_t t0;
	struct hbone_open req = {
		.src_id = SRC_ID,
		.dst_id = DST_ID,
		.dst = &sv.addr,
		.target = &sv.addr,
	};

	setup_fast_pings(50, 100, 0);
	req.cert = fx.client_leaf.cert;
	req.key = fx.client_leaf.key;
	sv.lfd = hbt_listen(&sv.addr);
	cr_assert_eq(pthread_create(&t, NULL, silent_server, &sv), 0);
	memset(&p, 0, sizeof(p));
	t0 = loop_now_ms();
	p.s = hbone_client_open(fx.cl, &req, &hbt_pipe_ops, &p);
	cr_assert_not_null(p.s);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000), "the connection outlived its unanswered PING");
	atomic_store(&sv.stop, true);
	pthread_join(t, NULL);
	close(sv.lfd);
	cr_expect_eq(p.status, -ETIMEDOUT, "status %d", p.status);
	cr_expect_geq(loop_now_ms() - t0, 140);
	cr_expect_eq(hbone_client_connections(fx.cl), 0);
}

static bool hs_failures(void *arg)
{
	return atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_FAILURE]) >= (uint64_t)(uintptr_t)arg;
}

/* Plaintext on the HBONE port fails the handshake at once; a silent client fails it at the timeout. */
Test(hbone_limits, plaintext_and_silence_on_hbone_port)
{
	struct hbt_pipe p;
	int plain = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int silent = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	uint64_t t0;

	setup_fast_pings(0, 0, 200);
	cr_assert_eq(connect(plain, (struct sockaddr *)&fx.hbone_addr, sizeof(struct sockaddr_in)), 0);
	cr_assert_eq(write(plain, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", 27), 27);
	cr_assert(hbt_run_until(fx.loop, hs_failures, (void *)1, 2000), "plaintext was not refused");
	t0 = loop_now_ms();
	cr_assert_eq(connect(silent, (struct sockaddr *)&fx.hbone_addr, sizeof(struct sockaddr_in)), 0);
	cr_assert(hbt_run_until(fx.loop, hs_failures, (void *)2, 3000), "the silent client was not dropped");
	cr_expect_geq(loop_now_ms() - t0, 150);
	cr_expect_eq(hbone_server_connections(fx.srv), 0);
	close(plain);
	close(silent);
	/* and the server goes on */
	open_pipe(&p, 12, 3000, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000));
	cr_expect_eq(p.got, 3000);
}

/* A stream closed before its connection is ready never calls back; the connection serves the next. */
Test(hbone, close_before_open)
{
	struct hbt_pipe a, b;

	open_pipe(&a, 1, 1000, &fx.echo_addr);
	hbone_stream_close(a.s);
	open_pipe(&b, 2, 1000, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &b, 5000));
	cr_expect_eq(b.got, 1000);
	cr_expect_not(a.opened);
	cr_expect_not(a.closed);
	cr_expect_eq(fx.admits, 1);
}

/* Streams sent before the server's SETTINGS arrived, beyond its limit: the excess is refused (-EAGAIN). */
Test(hbone_limits, client_hears_refused_stream)
{
	static struct many m;
	size_t i, ok = 0, refused = 0;

	setup_with(10);
	start_client(0, 0);
	m.n = 11;
	for (i = 0; i < m.n; i++)
		open_pipe(&m.p[i], i, 100, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, all_done, &m, 10000));
	for (i = 0; i < m.n; i++) {
		ok += m.p[i].status == 200 && m.p[i].got == 100;
		refused += m.p[i].status == -EAGAIN;
	}
	cr_expect_eq(ok, 10);
	cr_expect_eq(refused, 1);
	cr_expect_eq(m.p[10].status, -EAGAIN, "the last opened is the one refused: %d", m.p[10].status);
	cr_expect_eq(atomic_load(&fx.ctr.streams_refused[HBONE_REFUSED_STREAM_LIMIT]), 2); /* server and client */
}

/* HBONE over IPv6: the TLS connection to [::1], :authority "[::1]:port", Forwarded with a bracketed address. */
Test(hbone_limits, ipv6)
{
	struct hbone_server_config scfg = { .verify = hbt_verify, .cert = pick_cert, .admit = admit };
	struct sockaddr_storage addr6, echo6, client;
	struct sockaddr_in6 *c6 = (struct sockaddr_in6 *)&client;
	struct hbt_echo *echo6_srv;
	struct hbone_server *srv6;
	int lfd6;
	struct hbt_pipe p;
	struct hbone_open req = {
		.src_id = SRC_ID,
		.dst_id = DST_ID,
		.dst = &addr6,
		.target = &echo6,
		.client = &client,
	};

	setup_with(0);
	start_client(0, 0);
	scfg.trust = fx.store;
	lfd6 = hbt_listen6(&addr6);
	srv6 = hbone_server_new(fx.loop, lfd6, &scfg, &fx.ctr);
	cr_assert_not_null(srv6);
	echo6_srv = hbt_echo_start6(fx.loop, &echo6);
	memset(&client, 0, sizeof(client));
	c6->sin6_family = AF_INET6;
	c6->sin6_port = htons(4000);
	inet_pton(AF_INET6, "fd00::7", &c6->sin6_addr);
	req.cert = fx.client_leaf.cert;
	req.key = fx.client_leaf.key;
	memset(&p, 0, sizeof(p));
	p.seed = 77;
	p.total = 1u << 20;
	p.s = hbone_client_open(fx.cl, &req, &hbt_pipe_ops, &p);
	cr_assert_not_null(p.s);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 10000), "sent %lu got %lu", p.sent, p.got);
	cr_expect_eq(p.status, 200);
	cr_expect_eq(p.got, p.total);
	cr_expect_not(p.mismatch);
	cr_expect_str_eq(fx.last_forwarded, "for=\"[fd00::7]:4000\"");
	hbone_client_free(fx.cl);
	fx.cl = NULL;
	hbone_server_free(srv6);
	hbt_run_for(fx.loop, 5);
	hbt_echo_stop(echo6_srv);
	close(lfd6);
}

/* ---- splice: a socket carried by a stream (hbone_splice_open) ---- */

/* The application's end of a socketpair: writes a pattern, half-closes, reads the echo to EOF. */
struct app {
	int fd;
	uint64_t seed, total, sent, got;
	bool shut, eof, mismatch, splice_done;
	int splice_err, read_err;
};

static void app_cb(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct app *a = ctx;
	uint8_t buf[32768];

	(void)events;
	while (!a->shut && a->sent < a->total) {
		size_t n = a->total - a->sent < sizeof(buf) ? (size_t)(a->total - a->sent) : sizeof(buf);
		ssize_t w;

		for (size_t i = 0; i < n; i++)
			buf[i] = hbt_byte(a->seed, a->sent + i);
		w = write(fd, buf, n);
		if (w <= 0)
			break;
		a->sent += (uint64_t)w;
	}
	if (!a->shut && a->sent == a->total) {
		a->shut = true;
		shutdown(fd, SHUT_WR);
		loop_mod_fd(loop, fd, EPOLLIN);
	}
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));

		if (r > 0) {
			for (ssize_t i = 0; i < r; i++)
				if (buf[i] != hbt_byte(a->seed, a->got + (uint64_t)i))
					a->mismatch = true;
			a->got += (uint64_t)r;
			continue;
		}
		if (r == 0 || errno != EAGAIN) {
			a->read_err = r == 0 ? 0 : errno;
			a->eof = true;
			loop_del_fd(loop, fd);
		}
		break;
	}
}

static void app_splice_done(void *ctx, int err)
{
	struct app *a = ctx;

	a->splice_done = true;
	a->splice_err = err;
}

static void app_start(struct app *a, uint64_t seed, uint64_t total)
{
	int sv[2];
	struct hbone_open req = {
		.src_id = SRC_ID,
		.dst_id = DST_ID,
		.dst = &fx.hbone_addr,
		.cert = fx.client_leaf.cert,
		.key = fx.client_leaf.key,
		.target = &fx.echo_addr,
	};

	memset(a, 0, sizeof(*a));
	a->seed = seed;
	a->total = total;
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
	a->fd = sv[0];
	cr_assert_eq(loop_add_fd(fx.loop, a->fd, EPOLLIN | EPOLLOUT, app_cb, a), 0);
	cr_assert_not_null(hbone_splice_open(fx.cl, fx.loop, sv[1], &req, app_splice_done, a));
}

static bool app_done(void *arg)
{
	struct app *a = arg;

	return a->eof && a->splice_done;
}

Test(hbone, splice_10mib_byte_exact)
{
	struct app a;

	app_start(&a, 11, 10u << 20);
	cr_assert(hbt_run_until(fx.loop, app_done, &a, 30000), "sent %lu got %lu eof %d done %d", a.sent, a.got, a.eof,
		  a.splice_done);
	cr_expect_eq(a.got, 10u << 20);
	cr_expect_not(a.mismatch);
	cr_expect_eq(a.read_err, 0);
	cr_expect_eq(a.splice_err, 0);
	close(a.fd);
}

static bool splice_done(void *arg)
{
	return ((struct app *)arg)->splice_done;
}

/*
 * A short message and its FIN in one go, the application not reading (so nothing else wakes the splice's
 * socket): the read after a short one is skipped (agent/hbone/tls_edge.c), never once the FIN was reported,
 * or the end would never be read and the splice would never finish.
 */
Test(hbone, splice_short_message_with_its_fin_ends)
{
	static const size_t sizes[] = { 1, 100, 60000 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint8_t buf[65536];
		struct app a;
		size_t got = 0;
		ssize_t r;

		app_start(&a, 20 + i, 0);
		loop_del_fd(fx.loop, a.fd); /* the test writes and reads itself */
		for (size_t k = 0; k < sizes[i]; k++)
			buf[k] = hbt_byte(a.seed, k);
		cr_assert_eq(write(a.fd, buf, sizes[i]), (ssize_t)sizes[i]);
		shutdown(a.fd, SHUT_WR);
		cr_assert(hbt_run_until(fx.loop, splice_done, &a, 5000), "%zu bytes and a FIN: the splice never ended",
			  sizes[i]);
		cr_expect_eq(a.splice_err, 0);
		while ((r = read(a.fd, buf + got, sizeof(buf) - got)) > 0)
			got += (size_t)r;
		cr_expect_eq(r, 0, "the echo ends with the FIN passed on");
		cr_expect_eq(got, sizes[i]);
		for (size_t k = 0; k < got; k++)
			if (buf[k] != hbt_byte(a.seed, k))
				cr_assert_fail("byte %zu", k);
		close(a.fd);
	}
}

struct apps {
	struct app a[200];
};

static bool apps_done(void *arg)
{
	struct apps *m = arg;

	for (size_t i = 0; i < 200; i++)
		if (!app_done(&m->a[i]))
			return false;
	return true;
}

Test(hbone, splice_200_concurrent_share_two_tls_connections)
{
	struct apps *m = calloc(1, sizeof(*m));

	cr_assert_not_null(m);
	for (size_t i = 0; i < 200; i++)
		app_start(&m->a[i], 100 + i, 65536);
	cr_assert(hbt_run_until(fx.loop, apps_done, m, 30000));
	for (size_t i = 0; i < 200; i++) {
		cr_expect_eq(m->a[i].got, 65536, "app %zu", i);
		cr_expect_not(m->a[i].mismatch, "app %zu", i);
		cr_expect_eq(m->a[i].splice_err, 0, "app %zu", i);
		close(m->a[i].fd);
	}
	/* 100 streams per TLS connection (HBONE_MAX_STREAMS): 200 at once need two, and no more handshakes. */
	cr_expect_eq(hbone_client_connections(fx.cl), 2);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_CLIENT][HBONE_HS_SUCCESS]), 2);
	cr_expect_eq(atomic_load(&fx.ctr.streams_opened[HBONE_SIDE_SERVER]), 200);
	free(m);
}

Test(hbone, splice_refused_stream_ends_the_socket)
{
	struct app a;

	fx.verdict = 401;
	app_start(&a, 12, 4096);
	cr_assert(hbt_run_until(fx.loop, app_done, &a, 10000));
	cr_expect_lt(a.splice_err, 0);
	cr_expect_eq(a.got, 0);
	close(a.fd);
}

/* ---- a listener whose server comes later (a peer agent that restarts, docs/mtls.md "Restart") ---- */

/*
 * The TCP connect completes at once (the listener's queue), then nobody answers TLS until the "next agent"
 * serves the listener, later than the connect timeout: with handshake_timeout_ms the stream waits and is
 * carried; without it, it fails at the connect timeout.
 */
static void late_server(uint64_t handshake_timeout_ms, bool want_carried)
{
	struct hbone_server_config scfg = { .verify = hbt_verify, .cert = pick_cert, .admit = admit };
	struct hbone_client_config ccfg = {
		.verify = hbt_verify,
		.connect_timeout_ms = 200,
		.handshake_timeout_ms = handshake_timeout_ms,
	};
	struct hbt_pipe p;

	setup_with(0);
	hbone_server_free(fx.srv); /* the stopped agent: the listener stays, connects queue */
	fx.srv = NULL;
	ccfg.trust = scfg.trust = fx.store;
	fx.cl = hbone_client_new(fx.loop, &ccfg, &fx.ctr);
	cr_assert_not_null(fx.cl);
	open_pipe(&p, 21, 4000, &fx.echo_addr);
	hbt_run_for(fx.loop, 600);
	if (!want_carried) {
		cr_expect(p.closed && p.status < 0, "the stream outlived the connect timeout (status %d)", p.status);
		return;
	}
	cr_expect_not(p.closed, "the stream failed while the listener waited for its server (status %d)", p.status);
	fx.srv = hbone_server_new(fx.loop, fx.lfd, &scfg, &fx.ctr);
	cr_assert_not_null(fx.srv);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 5000), "not carried once the server came");
	cr_expect_eq(p.got, 4000);
	cr_expect_not(p.mismatch);
}

Test(hbone_limits, handshake_waits_for_a_late_server)
{
	late_server(3000, true);
}

Test(hbone_limits, without_a_handshake_limit_the_connect_timeout_ends_it)
{
	late_server(0, false);
}
