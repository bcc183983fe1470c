// SPDX-License-Identifier: Apache-2.0
/*
 * The TLS read side's edge filter (agent/hbone/tls_edge.c) over a real socket: after a short read it answers
 * "retry" without reading (bytes that arrive meanwhile stay in the socket until the next EPOLLIN clears
 * `drained`), a full read does not skip, and once a FIN was reported reads go on until 0 so the end is seen.
 */
#include <criterion/criterion.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/bio.h>

#include "hbone/internal.h"

struct edge_world {
	int sv[2];
	struct hb_edge e;
	BIO *chain; /* edge -> socket BIO on sv[0] */
};

static void world_open(struct edge_world *w)
{
	BIO *sock;

	memset(w, 0, sizeof(*w));
	cr_assert_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, w->sv), 0);
	w->chain = hb_edge_bio(&w->e);
	cr_assert_not_null(w->chain);
	sock = BIO_new_socket(w->sv[0], BIO_CLOSE);
	cr_assert_not_null(sock);
	BIO_push(w->chain, sock);
}

static void world_close(struct edge_world *w)
{
	BIO_free_all(w->chain); /* closes sv[0] */
	close(w->sv[1]);
}

static void send_all(int fd, const char *s, size_t n)
{
	cr_assert_eq(write(fd, s, n), (ssize_t)n);
}

Test(hbone_edge, a_short_read_skips_the_next_until_epollin)
{
	struct edge_world w;
	char buf[64];

	world_open(&w);
	send_all(w.sv[1], "hello", 5);
	cr_assert_eq(BIO_read(w.chain, buf, sizeof(buf)), 5);
	cr_assert(w.e.drained, "a short read marks the socket drained");
	/* Bytes arrive; without an EPOLLIN seen, the filter must not read them (no system call). */
	send_all(w.sv[1], "world", 5);
	cr_assert_eq(BIO_read(w.chain, buf, sizeof(buf)), -1);
	cr_assert(BIO_should_retry(w.chain) && BIO_should_read(w.chain), "a skipped read says retry-read");
	/* The EPOLLIN (conn.c on_event) clears it: the bytes are read. */
	w.e.drained = false;
	cr_assert_eq(BIO_read(w.chain, buf, sizeof(buf)), 5);
	cr_assert_eq(memcmp(buf, "world", 5), 0);
	world_close(&w);
}

Test(hbone_edge, a_full_read_does_not_skip)
{
	struct edge_world w;
	char buf[8];

	world_open(&w);
	send_all(w.sv[1], "0123456789", 10);
	cr_assert_eq(BIO_read(w.chain, buf, sizeof(buf)), 8);
	cr_assert_not(w.e.drained, "a read that filled the buffer may have left bytes");
	cr_assert_eq(BIO_read(w.chain, buf, sizeof(buf)), 2);
	cr_assert(w.e.drained);
	world_close(&w);
}

Test(hbone_edge, after_a_fin_reads_go_on_until_the_end)
{
	struct edge_world w;
	char buf[64];

	world_open(&w);
	send_all(w.sv[1], "last", 4);
	shutdown(w.sv[1], SHUT_WR);
	w.e.closing = true; /* EPOLLRDHUP came with the data */
	cr_assert_eq(BIO_read(w.chain, buf, sizeof(buf)), 4);
	cr_assert_eq(BIO_read(w.chain, buf, sizeof(buf)), 0, "the end must be read, not skipped");
	cr_assert_not(BIO_should_retry(w.chain));
	world_close(&w);
}

Test(hbone_edge, a_real_would_block_is_passed_on_as_retry)
{
	struct edge_world w;
	char buf[64];

	world_open(&w);
	cr_assert_eq(BIO_read(w.chain, buf, sizeof(buf)), -1);
	cr_assert(BIO_should_retry(w.chain) && BIO_should_read(w.chain));
	cr_assert_not(w.e.drained, "EAGAIN itself reads nothing: no skip is armed");
	world_close(&w);
}
