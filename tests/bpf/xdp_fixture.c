// SPDX-License-Identifier: Apache-2.0
#include "xdp_fixture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datapath/tcp_counters.h"
#include "datapath/xdp.h"
#include "datapath/xdp_nodes.h"
#include "sandbox.h"
#include "skel/xdp_lb.skel.h"

struct xfx xfx;

/* Every service published so far: lbmap_apply makes the maps serve exactly the state it is given. */
#define XFX_MAX_SVCS 16
static struct xm_lb_service svcs[XFX_MAX_SVCS];
static struct xm_lb_backend svc_backends[XFX_MAX_SVCS][64];
static size_t n_svcs;
const uint8_t xfx_node_b_mac[6] = { 0x02, 0x00, 0, 0, 0, 0x02 };

static void sh(const char *cmd)
{
	int rc = system(cmd);

	cr_assert_eq(rc, 0, "command failed (%d): %s", rc, cmd);
}

/* iproute2, by path: in the vmtests guest, busybox sh would run its own `ip` applet (no veth, no neigh add). */
static const char *iproute2(void)
{
	static const char *const paths[] = { "/usr/local/bin/ip", "/usr/sbin/ip", "/sbin/ip", "/bin/ip" };
	size_t i;

	for (i = 0; i < sizeof(paths) / sizeof(paths[0]); i++)
		if (access(paths[i], X_OK) == 0)
			return paths[i];
	return NULL;
}

static void write_proc(const char *path, const char *value)
{
	FILE *f = fopen(path, "w");

	cr_assert(f, "open %s: %s", path, strerror(errno));
	cr_assert(fputs(value, f) >= 0 && fclose(f) == 0, "write %s", path);
}

/* Node B is the cluster's other node: the only outer source XDP decapsulates from (compile/nodes.c). */
static void publish_nodes(void)
{
	struct xm_ip ips[2] = { { .family = 4 }, { .family = 6 } };
	struct xm_node node = { .name = "node-b", .internal_ips = ips, .n_internal_ips = 2 };
	struct xm_config cfg = { .nodes = &node, .n_nodes = 1 };
	struct xm_node_addrs na;

	inet_pton(AF_INET, XFX_NODE_B4, ips[0].bytes);
	inet_pton(AF_INET6, XFX_NODE_B6, ips[1].bytes);
	cr_assert_eq(compile_node_addrs(&cfg, &na), 0);
	cr_assert_eq(na.n, 2);
	cr_assert_eq(xdp_node_addrs_sync(bpf_map__fd(xfx.skel->maps.xm_node_addrs), &na), 0);
	node_addrs_free(&na);
}

void xfx_setup(void)
{
	const char *ip = iproute2();
	struct bpf_map *map;
	struct xm_xdp_iface ifc;
	char cmd[1024];
	uint32_t key;

	memset(&xfx, 0, sizeof(xfx));

	if (geteuid() != 0 || access("/sys/kernel/btf/vmlinux", R_OK) || !ip) {
		const char *why = geteuid() != 0 ? "needs root" : !ip ? "iproute2 (ip) not installed" : NULL;

		xfx.skipped = true;
		sandbox_cannot_run(why ? why : SANDBOX_KERNEL_LIMITATION "no BTF (/sys/kernel/btf/vmlinux)");
	}
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
	/* Forwarding first: bpf_fib_lookup refuses interfaces without it, and new ones inherit it. */
	write_proc("/proc/sys/net/ipv4/ip_forward", "1");
	write_proc("/proc/sys/net/ipv6/conf/all/forwarding", "1");
	write_proc("/proc/sys/net/ipv6/conf/default/forwarding", "1");
	snprintf(cmd, sizeof(cmd),
		 "%1$s link set lo up && %1$s link add xmx0 address 02:00:00:00:00:01 type veth peer name xmx1 && "
		 "%1$s addr add " XFX_IF_ADDR4 "/24 dev xmx0 && %1$s addr add " XFX_IF_ADDR6 "/64 dev xmx0 nodad && "
		 "%1$s link set xmx0 up && %1$s link set xmx1 up && "
		 "%1$s neigh add " XFX_NODE_B4 " lladdr 02:00:00:00:00:02 dev xmx0 nud permanent && "
		 "%1$s -6 neigh add " XFX_NODE_B6 " lladdr 02:00:00:00:00:02 dev xmx0 nud permanent",
		 ip);
	sh(cmd);
	xfx.ifindex = (int)if_nametoindex("xmx0");
	cr_assert(xfx.ifindex > 0);

	xfx.skel = xdp_lb__open();
	cr_assert(xfx.skel, "open xdp_lb: %s", strerror(errno));
	bpf_object__for_each_map (map, xfx.skel->obj)
		bpf_map__set_pin_path(map, NULL);
	cr_assert_eq(xdp_lb__load(xfx.skel), 0, "load xdp_lb (verifier)");
	xfx.prog_xdp = bpf_program__fd(xfx.skel->progs.xm_xdp_lb);
	xfx.prog_tc = bpf_program__fd(xfx.skel->progs.xm_tc_nat);

	memset(&ifc, 0, sizeof(ifc));
	inet_pton(AF_INET, XFX_IF_ADDR4, ifc.addr4.bytes);
	inet_pton(AF_INET6, XFX_IF_ADDR6, ifc.addr6.bytes);
	key = (uint32_t)xfx.ifindex;
	cr_assert_eq(bpf_map__update_elem(xfx.skel->maps.xm_xdp_ifaces, &key, sizeof(key), &ifc, sizeof(ifc), 0), 0);

	publish_nodes();

	xfx.fds.services = bpf_map__fd(xfx.skel->maps.xm_services);
	xfx.fds.slots = bpf_map__fd(xfx.skel->maps.xm_slots);
	xfx.fds.backends = bpf_map__fd(xfx.skel->maps.xm_backends);
	xfx.fds.backend_conns = bpf_map__fd(xfx.skel->maps.xm_backend_conns);
	xfx.fds.maglev = bpf_map__fd(xfx.skel->maps.xm_maglev);
	xfx.fds.rr_state = bpf_map__fd(xfx.skel->maps.xm_rr_state);
	xfx.fds.sock_stats = bpf_map__fd(xfx.skel->maps.xm_sock_stats);
	xfx.fds.outlier_cfg = bpf_map__fd(xfx.skel->maps.xm_outlier_cfg);
	xfx.fds.outlier = bpf_map__fd(xfx.skel->maps.xm_outlier);
	xfx.fds.outlier_svc = bpf_map__fd(xfx.skel->maps.xm_outlier_svc);
	xfx.fds.outlier_ids = bpf_map__fd(xfx.skel->maps.xm_outlier_ids);
	xfx.fds.events = bpf_map__fd(xfx.skel->maps.xm_events);
	xfx.lbmap = lbmap_open(&xfx.fds);
	cr_assert(xfx.lbmap);
}

void xfx_teardown(void)
{
	if (xfx.skipped)
		return;
	lbmap_free(xfx.lbmap);
	xdp_lb__destroy(xfx.skel);
}

static int svc_key_cmp(const void *a, const void *b)
{
	return memcmp(&((const struct xm_lb_service *)a)->key, &((const struct xm_lb_service *)b)->key,
		      sizeof(struct xm_svc_key));
}

void xfx_publish(const char *vip, uint16_t port, int proto, const struct xfx_backend *b, int n)
{
	xfx_publish_od(vip, port, proto, b, n, NULL);
}

void xfx_publish_od(const char *vip, uint16_t port, int proto, const struct xfx_backend *b, int n,
		    const struct xm_outlier_detection *od)
{
	char name[XM_NAME_MAX];

	snprintf(name, sizeof(name), "ext-%s", vip); /* a Service of its own per VIP */
	xfx_publish_svc(name, vip, true, port, proto, b, n, od);
}

void xfx_publish_svc(const char *name, const char *vip, bool external, uint16_t port, int proto,
		     const struct xfx_backend *b, int n, const struct xm_outlier_detection *od)
{
	struct xm_lb_state st = { .services = NULL, .n_services = 0 };
	struct xm_lb_service sorted[XFX_MAX_SVCS], *svc = NULL;
	struct xm_lbmap_stats stats;
	static uint64_t now = 0;
	struct xm_svc_key key;
	bool v6 = strchr(vip, ':') != NULL;
	int af = v6 ? AF_INET6 : AF_INET, i;
	size_t j;

	cr_assert(n <= 64);
	memset(&key, 0, sizeof(key));
	key.family = v6 ? XM_FAMILY_V6 : XM_FAMILY_V4;
	cr_assert_eq(inet_pton(af, vip, key.vip.bytes), 1);
	key.port = htons(port);
	key.proto = (uint8_t)proto;
	for (j = 0; j < n_svcs && !svc; j++)
		if (!memcmp(&svcs[j].key, &key, sizeof(key)))
			svc = &svcs[j];
	if (!svc) {
		cr_assert(n_svcs < XFX_MAX_SVCS);
		svc = &svcs[n_svcs++];
	}
	memset(svc, 0, sizeof(*svc));
	snprintf(svc->ns, sizeof(svc->ns), "test");
	snprintf(svc->name, sizeof(svc->name), "%s", name);
	svc->key = key;
	svc->algo = XM_LB_MAGLEV;
	svc->flags = external ? XM_SVC_F_EXTERNAL : 0;
	svc->maglev_size = XFX_MAGLEV;
	svc->backends = svc_backends[svc - svcs];
	for (i = 0; i < n; i++) {
		struct xm_lb_backend *lb = &svc->backends[i];

		memset(lb, 0, sizeof(*lb));
		lb->family = key.family;
		cr_assert_eq(inet_pton(af, b[i].addr, lb->addr.bytes), 1, "backend %s", b[i].addr);
		lb->port = b[i].port;
		lb->ready = b[i].ready;
		lb->local = b[i].local;
		if (b[i].node_addr)
			cr_assert_eq(inet_pton(af, b[i].node_addr, lb->node_addr.bytes), 1);
		svc->n_ready += b[i].ready;
	}
	svc->n_backends = (size_t)n;
	if (od) {
		svc->outlier_on = true;
		svc->outlier = *od;
	}
	memcpy(sorted, svcs, n_svcs * sizeof(svcs[0]));
	qsort(sorted, n_svcs, sizeof(sorted[0]), svc_key_cmp);
	st.services = sorted;
	st.n_services = n_svcs;
	/* The grace period lets replaced tables linger; tests advance time so each apply is "later". */
	now += 10000;
	cr_assert_eq(lbmap_apply(xfx.lbmap, &st, now, &stats), 0, "lbmap_apply");
	lbmap_gc(xfx.lbmap, now);
	/* What the agent does around every apply (agent/datapath/xdp_sync.c). */
	xdp_vip_filter_fill(xfx.skel->bss->xm_vip_filter, &st, false);
	cr_assert_eq(xdp_nat_backends_sync(NULL, bpf_map__fd(xfx.skel->maps.xm_nat_backends), -1, &st, 0), 0);
	lbmap_assign_ids(xfx.lbmap, &st);
	cr_assert_eq(tcp_counters_sync(bpf_map__fd(xfx.skel->maps.xm_xdp_tcp_counters), &st, NULL), 0);
}

int xfx_run_xdp(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
	struct xdp_md ctx = { .data_end = (uint32_t)in_len, .ingress_ifindex = (uint32_t)xfx.ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (uint32_t)in_len, .data_out = out,
		    .data_size_out = XP_MAX, .ctx_in = &ctx, .ctx_size_in = sizeof(ctx), .repeat = 1);

	cr_assert_eq(bpf_prog_test_run_opts(xfx.prog_xdp, &o), 0, "test_run xdp: %s", strerror(errno));
	*out_len = o.data_size_out;
	return (int)o.retval;
}

int xfx_run_tc(const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = in, .data_size_in = (uint32_t)in_len, .data_out = out,
		    .data_size_out = XP_MAX, .repeat = 1);

	cr_assert_eq(bpf_prog_test_run_opts(xfx.prog_tc, &o), 0, "test_run tc: %s", strerror(errno));
	*out_len = o.data_size_out;
	return (int)o.retval;
}

void xfx_ip(const char *args)
{
	char cmd[512];

	snprintf(cmd, sizeof(cmd), "%s %s", iproute2(), args);
	sh(cmd);
}

uint64_t xfx_stat(enum xm_xdp_stat s)
{
	int ncpu = libbpf_num_possible_cpus(), i;
	struct xm_counter vals[ncpu];
	uint32_t key = (uint32_t)s;
	uint64_t sum = 0;

	if (bpf_map_lookup_elem(bpf_map__fd(xfx.skel->maps.xm_xdp_stats), &key, vals))
		return 0;
	for (i = 0; i < ncpu; i++)
		sum += vals[i].value;
	return sum;
}

uint64_t xfx_ct_entries(void)
{
	struct xm_ct_key k, next, *prev = NULL;
	int fd = bpf_map__fd(xfx.skel->maps.xm_ct);
	uint64_t n = 0;

	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		k = next;
		prev = &k;
		n++;
	}
	return n;
}
