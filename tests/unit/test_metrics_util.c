/* SPDX-License-Identifier: Apache-2.0 */
/* Shared helpers of the metrics tests (see test_metrics.h). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#include <criterion/criterion.h>

#include "metrics/prom.h"
#include "metrics/registry.h"
#include "test_metrics.h"

static void on_stop(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	uint64_t v;

	(void)events, (void)ctx;
	(void)!read(fd, &v, sizeof(v));
	loop_stop(loop);
}

static void *run_loop(void *arg)
{
	struct loop_thread *lt = arg;

	loop_run(lt->loop);
	return NULL;
}

void loop_thread_init(struct loop_thread *lt)
{
	memset(lt, 0, sizeof(*lt));
	lt->loop = loop_new();
	cr_assert_not_null(lt->loop);
	lt->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	cr_assert_geq(lt->stop_fd, 0);
	cr_assert_eq(loop_add_fd(lt->loop, lt->stop_fd, EPOLLIN, on_stop, NULL), 0);
}

void loop_thread_start(struct loop_thread *lt)
{
	cr_assert(!lt->running);
	cr_assert_eq(pthread_create(&lt->thread, NULL, run_loop, lt), 0);
	lt->running = true;
}

void loop_thread_stop(struct loop_thread *lt)
{
	uint64_t one = 1;

	if (!lt->running)
		return;
	cr_assert_eq(write(lt->stop_fd, &one, sizeof(one)), (ssize_t)sizeof(one));
	pthread_join(lt->thread, NULL);
	lt->running = false;
}

void loop_thread_fini(struct loop_thread *lt)
{
	loop_thread_stop(lt);
	loop_del_fd(lt->loop, lt->stop_fd);
	close(lt->stop_fd);
	loop_free(lt->loop);
}

void fd_squeeze_begin(struct fd_squeeze *sq)
{
	struct rlimit lim;
	struct dirent *e;
	int top = 0, fd;
	DIR *d;

	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &sq->old), 0);
	d = opendir("/proc/self/fd");
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' && atoi(e->d_name) > top)
			top = atoi(e->d_name);
	closedir(d);
	/* dup() takes the lowest free number: once it returns one above the top, every hole below is filled. */
	sq->n = 0;
	do {
		cr_assert_lt(sq->n, (int)(sizeof(sq->fillers) / sizeof(sq->fillers[0])), "too many holes below fd %d",
			     top);
		fd = dup(0);
		cr_assert_geq(fd, 0);
		sq->fillers[sq->n++] = fd;
	} while (fd <= top);
	lim = sq->old;
	lim.rlim_cur = (rlim_t)fd + 1;
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &lim), 0);
	cr_assert_lt(dup(0), 0, "the descriptor table is not full");
	cr_assert_eq(errno, EMFILE);
}

void fd_squeeze_end(struct fd_squeeze *sq)
{
	int i;

	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &sq->old), 0);
	for (i = 0; i < sq->n; i++)
		close(sq->fillers[i]);
	sq->n = 0;
}

void stderr_capture_begin(struct stderr_capture *cap)
{
	char path[] = "/tmp/xm-test-stderr.XXXXXX";

	fflush(stderr);
	cap->fd = mkstemp(path);
	cr_assert_geq(cap->fd, 0);
	unlink(path);
	cap->saved = dup(2);
	cr_assert_geq(cap->saved, 0);
	cr_assert_eq(dup2(cap->fd, 2), 2);
}

void stderr_capture_end(struct stderr_capture *cap, struct strbuf *out)
{
	char buf[4096];
	ssize_t n;
	off_t off = 0;

	fflush(stderr);
	cr_assert_eq(dup2(cap->saved, 2), 2);
	close(cap->saved);
	while ((n = pread(cap->fd, buf, sizeof(buf) - 1, off)) > 0) {
		buf[n] = '\0';
		sb_puts(out, buf);
		off += n;
	}
	close(cap->fd);
}

int count_lines_with(const char *text, const char *needle)
{
	const char *p = text;
	int n = 0;

	while (p && (p = strstr(p, needle))) {
		n++;
		p = strchr(p, '\n');
	}
	return n;
}

int client_connect(int port)
{
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect 127.0.0.1:%d: %s", port,
		     strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

int client_send(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = send(fd, p, len, MSG_NOSIGNAL);

		if (n < 0)
			return -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int client_read_all(int fd, struct strbuf *out)
{
	char buf[65536];

	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf) - 1, 0);

		if (n < 0)
			return errno == EWOULDBLOCK ? -EAGAIN : -errno;
		if (n == 0)
			return 0;
		buf[n] = '\0';
		sb_printf(out, "%.*s", (int)n, buf);
	}
}

int http_exchange(int port, const char *req, struct strbuf *resp)
{
	int fd = client_connect(port), err;

	err = client_send(fd, req, strlen(req));
	if (!err)
		err = client_read_all(fd, resp);
	close(fd);
	return err;
}

int resp_status(const char *resp)
{
	int status;

	if (!resp || sscanf(resp, "HTTP/1.1 %d ", &status) != 1)
		return -1;
	return status;
}

const char *resp_header(const char *resp, const char *name, char *buf, size_t len)
{
	const char *end = resp ? strstr(resp, "\r\n\r\n") : NULL, *p;
	size_t n = strlen(name);

	if (!end)
		return NULL;
	for (p = strstr(resp, "\r\n"); p && p < end; p = strstr(p + 2, "\r\n")) {
		const char *line = p + 2;

		if (!strncasecmp(line, name, n) && line[n] == ':') {
			const char *v = line + n + 1, *eol = strstr(v, "\r\n");

			while (*v == ' ')
				v++;
			snprintf(buf, len, "%.*s", (int)(eol - v), v);
			return buf;
		}
	}
	return NULL;
}

const char *resp_body(const char *resp)
{
	const char *end = resp ? strstr(resp, "\r\n\r\n") : NULL;

	return end ? end + 4 : NULL;
}

const char *promtool_path(void)
{
	static const char *const dirs[] = { "/usr/bin", "/usr/local/bin", "/usr/sbin", "/bin" };
	static char path[256];
	const char *env = getenv("PROMTOOL");
	size_t i;

	if (env && *env)
		return access(env, X_OK) == 0 ? env : NULL;
	for (i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(path, sizeof(path), "%s/promtool", dirs[i]);
		if (access(path, X_OK) == 0)
			return path;
	}
	return NULL;
}

int promtool_check(const char *text, char *out, size_t out_len)
{
	char file[] = "/tmp/xmesh-metrics-XXXXXX", cmd[512];
	size_t len = strlen(text), got = 0;
	FILE *p;
	int fd, status;

	out[0] = '\0';
	fd = mkstemp(file);
	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, len), (ssize_t)len);
	close(fd);
	snprintf(cmd, sizeof(cmd), "'%s' check metrics < '%s' 2>&1", promtool_path(), file);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	while (got + 1 < out_len) {
		size_t n = fread(out + got, 1, out_len - 1 - got, p);

		if (!n)
			break;
		got += n;
	}
	out[got] = '\0';
	status = pclose(p);
	unlink(file);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

void collect_realistic(struct xm_scrape *sc, void *ctx)
{
	static const char *const result[] = { "result" }, *const ok[] = { "ok" }, *const rejected[] = { "rejected" };
	static const char *const tcp_n[] = { "reporter", "source_workload", "destination_service",
					     "destination_service_name", "response_flags" };
	static const char *const tcp_v1[] = { "source", "productpage-v1", "reviews.default.svc.cluster.local",
					      "reviews", "-" };
	/* What a hostile or careless config can put in a label: quotes, backslashes, newlines, UTF-8, junk. */
	static const char *const tcp_v2[] = { "source", "we\"ird\\work\nload", "caf\xc3\xa9.default.svc", "x\xff", "" };
	static const char *const svc[] = { "service" }, *const svc_v[] = { "default/reviews:9080" };
	static const double bounds[] = { 0.001, 0.01, 0.1, 1, 10 };
	static const uint64_t counts[] = { 3, 10, 12, 12, 13 };

	struct xm_scrape_family *f;

	(void)ctx;
	f = scrape_family(sc, "xmesh_config_applies_total", "counter", "Config applies, by result (ok or rejected).");
	scrape_u64(f, result, ok, 1, 7);
	scrape_u64(f, result, rejected, 1, 2);
	f = scrape_family(sc, "istio_tcp_connections_opened_total", "counter",
			  "TCP connections opened, as Istio counts them (\"source\" reporter).");
	scrape_u64(f, tcp_n, tcp_v1, 5, 1234);
	scrape_u64(f, tcp_n, tcp_v2, 5, 1);
	f = scrape_family(sc, "xmesh_backends", "gauge", "Ready backends per service port.");
	scrape_double(f, svc, svc_v, 1, 3);
	f = scrape_family(sc, "xmesh_ejection_ratio", "gauge", "Share of endpoints ejected; NaN with no endpoints.");
	scrape_double(f, NULL, NULL, 0, NAN);
	f = scrape_family(sc, "xmesh_connect_duration_seconds", "histogram", "Time to pick a backend \\ connect.");
	scrape_histogram(f, svc, svc_v, 1, bounds, counts, 5, 0.75, 14);
}
