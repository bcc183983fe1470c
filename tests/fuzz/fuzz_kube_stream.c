// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the Kubernetes watch stream decoder (API responses are untrusted input). The input is fed
 * in pieces whose sizes the input's first byte picks, as a transport would split it; every event's fields are
 * read, so that a decoder bug shows under ASan.
 */
#include <stdint.h>
#include <string.h>

#include "kube/stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool on_event(void *arg, const struct kube_event *ev)
{
	size_t *sum = arg;

	*sum += strlen(ev->name) + strlen(ev->ns) + strlen(ev->resource_version) + strlen(ev->message) +
		(size_t)ev->code + (size_t)ev->type + (ev->object ? ev->object->n : 0);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kube_stream s;
	size_t sum = 0, piece;

	if (!size)
		return 0;
	piece = (size_t)data[0] % 64 + 1;
	data++, size--;
	kube_stream_init(&s, on_event, &sum);
	while (size) {
		size_t n = size < piece ? size : piece;

		if (kube_stream_feed(&s, (const char *)data, n))
			break;
		data += n;
		size -= n;
	}
	(void)kube_stream_partial(&s);
	kube_stream_free(&s);
	return 0;
}
