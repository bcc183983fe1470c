// SPDX-License-Identifier: Apache-2.0
#include "metrics/metrics.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "metrics/http.h"
#include "metrics/prom.h"
#include "metrics/registry.h"

struct metrics_source {
	xm_metrics_collect_cb collect;
	void *ctx;
};

struct xm_metrics {
	struct mhttp_server *http;
	atomic_bool ready;
	struct metrics_source sources[XM_METRICS_MAX_SOURCES];
	size_t n_sources;
};

static bool path_is(const struct mhttp_request *req, const char *path)
{
	size_t n = strlen(path);

	return req->path_len == n && !memcmp(req->path, path, n);
}

void metrics_render(const struct xm_metrics *m, struct strbuf *out)
{
	struct xm_scrape *sc = scrape_new();
	size_t i;

	if (!sc) {
		out->oom = true;
		return;
	}
	metrics_collect_build_info(sc);
	for (i = 0; i < m->n_sources; i++)
		m->sources[i].collect(sc, m->sources[i].ctx);
	/* Last, so that it counts what this scrape's collectors had refused. */
	scrape_u64(scrape_family(sc, "xmesh_metrics_samples_rejected_total", "counter",
				 "Samples left out of a scrape because the registry refused them (invalid names or "
				 "labels, no memory); the agent logs the first one."),
		   NULL, NULL, 0, scrape_rejected_total());
	scrape_render(sc, out);
	scrape_free(sc);
}

static void on_request(const struct mhttp_request *req, struct mhttp_response *resp, void *ctx)
{
	struct xm_metrics *m = ctx;

	if (path_is(req, "/metrics")) {
		resp->content_type = PROM_CONTENT_TYPE;
		metrics_render(m, &resp->body);
	} else if (path_is(req, "/healthz/ready")) {
		bool ready = atomic_load(&m->ready);

		resp->status = ready ? 200 : 503;
		sb_puts(&resp->body, ready ? "ready\n" : "not ready\n");
	} else {
		resp->status = 404;
		sb_puts(&resp->body, "404 Not Found: try /metrics or /healthz/ready\n");
	}
}

struct xm_metrics *metrics_listen(struct xm_loop *loop, const char *addr, xm_metrics_collect_cb collect, void *ctx)
{
	struct xm_metrics *m = calloc(1, sizeof(*m));

	if (!m)
		return NULL;
	atomic_init(&m->ready, false);
	if (collect)
		metrics_add_source(m, collect, ctx);
	m->http = mhttp_listen(loop, addr ? addr : XM_METRICS_DEFAULT_ADDR, NULL, on_request, m);
	if (!m->http) {
		free(m);
		return NULL;
	}
	return m;
}

int metrics_add_source(struct xm_metrics *m, xm_metrics_collect_cb collect, void *ctx)
{
	if (!collect)
		return -EINVAL;
	if (m->n_sources >= XM_METRICS_MAX_SOURCES)
		return -ENOSPC;
	m->sources[m->n_sources++] = (struct metrics_source){ collect, ctx };
	return 0;
}

void metrics_set_ready(struct xm_metrics *m, bool ready)
{
	atomic_store(&m->ready, ready);
}

int metrics_port(const struct xm_metrics *m)
{
	return mhttp_port(m->http);
}

void metrics_close(struct xm_metrics *m)
{
	if (!m)
		return;
	mhttp_close(m->http);
	free(m);
}
