/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Fixture for the XDP/TC tests: a private network namespace with a veth "uplink" xmx0 (10.199.0.1/24,
 * fd00:199::1/64, MAC 02:00:00:00:00:01) whose neighbour 10.199.0.2 / fd00:199::2 (node B) is permanent,
 * the xdp_lb object loaded unpinned, services published through the agent's lbmap, and helpers that run
 * packets through BPF_PROG_TEST_RUN.
 */
#ifndef XMESH_TEST_XDP_FIXTURE_H
#define XMESH_TEST_XDP_FIXTURE_H

#include <stdbool.h>
#include <stdint.h>

#include <xmesh/xdp.h>

#include "compile/compile.h"
#include "lbmap/lbmap.h"
#include "xdp_pkt.h"

#define XFX_IF_ADDR4 "10.199.0.1"
#define XFX_IF_ADDR6 "fd00:199::1"
#define XFX_NODE_B4  "10.199.0.2"
#define XFX_NODE_B6  "fd00:199::2"
#define XFX_MAGLEV   1021

/*
 * Suite time limit (criterion counts the set-up): the verifier takes about 4 s over xm_xdp_lb on 6.1 in the
 * vmtests' QEMU without KVM (45 s before docs/xdp.md "Verifier cost"; under 1 s here), a whole test there
 * 4-5 s, and a slow CI hour can double that.
 */
#define XFX_SUITE_TIMEOUT 60

extern const uint8_t xfx_node_b_mac[6];

struct xfx_backend {
	const char *addr;
	uint16_t port; /* host order */
	bool local;
	bool ready;
	const char *node_addr; /* remote: the node's InternalIP */
};

struct xfx {
	struct xdp_lb *skel;
	struct xm_map_fds fds;
	struct xm_lbmap *lbmap;
	int ifindex;
	int prog_xdp, prog_tc;
	bool skipped;
};

extern struct xfx xfx;

void xfx_setup(void);
void xfx_teardown(void);

/* Publishes one external VIP service port (Maglev, XFX_MAGLEV slots) with these backends. */
void xfx_publish(const char *vip, uint16_t port, int proto, const struct xfx_backend *b, int n);
/* The same with outlier detection (od: the DestinationRule's outlierDetection, NULL: off). */
void xfx_publish_od(const char *vip, uint16_t port, int proto, const struct xfx_backend *b, int n,
		    const struct xm_outlier_detection *od);

/*
 * Publishes one VIP port of the Service test/name: an external VIP (XDP balances it) or a ClusterIP (only the
 * socket LB does). Republishing a VIP replaces it; the other VIPs published stay.
 */
void xfx_publish_svc(const char *name, const char *vip, bool external, uint16_t port, int proto,
		     const struct xfx_backend *b, int n, const struct xm_outlier_detection *od);

/* Runs the XDP program on in; returns the verdict, output in out/out_len. */
int xfx_run_xdp(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len);

/* Runs the TC program on in; returns its verdict, output in out/out_len. */
int xfx_run_tc(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len);

/* Runs iproute2 with these arguments in the fixture's namespace (a test's own routes and neighbours). */
void xfx_ip(const char *args);

uint64_t xfx_stat(enum xm_xdp_stat s);
uint64_t xfx_ct_entries(void);

#endif
