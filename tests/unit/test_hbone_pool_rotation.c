/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HBONE client's pool after a certificate change (hbone/client.c retire): a connection made with a certificate
 * since renewed takes no new stream, its open stream goes on byte-exact, the new stream rides a new TLS connection
 * on which the server saw the new certificate; a request still carrying the old certificate rides the new
 * connection (no flapping); hbone_client_recheck retires a connection whose server fails a check now; and the
 * server presents its current certificate to new handshakes.
 */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/loop.h"
#include "hbone/internal.h"
#include "hbone_fixture.h"

#define SRC_ID "spiffe://cluster.local/ns/a/sa/client"
#define DST_ID "spiffe://cluster.local/ns/b/sa/server"

static struct {
	struct xm_loop *loop;
	struct hbone_counters ctr;
	struct hbt_cert root, server_leaf, server_renewed, client_old, client_new;
	struct hbt_cert *presenting; /* what the server hands to a new handshake */
	X509_STORE *store;
	int lfd;
	struct sockaddr_storage hbone_addr, echo_addr;
	struct hbt_echo *echo;
	struct hbone_server *srv;
	struct hbone_client *cl;
} fx;

static int admit(void *ctx, const struct hbone_admit *a)
{
	(void)ctx, (void)a;
	return 200;
}

static int pick_cert(void *ctx, const struct sockaddr_storage *local, X509 **cert, EVP_PKEY **key,
		     STACK_OF(X509) * *chain)
{
	(void)ctx, (void)local;
	*cert = fx.presenting->cert;
	*key = fx.presenting->key;
	*chain = NULL;
	return 0;
}

/* A renewal: the same identity, a later notBefore (the fixture's leaves begin 60 s ago). */
static struct hbt_cert renewed(const char *uri)
{
	struct hbt_cert c = hbt_leaf_new(&fx.root, uri);

	cr_assert(X509_gmtime_adj(X509_getm_notBefore(c.cert), -30));
	cr_assert(X509_sign(c.cert, fx.root.key, EVP_sha256()));
	return c;
}

static void setup(void)
{
	struct hbone_server_config scfg = { .verify = hbt_verify, .cert = pick_cert, .admit = admit };
	struct hbone_client_config ccfg = { .verify = hbt_verify };

	memset(&fx, 0, sizeof(fx));
	fx.loop = loop_new();
	cr_assert_not_null(fx.loop);
	fx.root = hbt_ca_new("root");
	fx.server_leaf = hbt_leaf_new(&fx.root, DST_ID);
	fx.server_renewed = renewed(DST_ID);
	fx.client_old = hbt_leaf_new(&fx.root, SRC_ID);
	fx.client_new = renewed(SRC_ID);
	fx.presenting = &fx.server_leaf;
	fx.store = hbt_store(&fx.root);
	scfg.trust = ccfg.trust = fx.store;
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
	hbt_run_for(fx.loop, 5); /* posted work of the connections just closed */
	hbt_echo_stop(fx.echo);
	close(fx.lfd);
	X509_STORE_free(fx.store);
	hbt_cert_free(&fx.root);
	hbt_cert_free(&fx.server_leaf);
	hbt_cert_free(&fx.server_renewed);
	hbt_cert_free(&fx.client_old);
	hbt_cert_free(&fx.client_new);
	loop_free(fx.loop);
}

TestSuite(hbone_pool_rotation, .init = setup, .fini = teardown, .timeout = 60);

/* ---- a held stream: echoes what it is told to send, byte-exact ---- */

struct held {
	struct hbone_stream *s;
	uint64_t seed, sent, got;
	int status;
	bool opened, closed, mismatch;
};

static void h_open(struct hbone_stream *s, void *ctx, int status)
{
	struct held *h = ctx;

	(void)s;
	h->opened = true;
	h->status = status;
}

static void h_readable(struct hbone_stream *s, void *ctx)
{
	struct held *h = ctx;
	uint8_t buf[16384];
	ssize_t n;

	while ((n = hbone_stream_read(s, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != hbt_byte(h->seed, h->got + (uint64_t)i))
				h->mismatch = true;
		h->got += (uint64_t)n;
	}
}

static void h_writable(struct hbone_stream *s, void *ctx)
{
	(void)s, (void)ctx;
}

static void h_close(struct hbone_stream *s, void *ctx, int err)
{
	struct held *h = ctx;

	(void)s, (void)err;
	h->closed = true;
	h->s = NULL;
}

static const struct hbone_stream_ops held_ops = { h_open, h_readable, h_writable, h_close };

static bool h_opened(void *arg)
{
	return ((struct held *)arg)->opened;
}

static bool h_echoed(void *arg)
{
	struct held *h = arg;

	return h->got == h->sent;
}

static bool h_closed(void *arg)
{
	return ((struct held *)arg)->closed;
}

/* Opens a stream to the echo backend presenting cert, and waits for its 200. */
static void open_held(struct held *h, uint64_t seed, const struct hbt_cert *cert)
{
	struct hbone_open req = {
		.src_id = SRC_ID,
		.dst_id = DST_ID,
		.dst = &fx.hbone_addr,
		.cert = cert->cert,
		.key = cert->key,
		.target = &fx.echo_addr,
	};

	memset(h, 0, sizeof(*h));
	h->seed = seed;
	h->s = hbone_client_open(fx.cl, &req, &held_ops, h);
	cr_assert_not_null(h->s);
	cr_assert(hbt_run_until(fx.loop, h_opened, h, 10000));
	cr_assert_eq(h->status, 200);
}

/* n more bytes through the held stream and back, byte-exact. */
static void echo(struct held *h, size_t n)
{
	uint8_t buf[4096];

	cr_assert(n <= sizeof(buf));
	for (size_t i = 0; i < n; i++)
		buf[i] = hbt_byte(h->seed, h->sent + i);
	cr_assert_eq(hbone_stream_write(h->s, buf, n), (ssize_t)n);
	h->sent += n;
	cr_assert(hbt_run_until(fx.loop, h_echoed, h, 10000), "echoed %llu of %llu", (unsigned long long)h->got,
		  (unsigned long long)h->sent);
	cr_assert_not(h->mismatch);
}

static void end_held(struct held *h)
{
	hbone_stream_shutdown(h->s);
	cr_assert(hbt_run_until(fx.loop, h_closed, h, 10000));
}

/* The server's connection whose client presented cert (NULL: none). */
static struct hb_conn *server_conn_of(X509 *cert)
{
	for (struct hb_conn *c = hb_server_conns(fx.srv); c; c = c->pool_next)
		if (c->peer_leaf && !X509_cmp(c->peer_leaf, cert))
			return c;
	return NULL;
}

static bool one_connection(void *arg)
{
	(void)arg;
	return hbone_client_connections(fx.cl) == 1 && hbone_server_connections(fx.srv) == 1;
}

Test(hbone_pool_rotation, renewed_certificate_takes_a_new_connection_old_stream_goes_on)
{
	struct held old, fresh, late;
	struct hb_conn *c1;

	open_held(&old, 1, &fx.client_old);
	echo(&old, 1000);
	c1 = old.s->conn;
	cr_assert_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_SUCCESS]), 1);

	/* the renewed certificate: a new TLS connection, though the first has room for 99 more streams */
	open_held(&fresh, 2, &fx.client_new);
	cr_assert_neq(fresh.s->conn, c1, "a stream of the renewed certificate rode the old connection");
	cr_expect(c1->goaway && c1->retired, "the old connection was not retired");
	cr_expect_eq(atomic_load(&fx.ctr.retired[HBONE_RETIRED_OWN_CERT]), 1);
	cr_expect_eq(atomic_load(&fx.ctr.retired[HBONE_RETIRED_PEER_UNTRUSTED]), 0);
	cr_expect_eq(hbone_client_connections(fx.cl), 2);
	/* the server's view: a second handshake, whose client presented the new certificate */
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_SUCCESS]), 2);
	cr_expect_eq(hbone_server_connections(fx.srv), 2);
	cr_expect_not_null(server_conn_of(fx.client_new.cert), "no server connection saw the renewed certificate");
	cr_expect_not_null(server_conn_of(fx.client_old.cert), "the old connection is gone on the server");
	echo(&fresh, 1000);

	/* the old stream goes on, byte-exact, on its connection */
	echo(&old, 4000);
	cr_expect_eq(old.s->conn, c1);

	/* a request that took its certificate before the renewal rides the new connection: no third one */
	open_held(&late, 3, &fx.client_old);
	cr_expect_eq(late.s->conn, fresh.s->conn);
	cr_expect_eq(hbone_client_connections(fx.cl), 2);
	cr_expect_eq(atomic_load(&fx.ctr.retired[HBONE_RETIRED_OWN_CERT]), 1);
	echo(&late, 100);
	end_held(&late);

	/* once its stream ended, the old connection closes (as after a GOAWAY); the new one stays pooled */
	end_held(&old);
	cr_expect(hbt_run_until(fx.loop, one_connection, NULL, 5000), "client %zu, server %zu connection(s)",
		  hbone_client_connections(fx.cl), hbone_server_connections(fx.srv));
	cr_expect_null(server_conn_of(fx.client_old.cert));
	end_held(&fresh);
}

/* recheck's predicate: every connection whose server was verified is untrusted now (a reloaded bundle). */
static bool untrusted_peer(void *ctx, const struct hbone_pooled *p, enum hbone_retire_reason *why)
{
	int *asked = ctx;

	(*asked)++;
	cr_expect_str_eq(p->src_id, SRC_ID);
	cr_expect_str_eq(p->dst_id, DST_ID);
	cr_expect(p->own && !X509_cmp(p->own, fx.client_old.cert));
	cr_expect(p->peer && !X509_cmp(p->peer, fx.server_leaf.cert));
	if (!p->peer)
		return false;
	*why = HBONE_RETIRED_PEER_UNTRUSTED;
	return true;
}

Test(hbone_pool_rotation, recheck_retires_a_connection_whose_server_is_untrusted_now)
{
	struct held old, fresh;
	int asked = 0;

	open_held(&old, 1, &fx.client_old);
	echo(&old, 1000);
	cr_expect_eq(hbone_client_tickets(fx.cl), 1, "no session ticket yet");
	cr_assert_eq(hbone_client_recheck(fx.cl, untrusted_peer, &asked), 1);
	cr_expect_eq(hbone_client_tickets(fx.cl), 0, "the ticket of the untrusted server was kept");
	cr_expect_eq(asked, 1);
	cr_expect(old.s->conn->goaway && old.s->conn->retired);
	cr_expect_eq(atomic_load(&fx.ctr.retired[HBONE_RETIRED_PEER_UNTRUSTED]), 1);
	/* retired once: not asked about again */
	cr_expect_eq(hbone_client_recheck(fx.cl, untrusted_peer, &asked), 0);
	cr_expect_eq(asked, 1);

	/* the same certificate, the same key: a new connection all the same */
	open_held(&fresh, 2, &fx.client_old);
	cr_expect_neq(fresh.s->conn, old.s->conn);
	cr_expect_eq(atomic_load(&fx.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_SUCCESS]), 2);
	echo(&fresh, 1000);
	echo(&old, 1000);
	end_held(&old);
	cr_expect(hbt_run_until(fx.loop, one_connection, NULL, 5000));
	end_held(&fresh);
}

/* The server side: a new handshake gets the certificate the server's callback hands out now. */
Test(hbone_pool_rotation, server_presents_its_current_certificate_to_new_handshakes)
{
	struct held old, fresh;

	open_held(&old, 1, &fx.client_old);
	cr_expect(!X509_cmp(old.s->conn->peer_leaf, fx.server_leaf.cert));
	fx.presenting = &fx.server_renewed;
	/* our renewal too, so that the stream takes a new connection (a full handshake: the ticket is the old one's) */
	open_held(&fresh, 2, &fx.client_new);
	cr_assert_neq(fresh.s->conn, old.s->conn);
	cr_expect(fresh.s->conn->peer_leaf && !X509_cmp(fresh.s->conn->peer_leaf, fx.server_renewed.cert),
		  "the new handshake did not see the server's renewed certificate");
	cr_expect(!X509_cmp(old.s->conn->peer_leaf, fx.server_leaf.cert));
	echo(&fresh, 1000);
	echo(&old, 1000);
	end_held(&old);
	end_held(&fresh);
}
