/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Kubernetes API client: one thread per watched kind lists the kind (pages of `limit`, `continue`) and
 * then watches it from the list's resourceVersion (`watch=1&allowWatchBookmarks=true`), as client-go's
 * reflector does; an expired resourceVersion (410, as an ERROR event or as the HTTP status) relists; a watch
 * that ends is reopened at once, one that fails or stalls after a jittered exponential backoff. A kind the
 * server does not serve (404: an Istio CRD not installed) is logged once and asked for again later.
 *
 * Each object is parsed on its watcher's thread, alone (config_parse_object), into a change keyed
 * "Kind/namespace/name" handed to a sink (the config thread, which coalesces them into one build). An object
 * with errors is rejected alone: logged with its namespace/name, counted, and left out (a deletion for the
 * sink). HTTP and TLS are libcurl's; JSON is read by the config's YAML reader.
 */
#ifndef XMESH_KUBE_CLIENT_H
#define XMESH_KUBE_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "kube/kubeconfig.h"

struct strbuf;
struct api_change;

struct kube_kind {
	const char *kind;
	const char *group; /* "" for the core API */
	const char *resource;
	const char *versions[3]; /* tried in order: the first one the server serves is watched */
};

/* The kinds the client watches (deploy/clusterrole.yaml grants exactly these: tests/unit/test_deploy.c). */
const struct kube_kind *kube_watched_kinds(size_t *n);

/*
 * The reconnect backoff, jittered exponential: *step_ms (0 after a success) doubles from 100 ms up to cap_ms
 * (at least 100 ms), and the wait is drawn uniformly from [step/2, step] (so restarted API servers are not
 * hit by every node at once). Returns the wait in ms.
 */
unsigned kube_backoff_next(unsigned *step_ms, unsigned cap_ms, unsigned *seed);

/* Takes the changes (config_thread_api_changes). */
typedef int (*kube_sink_fn)(void *ctx, struct api_change *changes, size_t n);

struct kube_client_opts {
	bool allow_insecure;	  /* --insecure: honour insecure-skip-tls-verify */
	unsigned watch_timeout_s; /* a watch with no byte for this long is reopened (0: 120 s) */
	unsigned absent_retry_s;  /* a kind the server does not serve is asked for again after this (0: 60 s) */
	unsigned backoff_max_ms;  /* the reconnect backoff's cap (0: 30 s); it starts at 100 ms */
	unsigned list_limit;	  /* items per list page (0: 500) */
};

struct kube_client;

/*
 * Starts one watcher thread per kind. ep is taken (freed by kube_client_stop, or here on failure). NULL on
 * failure, with the reason in err (an insecure endpoint without allow_insecure, no memory, threads).
 */
struct kube_client *kube_client_start(struct kube_endpoint *ep, const struct kube_client_opts *opts, kube_sink_fn sink,
				      void *sink_ctx, char *err, size_t err_size);

void kube_client_stop(struct kube_client *c);

/* True once every kind served by the server has been listed at least once (absent kinds count as synced). */
bool kube_client_synced(struct kube_client *c);

/* Objects rejected now (parsed with errors), over every kind. */
unsigned long kube_client_rejected(struct kube_client *c);

/* `xmesh status`: one line per kind (text), or a "kubernetes" JSON member starting with a comma (json). */
void kube_client_render_status(struct kube_client *c, bool json, struct strbuf *out);

#endif
