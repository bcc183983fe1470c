/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixture for socket-LB tests: loads sock_lb (unpinned), attaches it to a child cgroup that this test
 * process moves into, and publishes services through the agent's lbmap. Backends are loopback listeners.
 * Criterion runs each test in its own process, so the cgroup move never leaks into other tests.
 */
#ifndef XMESH_TEST_SOCK_LB_FIXTURE_H
#define XMESH_TEST_SOCK_LB_FIXTURE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "compile/compile.h"
#include "lbmap/lbmap.h"

#define FX_MAX_BACKENDS 8

struct sock_lb;

struct fx {
	struct sock_lb *skel;
	struct bpf_link *links[16];
	int n_links;
	char cgroup[512];
	struct xm_map_fds fds;
	struct xm_lbmap *lbmap;
	int listen_fd[FX_MAX_BACKENDS];
	uint16_t port[FX_MAX_BACKENDS]; /* host order */
	int n_backends;
	bool skipped;
};

extern struct fx fx;

/* Called by fx_setup between open and load when set (a test's own map shapes); reset by fx_teardown. */
extern void (*fx_before_load)(struct sock_lb *skel);

void fx_setup(void);
void fx_teardown(void);

/* Starts n listeners (TCP or UDP) on 127.0.0.1 (or ::1 when v6). */
void fx_listeners(int n, int type, bool v6);

/* Publishes one service VIP:port with the first n listeners as its ready backends. */
void fx_publish(const char *vip, uint16_t port, int proto, uint8_t algo, int n);

/* The same with outlier detection (od NULL: off). Returns the service port's svc_id. */
uint32_t fx_publish_od(const char *vip, uint16_t port, int proto, uint8_t algo, int n,
		       const struct xm_outlier_detection *od);

/* The same with XM_SVC_F_* flags (e.g. XM_SVC_F_L7). Returns the service port's svc_id. */
uint32_t fx_publish_flags(const char *vip, uint16_t port, int proto, uint8_t algo, int n, uint8_t flags);

/* Backend id of listener i (IPv4 loopback). */
uint32_t fx_backend_id(int i);

/* Index of the listener that has a pending connection (accepting and closing it), -1 if none. */
int fx_accept_which(void);

/* Whether any backend listener has a connection waiting (a SYN over loopback has arrived by now). */
bool fx_backend_pending(void);

/* "addr port" of a socket's peer (getpeername: what the application sees). */
void fx_peer_str(int fd, char *buf, size_t len);

/* Counters of the socket LB (enum xm_sock_stat) and its map errors (enum xm_map_error), summed over CPUs. */
uint64_t fx_sock_stat(unsigned int idx);
uint64_t fx_map_error(unsigned int idx);

/* Entries in a hash map. */
int fx_map_entries(int fd, size_t key_size);

/* Live connections counted over the first backend ids (the fixture's backends get small ids). */
int64_t fx_backend_conns_total(void);

/* Adds the IPv4 address addr/32 to the sandbox's loopback (a node address in the e2e topology). */
void fx_add_addr4(const char *addr);

/* A TCP socket connected to addr:port, or -errno. */
int fx_connect(const char *addr, uint16_t port);

#endif
