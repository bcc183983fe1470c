/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The socket LB's map fds, as a plain struct: what lbmap, outlier and the renderers need from the datapath,
 * without depending on how the datapath loads its objects (no include of datapath.h or skeletons).
 */
#ifndef XMESH_DATAPATH_MAP_FDS_H
#define XMESH_DATAPATH_MAP_FDS_H

/* Fds of the maps that userspace reads and writes. */
struct xm_map_fds {
	int services, slots, backends, backend_conns, maglev, rr_state, sock_stats;
	int outlier_cfg, outlier, outlier_svc, events, conn_metrics;
	int outlier_ids;	 /* xm_outlier_ids: svc_id -> the service port's outlier id */
	int map_errors;		 /* xm_map_errors: failed map updates of the BPF programs */
	int l7_proxy;		 /* xm_l7_proxy: where captured HTTP connects go (datapath/l7_capture.h) */
	int l7_origdst;		 /* xm_l7_origdst: original destinations of captured connections */
	int hbone_proxy;	 /* xm_hbone_proxy: the HBONE tunnel's outbound listener (datapath/hbone_capture.h) */
	int hbone_dsts;		 /* xm_hbone_dsts: remote pod addresses that go through the tunnel */
	int hbone_origdst;	 /* xm_hbone_origdst: real destinations of tunnelled connections */
	int outlier_report_prog; /* xm_outlier_report, run with BPF_PROG_TEST_RUN */
};

#endif
