/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HBONE tunnel's client side on the hbone thread (docs/mtls.md "The client side"): the pool
 * (hbone_client), the outbound listener that the kernel's capture sends this node's pods' cross-node
 * connections to (include/xmesh/hbone.h), and the hand-off of connected sockets from other threads
 * (daemon/tunnel.h). Each connection becomes one CONNECT stream (hbone_splice_open) presenting the local
 * workload's certificate and requiring the target pod's identity.
 *
 * Who is who comes from the owner (mod_hbone.c) through hbone_outbound_ops, so that this part runs in a test
 * without an agent. Threads: hbone_outbound_new, _listen, _listen6, _adopt, _stop and _free on the control thread;
 * hbone_outbound_available and _submit from any thread; everything else on the loop's thread.
 */
#ifndef XMESH_DAEMON_HBONE_OUTBOUND_H
#define XMESH_DAEMON_HBONE_OUTBOUND_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "daemon/tunnel.h"
#include "hbone/hbone.h"

struct strbuf;
struct xm_cert;
struct xm_loop;
struct xm_scrape;

/* Why a connection was not carried (xmesh_hbone_outbound_refused_total{reason}); each one is reset. */
enum hbone_ob_refusal {
	HBONE_OB_NO_ORIGDST,	 /* accepted, but the kernel has no original destination for it */
	HBONE_OB_NOT_LOCAL_POD,	 /* the client's address is no pod of this node */
	HBONE_OB_NO_CERTIFICATE, /* the local workload has no certificate (yet) */
	HBONE_OB_UNKNOWN_TARGET, /* the destination is no known pod: its identity is unknown */
	HBONE_OB_BAD_REQUEST,	 /* tunnel_submit: not an IPv4 target, or an empty src_id */
	HBONE_OB_OUT_OF_MEMORY,	 /* the stream could not be set up */
	HBONE_OB_REFUSALS
};
const char *hbone_ob_refusal_name(enum hbone_ob_refusal r);

/* Who is who, asked by the outbound side (the loop's thread, and any thread for certificate). */
struct hbone_outbound_ops {
	/* The workload of this node at addr (a pod's address): its SPIFFE ID in id, 0; -ENOENT when none. */
	int (*local_workload)(void *ctx, const struct sockaddr_storage *addr, char *id, size_t len);
	/* The current certificate of id, with a reference (cert_put); NULL when this node has none. Any thread. */
	struct xm_cert *(*certificate)(void *ctx, const char *id);
	/* The identity the pod at target (IP and port) must prove: 0, or -ENOENT when it is no known pod. */
	int (*peer_identity)(void *ctx, const struct sockaddr_storage *target, char *id, size_t len);
	/*
	 * Optional, loop thread: what else ztunnel's CONNECT says about the source. The baggage of the workload
	 * at client (a pod of this node) into baggage, and, when the application dialled a Service (svc_id; 0: a
	 * pod directly), its hostname into host, for Forwarded's ;host=. Each "" when unknown (no header, no host=).
	 */
	void (*request_meta)(void *ctx, const struct sockaddr_storage *client, uint32_t svc_id, char *baggage,
			     size_t baggage_len, char *host, size_t host_len);
	void *ctx;
};

struct hbone_outbound_config {
	struct xm_loop *loop; /* the hbone thread's loop (running or not yet) */
	X509_STORE *trust;    /* the trust bundle (reference taken) */
	hbone_verify_fn verify;
	void *verify_ctx;
	struct hbone_outbound_ops ops;
	int origdst_fd;	     /* xm_hbone_origdst (not owned); -1: the listener accepts nothing it can carry */
	uint16_t hbone_port; /* where peers serve HBONE; 0: HBONE_PORT (tests use another) */
};

struct hbone_outbound_stats {
	atomic_ullong captured;	 /* connections accepted on the outbound listener */
	atomic_ullong submitted; /* sockets handed over with hbone_outbound_submit */
	atomic_ullong refused[HBONE_OB_REFUSALS];
};

struct hbone_outbound;

#define HBONE_OB_FAMILIES 2 /* one outbound listener per family: [0] IPv4, [1] IPv6 (the node's InternalIPs) */

/* The client (pool) on cfg->loop, counting into counters. NULL when out of memory. */
struct hbone_outbound *hbone_outbound_new(const struct hbone_outbound_config *cfg, struct hbone_counters *counters);
/*
 * Control thread: listens on addr (AF_INET; port 0 picks one), then has the loop accept there instead of on the
 * previous listener (closed). Connections queue in the backlog until the loop takes it over. 0 or -errno
 * (the previous listener is kept).
 */
int hbone_outbound_listen(struct hbone_outbound *ob, const struct sockaddr_in *addr);
/* The same for the IPv6 listener (the node's IPv6 InternalIP; IPV6_V6ONLY): each family has its own. */
int hbone_outbound_listen6(struct hbone_outbound *ob, const struct sockaddr_in6 *addr);
/*
 * Control thread: the same with a listening socket a previous agent handed over (daemon/listen_handover.h),
 * owned from now on, as the listener of its family (IPv4 or IPv6); its queued connections are accepted as
 * captured ones. 0 or -errno (fd closed).
 */
int hbone_outbound_adopt(struct hbone_outbound *ob, int fd);
/*
 * Loop thread, draining (an agent restart): accepts no more (the listeners' queues wait for the next agent),
 * hbone_outbound_submit refuses, the pool opens no new stream and its connections close once their streams
 * ended (hbone_client_drain). Fills lfds with the listening sockets, [0] IPv4 and [1] IPv6 (still ob's, closed
 * by _free; -1: none of that family), and returns how many there are.
 */
int hbone_outbound_drain(struct hbone_outbound *ob, int lfds[HBONE_OB_FAMILIES]);
/* Loop thread: hbone_client_recheck on the pool (nothing while draining). How many connections it retired. */
size_t hbone_outbound_recheck(struct hbone_outbound *ob, hbone_stale_fn stale, void *ctx);
/* Where it listens (port 0: nowhere yet). */
struct sockaddr_in hbone_outbound_address(const struct hbone_outbound *ob);
struct sockaddr_in6 hbone_outbound_address6(const struct hbone_outbound *ob);
/* Control thread: from now on hbone_outbound_submit refuses (-ENOTCONN); before the loop stops. */
void hbone_outbound_stop(struct hbone_outbound *ob);
/* Control thread, with the loop stopped: resets what was handed over and not started, closes everything. */
void hbone_outbound_free(struct hbone_outbound *ob);

/* Any thread: whether hbone_outbound_submit would take a socket. */
bool hbone_outbound_available(const struct hbone_outbound *ob);
/* Any thread: tunnel_submit's contract (daemon/tunnel.h), fd owned from now on. */
int hbone_outbound_submit(struct hbone_outbound *ob, int fd, const struct xm_tunnel_req *req,
			  const struct xm_tunnel_done *done);

const struct hbone_outbound_stats *hbone_outbound_stats(const struct hbone_outbound *ob);
/* `xmesh status`: the text line(s), or the members of the "client" JSON object; and the metric families. */
void hbone_outbound_status(const struct hbone_outbound *ob, const struct hbone_counters *ctr, bool json,
			   struct strbuf *out);
void hbone_outbound_collect(const struct hbone_outbound *ob, const struct hbone_counters *ctr, struct xm_scrape *sc);

#endif
