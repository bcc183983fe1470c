// SPDX-License-Identifier: Apache-2.0
/* The proxy in front of service web for the l7 suites: see l7_web_proxy.h. */
#include "l7_web_proxy.h"

#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compile/snapshot.h"
#include "l7/proxy.h"

static int resolve_web(void *ctx, int listen_fd, int fd, struct xm_svc_key *vip, uint32_t *svc_id)
{
	(void)ctx, (void)listen_fd, (void)fd;
	memset(vip, 0, sizeof(*vip));
	vip->vip.v4 = htonl(0x0a60000a); /* 10.96.0.10:80, web */
	vip->port = htons(80);
	vip->proto = XM_PROTO_TCP;
	vip->family = XM_FAMILY_V4;
	*svc_id = 0;
	return 0;
}

void l7_web_proxy_start(struct l7_web_proxy *w, const char *config_fmt)
{
	struct l7_proxy_opts opts = { .n_workers = 1, .resolve = resolve_web, .on_record = records_hook };
	struct l7_proxy_addr addr = { .family = XM_FAMILY_V4, .addr.v4 = htonl(0x7f000001) };
	struct xm_compile_opts copts = { .node_name = "node-a", .maglev_size = 251 };
	uint16_t up = upstream_start();
	char *text;
	int err;

	cr_assert_neq(up, 0, "upstream did not start");
	cr_assert_geq(asprintf(&text, config_fmt, up), 0);
	w->snap = fixture_snapshot(text, &copts);
	free(text);
	w->proxy = l7_proxy_new(&opts, &err);
	cr_assert_not_null(w->proxy, "l7_proxy_new: %d", err);
	cr_assert_eq(l7_proxy_apply(w->proxy, w->snap, &w->snap->routes), 0);
	cr_assert_eq(l7_proxy_listen(w->proxy, &addr, 1), 0);
	w->port = l7_proxy_port(w->proxy);
	cr_assert_neq(w->port, 0);
}

void l7_web_proxy_stop(struct l7_web_proxy *w)
{
	l7_proxy_free(w->proxy);
	snapshot_put(w->snap);
	upstream_stop();
}

void web_send_get(struct hclient *c, const char *path)
{
	char req[512];
	int n = snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: web\r\n\r\n", path);

	hc_send(c, req, (size_t)n);
}

void web_get(struct hclient *c, const char *path, struct response *r)
{
	web_send_get(c, path);
	cr_assert(hc_read(c, r, false), "no response to GET %s", path);
}
