// SPDX-License-Identifier: Apache-2.0
#include "admin/admin.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "admin/command.h"
#include "core/log.h"
#include "core/mkdir_p.h"

struct admin_client {
	struct xm_admin *admin;
	struct admin_client *prev, *next;
	int fd;
	bool answering; /* the command was read: sending out */
	struct xm_timer *deadline;
	char in[ADMIN_CMD_MAX + 1]; /* the longest line and its CR; the LF may come in a later read */
	size_t in_len;
	struct strbuf out;
	size_t sent;
};

struct xm_admin {
	struct xm_loop *loop;
	int fd;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t dev; /* of the socket file we bound: only that one is ours to unlink */
	ino_t ino;
	bool bound;
	xm_admin_handler handler;
	void *ctx;
	struct admin_limits limits;
	struct admin_client *clients;
	unsigned int n_clients;
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

static void client_close(struct admin_client *c)
{
	struct xm_admin *a = c->admin;
	char scratch[512];

	/* Unread bytes (a second line) would turn the close into ECONNRESET at the client, after its answer. */
	(void)!recv(c->fd, scratch, sizeof(scratch), MSG_DONTWAIT);
	loop_timer_cancel(a->loop, c->deadline);
	loop_del_fd(a->loop, c->fd);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->n_clients--;
	sb_free(&c->out);
	free(c);
}

/* Sends until done or the socket is full; false when the client is finished with (done or gone). */
static bool client_write(struct admin_client *c)
{
	while (c->sent < c->out.len) {
		ssize_t n = send(c->fd, c->out.buf + c->sent, c->out.len - c->sent, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return true; /* EPOLLOUT brings us back */
		if (n < 0) {
			log_warn("admin: client went away before the answer was sent");
			return false;
		}
		c->sent += (size_t)n;
	}
	return false;
}

static void client_answer(struct admin_client *c, const char *cmd, int parse_err)
{
	struct xm_admin *a = c->admin;

	if (parse_err == -E2BIG)
		sb_printf(&c->out, "error: command longer than %d bytes\n", ADMIN_CMD_MAX - 1);
	else if (parse_err)
		sb_puts(&c->out, "error: command holds control characters\n");
	else
		a->handler(cmd, &c->out, a->ctx);
	if (c->out.oom)
		sb_puts(&c->out, "\nerror: answer truncated (out of memory)\n");
	c->answering = true;
	/* Readable no longer matters; level-triggered EPOLLOUT while the answer is pending. */
	loop_mod_fd(a->loop, c->fd, EPOLLOUT);
	/* A fresh deadline to take the answer: the time the handler took (a reload) is not the client's. */
	loop_timer_arm(a->loop, c->deadline, a->limits.deadline_ms);
}

/* Reads what is there; answers once the line is complete. false: close the client. */
static bool client_read(struct admin_client *c)
{
	char cmd[ADMIN_CMD_MAX];
	bool eof = false;
	int r;

	while (c->in_len < sizeof(c->in)) {
		ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - c->in_len, MSG_DONTWAIT);

		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			break;
		if (n < 0)
			return false;
		if (n == 0) {
			eof = true;
			break;
		}
		c->in_len += (size_t)n;
		if (memchr(c->in + c->in_len - n, '\n', (size_t)n))
			break;
	}
	r = admin_parse_command(c->in, c->in_len, eof, cmd, sizeof(cmd));
	if (r == 0)
		return true;
	if (r == -ENODATA) /* connected and left: nothing to answer */
		return false;
	client_answer(c, cmd, r < 0 ? r : 0);
	return client_write(c);
}

static void on_client(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct admin_client *c = ctx;
	bool keep;

	(void)loop, (void)fd;
	if (!c->answering)
		keep = !(events & EPOLLERR) && client_read(c);
	else
		keep = client_write(c);
	if (!keep)
		client_close(c);
}

static void on_deadline(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct admin_client *c = ctx;

	(void)loop, (void)timer;
	log_warn("admin: client dropped after %u ms %s", c->admin->limits.deadline_ms,
		 c->answering ? "without reading its answer" : "without sending a command line");
	client_close(c);
}

/* Over the cap: a one-line refusal if the socket takes it at once, then close; never wait for this client. */
static void refuse(int cfd)
{
	static const char msg[] = "error: too many admin clients, try again\n";

	(void)!send(cfd, msg, sizeof(msg) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	close(cfd);
}

static void on_accept(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	struct xm_admin *a = ctx;
	int i, cfd;

	(void)events;
	/* A bounded batch: a connect flood cannot keep the loop here; the listener stays readable. */
	for (i = 0; i < 16; i++) {
		struct admin_client *c;

		cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EAGAIN || errno == EINTR || errno == ECONNABORTED)
				return;
			/* Out of fds (EMFILE …): the listener stays readable; retrying at once would spin the loop. */
			log_warn("admin: accept: %s; not accepting for %d ms", strerror(errno), ADMIN_ACCEPT_PAUSE_MS);
			loop_pause_fd(loop, fd, ADMIN_ACCEPT_PAUSE_MS);
			return;
		}
		if (a->n_clients >= a->limits.max_clients) {
			log_warn("admin: %u clients already connected: refusing one more", a->n_clients);
			refuse(cfd);
			continue;
		}
		c = calloc(1, sizeof(*c));
		if (!c) {
			refuse(cfd);
			continue;
		}
		c->admin = a;
		c->fd = cfd;
		c->deadline = loop_timer_add(loop, a->limits.deadline_ms, 0, on_deadline, c);
		if (!c->deadline || loop_add_fd(loop, cfd, EPOLLIN | EPOLLRDHUP, on_client, c) < 0) {
			loop_timer_cancel(loop, c->deadline);
			free(c);
			refuse(cfd);
			continue;
		}
		c->next = a->clients;
		if (a->clients)
			a->clients->prev = c;
		a->clients = c;
		a->n_clients++;
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
	a->limits = (struct admin_limits){ ADMIN_DEADLINE_MS_DEFAULT, ADMIN_MAX_CLIENTS_DEFAULT };
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

void admin_set_limits(struct xm_admin *a, const struct admin_limits *limits)
{
	if (limits->deadline_ms)
		a->limits.deadline_ms = limits->deadline_ms;
	if (limits->max_clients)
		a->limits.max_clients = limits->max_clients;
}

unsigned int admin_n_clients(const struct xm_admin *a)
{
	return a->n_clients;
}

void admin_close(struct xm_admin *a)
{
	if (!a)
		return;
	while (a->clients)
		client_close(a->clients);
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
