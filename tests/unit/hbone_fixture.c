// SPDX-License-Identifier: Apache-2.0
/* See hbone_fixture.h. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/loop.h"
#include "hbone_fixture.h"

static EVP_PKEY *p256(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	cr_assert_not_null(k);
	return k;
}

static void add_ext(X509 *cert, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX v3;
	X509_EXTENSION *ext;

	X509V3_set_ctx_nodb(&v3);
	X509V3_set_ctx(&v3, issuer, cert, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
	cr_assert_not_null(ext, "extension %d=%s", nid, value);
	cr_assert(X509_add_ext(cert, ext, -1));
	X509_EXTENSION_free(ext);
}

static X509 *cert_new(EVP_PKEY *key, const char *cn, X509 *issuer)
{
	static long serial = 1;
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();

	cr_assert(x && name);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), -60);
	/* Past the ticket lifetime (HBONE_TICKET_LIFETIME_S) with room: a ticket issued a second later is still capped
	 * by the lifetime, not by this certificate. */
	X509_gmtime_adj(X509_getm_notAfter(x), 2 * 3600);
	X509_set_pubkey(x, key);
	X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509_NAME_free(name);
	return x;
}

struct hbt_cert hbt_ca_new(const char *cn)
{
	struct hbt_cert c = { .key = p256() };

	c.cert = cert_new(c.key, cn, NULL);
	add_ext(c.cert, c.cert, NID_basic_constraints, "critical,CA:TRUE");
	add_ext(c.cert, c.cert, NID_key_usage, "critical,keyCertSign,cRLSign");
	add_ext(c.cert, c.cert, NID_subject_key_identifier, "hash");
	cr_assert(X509_sign(c.cert, c.key, EVP_sha256()));
	return c;
}

struct hbt_cert hbt_leaf_new(const struct hbt_cert *ca, const char *uri)
{
	struct hbt_cert c = { .key = p256() };
	char san[512];

	c.cert = cert_new(c.key, "leaf", ca->cert);
	snprintf(san, sizeof(san), "critical,URI:%s", uri);
	add_ext(c.cert, ca->cert, NID_basic_constraints, "critical,CA:FALSE");
	add_ext(c.cert, ca->cert, NID_key_usage, "critical,digitalSignature,keyEncipherment");
	add_ext(c.cert, ca->cert, NID_ext_key_usage, "serverAuth,clientAuth");
	add_ext(c.cert, ca->cert, NID_subject_alt_name, san);
	cr_assert(X509_sign(c.cert, ca->key, EVP_sha256()));
	return c;
}

void hbt_cert_free(struct hbt_cert *c)
{
	X509_free(c->cert);
	EVP_PKEY_free(c->key);
	c->cert = NULL;
	c->key = NULL;
}

X509_STORE *hbt_store(const struct hbt_cert *ca)
{
	X509_STORE *s = X509_STORE_new();

	cr_assert(s && X509_STORE_add_cert(s, ca->cert));
	return s;
}

void hbt_write_pem(const char *dir, const char *name, const struct hbt_cert *c)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s.pem", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert(PEM_write_X509(f, c->cert));
	fclose(f);
	snprintf(path, sizeof(path), "%s/%s.key", dir, name);
	f = fopen(path, "w");
	cr_assert_not_null(f);
	cr_assert(PEM_write_PrivateKey(f, c->key, NULL, NULL, 0, NULL, NULL));
	fclose(f);
}

int hbt_verify(void *ctx, const char *expected, X509 *leaf, STACK_OF(X509) * chain, char *peer_id, size_t peer_id_len)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(leaf, NID_subject_alt_name, NULL, NULL);
	int i, rc = -EACCES;

	(void)ctx, (void)chain;
	for (i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const unsigned char *uri;
		int len;

		if (gn->type != GEN_URI)
			continue;
		uri = ASN1_STRING_get0_data(gn->d.uniformResourceIdentifier);
		len = ASN1_STRING_length(gn->d.uniformResourceIdentifier);
		if (len <= 0 || (size_t)len >= peer_id_len || strncmp((const char *)uri, "spiffe://", 9))
			continue;
		memcpy(peer_id, uri, (size_t)len);
		peer_id[len] = '\0';
		rc = expected && strcmp(expected, peer_id) ? -EACCES : 0;
		break;
	}
	GENERAL_NAMES_free(names);
	return rc;
}

int hbt_listen(struct sockaddr_storage *addr)
{
	struct sockaddr_in *in = (struct sockaddr_in *)addr;
	socklen_t len = sizeof(*in);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	int one = 1;

	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(addr, 0, sizeof(*addr));
	in->sin_family = AF_INET;
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)in, sizeof(*in)), 0);
	cr_assert_eq(listen(fd, 512), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)in, &len), 0);
	return fd;
}

int hbt_listen6(struct sockaddr_storage *addr)
{
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)addr;
	socklen_t len = sizeof(*in6);
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	memset(addr, 0, sizeof(*addr));
	in6->sin6_family = AF_INET6;
	in6->sin6_addr = in6addr_loopback;
	cr_assert_eq(bind(fd, (struct sockaddr *)in6, sizeof(*in6)), 0);
	cr_assert_eq(listen(fd, 512), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)in6, &len), 0);
	return fd;
}

void hbt_closed_port(struct sockaddr_storage *addr)
{
	int fd = hbt_listen(addr);

	close(fd);
}

/* ---- echo backend ---- */

struct echo_conn {
	struct hbt_echo *e;
	int fd;
	uint8_t buf[65536];
	size_t off, len;
	bool eof;
	struct echo_conn *next;
};

struct hbt_echo {
	struct xm_loop *loop;
	int lfd;
	struct echo_conn *conns;
	size_t n;
};

static void echo_close(struct echo_conn *ec)
{
	struct hbt_echo *e = ec->e;
	struct echo_conn **pp;

	loop_del_fd(e->loop, ec->fd);
	close(ec->fd);
	for (pp = &e->conns; *pp; pp = &(*pp)->next)
		if (*pp == ec) {
			*pp = ec->next;
			break;
		}
	e->n--;
	free(ec);
}

static void on_echo(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct echo_conn *ec = ctx;

	(void)loop, (void)events;
	for (;;) {
		if (ec->off < ec->len) {
			ssize_t w = send(fd, ec->buf + ec->off, ec->len - ec->off, MSG_NOSIGNAL);

			if (w < 0 && errno == EAGAIN)
				return;
			if (w <= 0) {
				echo_close(ec);
				return;
			}
			ec->off += (size_t)w;
			continue;
		}
		ec->off = ec->len = 0;
		if (ec->eof) {
			echo_close(ec);
			return;
		}
		{
			ssize_t r = read(fd, ec->buf, sizeof(ec->buf));

			if (r < 0 && errno == EAGAIN)
				return;
			if (r < 0) {
				echo_close(ec);
				return;
			}
			if (r == 0) {
				shutdown(fd, SHUT_WR);
				ec->eof = true;
				continue;
			}
			ec->len = (size_t)r;
		}
	}
}

static void on_echo_accept(struct xm_loop *loop, int lfd, uint32_t events, void *ctx)
{
	struct hbt_echo *e = ctx;
	int fd;

	(void)events;
	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct echo_conn *ec = calloc(1, sizeof(*ec));

		cr_assert_not_null(ec);
		ec->e = e;
		ec->fd = fd;
		ec->next = e->conns;
		e->conns = ec;
		e->n++;
		cr_assert_eq(loop_add_fd(loop, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, on_echo, ec), 0);
	}
}

static struct hbt_echo *echo_start(struct xm_loop *loop, struct sockaddr_storage *addr, bool v6)
{
	struct hbt_echo *e = calloc(1, sizeof(*e));

	cr_assert_not_null(e);
	e->loop = loop;
	e->lfd = v6 ? hbt_listen6(addr) : hbt_listen(addr);
	cr_assert_eq(loop_add_fd(loop, e->lfd, EPOLLIN, on_echo_accept, e), 0);
	return e;
}

struct hbt_echo *hbt_echo_start(struct xm_loop *loop, struct sockaddr_storage *addr)
{
	return echo_start(loop, addr, false);
}

struct hbt_echo *hbt_echo_start6(struct xm_loop *loop, struct sockaddr_storage *addr)
{
	return echo_start(loop, addr, true);
}

void hbt_echo_stop(struct hbt_echo *e)
{
	while (e->conns)
		echo_close(e->conns);
	loop_del_fd(e->loop, e->lfd);
	close(e->lfd);
	free(e);
}

size_t hbt_echo_connections(const struct hbt_echo *e)
{
	return e->n;
}

/* ---- loop driver ---- */

struct until {
	bool (*cond)(void *);
	void *arg;
	uint64_t deadline;
	bool met;
};

static void on_tick(struct xm_loop *loop, struct xm_timer *t, void *ctx)
{
	struct until *u = ctx;

	(void)t;
	if (u->cond && u->cond(u->arg)) {
		u->met = true;
		loop_stop(loop);
	} else if (loop_now_ms() >= u->deadline) {
		loop_stop(loop);
	}
}

bool hbt_run_until(struct xm_loop *loop, bool (*cond)(void *arg), void *arg, uint64_t timeout_ms)
{
	struct until u = { cond, arg, loop_now_ms() + timeout_ms, false };
	struct xm_timer *t;

	if (cond && cond(arg))
		return true;
	t = loop_timer_add(loop, 1, 1, on_tick, &u);
	cr_assert_not_null(t);
	cr_assert_eq(loop_run(loop), 0);
	loop_timer_cancel(loop, t);
	return u.met || (cond && cond(arg));
}

void hbt_run_for(struct xm_loop *loop, uint64_t ms)
{
	hbt_run_until(loop, NULL, NULL, ms);
}
