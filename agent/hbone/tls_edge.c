// SPDX-License-Identifier: Apache-2.0
/*
 * The read side's edge filter: a BIO between OpenSSL's read buffer (tls.c) and the socket that skips the read
 * which would only return EAGAIN. The socket is edge-triggered: a read that got less than it asked for emptied
 * it, and the next bytes to arrive bring a new EPOLLIN, which clears `drained` (conn.c on_event). Until then a
 * read answers "retry" without a system call. Never once the peer's FIN, a hang-up or an error was reported
 * (`closing`): the read that returns 0 or the error must still happen. HAProxy stops reading after a short
 * read the same way; it saves one read per message per socket (docs/mtls.md "Benchmark").
 */
#include <pthread.h>

#include <openssl/bio.h>

#include "hbone/internal.h"

static BIO_METHOD *edge_method;
static pthread_once_t edge_once = PTHREAD_ONCE_INIT;

static int edge_read(BIO *b, char *out, int len)
{
	struct hb_edge *e = BIO_get_data(b);
	BIO *next = BIO_next(b);
	int n;

	BIO_clear_retry_flags(b);
	if (!next)
		return 0;
	if (e->drained && !e->closing && len > 0) {
		BIO_set_retry_read(b);
		return -1;
	}
	n = BIO_read(next, out, len);
	if (n > 0 && n < len)
		e->drained = true;
	else if (n <= 0)
		BIO_copy_next_retry(b);
	return n;
}

static int edge_write(BIO *b, const char *in, int len)
{
	BIO *next = BIO_next(b);
	int n;

	BIO_clear_retry_flags(b);
	if (!next)
		return 0;
	n = BIO_write(next, in, len);
	BIO_copy_next_retry(b);
	return n;
}

static long edge_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	BIO *next = BIO_next(b);

	return next ? BIO_ctrl(next, cmd, num, ptr) : 0;
}

static long edge_callback_ctrl(BIO *b, int cmd, BIO_info_cb *fp)
{
	BIO *next = BIO_next(b);

	return next ? BIO_callback_ctrl(next, cmd, fp) : 0;
}

static int edge_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

static void edge_method_init(void)
{
	BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_FILTER, "hbone edge-triggered read");

	if (m && BIO_meth_set_read(m, edge_read) && BIO_meth_set_write(m, edge_write) &&
	    BIO_meth_set_ctrl(m, edge_ctrl) && BIO_meth_set_callback_ctrl(m, edge_callback_ctrl) &&
	    BIO_meth_set_create(m, edge_create))
		edge_method = m;
	else
		BIO_meth_free(m);
}

BIO *hb_edge_bio(struct hb_edge *e)
{
	BIO *b;

	pthread_once(&edge_once, edge_method_init);
	if (!edge_method || !(b = BIO_new(edge_method)))
		return NULL;
	BIO_set_data(b, e);
	return b;
}
