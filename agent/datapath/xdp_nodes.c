// SPDX-License-Identifier: Apache-2.0
#include "datapath/xdp_nodes.h"

#include <bpf/bpf.h>
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/log.h"

static int key_cmp(const void *a, const void *b)
{
	return memcmp(a, b, sizeof(struct xm_node_addr_key));
}

int xdp_node_addrs_sync(int fd, const struct xm_node_addrs *na)
{
	struct xm_node_addr_key k, next, *prev = NULL;
	__u32 one = 1;
	size_t i;
	int err = 0;

	for (i = 0; i < na->n; i++) {
		if (bpf_map_update_elem(fd, &na->addrs[i], &one, BPF_ANY) < 0 && !err) {
			err = -errno;
			log_error("xm_node_addrs: update: %s (IPIP/IP6IP6 from that node is dropped)", strerror(errno));
		}
	}
	while (bpf_map_get_next_key(fd, prev, &next) == 0) {
		bool keep;

		k = next;
		keep = na->n && bsearch(&k, na->addrs, na->n, sizeof(*na->addrs), key_cmp);
		if (!keep && bpf_map_delete_elem(fd, &k) == 0) {
			prev = NULL;
			continue;
		}
		prev = &k;
	}
	return err;
}
