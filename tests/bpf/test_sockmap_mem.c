// SPDX-License-Identifier: Apache-2.0
/*
 * Sockmap at TCP's global memory limit (net.ipv4.tcp_mem). Past the hard limit the kernel refuses to
 * charge a redirected message to the receiver and sendmsg fails with ENOMEM, where plain TCP makes the
 * writer wait (EAGAIN on a non-blocking socket). sk_msg falls back to TCP at the pressure threshold.
 *
 * tcp_mem is global (no per-netns or per-cgroup copy), so the tests lower it for well under a second,
 * a little above what the machine uses now. The saved value is written back by the test, by the suite's
 * fini, and by a guard process that restores it when this process dies (any signal, a criterion timeout)
 * or after GUARD_SECONDS, whichever comes first.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sockmap_fixture.h"
#include "skel/sockmap.skel.h"

#define TCP_MEM_PATH  "/proc/sys/net/ipv4/tcp_mem"
#define GUARD_SECONDS 10

static struct {
	char saved[128]; /* tcp_mem as found, "" when not lowered */
	int fd;		 /* opened before entering the sandbox's netns, which has no tcp_mem (it is global) */
	pid_t guard;
	int guard_fd; /* write end: its closing tells the guard to restore */
} mem = { .fd = -1, .guard = -1, .guard_fd = -1 };

static int tcp_mem_write(const char *text)
{
	ssize_t n = pwrite(mem.fd, text, strlen(text), 0);

	return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

static void read_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	cr_assert(f, "open %s: %s", path, strerror(errno));
	n = fread(buf, 1, len - 1, f);
	fclose(f);
	buf[n] = '\0';
}

/* Pages TCP has charged in all, as /proc/net/sockstat reports it ("TCP: ... mem N"). */
static long tcp_mem_in_use(void)
{
	char text[4096], *p;

	read_file("/proc/net/sockstat", text, sizeof(text));
	p = strstr(text, "TCP:");
	cr_assert(p, "no TCP line in /proc/net/sockstat");
	p = strstr(p, " mem ");
	cr_assert(p, "no mem field in the TCP line of /proc/net/sockstat");
	return strtol(p + 5, NULL, 10);
}

/* Waits for the test process to go away (EOF on the pipe) or for the deadline, then restores tcp_mem. */
static void guard_main(int rd)
{
	struct pollfd p = { .fd = rd, .events = POLLIN };

	poll(&p, 1, GUARD_SECONDS * 1000);
	_exit(tcp_mem_write(mem.saved) ? 1 : 0);
}

static void tcp_mem_restore(void)
{
	if (!mem.saved[0])
		return;
	if (tcp_mem_write(mem.saved))
		fprintf(stderr, "sockmap_mem: could not restore %s to %s\n", TCP_MEM_PATH, mem.saved);
	if (mem.guard_fd >= 0)
		close(mem.guard_fd);
	if (mem.guard > 0)
		waitpid(mem.guard, NULL, 0);
	mem.guard_fd = -1;
	mem.guard = -1;
	mem.saved[0] = '\0';
	flock(smx.mem_lock_fd, LOCK_SH);
}

/*
 * Lowers tcp_mem to "1 1 H" pages, H = hard_above pages above what is in use now: TCP is under pressure at
 * once, whatever else the machine does, and the hard limit is close. The gap to it is larger than what the
 * kernel's per-CPU reserves (256 pages each) can hide from the global count. Waits for the other sockmap
 * tests to finish; the guard is running before the value changes.
 */
static void tcp_mem_lower(long hard_above)
{
	char text[128];
	ssize_t n;
	long used;
	int pfd[2];

	cr_assert_eq(flock(smx.mem_lock_fd, LOCK_EX), 0, "flock %s: %s", SMX_TCP_MEM_LOCK, strerror(errno));
	used = tcp_mem_in_use();
	n = pread(mem.fd, mem.saved, sizeof(mem.saved) - 1, 0);
	cr_assert_gt(n, 0, "read %s: %s", TCP_MEM_PATH, strerror(errno));
	mem.saved[n] = '\0';
	cr_assert_eq(pipe2(pfd, O_CLOEXEC), 0);
	mem.guard = fork();
	cr_assert(mem.guard >= 0, "fork: %s", strerror(errno));
	if (mem.guard == 0) {
		close(pfd[1]);
		guard_main(pfd[0]);
	}
	close(pfd[0]);
	mem.guard_fd = pfd[1];
	snprintf(text, sizeof(text), "1 1 %ld", used + hard_above);
	cr_assert_eq(tcp_mem_write(text), 0, "write %s: %s", TCP_MEM_PATH, text);
}

static void mem_init(void)
{
	mem.fd = open(TCP_MEM_PATH, O_RDWR | O_CLOEXEC);
	smx_setup();
	cr_assert(mem.fd >= 0, "open %s: %s", TCP_MEM_PATH, strerror(errno));
}

static void mem_fini(void)
{
	tcp_mem_restore();
	if (mem.fd >= 0)
		close(mem.fd);
	mem.fd = -1;
	smx_teardown();
}

// cppcheck-suppress unknownMacro
TestSuite(sockmap_mem, .init = mem_init, .fini = mem_fini, .timeout = 60);

/* Sends 1000-byte messages of the pattern until the kernel stops the writer; returns the errno it gave. */
static int send_until_stopped(int fd, uint64_t *sent, uint64_t cap)
{
	uint8_t buf[1000];
	size_t i;
	ssize_t w;

	while (*sent < cap) {
		for (i = 0; i < sizeof(buf); i++)
			buf[i] = smx_pattern(21, *sent + i);
		w = send(fd, buf, sizeof(buf), MSG_NOSIGNAL);
		if (w < 0)
			return errno;
		*sent += (uint64_t)w;
	}
	return 0;
}

/*
 * The receiver does not read. 100 kB are redirected first; then, at the memory limit, the non-blocking
 * writer goes on until the kernel stops it. TCP stops a writer with EAGAIN; a redirect past the hard limit
 * fails with ENOMEM instead. Afterwards every byte must be readable in order: redirected ones, then TCP's.
 */
Test(sockmap_mem, writer_at_tcp_mem_limit_waits_instead_of_enomem)
{
	uint8_t *rd = malloc(1 << 16);
	uint64_t sent = 0, got = 0, redirected;
	int c, s, err;
	ssize_t r, i;

	cr_assert(rd);
	smx_pair(&c, &s);
	cr_assert_eq(smx_pairs(), 2);
	fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
	cr_assert_eq(send_until_stopped(c, &sent, 100000), 0, "send before the limit");
	redirected = smx_stat(XM_SMSTAT_REDIR_BYTES);
	cr_assert_eq(redirected, 100000, "redirected %llu of 100000 bytes", (unsigned long long)redirected);

	tcp_mem_lower(512);
	err = send_until_stopped(c, &sent, 64u << 20);
	tcp_mem_restore();
	cr_assert_neq(err, ENOMEM, "send returned ENOMEM after %llu bytes (redirected %llu): TCP would have waited",
		      (unsigned long long)sent, (unsigned long long)smx_stat(XM_SMSTAT_REDIR_BYTES));
	cr_assert_eq(err, EAGAIN, "the writer stopped after %llu bytes with %s, not EAGAIN", (unsigned long long)sent,
		     err ? strerror(err) : "no error (the limit was never reached)");
	cr_assert_geq(smx_stat(XM_SMSTAT_FALLBACK_MEM_PRESSURE), 1, "no fallback counted at the memory limit");

	shutdown(c, SHUT_WR);
	while ((r = read(s, rd, 1 << 16)) > 0) {
		for (i = 0; i < r; i++)
			cr_assert_eq(rd[i], smx_pattern(21, got + (uint64_t)i), "byte %llu differs (lost or reordered)",
				     (unsigned long long)(got + (uint64_t)i));
		got += (uint64_t)r;
	}
	cr_assert_eq(r, 0, "read: %s", strerror(errno));
	cr_assert_eq(got, sent, "received %llu of %llu bytes", (unsigned long long)got, (unsigned long long)sent);
	free(rd);
	close(c);
	close(s);
}
