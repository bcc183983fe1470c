/* SPDX-License-Identifier: Apache-2.0 */
/*
 * ABI of in-kernel outlier detection (Istio DestinationRule outlierDetection, Envoy semantics): the per
 * service-port policy the agent writes, the per-endpoint state sockops (and the agent, for L7 errors)
 * updates, and the ring-buffer events the agent logs and counts.
 */
#ifndef XMESH_OUTLIER_H
#define XMESH_OUTLIER_H

#include "lb.h"

#define XM_OUTLIER_MAX	     131072 /* (service port, endpoint) states */
#define XM_OUTLIER_PROBES    8	    /* slots the selection tries past an ejected endpoint */
#define XM_EVENTS_RING_BYTES (256 * 1024)

/*
 * Outlier state belongs to a Service port, whatever address its clients use (Envoy and Istio keep it per
 * cluster): the ClusterIP, each externalIP and load-balancer ingress of one Service port (same namespace,
 * name, port, protocol and address family) share it. xm_outlier_ids maps each VIP's svc_id to the port's
 * outlier id: the svc_id of one of its VIPs (the ClusterIP's when it has one, kept while that VIP stays),
 * unique like svc_ids are. xm_outlier_cfg, xm_outlier and xm_outlier_svc are keyed by the outlier id, and
 * every report and every selection translates its svc_id first. 0 in xm_outlier_ids: the svc_id itself.
 */

/* xm_outlier_cfg value, keyed by outlier id. Replaced whole by the agent on every apply that changes it. */
struct xm_outlier_cfg {
	__u32 consecutive_5xx;		/* 0: off */
	__u32 consecutive_gateway;	/* 0: off */
	__u32 consecutive_local_origin; /* used when split_local_origin */
	__u32 base_ejection_ms;
	__u32 max_ejection_ms; /* cap of base × times ejected (Istio maxEjectionTime, default 300 s) */
	__u32 interval_ms;     /* one step of times-ejected decay while healthy */
	__u16 n_endpoints;     /* ready endpoints of the service port: the base of the percentages */
	__u8 max_ejection_pct;
	__u8 min_health_pct;
	__u8 split_local_origin; /* splitExternalLocalOriginErrors */
	__u8 pad[3];
};
XM_STATIC_ASSERT(sizeof(struct xm_outlier_cfg) == 32, "xm_outlier_cfg size");

struct xm_outlier_key {
	__u32 svc_id; /* the service port's outlier id (xm_outlier_ids) */
	__u32 backend_id;
};
XM_STATIC_ASSERT(sizeof(struct xm_outlier_key) == 8, "xm_outlier_key size");

/* xm_outlier value: one endpoint of one service port. Updated under lock by sockops and the agent. */
struct xm_outlier_state {
	struct bpf_spin_lock lock;
	__u32 consecutive_local;   /* local-origin failures since the last success */
	__u32 consecutive_5xx;	   /* 5xx (and, unsplit, local-origin) failures */
	__u32 consecutive_gateway; /* 502/503/504 (and, unsplit, local-origin) failures */
	__u32 backoff;		   /* Envoy's times-ejected multiplier, decays while healthy */
	__u32 pad;
	__u64 ejected_until_ns; /* CLOCK_MONOTONIC; 0: not ejected */
	__u64 last_change_ns;	/* last ejection or return, for the decay */
	__u64 times_ejected;	/* total, for status and metrics */
};
XM_STATIC_ASSERT(sizeof(struct xm_outlier_state) == 48, "xm_outlier_state size");
XM_STATIC_ASSERT(__builtin_offsetof(struct xm_outlier_state, ejected_until_ns) == 24, "ejected_until offset");

/* xm_outlier_svc value, indexed by outlier id: endpoints ejected now (shared atomic, changed per transition). */
struct xm_outlier_svc {
	__s32 ejected;
	__u32 pad;
};
XM_STATIC_ASSERT(sizeof(struct xm_outlier_svc) == 8, "xm_outlier_svc size");

enum xm_outlier_reason {
	XM_OUTLIER_LOCAL_ORIGIN = 1, /* refused, reset or timed-out connects (sockops) */
	XM_OUTLIER_5XX = 2,	     /* consecutive 5xx (L7) */
	XM_OUTLIER_GATEWAY = 3,	     /* consecutive 502/503/504 (L7) */
};

/* What the agent reports through the xm_outlier_report program (BPF_PROG_TEST_RUN). */
enum xm_outlier_report_kind {
	XM_REPORT_LOCAL_FAILURE = 1, /* a connect the agent's proxy saw fail */
	XM_REPORT_SUCCESS = 2,	     /* a connect that succeeded */
	XM_REPORT_HTTP = 3,	     /* an upstream HTTP status (args[3]) */
	XM_REPORT_PROBE = 4,	     /* is it ejected? ends an expired ejection; XDP_DROP when ejected */
};

#define XM_REPORT_PAD 14 /* test-run input starts with an Ethernet-header-sized pad */
/* Where the agent pins xm_outlier_report under its bpffs directory, for the L7 module to open. */
#define XM_OUTLIER_REPORT_PIN "xm_outlier_report"

struct xm_outlier_report_msg {
	__u32 svc_id; /* any VIP's svc_id of the service port: the program translates it */
	__u32 backend_id;
	__u32 kind; /* enum xm_outlier_report_kind */
	__u32 http_status;
};
XM_STATIC_ASSERT(sizeof(struct xm_outlier_report_msg) == 16, "xm_outlier_report_msg size");

enum xm_event_type {
	XM_EV_EJECT = 1,
	XM_EV_RETURN = 2,
};

/* xm_events ring-buffer record. */
struct xm_event {
	__u32 type;   /* enum xm_event_type */
	__u32 svc_id; /* the outlier id: the svc_id of one VIP of the service port */
	__u32 backend_id;
	__u32 reason;	   /* enum xm_outlier_reason, for ejections */
	__u64 duration_ms; /* how long the ejection lasts */
	__u64 times_ejected;
};
XM_STATIC_ASSERT(sizeof(struct xm_event) == 32, "xm_event size");

#endif
