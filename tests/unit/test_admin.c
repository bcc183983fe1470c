/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin socket on a real unix socket, its loop on a thread, next to the metrics listener: stalled
 * clients (slow writers, non-readers, idle) must never hold up the loop.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "admin/admin.h"
#include "admin/command.h"
#include "metrics/metrics.h"
#include "test_metrics.h"

#define BIG_ANSWER (16u << 20) /* far more than a unix socket buffers */

static struct loop_thread lt;
static struct xm_admin *admin;
static struct xm_metrics *metrics;
static char sock_path[108];
static char sock_dir[64];

static void handler(const char *command, struct strbuf *out, void *ctx)
{
	(void)ctx;
	if (!strcmp(command, "status")) {
		sb_puts(out, "status: ok\n");
	} else if (!strcmp(command, "big")) {
		char *chunk = malloc(1 << 20);
		unsigned int i;

		cr_assert_not_null(chunk);
		memset(chunk, 'x', (1 << 20) - 1);
		chunk[(1 << 20) - 1] = '\0';
		for (i = 0; i < BIG_ANSWER >> 20; i++)
			sb_puts(out, chunk);
		free(chunk);
	} else if (!strcmp(command, "slow")) {
		/* A handler that takes a while (a reload), then a 4 MiB answer the socket takes in many writes. */
		char *chunk = malloc(1 << 20);
		int i;

		cr_assert_not_null(chunk);
		usleep(1200 * 1000);
		memset(chunk, 'y', (1 << 20) - 1);
		chunk[(1 << 20) - 1] = '\0';
		for (i = 0; i < 4; i++)
			sb_puts(out, chunk);
		free(chunk);
	} else {
		sb_printf(out, "unknown \"%s\"\n", command);
	}
}

static void setup_with(const struct admin_limits *limits)
{
	snprintf(sock_dir, sizeof(sock_dir), "/tmp/xm-admin-test.XXXXXX");
	cr_assert_not_null(mkdtemp(sock_dir));
	snprintf(sock_path, sizeof(sock_path), "%s/admin.sock", sock_dir);
	loop_thread_init(&lt);
	admin = admin_listen(lt.loop, sock_path, handler, NULL);
	cr_assert_not_null(admin);
	if (limits)
		admin_set_limits(admin, limits);
	metrics = metrics_listen(lt.loop, "127.0.0.1:0", collect_realistic, NULL);
	cr_assert_not_null(metrics);
	loop_thread_start(&lt);
}

static void setup(void)
{
	setup_with(NULL);
}

static void teardown(void)
{
	loop_thread_stop(&lt);
	metrics_close(metrics);
	admin_close(admin);
	loop_thread_fini(&lt);
	rmdir(sock_dir);
}

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int admin_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	cr_assert_geq(fd, 0);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0, "connect %s: %s", sock_path, strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	return fd;
}

/* Sends raw bytes, reads the whole answer until EOF: 0, or -errno (with what came in out). */
static int exchange_raw(const char *req, size_t len, struct strbuf *out)
{
	int fd = admin_connect(), err;

	cr_assert_eq(client_send(fd, req, len), 0);
	err = client_read_all(fd, out);
	close(fd);
	return err;
}

/* `status` and a scrape, each answered in under a second while something else is stalled. */
static void expect_prompt_answers(const char *while_what)
{
	struct strbuf out = { 0 }, resp = { 0 };
	uint64_t t0 = mono_ms(), took;
	int err;

	err = admin_request(sock_path, "status", &out);
	took = mono_ms() - t0;
	cr_expect_eq(err, 0, "status while %s: %s", while_what, strerror(-err));
	cr_expect_str_eq(out.buf ? out.buf : "", "status: ok\n");
	cr_expect_lt(took, 1000, "status took %llu ms while %s", (unsigned long long)took, while_what);
	t0 = mono_ms();
	err = http_exchange(metrics_port(metrics), "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", &resp);
	took = mono_ms() - t0;
	cr_expect_eq(err, 0, "scrape while %s: %s", while_what, strerror(-err));
	cr_expect_eq(resp_status(resp.buf), 200);
	cr_expect_lt(took, 1000, "/metrics took %llu ms while %s", (unsigned long long)took, while_what);
	sb_free(&out);
	sb_free(&resp);
}

/* A client writing one byte every 1.5 s, never a whole line, for 3 s. */
static void *slow_writer(void *arg)
{
	int fd = *(int *)arg;

	(void)!send(fd, "s", 1, MSG_NOSIGNAL);
	usleep(1500 * 1000);
	(void)!send(fd, "t", 1, MSG_NOSIGNAL);
	usleep(1500 * 1000);
	(void)!send(fd, "a", 1, MSG_NOSIGNAL);
	return NULL;
}

Test(admin, slow_writer_does_not_stall_the_loop, .init = setup, .fini = teardown, .timeout = 30)
{
	int fd = admin_connect();
	pthread_t thread;

	cr_assert_eq(pthread_create(&thread, NULL, slow_writer, &fd), 0);
	usleep(200 * 1000);
	expect_prompt_answers("a client sends one byte every 1.5 s");
	usleep(1500 * 1000); /* after its second byte */
	expect_prompt_answers("a client sends one byte every 1.5 s");
	pthread_join(thread, NULL);
	close(fd);
}

Test(admin, client_that_never_reads_its_answer, .init = setup, .fini = teardown, .timeout = 30)
{
	struct admin_limits limits = { .deadline_ms = 1000 };
	struct strbuf got = { 0 };
	int fd, err;

	loop_thread_stop(&lt);
	admin_set_limits(admin, &limits);
	loop_thread_start(&lt);
	fd = admin_connect();
	cr_assert_eq(client_send(fd, "big\n", 4), 0);
	usleep(200 * 1000); /* the loop has filled the socket and waits for it to drain */
	expect_prompt_answers("a client does not read its 16 MiB answer");
	usleep(1200 * 1000); /* past its deadline */
	loop_thread_stop(&lt);
	cr_expect_eq(admin_n_clients(admin), 0, "the non-reader was dropped at its deadline");
	loop_thread_start(&lt);
	err = client_read_all(fd, &got);
	cr_expect(err == 0 || err == -ECONNRESET, "the reader sees the end: %s", strerror(-err));
	cr_expect_lt(got.len, BIG_ANSWER, "cut short, not sent whole");
	sb_free(&got);
	close(fd);
}

Test(admin, slow_handler_does_not_eat_the_client_deadline, .init = setup, .fini = teardown, .timeout = 30)
{
	struct admin_limits limits = { .deadline_ms = 1000 };
	struct strbuf got = { 0 };
	int err;

	loop_thread_stop(&lt);
	admin_set_limits(admin, &limits);
	loop_thread_start(&lt);
	err = admin_request(sock_path, "slow", &got);
	cr_expect_eq(err, 0, "%s", strerror(-err));
	cr_expect_eq(got.len, 4 * ((1u << 20) - 1), "a reading client got %zu bytes of its answer", got.len);
	sb_free(&got);
}

Test(admin, idle_client_dropped_at_its_deadline, .init = setup, .fini = teardown, .timeout = 30)
{
	struct admin_limits limits = { .deadline_ms = 300 };
	struct strbuf got = { 0 };
	uint64_t t0;
	int fd;

	loop_thread_stop(&lt);
	admin_set_limits(admin, &limits);
	loop_thread_start(&lt);
	fd = admin_connect();
	t0 = mono_ms();
	cr_expect_eq(client_read_all(fd, &got), 0, "closed by the agent, not by our 5 s receive timeout");
	cr_expect_geq(mono_ms() - t0, 250);
	cr_expect_eq(got.len, 0);
	close(fd);
}

Test(admin, client_cap, .init = setup, .fini = teardown, .timeout = 30)
{
	struct admin_limits limits = { .max_clients = 3 };
	struct strbuf got = { 0 };
	int idle[3], fd, i;

	loop_thread_stop(&lt);
	admin_set_limits(admin, &limits);
	loop_thread_start(&lt);
	for (i = 0; i < 3; i++)
		idle[i] = admin_connect();
	fd = admin_connect();
	cr_expect_eq(client_read_all(fd, &got), 0);
	cr_expect(got.buf && strstr(got.buf, "too many admin clients"), "refused: %s", got.buf ? got.buf : "");
	close(fd);
	sb_free(&got);
	close(idle[0]); /* frees a slot once the agent sees it go */
	usleep(100 * 1000);
	cr_expect_eq(admin_request(sock_path, "status", &got), 0);
	cr_expect_str_eq(got.buf ? got.buf : "", "status: ok\n");
	sb_free(&got);
	close(idle[1]);
	close(idle[2]);
}

/* accept() failing with EMFILE leaves the listener readable: the admin socket must pause it, not spin. */
Test(admin, out_of_descriptors_does_not_spin_the_loop, .init = setup, .fini = teardown)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct timeval tv = { .tv_sec = 5 };
	struct stderr_capture cap;
	struct fd_squeeze sq;
	struct strbuf log = { 0 }, got = { 0 };
	int fd, failures;

	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	cr_assert_geq(fd, 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock_path);
	stderr_capture_begin(&cap);
	fd_squeeze_begin(&sq);
	/* The connection waits in the backlog; accept() finds no free descriptor. */
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	cr_assert_eq(client_send(fd, "status\n", 7), 0);
	usleep(400 * 1000);
	fd_squeeze_end(&sq);
	stderr_capture_end(&cap, &log);
	failures = count_lines_with(log.buf, "accept: Too many open files");
	cr_expect(failures >= 1 && failures <= 2, "accept() failed %d times in 400 ms", failures);
	cr_expect_eq(client_read_all(fd, &got), 0);
	cr_expect_str_eq(got.buf ? got.buf : "", "status: ok\n", "answered once descriptors are back");
	sb_free(&log);
	sb_free(&got);
	close(fd);
}

Test(admin, line_forms, .init = setup, .fini = teardown)
{
	static const struct {
		const char *req, *answer;
	} cases[] = {
		{ "status\n", "status: ok\n" },	     { "status\r\n", "status: ok\n" },
		{ "status", "status: ok\n" }, /* no line end, then EOF (the client shuts its write side) */
		{ "status\nbig\n", "status: ok\n" }, { "sta\x01tus\n", "error: command holds control characters\n" },
		{ "\n", "unknown \"\"\n" },
	};
	size_t i;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct strbuf got = { 0 };
		int fd = admin_connect(), err;

		cr_assert_eq(client_send(fd, cases[i].req, strlen(cases[i].req)), 0);
		shutdown(fd, SHUT_WR);
		err = client_read_all(fd, &got);
		cr_expect_eq(err, 0, "case %zu: %s", i, strerror(-err));
		cr_expect_str_eq(got.buf ? got.buf : "", cases[i].answer, "case %zu", i);
		sb_free(&got);
		close(fd);
	}
}

Test(admin, overlong_line_refused, .init = setup, .fini = teardown)
{
	char req[ADMIN_CMD_MAX + 64];
	struct strbuf got = { 0 };

	memset(req, 'a', sizeof(req));
	cr_expect_eq(exchange_raw(req, sizeof(req), &got), 0);
	cr_expect(got.buf && strstr(got.buf, "error: command longer than 255 bytes"), "%s", got.buf ? got.buf : "");
	sb_free(&got);
}

Test(admin_command, parse)
{
	char cmd[ADMIN_CMD_MAX];
	char line[ADMIN_CMD_MAX + 2];

	cr_expect_eq(admin_parse_command("status\n", 7, false, cmd, sizeof(cmd)), 7);
	cr_expect_str_eq(cmd, "status");
	cr_expect_eq(admin_parse_command("status\r\nmore", 12, false, cmd, sizeof(cmd)), 8);
	cr_expect_str_eq(cmd, "status");
	cr_expect_eq(admin_parse_command("stat", 4, false, cmd, sizeof(cmd)), 0);
	cr_expect_eq(admin_parse_command("stat", 4, true, cmd, sizeof(cmd)), 4);
	cr_expect_str_eq(cmd, "stat");
	cr_expect_eq(admin_parse_command("", 0, true, cmd, sizeof(cmd)), -ENODATA);
	cr_expect_eq(admin_parse_command("", 0, false, cmd, sizeof(cmd)), 0);
	cr_expect_eq(admin_parse_command("a\0b\n", 4, false, cmd, sizeof(cmd)), -EINVAL);
	cr_expect_eq(admin_parse_command("a\rb\n", 4, false, cmd, sizeof(cmd)), -EINVAL);
	cr_expect_eq(admin_parse_command("a\tb\n", 4, false, cmd, sizeof(cmd)), 4);
	/* The longest line fits, its CR and LF may trail; one more character does not. */
	memset(line, 'a', sizeof(line));
	cr_expect_eq(admin_parse_command(line, ADMIN_CMD_MAX - 1, false, cmd, sizeof(cmd)), 0);
	line[ADMIN_CMD_MAX - 1] = '\r';
	cr_expect_eq(admin_parse_command(line, ADMIN_CMD_MAX, false, cmd, sizeof(cmd)), 0);
	line[ADMIN_CMD_MAX] = '\n';
	cr_expect_eq(admin_parse_command(line, ADMIN_CMD_MAX + 1, false, cmd, sizeof(cmd)), ADMIN_CMD_MAX + 1);
	cr_expect_eq(strlen(cmd), ADMIN_CMD_MAX - 1);
	memset(line, 'a', sizeof(line));
	cr_expect_eq(admin_parse_command(line, ADMIN_CMD_MAX + 1, false, cmd, sizeof(cmd)), -E2BIG);
	line[ADMIN_CMD_MAX] = '\n';
	cr_expect_eq(admin_parse_command(line, ADMIN_CMD_MAX + 1, false, cmd, sizeof(cmd)), -E2BIG);
}
