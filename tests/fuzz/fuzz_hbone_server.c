// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the HBONE server's HTTP/2 session (hbone/server.c, conn.c, stream.c) fed arbitrary
 * bytes after TLS, through the memory transport: the client's preface, frames, CONNECT requests and their
 * data, as a peer that passed the handshake could send them. The first byte picks the caller's verdict
 * (400, 401, or 200 for a loopback target), the second where the bytes are cut in two deliveries.
 * Beyond memory safety: the stream accounting never exceeds the advertised limit, and every buffered byte
 * belongs to a live stream.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/loop.h"
#include "hbone/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct xm_loop *loop;
static struct hbone_server *srv;
static struct hbone_counters ctr;
static int verdict;

static void check(bool ok)
{
	if (!ok)
		abort();
}

static int admit(void *ctx, const struct hbone_admit *a)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)a->target;

	(void)ctx;
	/* only loopback is ever connected to: the fuzzer sends no packet elsewhere */
	if (verdict == 200 && (a->target->ss_family != AF_INET || in->sin_addr.s_addr != htonl(INADDR_LOOPBACK)))
		return 400;
	return verdict;
}

static int no_cert(void *ctx, const struct sockaddr_storage *local, X509 **cert, EVP_PKEY **key,
		   STACK_OF(X509) * *chain)
{
	(void)ctx, (void)local, (void)cert, (void)key, (void)chain;
	return -1;
}

static int no_verify(void *ctx, const char *expected, X509 *leaf, STACK_OF(X509) * chain, char *id, size_t len)
{
	(void)ctx, (void)expected, (void)leaf, (void)chain, (void)id, (void)len;
	return -1;
}

static void init(void)
{
	static X509_STORE *store;
	struct hbone_server_config cfg = { .verify = no_verify, .cert = no_cert, .admit = admit };

	loop = loop_new();
	store = X509_STORE_new();
	check(loop && store);
	cfg.trust = store;
	srv = hbone_server_new(loop, -1, &cfg, &ctr);
	check(srv != NULL);
}

static void check_invariants(struct hb_conn *c)
{
	const struct hbone_stream *s;
	uint32_t live = 0;

	for (s = c->streams; s; s = s->next) {
		if (!s->h2_closed)
			live++;
		check(s->rx.len <= HBONE_STREAM_WINDOW);
		check(s->tx.len <= HBONE_STREAM_BUFFER + 16384);
	}
	check(live == c->n_streams);
	check(c->n_streams <= c->max_streams);
}

static void deliver(struct hb_conn *c, const uint8_t *p, size_t n)
{
	if (!hbone_server_connections(srv) || !n)
		return;
	if (hb_conn_input(c, p, n)) {
		hb_conn_fail(c, -EPROTO);
		return;
	}
	hb_conn_progress(c);
	if (hbone_server_connections(srv))
		check_invariants(c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int verdicts[] = { 400, 401, 200 };
	struct hb_conn *c;
	size_t cut;

	if (!loop)
		init();
	if (size < 2)
		return 0;
	verdict = verdicts[data[0] % 3];
	cut = size > 2 ? data[1] % (size - 1) : 0;
	data += 2;
	size -= 2;
	c = hb_server_conn_mem(srv, "spiffe://cluster.local/ns/fuzz/sa/peer");
	check(c != NULL);
	deliver(c, data, cut);
	deliver(c, data + cut, size - cut);
	if (hbone_server_connections(srv))
		hb_conn_fail(c, 0);
	check(hbone_server_connections(srv) == 0);
	return 0;
}
