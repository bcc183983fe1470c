/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HBONE server's per-stream accounting (hbone_server_config.account, struct hbone_stream_counts): over
 * loopback with the library's client, a stream is counted opened at its 200, closed when it ends (cleanly or
 * with its connection), and the bytes that reached the target and came back from it; refused streams are not
 * counted, and the callback sees the request admit saw.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include "core/loop.h"
#include "hbone/hbone.h"
#include "hbone_fixture.h"
#include "hbone_pipe.h"

#define SRC_ID "spiffe://cluster.local/ns/a/sa/client"
#define DST_ID "spiffe://cluster.local/ns/b/sa/server"

static struct {
	struct xm_loop *loop;
	struct hbone_counters ctr;
	struct hbt_cert root, server_leaf, client_leaf;
	X509_STORE *store;
	int lfd;
	struct sockaddr_storage hbone_addr, echo_addr;
	struct hbt_echo *echo;
	struct hbone_server *srv;
	struct hbone_client *cl;
	int verdict;
	struct hbone_stream_counts counts;
	bool account_null; /* the callback answers NULL */
	int accounted;
	char peer[HBONE_ID_MAX], forwarded[256];
	struct sockaddr_storage target;
} fx;

static int admit(void *ctx, const struct hbone_admit *a)
{
	(void)ctx, (void)a;
	return fx.verdict;
}

static struct hbone_stream_counts *account(void *ctx, const struct hbone_admit *a)
{
	(void)ctx;
	fx.accounted++;
	snprintf(fx.peer, sizeof(fx.peer), "%s", a->peer_id);
	snprintf(fx.forwarded, sizeof(fx.forwarded), "%s", a->forwarded);
	fx.target = *a->target;
	return fx.account_null ? NULL : &fx.counts;
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

static void setup(void)
{
	struct hbone_server_config scfg = {
		.verify = hbt_verify,
		.cert = pick_cert,
		.admit = admit,
		.account = account,
	};
	struct hbone_client_config ccfg = { .verify = hbt_verify };

	memset(&fx, 0, sizeof(fx));
	fx.loop = loop_new();
	cr_assert_not_null(fx.loop);
	fx.root = hbt_ca_new("root");
	fx.server_leaf = hbt_leaf_new(&fx.root, DST_ID);
	fx.client_leaf = hbt_leaf_new(&fx.root, SRC_ID);
	fx.store = hbt_store(&fx.root);
	scfg.trust = ccfg.trust = fx.store;
	fx.verdict = 200;
	fx.echo = hbt_echo_start(fx.loop, &fx.echo_addr);
	fx.lfd = hbt_listen(&fx.hbone_addr);
	fx.srv = hbone_server_new(fx.loop, fx.lfd, &scfg, &fx.ctr);
	cr_assert_not_null(fx.srv);
	fx.cl = hbone_client_new(fx.loop, &ccfg, &fx.ctr);
	cr_assert_not_null(fx.cl);
}

static void teardown(void)
{
	hbone_client_free(fx.cl);
	hbone_server_free(fx.srv);
	hbt_run_for(fx.loop, 5);
	hbt_echo_stop(fx.echo);
	close(fx.lfd);
	X509_STORE_free(fx.store);
	hbt_cert_free(&fx.root);
	hbt_cert_free(&fx.server_leaf);
	hbt_cert_free(&fx.client_leaf);
	loop_free(fx.loop);
}

TestSuite(hbone_accounting, .init = setup, .fini = teardown, .timeout = 60);

static void open_pipe(struct hbt_pipe *p, uint64_t total, const struct sockaddr_storage *target)
{
	struct hbone_open req = {
		.src_id = SRC_ID,
		.dst_id = DST_ID,
		.dst = &fx.hbone_addr,
		.cert = fx.client_leaf.cert,
		.key = fx.client_leaf.key,
		.target = target,
	};

	hbt_pipe_open(p, fx.cl, &req, 0, total);
}

static bool closed_n(void *arg)
{
	return atomic_load(&fx.counts.closed) >= (uint64_t)(uintptr_t)arg;
}

static bool both_closed(void *arg)
{
	struct hbt_pipe *p = arg;

	return p[0].closed && p[1].closed;
}

Test(hbone_accounting, a_stream_counted_opened_closed_and_bytes)
{
	struct hbt_pipe p;

	open_pipe(&p, 1u << 20, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, closed_n, (void *)1, 20000), "closed %llu, got %lu",
		  atomic_load(&fx.counts.closed), p.got);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 20000));
	cr_expect_eq(p.got, 1u << 20);
	cr_expect_eq(fx.accounted, 1);
	cr_expect_eq(atomic_load(&fx.counts.opened), 1);
	cr_expect_eq(atomic_load(&fx.counts.closed), 1);
	cr_expect_eq(atomic_load(&fx.counts.received), 1u << 20, "what reached the target");
	cr_expect_eq(atomic_load(&fx.counts.sent), 1u << 20, "what the target sent back");
	/* the request admit saw */
	cr_expect_str_eq(fx.peer, SRC_ID);
	cr_expect_str_eq(fx.forwarded, "for=\"10.1.2.3:40000\"");
	cr_expect_eq(memcmp(&fx.target, &fx.echo_addr, sizeof(struct sockaddr_in)), 0);
}

Test(hbone_accounting, two_streams_one_series_and_no_series)
{
	struct hbt_pipe p[2];

	open_pipe(&p[0], 1000, &fx.echo_addr);
	open_pipe(&p[1], 3000, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, closed_n, (void *)2, 20000));
	cr_assert(hbt_run_until(fx.loop, both_closed, p, 20000));
	cr_expect_eq(atomic_load(&fx.counts.opened), 2);
	cr_expect_eq(atomic_load(&fx.counts.received), 4000);
	cr_expect_eq(atomic_load(&fx.counts.sent), 4000);
	/* a stream the caller does not count (NULL) still works */
	fx.account_null = true;
	open_pipe(&p[0], 500, &fx.echo_addr);
	open_pipe(&p[1], 500, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, both_closed, p, 20000));
	cr_expect_eq(p[0].got + p[1].got, 1000);
	cr_expect_eq(fx.accounted, 4);
	cr_expect_eq(atomic_load(&fx.counts.opened), 2);
	cr_expect_eq(atomic_load(&fx.counts.closed), 2);
}

Test(hbone_accounting, refused_streams_are_not_counted)
{
	struct sockaddr_storage closed;
	struct hbt_pipe p;

	hbt_closed_port(&closed);
	open_pipe(&p, 100, &closed);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 20000));
	cr_expect_eq(p.status, 503);
	fx.verdict = 401;
	open_pipe(&p, 100, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 20000));
	cr_expect_eq(p.status, 401);
	fx.verdict = 400;
	open_pipe(&p, 100, &fx.echo_addr);
	cr_assert(hbt_run_until(fx.loop, hbt_pipe_closed, &p, 20000));
	cr_expect_eq(p.status, 400);
	hbt_run_for(fx.loop, 20);
	cr_expect_eq(fx.accounted, 0);
	cr_expect_eq(atomic_load(&fx.counts.opened), 0);
	cr_expect_eq(atomic_load(&fx.counts.closed), 0);
}

static bool got_all(void *arg)
{
	struct hbt_pipe *p = arg;

	return p->got == p->total;
}

Test(hbone_accounting, closed_when_the_connection_dies)
{
	struct hbt_pipe p;

	/* the stream stays open (no END_STREAM) until the client goes away with its connection */
	open_pipe(&p, 10000, &fx.echo_addr);
	p.hold = true;
	cr_assert(hbt_run_until(fx.loop, got_all, &p, 20000));
	cr_expect_eq(atomic_load(&fx.counts.opened), 1);
	cr_expect_eq(atomic_load(&fx.counts.closed), 0, "still open");
	cr_expect_eq(atomic_load(&fx.counts.received), 10000);
	hbone_client_free(fx.cl);
	fx.cl = NULL;
	cr_assert(hbt_run_until(fx.loop, closed_n, (void *)1, 20000));
	cr_expect_eq(atomic_load(&fx.counts.closed), 1);
}
