/* SPDX-License-Identifier: Apache-2.0 */
/* Helpers shared by the metrics tests: a loop on a thread, a blocking HTTP client, promtool, a sample scrape. */
#ifndef XMESH_TEST_METRICS_H
#define XMESH_TEST_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>

#include "core/loop.h"
#include "core/strbuf.h"

/* Runs loop_run on a thread; stop it (from the test's thread) before touching server state. */
struct loop_thread {
	struct xm_loop *loop;
	pthread_t thread;
	int stop_fd;
	bool running;
};

void loop_thread_init(struct loop_thread *lt);
void loop_thread_start(struct loop_thread *lt);
void loop_thread_stop(struct loop_thread *lt);
void loop_thread_fini(struct loop_thread *lt);

/* A blocking client socket connected to 127.0.0.1:port, with a 5 s receive timeout. */
int client_connect(int port);
/* Sends everything in buf, blocking. */
int client_send(int fd, const void *buf, size_t len);
/* Reads until EOF (0), or returns -errno (-ECONNRESET, -EAGAIN on timeout); what came is in out. */
int client_read_all(int fd, struct strbuf *out);
/* connect + send req + read until EOF + close. */
int http_exchange(int port, const char *req, struct strbuf *resp);

/* From a raw response: the status code (-1 if not HTTP/1.1), a header's value (NULL), the body. */
int resp_status(const char *resp);
const char *resp_header(const char *resp, const char *name, char *buf, size_t len);
const char *resp_body(const char *resp);

/*
 * Lowers RLIMIT_NOFILE so that the next descriptor this process opens fails with EMFILE (the free numbers
 * below the limit are taken by fillers); fd_squeeze_end restores the limit and closes the fillers.
 */
struct fd_squeeze {
	struct rlimit old;
	int fillers[256];
	int n;
};
void fd_squeeze_begin(struct fd_squeeze *sq);
void fd_squeeze_end(struct fd_squeeze *sq);
/* Sends what the process writes to stderr (the agent's log) to a file until stderr_capture_end returns it. */
struct stderr_capture {
	int saved, fd;
};
void stderr_capture_begin(struct stderr_capture *cap);
void stderr_capture_end(struct stderr_capture *cap, struct strbuf *out);
/* How many lines of text hold needle. */
int count_lines_with(const char *text, const char *needle);

/* promtool's path, or NULL when it is not installed (the tests then skip). */
const char *promtool_path(void);
/* Runs `promtool check metrics` on text: its exit code, its output in out. */
int promtool_check(const char *text, char *out, size_t out_len);

struct xm_scrape;
/* A collector with what the agent will serve: counters with labels full of quotes, a histogram… */
void collect_realistic(struct xm_scrape *sc, void *ctx);

#endif
