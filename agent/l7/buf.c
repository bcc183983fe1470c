// SPDX-License-Identifier: Apache-2.0
/* The per-thread cache of connection buffers (l7/buf.h): no lock, each worker reuses its own. */
#include "l7/buf.h"

static __thread char *cache[L7_BUF_CACHE];
static __thread unsigned int n_cached;

char *l7_buf_alloc(void)
{
	return n_cached ? cache[--n_cached] : malloc(L7_BUF_CAP);
}

void l7_buf_release(char *data)
{
	if (n_cached < L7_BUF_CACHE)
		cache[n_cached++] = data;
	else
		free(data);
}

void l7_buf_cache_drain(void)
{
	while (n_cached)
		free(cache[--n_cached]);
}
