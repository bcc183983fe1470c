// SPDX-License-Identifier: Apache-2.0
#include "sandbox.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static char own_cgroup[512];
static char orig_cgroup[1024];

const char *sandbox_unsupported(void)
{
	if (geteuid() != 0)
		return "needs root (BPF, cgroups, network namespaces)";
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		return SANDBOX_KERNEL_LIMITATION "no BTF (/sys/kernel/btf/vmlinux)";
	if (access(SANDBOX_CGROUP_ROOT "/cgroup.procs", W_OK))
		return "cgroup v2 is not mounted (writable) at " SANDBOX_CGROUP_ROOT;
	return NULL;
}

bool sandbox_supported(void)
{
	return !sandbox_unsupported();
}

void sandbox_cannot_run(const char *reason)
{
	if (!strncmp(reason, SANDBOX_KERNEL_LIMITATION, strlen(SANDBOX_KERNEL_LIMITATION)))
		cr_skip_test("%s", reason);
	cr_assert_fail("cannot run here: %s (only a kernel limitation may skip a BPF test)", reason);
	criterion_abort_test(); /* not reached: tells the compiler that cr_assert_fail does not return */
}

static void write_pid(const char *cgroup)
{
	char path[1100], pid[32];
	int fd;

	snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
	snprintf(pid, sizeof(pid), "%d", getpid());
	fd = open(path, O_WRONLY | O_CLOEXEC);
	cr_assert(fd >= 0, "open %s: %s", path, strerror(errno));
	cr_assert(write(fd, pid, strlen(pid)) == (ssize_t)strlen(pid), "write %s: %s", path, strerror(errno));
	close(fd);
}

static void read_own_cgroup(char *buf, size_t len)
{
	FILE *f = fopen("/proc/self/cgroup", "r");
	char line[512];

	snprintf(buf, len, "%s", SANDBOX_CGROUP_ROOT);
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3))
			continue;
		line[strcspn(line, "\n")] = '\0';
		snprintf(buf, len, "%s%s", SANDBOX_CGROUP_ROOT, line + 3);
	}
	fclose(f);
}

static void loopback_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	cr_assert(fd >= 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "lo");
	cr_assert_eq(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
	ifr.ifr_flags |= IFF_UP;
	cr_assert_eq(ioctl(fd, SIOCSIFFLAGS, &ifr), 0, "lo up: %s", strerror(errno));
	close(fd);
}

void sandbox_leave(void)
{
	char path[1100], pid[32];
	int fd;

	if (!own_cgroup[0])
		return;
	snprintf(path, sizeof(path), "%s/cgroup.procs", orig_cgroup);
	snprintf(pid, sizeof(pid), "%d", getpid());
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd >= 0) {
		(void)!write(fd, pid, strlen(pid));
		close(fd);
	}
	rmdir(own_cgroup);
	own_cgroup[0] = '\0';
}

int sandbox_socket_outside(int domain, int type)
{
	int fd;

	cr_assert(own_cgroup[0], "sandbox_socket_outside before sandbox_enter");
	write_pid(orig_cgroup);
	fd = socket(domain, type, 0);
	write_pid(own_cgroup);
	cr_assert(fd >= 0, "socket: %s", strerror(errno));
	return fd;
}

/*
 * sandbox_leave runs at exit, not when the test process dies of a signal (a crash in set-up, a timeout's
 * kill): a child forked before the process enters its cgroup (so outside it) waits for the end of the
 * process (its pipe's write end closes with the last holder) and removes the cgroup then; after a clean exit
 * the directory is gone already. Best effort: without the guard the run still works.
 */
static void spawn_guard(void)
{
	int p[2];
	pid_t pid;
	char c;

	if (pipe2(p, O_CLOEXEC))
		return;
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		return;
	}
	if (pid > 0) {
		close(p[0]); /* p[1] stays open for the process's life */
		return;
	}
	close(p[1]);
	while (read(p[0], &c, 1) < 0 && errno == EINTR)
		;
	/* The dead process leaves the cgroup as it is reaped: EBUSY for a moment. */
	for (int i = 0; i < 300 && rmdir(own_cgroup) && errno == EBUSY; i++)
		usleep(10 * 1000);
	_exit(0);
}

void sandbox_enter(const char *name, char *cgroup, size_t len)
{
	cr_assert_eq(unshare(CLONE_NEWNET), 0, "unshare(CLONE_NEWNET): %s", strerror(errno));
	loopback_up();
	read_own_cgroup(orig_cgroup, sizeof(orig_cgroup));
	snprintf(own_cgroup, sizeof(own_cgroup), SANDBOX_CGROUP_ROOT "/%s-%d", name, getpid());
	cr_assert(mkdir(own_cgroup, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", own_cgroup, strerror(errno));
	atexit(sandbox_leave);
	spawn_guard();
	write_pid(own_cgroup);
	snprintf(cgroup, len, "%s", own_cgroup);
}
