/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The L7 proxy test's world: an HTTP upstream on 127.0.0.1 (a thread per connection, behaviour by path), a
 * blocking HTTP client, and the records the proxy produced. Shared by test_l7_proxy*.c.
 */
#ifndef XMESH_TEST_L7_PROXY_FIXTURE_H
#define XMESH_TEST_L7_PROXY_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "l7/record.h"

struct xm_compile_opts;
struct xm_snapshot;

/*
 * What the agent does between a YAML text and the proxy: loads it (asserting it is clean), compiles it into
 * a snapshot and numbers the service ports and backends 1, 2, ... as publishing would.
 */
struct xm_snapshot *fixture_snapshot(const char *yaml, const struct xm_compile_opts *copts);

/* The upstream: serves until upstream_stop. Paths: see l7_proxy_fixture.c. */
uint16_t upstream_start(void);
void upstream_stop(void);

struct hclient {
	int fd;
	char *buf; /* received, not yet consumed */
	size_t len, cap;
};

struct response {
	int status;
	char head[8192]; /* the header section as received, NUL-terminated */
	char *body;	 /* de-chunked, NUL-terminated */
	size_t body_len;
	bool chunked;
};

/* Connects to ip:port (5 s timeouts). */
void hc_open(struct hclient *c, const char *ip, uint16_t port);
/* The same from source address src (a loopback address other than 127.0.0.1: another client). */
void hc_open_from(struct hclient *c, const char *src, const char *ip, uint16_t port);
void hc_close(struct hclient *c);
void hc_send(struct hclient *c, const void *p, size_t n);
/* Reads one response (head only for HEAD/1xx, or until close when neither CL nor chunked). false: EOF. */
bool hc_read(struct hclient *c, struct response *r, bool head_only);
/* True when the server closed the connection (EOF within 2 s, nothing else received). */
bool hc_sees_close(struct hclient *c);
void response_free(struct response *r);
/* The value of header name in r->head (case-insensitive), copied into buf; false when absent. */
bool response_header(const struct response *r, const char *name, char *buf, size_t len);

/* Requests the upstream saw: waits up to 2 s for one with this path and Host; false when none came. */
bool upstream_saw(const char *path, const char *host);

/* Records the proxy finished, as the on_record hook saw them. */
struct seen_record {
	uint16_t status;
	uint32_t flags;
	char path[128];
	uint64_t request_bytes, response_bytes;
	uint32_t attempts;
	char details[64];
};
void records_hook(void *ctx, size_t worker, const struct l7_record *r);
/* Waits up to 2 s for at least n records; returns how many there are. */
size_t records_wait(size_t n);
struct seen_record records_get(size_t i);

#endif
