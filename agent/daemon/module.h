/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How a part of the agent plugs into the daemon. The daemon owns the order (daemon.c, xm_modules[]): it
 * initialises modules first to last, hands each compiled snapshot to every module in that order, and closes
 * them last to first. Modules never edit the daemon's state and never call each other; what one needs from
 * another travels in the snapshot (the socket LB module, first, writes the ids it published into it).
 *
 * Threads: everything runs on the control loop except collect, which the metrics thread calls with a
 * snapshot it holds a reference to; collect reads maps, that snapshot, and counters the module keeps
 * thread-safe (atomics, or a mutex of its own), nothing else.
 */
#ifndef XMESH_DAEMON_MODULE_H
#define XMESH_DAEMON_MODULE_H

#include <stdbool.h>
#include <stdint.h>

struct strbuf;
struct xm_agent;
struct xm_scrape;
struct xm_snapshot;

struct xm_module {
	const char *name;
	/*
	 * Loads and attaches; *state is the module's own. Returns 0, or a negative errno after logging why
	 * (the agent then stops). A module that the flags leave off returns 0 with *state NULL: the daemon
	 * calls nothing else of it.
	 */
	int (*init)(struct xm_agent *a, void **state);
	/* Before any module publishes next: only what must already be in place then (optional). */
	int (*prepare)(void *state, const struct xm_snapshot *next);
	/* Makes the datapath serve next. Returns 0, or -errno when part of it kept the previous state. */
	int (*apply)(void *state, struct xm_snapshot *next);
	/* Every 500 ms with the snapshot in force (optional). */
	void (*tick)(void *state, const struct xm_snapshot *cur, uint64_t now_ms);
	/* Its part of `xmesh status`: text lines, or `,"name":value` members of the JSON object (optional). */
	void (*status)(void *state, const struct xm_snapshot *cur, bool json, struct strbuf *out);
	/* Its metric families (optional; metrics thread). */
	void (*collect)(void *state, const struct xm_snapshot *cur, struct xm_scrape *sc);
	/* An admin command it answers ("sockmap on"): true if it took it (optional). */
	bool (*admin)(void *state, const char *command, struct strbuf *out);
	void (*close)(void *state);
};

extern const struct xm_module xm_module_sock_lb;   /* socket LB, lbmap, outlier detection */
extern const struct xm_module xm_module_sockmap;   /* same-node short-circuit */
extern const struct xm_module xm_module_xdp;	   /* north-south XDP/TC on the uplinks */
extern const struct xm_module xm_module_identity;  /* this node's workload certificates and the CA */
extern const struct xm_module xm_module_l7;	   /* the HTTP proxy and its capture */
extern const struct xm_module xm_module_peer_auth; /* PeerAuthentication STRICT at the pods' veths */
extern const struct xm_module xm_module_hbone;	   /* the HBONE tunnel's server side (--hbone) */

#endif
