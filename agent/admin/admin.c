// SPDX-License-Identifier: Apache-2.0
#include "admin/admin.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/log.h"
#include "core/mkdir_p.h"

#define ADMIN_CMD_MAX	    256
#define ADMIN_IO_TIMEOUT_MS 2000

struct xm_admin {
	struct xm_loop *loop;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev; /* of the socket file we bound: only that one is ours to unlink */
	ino_t ino;
	bool bound;
	xm_admin_handler handler;
	void *ctx;
};

static int fill_addr(struct sockaddr_un *sa, const char *path)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/* Waits for fd to become ready; -ETIMEDOUT when the peer stalls. */
static int wait_fd(int fd, short events)
{
	struct pollfd p = { .fd = fd, .events = events };
	int n = poll(&p, 1, ADMIN_IO_TIMEOUT_MS);

	return n > 0 ? 0 : n == 0 ? -ETIMEDOUT : -errno;
}

static int write_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			int err = wait_fd(fd, POLLOUT);

			if (err)
				return err;
			continue;
		}
		if (n < 0)
			return -errno;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A command is one short line; a client that sends nothing within the timeout is dropped. */
static void serve_client(struct xm_admin *a, int cfd)
{
	char cmd[ADMIN_CMD_MAX];
	struct strbuf out = { 0 };
	size_t len = 0;

	while (len < sizeof(cmd) - 1) {
		ssize_t n;

		if (wait_fd(cfd, POLLIN))
			return;
		n = recv(cfd, cmd + len, sizeof(cmd) - 1 - len, MSG_DONTWAIT);
		if (n <= 0)
			break;
		len += (size_t)n;
		if (memchr(cmd, '\n', len))
			break;
	}
	cmd[len] = '\0';
	cmd[strcspn(cmd, "\r\n")] = '\0';
	a->handler(cmd, &out, a->ctx);
	if (out.oom)
		sb_puts(&out, "\nerror: answer truncated (out of memory)\n");
	if (out.buf && write_all(cfd, out.buf, out.len))
		log_warn("admin: client went away before the answer was sent");
	sb_free(&out);
}

static void on_accept(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct xm_admin *a = ctx;
	int cfd;

	(void)loop, (void)events;
	while ((cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		serve_client(a, cfd);
		close(cfd);
	}
}

/* Whether a process listens on the socket file (a stale file refuses the connection). */
static bool socket_answers(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return live;
}

struct xm_admin *admin_listen(struct xm_loop *loop, const char *path, xm_admin_handler handler, void *ctx)
{
	struct xm_admin *a = calloc(1, sizeof(*a));
	struct sockaddr_un sa;
	int err;

	if (!a)
		return NULL;
	a->fd = -1;
	a->loop = loop;
	a->handler = handler;
	a->ctx = ctx;
	err = fill_addr(&sa, path);
	if (err)
		goto fail;
	snprintf(a->path, sizeof(a->path), "%s", path);
	err = xm_mkdir_parent(path, 0700);
	if (err)
		goto fail;
	a->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (a->fd < 0)
		goto fail_errno;
	/* A socket file left by a previous agent (we are its successor) is replaced; a live one is not. */
	if (socket_answers(&sa)) {
		log_error("admin socket %s: another agent answers on it; not replacing it", path);
		admin_close(a);
		return NULL;
	}
	unlink(path);
	{
		mode_t old = umask(0177);
		int rc = bind(a->fd, (struct sockaddr *)&sa, sizeof(sa));
		struct stat st = { 0 };

		umask(old);
		if (rc < 0)
			goto fail_errno;
		a->bound = stat(path, &st) == 0;
		a->dev = st.st_dev;
		a->ino = st.st_ino;
	}
	if (listen(a->fd, 16) < 0 || loop_add_fd(loop, a->fd, EPOLLIN, on_accept, a) < 0)
		goto fail_errno;
	return a;
fail_errno:
	err = -errno;
fail:
	log_error("admin socket %s: %s", path, strerror(-err));
	admin_close(a);
	return NULL;
}

void admin_close(struct xm_admin *a)
{
	if (!a)
		return;
	if (a->fd >= 0) {
		struct stat st;

		loop_del_fd(a->loop, a->fd);
		close(a->fd);
		if (a->bound && stat(a->path, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino)
			unlink(a->path);
	}
	free(a);
}

int admin_request(const char *path, const char *command, struct strbuf *out)
{
	struct sockaddr_un sa;
	char buf[4096];
	int fd, err;

	err = fill_addr(&sa, path);
	if (err)
		return err;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		err = -errno;
		goto out;
	}
	{
		struct timeval tv = { .tv_sec = 5 };

		setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	}
	if (dprintf(fd, "%s\n", command) < 0) {
		err = -errno;
		goto out;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);

		if (n < 0) {
			err = -errno;
			break;
		}
		if (n == 0)
			break;
		buf[n] = '\0';
		sb_puts(out, buf);
	}
out:
	close(fd);
	return err;
}
