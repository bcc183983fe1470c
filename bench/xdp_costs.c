// SPDX-License-Identifier: Apache-2.0
/*
 * xdp_costs: what single primitives cost by the XDP benchmark's method A (one BPF_PROG_TEST_RUN call with
 * repeat=1 per packet, the mean of the kernel's `duration`), next to a bare XDP_PASS in the same run:
 * the first memory access beyond the packet, a further page, a per-CPU counter, a hash lookup, an LRU hash
 * hit, miss and insert into a full table (the connection table's shape), a clock read. bench/xdp.c's ratios
 * are sums of these (docs/xdp.md). Programs: bpf/xdp_costs.bpf.c.
 *
 *   xdp_costs [--calls N] [--rounds R] [--cpu C] [--json FILE]
 */
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <errno.h>
#include <getopt.h>
#include <sched.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BENCH_NAME "xdp_costs"
#include "bench_util.h"
#include "skel/xdp_costs.skel.h"

#define N_PROGS 9
#define PKT_LEN 74

struct key40 {
	uint32_t w[10];
};

struct val48 {
	uint64_t w[6];
};

static struct key40 key_of(uint32_t n)
{
	struct key40 k;

	memset(&k, 0, sizeof(k));
	k.w[0] = n;
	k.w[4] = 0x0a61000a;
	return k;
}

static uint32_t run_once(int fd, const uint8_t *pkt)
{
	LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = pkt, .data_size_in = PKT_LEN, .repeat = 1);

	if (bpf_prog_test_run_opts(fd, &o))
		die("BPF_PROG_TEST_RUN: %s", strerror(errno));
	return o.duration;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "calls", required_argument, NULL, 'n' },
		{ "rounds", required_argument, NULL, 'R' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "json", required_argument, NULL, 'j' },
		{ 0 },
	};
	static const char *const what[N_PROGS] = {
		"bare XDP_PASS (the floor)",
		"first memory access (array element)",
		"two pages of two arrays",
		"per-CPU array counter",
		"hash lookup, 40-byte key, hit",
		"LRU hash hit (262,144, per-CPU lists)",
		"LRU hash miss",
		"LRU hash insert, table full (evicts)",
		"bpf_ktime_get_ns",
	};
	long calls = 300000, rounds = 10, cpu = -1;
	const char *json = "build/bench/xdp_costs.json";
	struct xdp_costs *skel;
	uint8_t pkt[PKT_LEN];
	double sum[N_PROGS] = { 0 }, mean[N_PROGS];
	int fd[N_PROGS], c, lru, i;
	struct val48 v;
	struct key40 k;
	FILE *f;

	while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (c) {
		case 'n':
			calls = atol(optarg);
			break;
		case 'R':
			rounds = atol(optarg);
			break;
		case 'c':
			cpu = atol(optarg);
			break;
		case 'j':
			json = optarg;
			break;
		default:
			fprintf(stderr, "usage: xdp_costs [--calls N] [--rounds R] [--cpu C] [--json FILE]\n");
			return 2;
		}
	}
	if (rounds < 1 || calls < rounds)
		die("--calls must be >= --rounds >= 1");
	bench_private_netns();
	bench_pin_cpu(cpu);
	libbpf_set_print(NULL);
	skel = xdp_costs__open_and_load();
	if (!skel)
		die("load xdp_costs: %s", strerror(errno));
	fd[0] = bpf_program__fd(skel->progs.c_pass);
	fd[1] = bpf_program__fd(skel->progs.c_first_access);
	fd[2] = bpf_program__fd(skel->progs.c_second_access);
	fd[3] = bpf_program__fd(skel->progs.c_percpu_count);
	fd[4] = bpf_program__fd(skel->progs.c_hash_hit);
	fd[5] = bpf_program__fd(skel->progs.c_lru_hit);
	fd[6] = bpf_program__fd(skel->progs.c_lru_miss);
	fd[7] = bpf_program__fd(skel->progs.c_lru_insert);
	fd[8] = bpf_program__fd(skel->progs.c_ktime);

	memset(&v, 0, sizeof(v));
	k = key_of(7);
	if (bpf_map_update_elem(bpf_map__fd(skel->maps.c_hash), &k, &v, BPF_ANY))
		die("c_hash: %s", strerror(errno));
	/* Fill the LRU table, so that every insert evicts, as a busy connection table does. */
	lru = bpf_map__fd(skel->maps.c_lru);
	for (i = 0; i < 262144 + 1024; i++) {
		k = key_of(0x20000000u + (uint32_t)i);
		bpf_map_update_elem(lru, &k, &v, BPF_ANY);
	}
	k = key_of(12345);
	if (bpf_map_update_elem(lru, &k, &v, BPF_ANY))
		die("c_lru: %s", strerror(errno));

	memset(pkt, 0, sizeof(pkt));
	for (c = 0; c < N_PROGS; c++)
		for (i = 0; i < 1000; i++)
			run_once(fd[c], pkt);
	for (long r = 0; r < rounds; r++)
		for (c = 0; c < N_PROGS; c++)
			for (long n = 0; n < calls / rounds; n++)
				sum[c] += run_once(fd[c], pkt);

	printf("method A, %ld calls each in %ld rounds\n%-40s %8s %9s %7s\n", (calls / rounds) * rounds, rounds,
	       "primitive", "ns", "+ns", "ratio");
	for (c = 0; c < N_PROGS; c++) {
		mean[c] = sum[c] / (double)((calls / rounds) * rounds);
		printf("%-40s %8.1f %+9.1f %6.2fx\n", what[c], mean[c], mean[c] - mean[0], mean[c] / mean[0]);
	}
	f = fopen(json, "w");
	if (!f)
		die("%s: %s", json, strerror(errno));
	fprintf(f, "{\"calls\":%ld,\"costs\":[", (calls / rounds) * rounds);
	for (c = 0; c < N_PROGS; c++)
		fprintf(f, "%s{\"primitive\":\"%s\",\"ns\":%.1f,\"over_floor_ns\":%.1f}", c ? "," : "", what[c],
			mean[c], mean[c] - mean[0]);
	fprintf(f, "]}\n");
	fclose(f);
	printf("wrote %s\n", json);
	xdp_costs__destroy(skel);
	return 0;
}
