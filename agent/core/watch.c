// SPDX-License-Identifier: Apache-2.0
#include "core/watch.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/log.h"

#define XM_WATCH_MAX 32

struct xm_watch {
	struct xm_loop *loop;
	struct {
		int wd;
		char file[256]; /* a watched file's name in its directory; "" for a watched directory */
	} watches[XM_WATCH_MAX];
	size_t n_watches;
	int ifd;
	struct xm_timer *debounce;
	xm_watch_cb cb;
	void *ctx;
};

static void on_debounced(struct xm_loop *loop, struct xm_timer *timer, void *ctx)
{
	struct xm_watch *w = ctx;

	(void)loop, (void)timer;
	w->cb(w->ctx);
}

static bool has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && !strcmp(s + n - m, suffix);
}

/*
 * Only config files count: logs or sockets that share the directory must not trigger reloads. Names
 * starting with ".." are the symlink swaps of a mounted ConfigMap.
 */
static bool event_matters(const struct xm_watch *w, const struct inotify_event *ev)
{
	size_t i;

	if (!ev->len)
		return true;
	if (!strncmp(ev->name, "..", 2))
		return true;
	for (i = 0; i < w->n_watches; i++) {
		if (w->watches[i].wd != ev->wd)
			continue;
		if (w->watches[i].file[0] ? !strcmp(ev->name, w->watches[i].file)
					  : has_suffix(ev->name, ".yaml") || has_suffix(ev->name, ".yml"))
			return true;
	}
	return false;
}

static void on_inotify(struct xm_loop *loop, int fd, uint32_t events, void *ctx)
{
	char buf[8192] __attribute__((aligned(__alignof__(struct inotify_event))));
	struct xm_watch *w = ctx;
	bool any = false;
	ssize_t n;

	(void)loop, (void)events;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (char *p = buf; p < buf + n;) {
			const struct inotify_event *ev = (const struct inotify_event *)p;

			any |= event_matters(w, ev);
			p += sizeof(*ev) + ev->len;
		}
	}
	/* Editors and kubelet write in several steps: act once things settle. */
	if (any)
		loop_timer_arm(loop, w->debounce, XM_WATCH_DEBOUNCE_MS);
}

struct xm_watch *watch_new(struct xm_loop *loop, const char *const *paths, size_t n, xm_watch_cb cb, void *ctx)
{
	const uint32_t mask = IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_CREATE | IN_DELETE | IN_MODIFY;
	struct xm_watch *w = calloc(1, sizeof(*w));
	size_t i;
	int err;

	if (!w)
		return NULL;
	w->loop = loop;
	w->cb = cb;
	w->ctx = ctx;
	w->ifd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (w->ifd < 0) {
		err = -errno;
		goto fail;
	}
	for (i = 0; i < n && i < XM_WATCH_MAX; i++) {
		char copy[PATH_MAX], base[PATH_MAX];
		const char *dir = paths[i];
		struct stat st;
		int wd;

		w->watches[w->n_watches].file[0] = '\0';
		if (stat(paths[i], &st) == 0 && !S_ISDIR(st.st_mode)) {
			snprintf(copy, sizeof(copy), "%s", paths[i]);
			snprintf(base, sizeof(base), "%s", paths[i]);
			dir = dirname(copy);
			snprintf(w->watches[w->n_watches].file, sizeof(w->watches[0].file), "%s", basename(base));
		}
		wd = inotify_add_watch(w->ifd, dir, mask);
		if (wd < 0) {
			log_warn("watch %s: %s (changes there are not picked up)", dir, strerror(errno));
			continue;
		}
		w->watches[w->n_watches++].wd = wd;
	}
	w->debounce = loop_timer_add(loop, 0, 0, on_debounced, w);
	if (!w->debounce) {
		err = -ENOMEM;
		goto fail;
	}
	/* Idle until on_inotify arms it to the debounce delay. */
	loop_timer_disarm(loop, w->debounce);
	err = loop_add_fd(loop, w->ifd, EPOLLIN, on_inotify, w);
	if (err)
		goto fail;
	return w;
fail:
	/* The error of the call that failed: errno may still hold an inotify_add_watch failure logged above. */
	log_error("config watcher: %s", strerror(-err));
	watch_free(w);
	return NULL;
}

void watch_free(struct xm_watch *w)
{
	if (!w)
		return;
	loop_timer_cancel(w->loop, w->debounce);
	if (w->ifd >= 0) {
		loop_del_fd(w->loop, w->ifd);
		close(w->ifd);
	}
	free(w);
}
