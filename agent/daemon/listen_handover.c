// SPDX-License-Identifier: Apache-2.0
/*
 * The holder runs in a child forked from a multi-threaded process: between fork and _exit it only makes system
 * calls (no allocation, no locks, no stdio). It keeps nothing but the sockets it holds: every other descriptor,
 * the agent's instance lock among them, is closed first, so the next agent can start.
 */
#include "daemon/listen_handover.h"

#include <linux/bpf.h>
#include <linux/netlink.h>

#include <bpf/bpf.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int unix_addr(const char *path, struct sockaddr_un *sun)
{
	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	strcpy(sun->sun_path, path);
	return 0;
}

static int send_fds(int conn, const int *fds, size_t n)
{
	char cbuf[CMSG_SPACE(sizeof(int) * LISTEN_HANDOVER_MAX_FDS)];
	uint32_t count = (uint32_t)n;
	struct iovec iov = { .iov_base = &count, .iov_len = sizeof(count) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct cmsghdr *cm;

	memset(cbuf, 0, sizeof(cbuf));
	if (n) {
		msg.msg_control = cbuf;
		msg.msg_controllen = CMSG_SPACE(sizeof(int) * n);
		cm = CMSG_FIRSTHDR(&msg);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
		memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
	}
	return sendmsg(conn, &msg, MSG_NOSIGNAL) == (ssize_t)sizeof(count) ? 0 : -1;
}

#define CAPTURE_VALUE_MAX 512 /* the largest capture entry zeroed (xm_l7_proxy, xm_hbone_proxy: 40 bytes) */

/* No agent took the sockets: the capture's entry 0 zeroed (no family captured). System calls only. */
static void capture_off(int map_fd)
{
	uint8_t off[CAPTURE_VALUE_MAX];
	struct bpf_map_info info;
	__u32 len = sizeof(info);
	uint32_t key = 0;

	if (map_fd < 0)
		return;
	memset(&info, 0, sizeof(info));
	memset(off, 0, sizeof(off));
	if (bpf_obj_get_info_by_fd(map_fd, &info, &len) || info.value_size > sizeof(off))
		return;
	bpf_map_update_elem(map_fd, &key, off, BPF_ANY);
}

/* No agent took the sockets: rtnetlink requests (e.g. a routing rule's removal), answers not read. */
static void netlink_send(const void *buf, size_t len)
{
	struct sockaddr_nl kernel = { .nl_family = AF_NETLINK };
	int fd;

	if (!buf || !len)
		return;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return;
	(void)!sendto(fd, buf, len, 0, (struct sockaddr *)&kernel, sizeof(kernel));
	close(fd);
}

/* Milliseconds from a to b. */
static long ms_between(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1000 + (b->tv_nsec - a->tv_nsec) / 1000000;
}

/*
 * The child: descriptors 3..3+n-1 are the sockets, map_fd the capture map, life_fd the read end of a pipe whose
 * write end only the spawning process has (it hangs up when that process is gone). Only system calls here.
 */
static void hold(const char *path, size_t n, int map_fd, int life_fd, const struct listen_handover_undo *undo,
		 unsigned int timeout_s, const char *name)
{
	bool taken = false, owner_gone = false;
	int fds[LISTEN_HANDOVER_MAX_FDS], lfd, conn;
	struct sockaddr_un sun;
	struct timespec start = { 0 }, now;

	for (size_t i = 0; i < n; i++)
		fds[i] = 3 + (int)i;
	prctl(PR_SET_NAME, name);
	if (unix_addr(path, &sun))
		_exit(1);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0)
		_exit(1);
	unlink(path);
	umask(077);
	if (bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) || listen(lfd, 4))
		_exit(1);
	for (;;) {
		/* The countdown starts when the stopping agent is gone: its drain may take a while first. */
		struct pollfd p[2] = { { .fd = lfd, .events = POLLIN }, { .fd = owner_gone ? -1 : life_fd } };
		long left = -1;

		if (owner_gone) {
			clock_gettime(CLOCK_MONOTONIC, &now);
			left = (long)timeout_s * 1000 - ms_between(&start, &now);
			if (left <= 0)
				break;
		}
		if (poll(p, 2, (int)left) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (!owner_gone && (p[1].revents & (POLLHUP | POLLERR | POLLIN))) {
			owner_gone = true;
			close(life_fd);
			clock_gettime(CLOCK_MONOTONIC, &start);
		}
		if (!(p[0].revents & POLLIN))
			continue;
		conn = accept(lfd, NULL, NULL);
		if (conn < 0)
			continue;
		if (!send_fds(conn, fds, n)) {
			char b;

			taken = true;

			/* The taker closes when it has them: then our copies can go. */
			struct timeval tv = { .tv_sec = 5 };
			setsockopt(conn, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			(void)!read(conn, &b, 1);
			break;
		}
		close(conn);
	}
	if (!taken) {
		capture_off(map_fd);
		if (undo)
			netlink_send(undo->netlink, undo->netlink_len);
	}
	unlink(path);
	_exit(0);
}

pid_t listen_handover_spawn(const char *path, const int *fds, size_t n, const struct listen_handover_undo *undo,
			    unsigned int timeout_s, const char *name)
{
	int capture_map_fd = undo ? undo->capture_map_fd : -1;
	int map_hi = -1, life_hi, life[2], next;
	int hi[LISTEN_HANDOVER_MAX_FDS];
	struct sockaddr_un sun;
	pid_t pid;

	if (n > LISTEN_HANDOVER_MAX_FDS)
		return -E2BIG;
	if (unix_addr(path, &sun))
		return -ENAMETOOLONG;
	if (undo && undo->netlink_len > LISTEN_HANDOVER_NETLINK_MAX)
		return -E2BIG;
	if (pipe2(life, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(life[0]);
		close(life[1]);
		return err;
	}
	if (pid > 0) {
		/* The write end stays open until this process exits: then the holder's countdown starts. */
		close(life[0]);
		return pid;
	}
	/* Child. Not the agent's signals: a SIGTERM meant for the agent's group must not drop the sockets. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	/*
	 * Sockets to 3..3+n-1, then the map and the pipe's read end (through copies above that range, so no move
	 * overwrites another); everything else closed, the pipe's write end among them.
	 */
	for (size_t i = 0; i < n; i++)
		if ((hi[i] = fcntl(fds[i], F_DUPFD, 5 + (int)n)) < 0)
			_exit(1);
	if (capture_map_fd >= 0 && (map_hi = fcntl(capture_map_fd, F_DUPFD, 5 + (int)n)) < 0)
		_exit(1);
	if ((life_hi = fcntl(life[0], F_DUPFD, 5 + (int)n)) < 0)
		_exit(1);
	for (size_t i = 0; i < n; i++)
		if (dup2(hi[i], 3 + (int)i) < 0)
			_exit(1);
	next = 3 + (int)n;
	if (map_hi >= 0 && dup2(map_hi, next++) < 0)
		_exit(1);
	if (dup2(life_hi, next++) < 0)
		_exit(1);
	close_range((unsigned int)next, ~0U, 0);
	hold(path, n, map_hi >= 0 ? 3 + (int)n : -1, next - 1, undo, timeout_s, name);
	_exit(0);
}

int listen_handover_receive(const char *path, int *fds, size_t max, size_t *n)
{
	char cbuf[CMSG_SPACE(sizeof(int) * LISTEN_HANDOVER_MAX_FDS)];
	struct timeval tv = { .tv_sec = 5 };
	struct sockaddr_un sun;
	uint32_t count = 0;
	struct iovec iov = { .iov_base = &count, .iov_len = sizeof(count) };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int fd, err;

	*n = 0;
	err = unix_addr(path, &sun);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun))) {
		err = errno == ECONNREFUSED ? -ENOENT : -errno;
		close(fd);
		if (err == -ENOENT)
			unlink(path); /* a holder that died left its path */
		return err;
	}
	if (recvmsg(fd, &msg, MSG_CMSG_CLOEXEC) != (ssize_t)sizeof(count)) {
		err = -EIO;
		close(fd);
		return err;
	}
	for (cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm)) {
		size_t k;

		if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS)
			continue;
		k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
		for (size_t i = 0; i < k; i++) {
			int got;

			memcpy(&got, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
			if (*n < max)
				fds[(*n)++] = got;
			else
				close(got);
		}
	}
	close(fd); /* tells the holder it may go */
	return 0;
}
