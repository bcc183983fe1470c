/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Kubernetes watch stream decoder: the body of a `watch=1` response is a sequence of JSON objects, one per
 * line ({"type":"ADDED","object":{...}}), sent in HTTP chunks that may split a line anywhere (libcurl removes
 * the chunked framing). Bytes go in as they arrive; each complete line is parsed with the project's YAML reader
 * (JSON is YAML) and handed to a callback. The input is untrusted: a line is bounded in size, and a line that
 * is not an event is reported and skipped (the rest of the stream stays usable).
 */
#ifndef XMESH_KUBE_STREAM_H
#define XMESH_KUBE_STREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "config/yaml_tree.h"

#define KUBE_STREAM_MAX_LINE (16u << 20) /* etcd's default request limit is 1.5 MiB: 16 MiB is generous */

enum kube_event_type {
	KUBE_EV_ADDED,
	KUBE_EV_MODIFIED,
	KUBE_EV_DELETED,
	KUBE_EV_BOOKMARK,
	KUBE_EV_ERROR,
};

struct kube_event {
	enum kube_event_type type;
	const struct ynode *object; /* the event's object (a mapping) */
	char resource_version[64];  /* object.metadata.resourceVersion, "" if absent */
	char ns[64], name[254];	    /* object.metadata.namespace / name, "" if absent */
	int code;		    /* ERROR: the Status object's code (410: the resourceVersion expired) */
	char message[256];	    /* ERROR: the Status object's message */
};

/* An event; returns false to stop decoding (kube_stream_feed then returns -ECANCELED). */
typedef bool (*kube_event_fn)(void *arg, const struct kube_event *ev);

struct kube_stream {
	char *buf;
	size_t len, cap;
	bool overlong; /* skipping the rest of a line past KUBE_STREAM_MAX_LINE */
	kube_event_fn fn;
	void *arg;
	unsigned long events, bad_lines;
	char last_error[256]; /* why the last bad line was refused */
};

void kube_stream_init(struct kube_stream *s, kube_event_fn fn, void *arg);
void kube_stream_free(struct kube_stream *s);

/* Feeds bytes; complete lines are decoded at once. 0, -ENOMEM, or -ECANCELED when the callback stopped. */
int kube_stream_feed(struct kube_stream *s, const char *data, size_t len);

/* True when bytes of an incomplete line are pending (a stream that ends here was cut mid-event). */
bool kube_stream_partial(const struct kube_stream *s);

/* Small accessors on JSON trees shared with the client: a string member, or NULL when absent/not a string. */
const char *ynode_str(const struct ynode *map, const char *key);
/* A member that is an integer, into *out; false when absent or not an integer. */
bool ynode_int(const struct ynode *map, const char *key, long long *out);

#endif
