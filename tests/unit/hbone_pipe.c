// SPDX-License-Identifier: Apache-2.0
/* The HBONE tests' pattern stream: see hbone_pipe.h. */
#include "hbone_pipe.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "hbone_fixture.h"

void hbt_pipe_pump(struct hbt_pipe *p)
{
	uint8_t buf[32768];

	while (p->sent < p->total) {
		size_t n = p->total - p->sent < sizeof(buf) ? (size_t)(p->total - p->sent) : sizeof(buf);
		ssize_t w;
		size_t i;

		for (i = 0; i < n; i++)
			buf[i] = hbt_byte(p->seed, p->sent + i);
		w = hbone_stream_write(p->s, buf, n);
		if (w <= 0)
			return;
		p->sent += (uint64_t)w;
	}
	if (!p->shut && !p->hold) {
		p->shut = true;
		hbone_stream_shutdown(p->s);
	}
}

static void p_open(struct hbone_stream *s, void *ctx, int status)
{
	struct hbt_pipe *p = ctx;

	p->status = status;
	p->opened = true;
	snprintf(p->peer, sizeof(p->peer), "%s", hbone_stream_peer_id(s));
	if (status == 200)
		hbt_pipe_pump(p);
}

static void p_readable(struct hbone_stream *s, void *ctx)
{
	struct hbt_pipe *p = ctx;
	uint8_t buf[65536];
	ssize_t n;

	if (p->paused_reader)
		return;
	while ((n = hbone_stream_read(s, buf, sizeof(buf))) > 0) {
		ssize_t i;

		for (i = 0; i < n; i++)
			if (buf[i] != hbt_byte(p->seed, p->got + (uint64_t)i))
				p->mismatch = true;
		p->got += (uint64_t)n;
	}
}

static void p_writable(struct hbone_stream *s, void *ctx)
{
	(void)s;
	hbt_pipe_pump(ctx);
}

static void p_close(struct hbone_stream *s, void *ctx, int err)
{
	struct hbt_pipe *p = ctx;

	(void)s;
	p->closed = true;
	p->close_err = err;
	p->s = NULL;
}

const struct hbone_stream_ops hbt_pipe_ops = { p_open, p_readable, p_writable, p_close };

void hbt_pipe_open(struct hbt_pipe *p, struct hbone_client *cl, struct hbone_open *req, uint64_t seed, uint64_t total)
{
	static struct sockaddr_storage client; /* the same for every stream: outlives them all */
	struct sockaddr_in *ci = (struct sockaddr_in *)&client;

	if (!req->client) {
		ci->sin_family = AF_INET;
		ci->sin_port = htons(40000);
		inet_pton(AF_INET, "10.1.2.3", &ci->sin_addr);
		req->client = &client;
	}
	memset(p, 0, sizeof(*p));
	p->seed = seed;
	p->total = total;
	p->s = hbone_client_open(cl, req, &hbt_pipe_ops, p);
	cr_assert_not_null(p->s);
}

bool hbt_pipe_closed(void *arg)
{
	return ((struct hbt_pipe *)arg)->closed;
}

bool hbt_pipe_opened(void *arg)
{
	return ((struct hbt_pipe *)arg)->opened;
}
