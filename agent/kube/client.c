// SPDX-License-Identifier: Apache-2.0
#include "kube/client.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "config/cache.h"
#include "config/model.h"
#include "config/yaml_tree.h"
#include "core/background.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "kube/stream.h"

#define LIST_BODY_MAX  (512u << 20) /* one list page: 500 objects of etcd's 1.5 MiB limit at most */
#define ERROR_BODY_MAX 4096
#define BACKOFF_MIN_MS 100

/* What xmesh reads (config/load.c's kinds), as the API serves them. */
static const struct kube_kind kube_kinds[] = {
	{ "Service", "", "services", { "v1" } },
	{ "EndpointSlice", "discovery.k8s.io", "endpointslices", { "v1" } },
	{ "Pod", "", "pods", { "v1" } },
	{ "Node", "", "nodes", { "v1" } },
	{ "DestinationRule", "networking.istio.io", "destinationrules", { "v1", "v1beta1" } },
	{ "VirtualService", "networking.istio.io", "virtualservices", { "v1", "v1beta1" } },
	{ "EnvoyFilter", "networking.istio.io", "envoyfilters", { "v1alpha3" } },
	{ "PeerAuthentication", "security.istio.io", "peerauthentications", { "v1", "v1beta1" } },
	/* Watched, cached and counted; not enforced yet (config/load.c parses their metadata only). */
	{ "AuthorizationPolicy", "security.istio.io", "authorizationpolicies", { "v1", "v1beta1" } },
	{ "RequestAuthentication", "security.istio.io", "requestauthentications", { "v1", "v1beta1" } },
};
#define N_KINDS (sizeof(kube_kinds) / sizeof(kube_kinds[0]))

const struct kube_kind *kube_watched_kinds(size_t *n)
{
	*n = N_KINDS;
	return kube_kinds;
}

/*
 * A sorted set of object keys, each with a value (the object's resourceVersion): an entry is one allocation,
 * "key\0value", so strcmp on it compares the key. At 10,000 objects a change costs a bsearch and a memmove.
 */
struct strset {
	char **v;
	size_t n, cap;
};

static size_t set_pos(const struct strset *s, const char *key, bool *found)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		int c = strcmp(s->v[mid], key);

		if (!c) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	*found = false;
	return lo;
}

static bool set_has(const struct strset *s, const char *key)
{
	bool found;

	set_pos(s, key, &found);
	return found;
}

/* The value kept with key, or NULL when key is not in the set. */
static const char *set_value(const struct strset *s, const char *key)
{
	bool found;
	size_t at = set_pos(s, key, &found);

	return found ? s->v[at] + strlen(s->v[at]) + 1 : NULL;
}

static int set_put(struct strset *s, const char *key, const char *value)
{
	bool found;
	size_t at = set_pos(s, key, &found), klen = strlen(key), vlen = strlen(value);
	char *entry;

	if (found && !strcmp(s->v[at] + klen + 1, value))
		return 0;
	entry = malloc(klen + vlen + 2);
	if (!entry)
		return -ENOMEM;
	memcpy(entry, key, klen + 1);
	memcpy(entry + klen + 1, value, vlen + 1);
	if (found) {
		free(s->v[at]);
		s->v[at] = entry;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		char **v = realloc(s->v, cap * sizeof(*v));

		if (!v) {
			free(entry);
			return -ENOMEM;
		}
		s->v = v;
		s->cap = cap;
	}
	memmove(s->v + at + 1, s->v + at, (s->n - at) * sizeof(*s->v));
	s->v[at] = entry;
	s->n++;
	return 0;
}

static int set_add(struct strset *s, const char *key)
{
	return set_put(s, key, "");
}

static void set_del(struct strset *s, const char *key)
{
	bool found;
	size_t at = set_pos(s, key, &found);

	if (!found)
		return;
	free(s->v[at]);
	memmove(s->v + at, s->v + at + 1, (s->n - at - 1) * sizeof(*s->v));
	s->n--;
}

static void set_free(struct strset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

struct kind_stats {
	bool synced, absent;
	const char *version; /* served version, NULL until found */
	time_t last_event;   /* wall clock of the last event or list */
	unsigned long events, reconnects, relists;
	size_t objects, rejected;
	char last_error[256];
};

struct watcher {
	struct kube_client *c;
	const struct kube_kind *k;
	pthread_t thread;
	bool started;
	CURL *curl;
	int version; /* index in k->versions; -1: not known yet */
	char api_version[64];
	char rv[64];
	struct strset known;	/* keys of the objects the sink was told about (rejected ones too), with their RV */
	struct strset rejected; /* keys of the objects rejected now */
	struct strset listed;	/* during a list: the keys it returned */
	struct api_change *batch;
	size_t n_batch, cap_batch;
	bool need_relist, stream_failed;
	bool watching, stalled, watch_ok; /* a watch is open; it went silent past watch_timeout_s */
	curl_off_t last_dn;
	double last_byte_ms;
	bool listing, list_nomem; /* a list in progress collects the keys it returned in listed */
	long http_code;
	char err_body[ERROR_BODY_MAX + 1];
	size_t err_len;
	char *body; /* a list page */
	size_t body_len, body_cap;
	bool body_too_big;
	struct kube_stream stream;
	unsigned backoff_ms;
	unsigned seed;
	struct kind_stats st; /* under c->lock */
};

struct kube_client {
	struct kube_endpoint ep;
	struct kube_client_opts opts;
	kube_sink_fn sink;
	void *sink_ctx;
	pthread_mutex_t lock; /* guards every watcher's st, and stop */
	pthread_cond_t wake;
	bool stop;
	atomic_bool stopping; /* read by curl's progress callback */
	struct watcher w[N_KINDS];
};

static double mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Sleeps ms unless stopped meanwhile; false when stopping. */
static bool nap(struct kube_client *c, unsigned ms)
{
	struct timespec ts;
	bool stop;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&c->lock);
	while (!c->stop && pthread_cond_timedwait(&c->wake, &c->lock, &ts) != ETIMEDOUT)
		;
	stop = c->stop;
	pthread_mutex_unlock(&c->lock);
	return !stop;
}

/* Records why the last request failed; logged when it differs from the previous reason (no log storms). */
static void set_error(struct watcher *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_error(struct watcher *w, const char *fmt, ...)
{
	char msg[256];
	va_list ap;
	bool changed;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pthread_mutex_lock(&w->c->lock);
	changed = strcmp(w->st.last_error, msg) != 0;
	snprintf(w->st.last_error, sizeof(w->st.last_error), "%s", msg);
	pthread_mutex_unlock(&w->c->lock);
	if (changed)
		log_warn("kubernetes: %s: %s", w->k->resource, msg);
}

static void clear_error(struct watcher *w)
{
	pthread_mutex_lock(&w->c->lock);
	if (w->st.last_error[0])
		log_info("kubernetes: %s: working again", w->k->resource);
	w->st.last_error[0] = '\0';
	pthread_mutex_unlock(&w->c->lock);
}

unsigned kube_backoff_next(unsigned *step_ms, unsigned cap_ms, unsigned *seed)
{
	*step_ms = *step_ms ? *step_ms * 2 : BACKOFF_MIN_MS;
	if (*step_ms > cap_ms)
		*step_ms = cap_ms;
	return *step_ms / 2 + (unsigned)rand_r(seed) % (*step_ms / 2 + 1);
}

static bool backoff(struct watcher *w)
{
	return nap(w->c, kube_backoff_next(&w->backoff_ms, w->c->opts.backoff_max_ms, &w->seed));
}

static int push_change(struct watcher *w, const char *key, struct xm_config *objs)
{
	struct api_change *ch;

	if (w->n_batch == w->cap_batch) {
		size_t cap = w->cap_batch ? w->cap_batch * 2 : 64;
		struct api_change *b = realloc(w->batch, cap * sizeof(*b));

		if (!b)
			goto nomem;
		w->batch = b;
		w->cap_batch = cap;
	}
	ch = &w->batch[w->n_batch];
	ch->key = strdup(key);
	if (!ch->key)
		goto nomem;
	ch->objs = objs;
	w->n_batch++;
	return 0;
nomem:
	/* The object keeps its previous state in the cache; the next change to it (or a relist) tries again. */
	log_error("kubernetes: %s: out of memory; the change is dropped", key);
	set_put(&w->known, key, "");
	if (objs)
		config_free(objs);
	free(objs);
	return -ENOMEM;
}

static void flush(struct watcher *w)
{
	if (!w->n_batch)
		return;
	if (w->c->sink(w->c->sink_ctx, w->batch, w->n_batch))
		log_error("kubernetes: %s: out of memory handing %zu changes over", w->k->resource, w->n_batch);
	w->n_batch = 0;
}

static void make_key(const struct watcher *w, const char *ns, const char *name, char *key, size_t size)
{
	if (ns[0])
		snprintf(key, size, "%s/%s/%s", w->k->kind, ns, name);
	else
		snprintf(key, size, "%s/%s", w->k->kind, name);
}

static void update_counts(struct watcher *w)
{
	pthread_mutex_lock(&w->c->lock);
	w->st.objects = w->known.n;
	w->st.rejected = w->rejected.n;
	w->st.last_event = time(NULL);
	w->st.events++;
	pthread_mutex_unlock(&w->c->lock);
}

/* An object added, modified (deleted false) or deleted: parsed alone, handed to the sink as a change. */
static void on_object(struct watcher *w, const struct ynode *obj, const char *ns, const char *name, const char *rv,
		      bool deleted)
{
	const char *known_rv;
	struct xm_diags diags = { 0 };
	struct xm_config *objs = NULL;
	char key[400];
	int n_errors = 0;

	make_key(w, ns, name, key, sizeof(key));
	if (w->listing && set_add(&w->listed, key))
		w->list_nomem = true;
	/* The same resourceVersion is the same object (a relist, a replayed event): nothing to parse or log. */
	known_rv = deleted || !rv[0] ? NULL : set_value(&w->known, key);
	if (known_rv && !strcmp(known_rv, rv))
		return;
	if (deleted) {
		set_del(&w->known, key);
		set_del(&w->rejected, key);
		push_change(w, key, NULL);
		update_counts(w);
		return;
	}
	objs = calloc(1, sizeof(*objs));
	if (!objs || config_parse_object(obj, w->k->kind, w->api_version, key, objs, &diags, &n_errors)) {
		log_error("kubernetes: %s: out of memory parsing it; left as it was", key);
		free(objs);
		diags_free(&diags);
		return;
	}
	for (size_t i = 0; i < diags.n; i++) {
		const struct xm_diag *d = &diags.items[i];

		if (d->warning)
			log_warn("kubernetes: %s %s%s%s: warning: %s", w->k->kind, ns, ns[0] ? "/" : "", name, d->msg);
		else
			log_error("kubernetes: %s %s%s%s rejected: %s", w->k->kind, ns, ns[0] ? "/" : "", name, d->msg);
	}
	diags_free(&diags);
	if (set_put(&w->known, key, rv))
		set_put(&w->known, key, ""); /* no memory for the RV: parsed again next time */
	if (n_errors) {
		/* Left out, alone: what it was before goes too (the API holds it as it is now). */
		config_free(objs);
		free(objs);
		objs = NULL;
		set_add(&w->rejected, key);
	} else {
		set_del(&w->rejected, key);
	}
	push_change(w, key, objs);
	update_counts(w);
}

/* --- HTTP --- */

/*
 * At least once a second during a transfer: the stop, and a watch's stall (no byte for watch_timeout_s; curl's
 * own low-speed check averages over a window of seconds, this one is exact).
 */
static int on_progress(void *arg, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
	struct watcher *w = arg;
	double now;

	(void)dt, (void)ut, (void)un;
	if (atomic_load(&w->c->stopping))
		return 1;
	if (!w->watching)
		return 0;
	now = mono_ms();
	if (dn != w->last_dn) {
		w->last_dn = dn;
		w->last_byte_ms = now;
	} else if (now - w->last_byte_ms > w->c->opts.watch_timeout_s * 1000.0) {
		w->stalled = true;
		return 1;
	}
	return 0;
}

/* The status of the response being received (curl knows it before the first body byte). */
static long status_now(struct watcher *w)
{
	long code = 0;

	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &code);
	return code;
}

static void keep_error_body(struct watcher *w, const char *data, size_t n)
{
	size_t room = ERROR_BODY_MAX - w->err_len;

	if (n > room)
		n = room;
	memcpy(w->err_body + w->err_len, data, n);
	w->err_len += n;
	w->err_body[w->err_len] = '\0';
}

static size_t on_list_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct watcher *w = arg;
	size_t n = size * nmemb;

	if (status_now(w) != 200) {
		keep_error_body(w, data, n);
		return n;
	}
	if (w->body_len + n + 1 > LIST_BODY_MAX) {
		w->body_too_big = true;
		return 0;
	}
	if (w->body_len + n + 1 > w->body_cap) {
		size_t cap = w->body_cap ? w->body_cap : 65536;
		char *b;

		while (cap < w->body_len + n + 1)
			cap *= 2;
		b = realloc(w->body, cap);
		if (!b)
			return 0;
		w->body = b;
		w->body_cap = cap;
	}
	memcpy(w->body + w->body_len, data, n);
	w->body_len += n;
	w->body[w->body_len] = '\0';
	return n;
}

static size_t on_watch_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct watcher *w = arg;
	size_t n = size * nmemb;
	int err;

	if (status_now(w) != 200) {
		keep_error_body(w, data, n);
		return n;
	}
	if (!w->watch_ok) {
		w->watch_ok = true; /* a watch answered: whatever failed before works again */
		clear_error(w);
	}
	err = kube_stream_feed(&w->stream, data, n);
	flush(w);	    /* the events of one read are one batch for the sink (which coalesces further) */
	return err ? 0 : n; /* 0: curl stops the transfer (a 410 ERROR event, or no memory) */
}

/* The message of an error response (a Status object), or its first bytes. */
static void error_message(struct watcher *w, char *out, size_t size);

struct status_ctx {
	char *out;
	size_t size;
};

static void on_status_doc(void *arg, const struct ydoc *doc)
{
	struct status_ctx *s = arg;
	const char *m = doc->root ? ynode_str(doc->root, "message") : NULL;

	if (m)
		snprintf(s->out, s->size, "%s", m);
}

static void error_message(struct watcher *w, char *out, size_t size)
{
	struct xm_diags diags = { 0 };
	struct status_ctx s = { out, size };
	int n_errors = 0;

	snprintf(out, size, "%.120s", w->err_body);
	for (char *p = out; *p; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	if (w->err_len && w->err_body[0] == '{')
		ytree_read_string(w->err_body, w->err_len, "<status>", &diags, &n_errors, on_status_doc, &s);
	diags_free(&diags);
}

/* Sets up a request: URL, TLS, the bearer token (re-read now: it rotates). 0, or -1 with the error set. */
static int prepare(struct watcher *w, const char *url, struct curl_slist **headers)
{
	const struct kube_endpoint *ep = &w->c->ep;
	char token[8192], err[256], *auth = NULL;
	CURL *h = w->curl;

	curl_easy_reset(h);
	w->http_code = 0;
	w->err_len = 0;
	w->err_body[0] = '\0';
	if (kube_endpoint_token(ep, token, sizeof(token), err, sizeof(err))) {
		set_error(w, "%s", err);
		return -1;
	}
	*headers = curl_slist_append(NULL, "Accept: application/json");
	if (token[0] && asprintf(&auth, "Authorization: Bearer %s", token) >= 0) {
		struct curl_slist *l = curl_slist_append(*headers, auth);

		if (l)
			*headers = l;
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	explicit_bzero(token, sizeof(token));
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "xmesh/" XMESH_VERSION);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https,http");
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(h, CURLOPT_XFERINFODATA, w);
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* gzip when the server offers it */
	if (ep->ca_file)
		curl_easy_setopt(h, CURLOPT_CAINFO, ep->ca_file);
	if (ep->ca_data.data) {
		struct curl_blob b = { ep->ca_data.data, ep->ca_data.len, CURL_BLOB_COPY };

		curl_easy_setopt(h, CURLOPT_CAINFO_BLOB, &b);
	}
	if (ep->cert_file)
		curl_easy_setopt(h, CURLOPT_SSLCERT, ep->cert_file);
	if (ep->key_file)
		curl_easy_setopt(h, CURLOPT_SSLKEY, ep->key_file);
	if (ep->cert_data.data) {
		struct curl_blob b = { ep->cert_data.data, ep->cert_data.len, CURL_BLOB_COPY };

		curl_easy_setopt(h, CURLOPT_SSLCERT_BLOB, &b);
	}
	if (ep->key_data.data) {
		struct curl_blob b = { ep->key_data.data, ep->key_data.len, CURL_BLOB_COPY };

		curl_easy_setopt(h, CURLOPT_SSLKEY_BLOB, &b);
	}
	if (ep->insecure) { /* kube_client_start refused it unless --insecure */
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	curl_easy_setopt(h, CURLOPT_WRITEDATA, w);
	return 0;
}

static void base_url(const struct watcher *w, int version, char *url, size_t size)
{
	const struct kube_kind *k = w->k;

	if (k->group[0])
		snprintf(url, size, "%s/apis/%s/%s/%s", w->c->ep.server, k->group, k->versions[version], k->resource);
	else
		snprintf(url, size, "%s/api/%s/%s", w->c->ep.server, k->versions[version], k->resource);
}

/* What an HTTP answer other than 200 means, said so that an operator can act on it. */
static void http_failure(struct watcher *w, const char *what)
{
	char msg[200];

	error_message(w, msg, sizeof(msg));
	if (w->http_code == 401)
		set_error(w, "%s: HTTP 401 Unauthorized: the API server refused the credentials (%s%s); retrying", what,
			  w->c->ep.token_file ? "token file "
			  : w->c->ep.token    ? "bearer token"
					      : "client certificate",
			  w->c->ep.token_file ? w->c->ep.token_file : "");
	else if (w->http_code == 403)
		set_error(w, "%s: HTTP 403 Forbidden: the account may not list/watch %s (RBAC): %s; retrying", what,
			  w->k->resource, msg);
	else
		set_error(w, "%s: HTTP %ld: %s", what, w->http_code, msg);
}

enum list_result {
	LIST_OK,
	LIST_ABSENT,
	LIST_EXPIRED,
	LIST_FAILED,
	LIST_STOPPED
};

struct page_ctx {
	struct watcher *w;
	char cont[4096];
	bool bad;
};

static void on_page(void *arg, const struct ydoc *doc)
{
	struct page_ctx *p = arg;
	struct watcher *w = p->w;
	const struct ynode *items, *md;
	const char *s;

	if (!doc->root || doc->root->kind != YNODE_MAP) {
		p->bad = true;
		return;
	}
	md = ymap_get(doc->root, "metadata", NULL);
	s = ynode_str(md, "resourceVersion");
	snprintf(w->rv, sizeof(w->rv), "%s", s ? s : "");
	s = ynode_str(md, "continue");
	snprintf(p->cont, sizeof(p->cont), "%s", s ? s : "");
	items = ymap_get(doc->root, "items", NULL);
	if (items && items->kind != YNODE_SEQ) {
		p->bad = true;
		return;
	}
	for (size_t i = 0; items && i < items->n; i++) {
		const struct ynode *imd = ymap_get(items->kids[i], "metadata", NULL);
		const char *name = ynode_str(imd, "name"), *ns = ynode_str(imd, "namespace");
		const char *rv = ynode_str(imd, "resourceVersion");

		if (!name) {
			log_warn("kubernetes: %s: a listed item without metadata.name; skipped", w->k->resource);
			continue;
		}
		on_object(w, items->kids[i], ns ? ns : "", name, rv ? rv : "", false);
	}
}

/* One GET of a list page into w->body. CURLcode, with w->http_code. */
static CURLcode get_page(struct watcher *w, const char *url)
{
	struct curl_slist *headers = NULL;
	CURLcode rc;

	if (prepare(w, url, &headers))
		return CURLE_LOGIN_DENIED;
	w->body_len = 0;
	w->body_too_big = false;
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, on_list_body);
	curl_easy_setopt(w->curl, CURLOPT_TIMEOUT, 120L);
	rc = curl_easy_perform(w->curl);
	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &w->http_code);
	curl_slist_free_all(headers);
	return rc;
}

/* A full list (every page); on success the objects the list no longer has are deleted. */
static enum list_result list_pages(struct watcher *w)
{
	struct page_ctx p = { .w = w };
	char base[1024];
	unsigned limit = w->c->opts.list_limit;

	base_url(w, w->version, base, sizeof(base));
	set_free(&w->listed);
	w->listing = true;
	w->list_nomem = false;
	for (;;) {
		char url[6144];
		char *esc = p.cont[0] ? curl_easy_escape(w->curl, p.cont, 0) : NULL;
		struct xm_diags diags = { 0 };
		int n_errors = 0;
		CURLcode rc;

		snprintf(url, sizeof(url), "%s?limit=%u%s%s", base, limit, esc ? "&continue=" : "", esc ? esc : "");
		curl_free(esc);
		rc = get_page(w, url);
		if (atomic_load(&w->c->stopping))
			return LIST_STOPPED;
		if (rc == CURLE_LOGIN_DENIED)
			return LIST_FAILED;
		if (rc != CURLE_OK) {
			set_error(w, "list: %s",
				  w->body_too_big ? "a list page larger than 512 MiB" : curl_easy_strerror(rc));
			return LIST_FAILED;
		}
		if (w->http_code == 404 && !p.cont[0])
			return LIST_ABSENT;
		if (w->http_code == 410)
			return LIST_EXPIRED; /* the continue token expired: the list starts again */
		if (w->http_code != 200) {
			http_failure(w, "list");
			return LIST_FAILED;
		}
		ytree_read_string(w->body, w->body_len, "<list>", &diags, &n_errors, on_page, &p);
		diags_free(&diags);
		flush(w);
		if (n_errors || p.bad) {
			set_error(w, "list: the answer is not a %sList", w->k->kind);
			return LIST_FAILED;
		}
		if (!p.cont[0])
			break;
	}
	w->listing = false;
	if (w->list_nomem) {
		set_error(w, "list: out of memory");
		return LIST_FAILED;
	}
	/* Objects known before and not listed now were deleted while no watch was open. */
	for (size_t i = w->known.n; i-- > 0;) {
		if (set_has(&w->listed, w->known.v[i]))
			continue;
		push_change(w, w->known.v[i], NULL);
		set_del(&w->rejected, w->known.v[i]);
		set_del(&w->known, w->known.v[i]);
	}
	flush(w);
	set_free(&w->listed);
	return LIST_OK;
}

static enum list_result list_all(struct watcher *w)
{
	enum list_result r = list_pages(w);

	w->listing = false;
	set_free(&w->listed);
	return r;
}

static bool on_event(void *arg, const struct kube_event *ev)
{
	struct watcher *w = arg;

	if (ev->resource_version[0] && ev->type != KUBE_EV_ERROR)
		snprintf(w->rv, sizeof(w->rv), "%s", ev->resource_version);
	switch (ev->type) {
	case KUBE_EV_ADDED:
	case KUBE_EV_MODIFIED:
	case KUBE_EV_DELETED:
		on_object(w, ev->object, ev->ns, ev->name, ev->resource_version, ev->type == KUBE_EV_DELETED);
		return true;
	case KUBE_EV_BOOKMARK:
		return true;
	case KUBE_EV_ERROR:
		if (ev->code == 410) {
			w->need_relist = true;
			log_info("kubernetes: %s: resourceVersion %s expired (410 Gone); relisting", w->k->resource,
				 w->rv);
		} else {
			set_error(w, "watch: ERROR event %d: %s", ev->code, ev->message);
			w->stream_failed = true;
		}
		return false;
	}
	return true;
}

enum watch_result {
	WATCH_ENDED,
	WATCH_RELIST,
	WATCH_FAILED,
	WATCH_STOPPED
};

static enum watch_result watch_once(struct watcher *w)
{
	struct curl_slist *headers = NULL;
	char base[1024], url[1400];
	unsigned timeout_s = 300 + (unsigned)rand_r(&w->seed) % 300; /* client-go: 5 to 10 minutes */
	unsigned long bad_before;
	CURLcode rc;

	base_url(w, w->version, base, sizeof(base));
	snprintf(url, sizeof(url), "%s?watch=1&allowWatchBookmarks=true&resourceVersion=%s&timeoutSeconds=%u", base,
		 w->rv, timeout_s);
	if (prepare(w, url, &headers))
		return WATCH_FAILED;
	kube_stream_free(&w->stream);
	kube_stream_init(&w->stream, on_event, w);
	w->need_relist = w->stream_failed = false;
	curl_easy_setopt(w->curl, CURLOPT_WRITEFUNCTION, on_watch_body);
	/* A stalled stream: no byte for watch_timeout_s (bookmarks and events keep a healthy one moving). */
	w->watching = true;
	w->stalled = w->watch_ok = false;
	w->last_dn = 0;
	w->last_byte_ms = mono_ms();
	bad_before = w->stream.bad_lines;
	rc = curl_easy_perform(w->curl);
	w->watching = false;
	curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &w->http_code);
	curl_slist_free_all(headers);
	flush(w);
	if (w->stream.bad_lines != bad_before)
		log_warn("kubernetes: %s: %lu undecodable watch line(s) skipped: %s", w->k->resource,
			 w->stream.bad_lines - bad_before, w->stream.last_error);
	if (atomic_load(&w->c->stopping))
		return WATCH_STOPPED;
	if (w->need_relist || w->http_code == 410)
		return WATCH_RELIST;
	if (w->stream_failed)
		return WATCH_FAILED;
	if (kube_stream_partial(&w->stream) && (rc == CURLE_OK || rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR)) {
		set_error(w, "watch: the stream ended in the middle of an event (%s); reopening",
			  rc == CURLE_OK ? "at its end" : curl_easy_strerror(rc));
		return WATCH_FAILED;
	}
	if (w->stalled) {
		set_error(w, "watch: no data for %u s; reopening", w->c->opts.watch_timeout_s);
		return WATCH_FAILED;
	}
	if (rc != CURLE_OK) {
		set_error(w, "watch: %s", curl_easy_strerror(rc));
		return WATCH_FAILED;
	}
	if (w->http_code != 200) {
		http_failure(w, "watch");
		return WATCH_FAILED;
	}
	return WATCH_ENDED; /* the server's timeoutSeconds: reopened at once from the last resourceVersion */
}

static void set_synced(struct watcher *w, bool synced, bool absent)
{
	pthread_mutex_lock(&w->c->lock);
	w->st.synced = synced;
	w->st.absent = absent;
	w->st.version = w->version >= 0 ? w->k->versions[w->version] : NULL;
	w->st.objects = w->known.n;
	w->st.rejected = w->rejected.n;
	if (synced)
		w->st.last_event = time(NULL);
	pthread_mutex_unlock(&w->c->lock);
}

static void count(struct watcher *w, unsigned long *field)
{
	pthread_mutex_lock(&w->c->lock);
	(*field)++;
	pthread_mutex_unlock(&w->c->lock);
}

/* The first version the server serves; LIST_ABSENT when none (the CRD is not installed). */
static enum list_result discover_and_list(struct watcher *w)
{
	if (w->version >= 0)
		return list_all(w);
	for (int v = 0; v < 3 && w->k->versions[v]; v++) {
		enum list_result r;

		w->version = v;
		if (w->k->group[0])
			snprintf(w->api_version, sizeof(w->api_version), "%s/%s", w->k->group, w->k->versions[v]);
		else
			snprintf(w->api_version, sizeof(w->api_version), "%s", w->k->versions[v]);
		r = list_all(w);
		if (r != LIST_ABSENT)
			return r;
	}
	w->version = -1;
	return LIST_ABSENT;
}

static void *run(void *arg)
{
	struct watcher *w = arg;
	bool listed = false, absent_logged = false;
	char name[16];

	snprintf(name, sizeof(name), "k8s-%.11s", w->k->resource);
	thread_set_background(name);
	while (!atomic_load(&w->c->stopping)) {
		if (!listed) {
			enum list_result r = discover_and_list(w);

			if (r == LIST_STOPPED)
				break;
			if (r == LIST_ABSENT) {
				if (!absent_logged)
					log_info("kubernetes: %s.%s is not served (CRD not installed?); skipped, asked "
						 "again every %u s",
						 w->k->resource, w->k->group[0] ? w->k->group : "core",
						 w->c->opts.absent_retry_s);
				absent_logged = true;
				set_synced(w, false, true);
				if (!nap(w->c, w->c->opts.absent_retry_s * 1000))
					break;
				continue;
			}
			if (r == LIST_EXPIRED) { /* the continue token expired: a full list again, not in a busy loop */
				if (!backoff(w))
					break;
				continue;
			}
			if (r == LIST_FAILED) {
				count(w, &w->st.reconnects);
				if (!backoff(w))
					break;
				continue;
			}
			if (absent_logged)
				log_info("kubernetes: %s.%s is served now (%s)", w->k->resource, w->k->group,
					 w->api_version);
			absent_logged = false;
			listed = true;
			count(w, &w->st.relists);
			set_synced(w, true, false);
			clear_error(w);
			w->backoff_ms = 0;
		}
		double t0 = mono_ms();

		switch (watch_once(w)) {
		case WATCH_STOPPED:
			goto out;
		case WATCH_RELIST:
			listed = false;
			break;
		case WATCH_ENDED:
			/* A server that ends every watch at once would make a busy loop: that is a failure too. */
			if (mono_ms() - t0 < 1000) {
				if (!backoff(w))
					goto out;
			} else {
				w->backoff_ms = 0;
			}
			break;
		case WATCH_FAILED:
			count(w, &w->st.reconnects);
			if (!backoff(w))
				goto out;
			break;
		}
	}
out:
	return NULL;
}

struct kube_client *kube_client_start(struct kube_endpoint *ep, const struct kube_client_opts *opts, kube_sink_fn sink,
				      void *sink_ctx, char *err, size_t err_size)
{
	struct kube_client *c;
	pthread_condattr_t ca;

	if (ep->insecure && !opts->allow_insecure) {
		snprintf(
		    err, err_size,
		    "the kubeconfig sets insecure-skip-tls-verify: the API server's certificate would not be checked; "
		    "refused without --insecure");
		kube_endpoint_free(ep);
		return NULL;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		snprintf(err, err_size, "libcurl: initialisation failed");
		kube_endpoint_free(ep);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, err_size, "%s", strerror(ENOMEM));
		kube_endpoint_free(ep);
		return NULL;
	}
	c->ep = *ep;
	memset(ep, 0, sizeof(*ep));
	c->opts = *opts;
	if (!c->opts.watch_timeout_s)
		c->opts.watch_timeout_s = 120;
	if (!c->opts.absent_retry_s)
		c->opts.absent_retry_s = 60;
	if (!c->opts.backoff_max_ms)
		c->opts.backoff_max_ms = 30000;
	if (c->opts.backoff_max_ms < BACKOFF_MIN_MS)
		c->opts.backoff_max_ms = BACKOFF_MIN_MS;
	if (!c->opts.list_limit)
		c->opts.list_limit = 500;
	c->sink = sink;
	c->sink_ctx = sink_ctx;
	pthread_mutex_init(&c->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->wake, &ca);
	pthread_condattr_destroy(&ca);
	for (size_t i = 0; i < N_KINDS; i++) {
		struct watcher *w = &c->w[i];
		int e;

		w->c = c;
		w->k = &kube_kinds[i];
		w->version = -1;
		w->seed = (unsigned)(mono_ms() * 1000) ^ (unsigned)i * 2654435761u;
		w->curl = curl_easy_init();
		if (!w->curl) {
			snprintf(err, err_size, "libcurl: no handle");
			kube_client_stop(c);
			return NULL;
		}
		e = pthread_create(&w->thread, NULL, run, w);
		if (e) {
			snprintf(err, err_size, "start a watcher thread: %s", strerror(e));
			kube_client_stop(c);
			return NULL;
		}
		w->started = true;
	}
	log_info("kubernetes: watching %zu kinds at %s%s%s", N_KINDS, c->ep.server, c->ep.context ? ", context " : "",
		 c->ep.context ? c->ep.context : "");
	return c;
}

void kube_client_stop(struct kube_client *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	atomic_store(&c->stopping, true);
	pthread_cond_broadcast(&c->wake);
	pthread_mutex_unlock(&c->lock);
	for (size_t i = 0; i < N_KINDS; i++) {
		struct watcher *w = &c->w[i];

		if (w->started)
			pthread_join(w->thread, NULL);
		if (w->curl)
			curl_easy_cleanup(w->curl);
		api_changes_free(w->batch, w->n_batch);
		free(w->batch);
		free(w->body);
		kube_stream_free(&w->stream);
		set_free(&w->known);
		set_free(&w->rejected);
		set_free(&w->listed);
	}
	kube_endpoint_free(&c->ep);
	pthread_cond_destroy(&c->wake);
	pthread_mutex_destroy(&c->lock);
	free(c);
	curl_global_cleanup();
}

bool kube_client_synced(struct kube_client *c)
{
	bool all = true;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < N_KINDS; i++)
		all = all && (c->w[i].st.synced || c->w[i].st.absent);
	pthread_mutex_unlock(&c->lock);
	return all;
}

unsigned long kube_client_rejected(struct kube_client *c)
{
	unsigned long n = 0;

	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < N_KINDS; i++)
		n += c->w[i].st.rejected;
	pthread_mutex_unlock(&c->lock);
	return n;
}

void kube_client_render_status(struct kube_client *c, bool json, struct strbuf *out)
{
	pthread_mutex_lock(&c->lock);
	if (json) {
		sb_puts(out, ",\"kubernetes\":{\"server\":");
		sb_json_str(out, c->ep.server);
		sb_puts(out, ",\"kinds\":[");
	} else {
		sb_printf(out, "kubernetes: %s\n", c->ep.server);
	}
	for (size_t i = 0; i < N_KINDS; i++) {
		const struct kind_stats *s = &c->w[i].st;
		const char *state = s->synced ? "synced" : s->absent ? "not served" : "not synced";
		char when[32] = "never";

		if (s->last_event)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&s->last_event));
		if (json) {
			sb_printf(out, "%s{\"kind\":", i ? "," : "");
			sb_json_str(out, c->w[i].k->kind);
			sb_puts(out, ",\"version\":");
			sb_json_str(out, s->version ? s->version : "");
			sb_printf(out,
				  ",\"synced\":%s,\"served\":%s,\"objects\":%zu,\"rejected\":%zu,\"events\":%lu,"
				  "\"last_event\":%lld,\"reconnects\":%lu,\"relists\":%lu,\"last_error\":",
				  s->synced ? "true" : "false", s->absent ? "false" : "true", s->objects, s->rejected,
				  s->events, (long long)s->last_event, s->reconnects, s->relists);
			sb_json_str(out, s->last_error);
			sb_puts(out, "}");
		} else {
			sb_printf(
			    out,
			    "  %-21s %-10s %-10s objects %zu, rejected %zu, last event %s, reconnects %lu, relists "
			    "%lu%s%s\n",
			    c->w[i].k->kind, s->version ? s->version : "-", state, s->objects, s->rejected, when,
			    s->reconnects, s->relists, s->last_error[0] ? "; last error: " : "", s->last_error);
		}
	}
	if (json)
		sb_puts(out, "]}");
	pthread_mutex_unlock(&c->lock);
}
