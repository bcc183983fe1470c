/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One proxy worker on 127.0.0.1 in front of the l7_proxy_fixture upstream, every connection taken as dialed to
 * the service web's VIP (10.96.0.10:80). Shared by the l7 suites that test one route table through it
 * (test_l7_faults.c, test_l7_ratelimit_proxy.c, test_l7_admission.c).
 */
#ifndef XMESH_TEST_L7_WEB_PROXY_H
#define XMESH_TEST_L7_WEB_PROXY_H

#include <stdint.h>

#include "l7_proxy_fixture.h"

struct l7_proxy;
struct xm_snapshot;

struct l7_web_proxy {
	struct l7_proxy *proxy;
	struct xm_snapshot *snap;
	uint16_t port; /* the proxy's, on 127.0.0.1 */
};

/*
 * Starts the upstream, compiles config_fmt (YAML in which every %1$u is the upstream's port) and the proxy that
 * serves it; asserts each step.
 */
void l7_web_proxy_start(struct l7_web_proxy *w, const char *config_fmt);
void l7_web_proxy_stop(struct l7_web_proxy *w);

/* Sends GET path with Host: web on c. */
void web_send_get(struct hclient *c, const char *path);
/* The same, then reads its response into r (asserting one comes). */
void web_get(struct hclient *c, const char *path, struct response *r);

#endif
