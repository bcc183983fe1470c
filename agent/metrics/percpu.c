// SPDX-License-Identifier: Apache-2.0
#include "metrics/percpu.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int percpu_lookup_sum(int map_fd, const void *key, size_t n_fields, uint64_t *sums)
{
	int ncpu = libbpf_num_possible_cpus(), cpu, err = 0;
	uint64_t *values;
	size_t f;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	if (map_fd < 0)
		return -EBADF;
	if (!n_fields)
		return -EINVAL;
	/* The kernel copies one slot per possible CPU, each rounded up to 8 bytes: __u64 fields need no padding. */
	values = calloc((size_t)ncpu * n_fields, sizeof(*values));
	if (!values)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, key, values)) {
		err = -errno;
		goto out;
	}
	memset(sums, 0, n_fields * sizeof(*sums));
	for (cpu = 0; cpu < ncpu; cpu++)
		for (f = 0; f < n_fields; f++)
			sums[f] += values[(size_t)cpu * n_fields + f];
out:
	free(values);
	return err;
}

int percpu_sum_u64(int map_fd, uint32_t n_keys, uint64_t *sums)
{
	uint64_t *acc = calloc(n_keys ? n_keys : 1, sizeof(*acc));
	uint32_t key;
	int err = 0;

	if (!acc)
		return -ENOMEM;
	for (key = 0; key < n_keys && !err; key++)
		err = percpu_lookup_sum(map_fd, &key, 1, &acc[key]);
	if (!err)
		memcpy(sums, acc, n_keys * sizeof(*sums));
	free(acc);
	return err;
}
