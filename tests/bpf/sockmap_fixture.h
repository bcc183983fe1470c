/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixture for the sockmap tests: loads bpf/sockmap.bpf.c unpinned, attaches sk_msg to its sockhash and
 * sockops to a child cgroup this test process moves into, inside a private netns (loopback only; loopback
 * counts as local). Also: connected loopback pairs, and a stream pump that checks every byte in place.
 */
#ifndef XMESH_TEST_SOCKMAP_FIXTURE_H
#define XMESH_TEST_SOCKMAP_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <xmesh/sockmap.h>

struct smx {
	struct sockmap *skel;
	struct bpf_link *ops_link;
	int msg_link_fd; /* -1 when attached with bpf_prog_attach */
	bool msg_attached;
	char cgroup[512];
	bool own_cgroup; /* made by smx_setup (not by the sock_lb fixture) */
	bool skipped;
	int mem_lock_fd; /* SMX_TCP_MEM_LOCK, held shared while sockmap is loaded (valid if mem_locked) */
	bool mem_locked;
};

/*
 * The sockmap_mem tests lower the global tcp_mem for a moment, which would turn redirects into fallbacks
 * in any sockmap test running alongside (criterion runs tests in parallel). Every sockmap test holds this
 * lock shared; sockmap_mem takes it exclusively around its window.
 */
#define SMX_TCP_MEM_LOCK "/tmp/xmesh-smtest-tcp-mem.lock"

extern struct smx smx;

/* Private netns + child cgroup + sockmap attached and switched on. */
void smx_setup(void);
void smx_teardown(void);
/* Loads and attaches sockmap to an existing cgroup (the sock_lb fixture's), switched on. */
void smx_load(const char *cgroup);
void smx_unload(void);

void smx_set_enabled(bool on);
uint64_t smx_stat(unsigned int idx);
/* Entries in xm_sock_pairs. */
int smx_pairs(void);

/* A listener on addr (127.0.0.1, ::1, "::" dual-stack) with optional SO_RCVBUF (0: default). */
int smx_listen(const char *addr, int rcvbuf, uint16_t *port);
/* A connected TCP pair: *cli dialed addr:port, *srv accepted from lfd. */
void smx_pair_on(int lfd, const char *addr, uint16_t port, int *cli, int *srv);
/* Shortcut: listener on 127.0.0.1, one pair, listener closed. */
void smx_pair(int *cli, int *srv);

/* The byte at offset off of the stream with this seed. */
static inline uint8_t smx_pattern(uint32_t seed, uint64_t off)
{
	uint64_t x = (off >> 3) * 0x9e3779b97f4a7c15ULL + seed;

	return (uint8_t)((x >> 29) ^ (x >> 47) ^ off);
}

/* One direction of a connection, checked byte by byte. */
struct smx_flow {
	int tx, rx;	/* fds */
	uint64_t total; /* bytes to send */
	size_t chunk;	/* bytes per write() */
	uint32_t seed;
	uint64_t sent, rcvd;
	uint64_t h_tx, h_rx; /* FNV-1a over what was sent and what was received */
	int64_t first_bad;   /* offset of the first byte that differed, -1 */
	bool shut_wr;	     /* shutdown(SHUT_WR) after the last byte */
	bool eof;	     /* the reader saw EOF */
};

void smx_flow_init(struct smx_flow *f, int tx, int rx, uint64_t total, size_t chunk, uint32_t seed);
/*
 * Moves every flow to completion with non-blocking sockets and one epoll (so a missed wakeup shows up as a
 * stall). Fails the test on a stall longer than stall_ms, on an error, or when a byte differs.
 */
void smx_pump(struct smx_flow *flows, int n, int stall_ms);
/* Asserts that every flow delivered all its bytes unchanged and in order. */
void smx_assert_flows(const struct smx_flow *flows, int n);

#endif
