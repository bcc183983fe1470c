// SPDX-License-Identifier: Apache-2.0
#include "core/percpu.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

int percpu_lookup_value(int map_fd, const void *key, size_t value_size, size_t sum_len, void *value)
{
	int ncpu = libbpf_num_possible_cpus(), cpu, err = 0;
	/* The kernel copies one slot per possible CPU, each rounded up to 8 bytes. */
	size_t stride = (value_size + 7) & ~(size_t)7, f;
	unsigned char *slots;

	if (ncpu <= 0)
		return ncpu < 0 ? ncpu : -EINVAL;
	if (map_fd < 0)
		return -EBADF;
	if (!value_size || sum_len > value_size)
		return -EINVAL;
	slots = calloc((size_t)ncpu, stride);
	if (!slots)
		return -ENOMEM;
	if (bpf_map_lookup_elem(map_fd, key, slots)) {
		err = -errno;
		goto out;
	}
	for (f = 0; f + sizeof(uint64_t) <= sum_len; f += sizeof(uint64_t)) {
		uint64_t sum = 0, v;

		for (cpu = 0; cpu < ncpu; cpu++) {
			memcpy(&v, slots + (size_t)cpu * stride + f, sizeof(v));
			sum += v;
		}
		memcpy(slots + f, &sum, sizeof(sum));
	}
	memcpy(value, slots, value_size);
out:
	free(slots);
	return err;
}

int percpu_lookup_sum(int map_fd, const void *key, size_t n_fields, uint64_t *sums)
{
	return percpu_lookup_value(map_fd, key, n_fields * sizeof(*sums), n_fields * sizeof(*sums), sums);
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
