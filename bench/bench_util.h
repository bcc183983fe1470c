/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the single-file benchmarks share: die() with the program's name (define BENCH_NAME before including
 * this), and the usual start of a BPF_PROG_TEST_RUN benchmark: root, a private network namespace, a CPU.
 */
#ifndef XMESH_BENCH_UTIL_H
#define XMESH_BENCH_UTIL_H

#include <errno.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifndef BENCH_NAME
#error "define BENCH_NAME before including bench_util.h"
#endif

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, BENCH_NAME ": ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/* Root, or die; then a network namespace of our own (nothing the run creates is seen outside it). */
static inline void bench_private_netns(void)
{
	if (geteuid() != 0)
		die("needs root");
	if (unshare(CLONE_NEWNET) < 0)
		die("unshare(CLONE_NEWNET): %s", strerror(errno));
}

/* Runs the rest on CPU cpu (none when negative). */
static inline void bench_pin_cpu(long cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET((int)cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity(%ld): %s", cpu, strerror(errno));
}

#endif
