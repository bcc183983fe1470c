/* SPDX-License-Identifier: Apache-2.0 */
/* The metrics listener on a real socket (127.0.0.1, ephemeral port), its loop on a thread. */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "metrics/http.h"
#include "metrics/metrics.h"
#include "metrics/registry.h"
#include "test_metrics.h"

static struct loop_thread lt;
static struct xm_metrics *m;
static int port;

static const char get_metrics[] = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

static void setup(void)
{
	loop_thread_init(&lt);
	m = metrics_listen(lt.loop, "127.0.0.1:0", collect_realistic, NULL);
	cr_assert_not_null(m);
	port = metrics_port(m);
	cr_assert_gt(port, 0);
	loop_thread_start(&lt);
}

static void teardown(void)
{
	loop_thread_stop(&lt);
	metrics_close(m);
	loop_thread_fini(&lt);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void expect_answer(const char *req, int status, const char *body_part)
{
	struct strbuf r = { 0 };
	int err = http_exchange(port, req, &r);

	cr_assert_eq(err, 0, "exchange for \"%s\": %s", req, strerror(-err));
	cr_expect_eq(resp_status(r.buf), status, "\"%s\" → %s", req, r.buf ? r.buf : "(nothing)");
	if (body_part)
		cr_expect(resp_body(r.buf) && strstr(resp_body(r.buf), body_part), "\"%s\": body lacks \"%s\": %s", req,
			  body_part, r.buf);
	sb_free(&r);
}

Test(metrics_server, get_metrics, .init = setup, .fini = teardown)
{
	struct strbuf r = { 0 };
	char v[128];

	cr_assert_eq(http_exchange(port, get_metrics, &r), 0);
	cr_expect_eq(resp_status(r.buf), 200, "%s", r.buf);
	cr_expect_str_eq(resp_header(r.buf, "Content-Type", v, sizeof(v)), "text/plain; version=0.0.4; charset=utf-8");
	cr_expect_str_eq(resp_header(r.buf, "Connection", v, sizeof(v)), "close");
	cr_assert_not_null(resp_header(r.buf, "Content-Length", v, sizeof(v)));
	cr_expect_eq(strtoul(v, NULL, 10), strlen(resp_body(r.buf)), "Content-Length %s, body %zu bytes", v,
		     strlen(resp_body(r.buf)));
	cr_expect_not_null(resp_header(r.buf, "Date", v, sizeof(v)));
	/* build info first, then the sources */
	cr_expect(!strncmp(resp_body(r.buf), "# HELP xmesh_build_info ", 24), "%s", resp_body(r.buf));
	cr_expect(strstr(r.buf, "\nxmesh_config_applies_total{result=\"rejected\"} 2\n"), "%s", r.buf);
	sb_free(&r);
}

Test(metrics_server, served_scrape_passes_promtool, .init = setup, .fini = teardown)
{
	struct strbuf r = { 0 };
	char out[4096];
	int rc;

	if (!promtool_path())
		cr_skip_test("promtool not installed (Debian: prometheus package)");
	cr_assert_eq(http_exchange(port, get_metrics, &r), 0);
	cr_assert_eq(resp_status(r.buf), 200);
	rc = promtool_check(resp_body(r.buf), out, sizeof(out));
	cr_expect_eq(rc, 0, "promtool check metrics exited %d: %s", rc, out);
	cr_expect_str_eq(out, "");
	sb_free(&r);
}

Test(metrics_server, head_has_length_but_no_body, .init = setup, .fini = teardown)
{
	struct strbuf r = { 0 };
	char v[32];

	cr_assert_eq(http_exchange(port, "HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
	cr_expect_eq(resp_status(r.buf), 200);
	cr_assert_not_null(resp_header(r.buf, "Content-Length", v, sizeof(v)));
	cr_expect_gt(strtoul(v, NULL, 10), 100);
	cr_expect_str_eq(resp_body(r.buf), "");
	sb_free(&r);
}

Test(metrics_server, readiness, .init = setup, .fini = teardown)
{
	expect_answer("GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n", 503, "not ready");
	loop_thread_stop(&lt); /* metrics_set_ready belongs to the loop's thread */
	metrics_set_ready(m, true);
	loop_thread_start(&lt);
	expect_answer("GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ready");
	expect_answer("GET /healthz/ready?verbose HTTP/1.0\r\n\r\n", 200, "ready");
}

Test(metrics_server, errors, .init = setup, .fini = teardown)
{
	struct strbuf r = { 0 };
	char v[64];

	expect_answer("GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, NULL);
	expect_answer("GET /metrics/ HTTP/1.1\r\nHost: x\r\n\r\n", 404, NULL);
	expect_answer("get /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 405, NULL);
	expect_answer("GET /metrics HTTP/1.1\r\n\r\n", 400, NULL);
	expect_answer("GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505, NULL);
	expect_answer("\x16\x03\x01\x02\x00\x01\x00\x01", 400, NULL);
	cr_assert_eq(http_exchange(port, "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc", &r), 0);
	cr_expect_eq(resp_status(r.buf), 405);
	cr_expect_str_eq(resp_header(r.buf, "Allow", v, sizeof(v)), "GET, HEAD");
	sb_free(&r);
}

Test(metrics_server, oversized, .init = setup, .fini = teardown)
{
	struct strbuf req = { 0 };
	int i;

	sb_puts(&req, "GET /metrics HTTP/1.1\r\nHost: x\r\n");
	for (i = 0; i < 100; i++)
		sb_printf(&req, "X-Filler-%d: %080d\r\n", i, i);
	sb_puts(&req, "\r\n");
	cr_assert_gt(req.len, MHTTP_MAX_REQUEST_DEFAULT);
	expect_answer(req.buf, 431, NULL);
	sb_free(&req);

	sb_puts(&req, "GET /");
	for (i = 0; i < MHTTP_MAX_REQUEST_DEFAULT; i++)
		sb_puts(&req, "a");
	sb_puts(&req, " HTTP/1.1\r\nHost: x\r\n\r\n");
	expect_answer(req.buf, 414, NULL);
	sb_free(&req);
}

/* A request split across many segments, one byte at a time, is answered once it is complete. */
Test(metrics_server, byte_by_byte_over_the_wire, .init = setup, .fini = teardown)
{
	static const char req[] = "GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\n";
	struct strbuf r = { 0 };
	struct pollfd p;
	int fd = client_connect(port), one = 1;
	size_t i;

	setsockopt(fd, IPPROTO_TCP, 1 /* TCP_NODELAY */, &one, sizeof(one));
	for (i = 0; i < sizeof(req) - 1; i++) {
		cr_assert_eq(client_send(fd, req + i, 1), 0);
		p = (struct pollfd){ .fd = fd, .events = POLLIN };
		if (i + 2 < sizeof(req))
			cr_assert_eq(poll(&p, 1, 2), 0, "answered after %zu bytes", i + 1);
	}
	cr_assert_eq(client_read_all(fd, &r), 0);
	cr_expect_eq(resp_status(r.buf), 503, "%s", r.buf);
	close(fd);
	sb_free(&r);
}

/* One request per connection: the second of two pipelined requests gets no answer, the first is intact. */
Test(metrics_server, pipelined_second_request_ignored, .init = setup, .fini = teardown)
{
	struct strbuf r = { 0 };
	const char *second;

	cr_assert_eq(
	    http_exchange(port,
			  "GET /healthz/ready HTTP/1.1\r\nHost: x\r\n\r\nGET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &r),
	    0);
	cr_expect_eq(resp_status(r.buf), 503);
	second = strstr(r.buf + 1, "HTTP/1.1 ");
	cr_expect_null(second, "a second answer: %s", r.buf);
	sb_free(&r);
}

/* Unread bytes at close would RST the connection and could destroy the answer: the server drains them. */
Test(metrics_server, answer_survives_unread_body, .init = setup, .fini = teardown)
{
	struct strbuf req = { 0 }, r = { 0 };
	int fd, i;

	sb_puts(&req, "GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\n");
	for (i = 0; i < 200000 / 100; i++)
		sb_printf(&req, "%099d\n", i);
	fd = client_connect(port);
	cr_assert_eq(client_send(fd, req.buf, req.len), 0);
	cr_assert_eq(client_read_all(fd, &r), 0, "reading the answer failed (RST?)");
	cr_expect_eq(resp_status(r.buf), 200);
	cr_expect(strstr(r.buf, "xmesh_connect_duration_seconds_count"), "answer cut short");
	close(fd);
	sb_free(&req);
	sb_free(&r);
}

Test(metrics_server, ipv6_listener)
{
	struct loop_thread lt6;
	struct xm_metrics *m6;
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6, .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	struct strbuf r = { 0 };
	int fd;

	fd = socket(AF_INET6, SOCK_STREAM, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (fd >= 0)
			close(fd);
		cr_skip_test("no IPv6 loopback here");
	}
	close(fd);
	loop_thread_init(&lt6);
	m6 = metrics_listen(lt6.loop, "[::1]:0", NULL, NULL);
	cr_assert_not_null(m6);
	sa.sin6_port = htons((uint16_t)metrics_port(m6));
	loop_thread_start(&lt6);
	fd = socket(AF_INET6, SOCK_STREAM, 0);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(client_send(fd, get_metrics, sizeof(get_metrics) - 1), 0);
	cr_assert_eq(client_read_all(fd, &r), 0);
	cr_expect_eq(resp_status(r.buf), 200);
	cr_expect(strstr(r.buf, "xmesh_build_info{"), "%s", r.buf);
	close(fd);
	sb_free(&r);
	loop_thread_stop(&lt6);
	metrics_close(m6);
	loop_thread_fini(&lt6);
}

Test(metrics_server, listen_failures)
{
	struct loop_thread l;
	struct xm_metrics *a, *b;

	loop_thread_init(&l);
	cr_expect_null(metrics_listen(l.loop, "localhost:15090", NULL, NULL));
	cr_expect_null(metrics_listen(l.loop, "192.0.2.1:0", NULL, NULL), "not a local address");
	a = metrics_listen(l.loop, "127.0.0.1:0", NULL, NULL);
	cr_assert_not_null(a);
	{
		char addr[32];

		snprintf(addr, sizeof(addr), "127.0.0.1:%d", metrics_port(a));
		b = metrics_listen(l.loop, addr, NULL, NULL);
		cr_expect_null(b, "port %d bound twice", metrics_port(a));
		metrics_close(b);
	}
	metrics_close(a);
	loop_thread_fini(&l);
}

/* A source that writes the family named by its ctx, and counts its calls there. */
struct named_source {
	int id, calls;
};

static void named_source(struct xm_scrape *sc, void *ctx)
{
	struct named_source *src = ctx;
	char name[32];

	src->calls++;
	snprintf(name, sizeof(name), "xmesh_test_%d", src->id);
	scrape_u64(scrape_family(sc, name, "gauge", "x"), NULL, NULL, 0, 1);
}

/* Each source once per scrape, in the order they were added (registered in a shuffled id order). */
Test(metrics_server, sources_render_in_order)
{
	struct named_source src[XM_METRICS_MAX_SOURCES];
	struct loop_thread l;
	struct xm_metrics *mm;
	struct strbuf out = { 0 };
	ptrdiff_t prev = -1;
	int i;

	for (i = 0; i < XM_METRICS_MAX_SOURCES; i++)
		src[i] = (struct named_source){ .id = (i * 7) % XM_METRICS_MAX_SOURCES + 1 };
	loop_thread_init(&l);
	mm = metrics_listen(l.loop, "127.0.0.1:0", named_source, &src[0]);
	cr_assert_not_null(mm);
	for (i = 1; i < XM_METRICS_MAX_SOURCES; i++)
		cr_assert_eq(metrics_add_source(mm, named_source, &src[i]), 0);
	cr_expect_eq(metrics_add_source(mm, named_source, &src[0]), -ENOSPC);
	cr_expect_eq(metrics_add_source(mm, NULL, NULL), -EINVAL);
	metrics_render(mm, &out);
	cr_assert_not_null(out.buf);
	for (i = 0; i < XM_METRICS_MAX_SOURCES; i++) {
		char want[48];
		const char *at;

		cr_expect_eq(src[i].calls, 1, "source %d rendered %d times", i, src[i].calls);
		snprintf(want, sizeof(want), "\nxmesh_test_%d 1\n", src[i].id);
		at = strstr(out.buf, want);
		cr_assert_not_null(at, "source %d (xmesh_test_%d) missing:\n%s", i, src[i].id, out.buf);
		cr_expect_gt(at - out.buf, prev, "source %d (xmesh_test_%d) rendered before source %d:\n%s", i,
			     src[i].id, i - 1, out.buf);
		prev = at - out.buf;
	}
	sb_free(&out);
	metrics_close(mm);
	loop_thread_fini(&l);
}

static void refusing_source(struct xm_scrape *sc, void *ctx)
{
	static const char *const names[] = { "le" }, *const values[] = { "1" };

	(void)ctx;
	/* le is a histogram's own label: refused, and so counted. */
	scrape_histogram(scrape_family(sc, "xmesh_test_ms", "histogram", "x"), names, values, 1, NULL, NULL, 0, 0, 0);
}

/* The scrape says how many samples were left out, after every collector ran. */
Test(metrics_server, a_scrape_counts_refused_samples)
{
	struct loop_thread l;
	struct xm_metrics *mm;
	struct strbuf out = { 0 };

	loop_thread_init(&l);
	mm = metrics_listen(l.loop, "127.0.0.1:0", refusing_source, NULL);
	cr_assert_not_null(mm);
	metrics_render(mm, &out);
	cr_assert_not_null(out.buf);
	cr_expect(strstr(out.buf, "# TYPE xmesh_metrics_samples_rejected_total counter\n"
				  "xmesh_metrics_samples_rejected_total 1\n"),
		  "%s", out.buf);
	cr_expect_null(strstr(out.buf, "xmesh_test_ms_bucket"));
	sb_free(&out);
	metrics_render(mm, &out);
	cr_expect(strstr(out.buf, "\nxmesh_metrics_samples_rejected_total 2\n"), "a counter: %s", out.buf);
	sb_free(&out);
	metrics_close(mm);
	loop_thread_fini(&l);
}

/* ---- limits: a small server driven through mhttp directly ---- */

/* /big: 16 MiB, far more than the socket buffers hold; anything else: a short answer. */
static void sized_answer(const struct mhttp_request *req, struct mhttp_response *resp, void *ctx)
{
	size_t i, n = req->path_len == 4 && !memcmp(req->path, "/big", 4) ? 16u << 20 : 640;

	(void)ctx;
	for (i = 0; i < n / 64; i++)
		sb_printf(&resp->body, "%063zu\n", i);
}

/*
 * A client that sends half a request and one that never reads a large answer: neither stalls the loop
 * (another client is answered at once), and both are cut off at the deadline.
 */
Test(metrics_server, slow_clients_do_not_stall_the_loop)
{
	struct mhttp_limits lim = { .timeout_ms = 1500 };
	struct pollfd pfd;
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct loop_thread l;
	struct mhttp_server *s;
	struct strbuf r = { 0 }, junk = { 0 };
	int half, stuck, p, rcv = 4096, err;
	uint64_t t0 = mono_ms(), dt;
	char c;

	loop_thread_init(&l);
	s = mhttp_listen(l.loop, "127.0.0.1:0", &lim, sized_answer, NULL);
	cr_assert_not_null(s);
	p = mhttp_port(s);
	loop_thread_start(&l);

	half = client_connect(p);
	cr_assert_eq(client_send(half, "GET /metrics HTTP/1.1\r\nHo", 25), 0);
	stuck = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	setsockopt(stuck, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
	sa.sin_port = htons((uint16_t)p);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(stuck, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(client_send(stuck, "GET /big HTTP/1.1\r\nHost: x\r\n\r\n", 30), 0);
	/* Once the answer starts to arrive, the server waits on both, and would be stuck if it blocked. */
	pfd = (struct pollfd){ .fd = stuck, .events = POLLIN };
	cr_assert_eq(poll(&pfd, 1, 5000), 1, "no answer to the big request");

	dt = mono_ms();
	cr_assert_eq(http_exchange(p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
	cr_expect_eq(resp_status(r.buf), 200);
	dt = mono_ms() - dt;
	cr_expect_lt(dt, 500, "a third client waited %llu ms", (unsigned long long)dt);

	/* Past the deadline both are gone: the half request gets EOF or a reset, the unread answer is cut. */
	while (mono_ms() < t0 + lim.timeout_ms + 400)
		usleep(50 * 1000);
	cr_expect_leq(recv(half, &c, 1, 0), 0, "half-request client not closed at its deadline");
	err = client_read_all(stuck, &junk);
	cr_expect(err == -ECONNRESET || (err == 0 && junk.len < (16u << 20)), "stuck reader: %s, %zu bytes",
		  strerror(-err), junk.len);
	cr_expect_lt(mono_ms() - t0, lim.timeout_ms + 2000);
	close(half);
	close(stuck);
	sb_free(&r);
	sb_free(&junk);
	usleep(20 * 1000);
	loop_thread_stop(&l);
	cr_expect_eq(mhttp_n_conns(s), 0, "connections left open");
	mhttp_close(s);
	loop_thread_fini(&l);
}

Test(metrics_server, connection_cap)
{
	struct mhttp_limits lim = { .max_conns = 2, .timeout_ms = 5000 };
	struct loop_thread l;
	struct mhttp_server *s;
	struct strbuf r = { 0 };
	int a, b, c, p;

	loop_thread_init(&l);
	s = mhttp_listen(l.loop, "127.0.0.1:0", &lim, sized_answer, NULL);
	cr_assert_not_null(s);
	p = mhttp_port(s);
	loop_thread_start(&l);
	a = client_connect(p);
	b = client_connect(p);
	usleep(50 * 1000);
	/* The third is told at once, before it sends anything (so no unread request turns the close into a RST). */
	c = client_connect(p);
	cr_assert_eq(client_read_all(c, &r), 0);
	cr_expect_eq(resp_status(r.buf), 503, "over the cap: %s", r.buf ? r.buf : "(nothing)");
	close(c);
	sb_free(&r);
	close(a);
	usleep(50 * 1000); /* the server sees a's EOF and frees its slot */
	cr_assert_eq(http_exchange(p, "GET / HTTP/1.1\r\nHost: x\r\n\r\n", &r), 0);
	cr_expect_eq(resp_status(r.buf), 200, "a slot was freed: %s", r.buf);
	sb_free(&r);
	close(b);
	usleep(50 * 1000);
	loop_thread_stop(&l);
	cr_expect_eq(mhttp_n_conns(s), 0);
	mhttp_close(s);
	loop_thread_fini(&l);
}

/* accept() failing with EMFILE leaves the listener readable: the server must pause it, not spin on it. */
Test(metrics_server, out_of_descriptors_does_not_spin_the_loop, .init = setup, .fini = teardown)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	struct stderr_capture cap;
	struct fd_squeeze sq;
	struct strbuf log = { 0 }, r = { 0 };
	int fd, err, failures;
	uint64_t t0;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	stderr_capture_begin(&cap);
	fd_squeeze_begin(&sq);
	/* The kernel completes the connection in the backlog; accept() then finds no free descriptor. */
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(client_send(fd, get_metrics, sizeof(get_metrics) - 1), 0);
	usleep(400 * 1000);
	fd_squeeze_end(&sq);
	stderr_capture_end(&cap, &log);
	failures = count_lines_with(log.buf, "accept: Too many open files");
	cr_expect(failures >= 1 && failures <= 2, "accept() failed %d times in 400 ms", failures);
	/* Descriptors back: the waiting client is accepted after the pause and answered. */
	t0 = mono_ms();
	err = client_read_all(fd, &r);
	cr_expect_eq(err, 0, "%s", strerror(-err));
	cr_expect_eq(resp_status(r.buf), 200);
	cr_expect_lt(mono_ms() - t0, MHTTP_ACCEPT_PAUSE_MS + 1000);
	sb_free(&log);
	sb_free(&r);
	close(fd);
}

static int count_fds(void)
{
	int n = 0;
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	cr_assert_not_null(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

Test(metrics_server, many_sequential_scrapes_leak_nothing, .init = setup, .fini = teardown)
{
	int i, before = count_fds();

	for (i = 0; i < 200; i++) {
		struct strbuf r = { 0 };

		cr_assert_eq(http_exchange(port, get_metrics, &r), 0);
		cr_assert_eq(resp_status(r.buf), 200);
		sb_free(&r);
	}
	usleep(20 * 1000);
	cr_expect_eq(count_fds(), before, "fds: %d before, %d after 200 scrapes", before, count_fds());
}
