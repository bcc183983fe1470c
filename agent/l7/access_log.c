// SPDX-License-Identifier: Apache-2.0
/*
 * The access log's queues and writer: each worker formats its lines into its own single-producer ring, one
 * background thread drains every ring to the file. A worker never waits for the file or for another worker.
 */
#include "l7/access_log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "core/background.h"
#include "core/log.h"
#include "core/spsc_ring.h"
#include "metrics/registry.h"

/* How long the writer sleeps when every ring is empty, unless a worker wakes it. */
#define IDLE_POLL_MS 50

/* One worker's queue of lines: the worker produces, the writer consumes. */
struct ring {
	struct xm_spsc_ring q;
	uint64_t lines, dropped;	   /* worker only, read relaxed by the metrics thread */
	char line[L7_ACCESS_LOG_LINE_MAX]; /* the worker's formatting space */
};

struct l7_access_log {
	int fd;
	enum l7_log_format fmt;
	size_t n_rings;
	struct ring *rings;
	int wake_fd;	       /* eventfd: a worker whose ring fills up wakes the sleeping writer */
	_Atomic bool sleeping; /* the writer is (about to be) in poll() */
	_Atomic bool stop;     /* close: drain, then exit */
	_Atomic uint64_t write_errors;
	pthread_t writer;
	bool writer_started;
};

static inline uint64_t read_relaxed(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

/* Single writer: a relaxed store is enough for the metrics thread's relaxed load never to tear. */
static inline void bump(uint64_t *c)
{
	__atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1, __ATOMIC_RELAXED);
}

static void wake_writer(struct l7_access_log *log)
{
	uint64_t one = 1;

	/* Nonblocking eventfd: the write cannot block, and a failure only means the writer wakes on its timer. */
	if (write(log->wake_fd, &one, sizeof(one)) < 0)
		return;
}

void l7_access_log_write(struct l7_access_log *log, size_t worker, const struct l7_record *r)
{
	struct ring *ring;
	size_t n, queued;

	if (!log || worker >= log->n_rings)
		return;
	ring = &log->rings[worker];
	n = l7_access_log_format(log->fmt, r, ring->line, sizeof(ring->line));
	if (n >= sizeof(ring->line) || !xm_spsc_ring_push(&ring->q, ring->line, n, &queued)) {
		bump(&ring->dropped);
		return;
	}
	bump(&ring->lines);
	/*
	 * An eighth full: the writer should not sleep out its timer. The fence orders the head store before the
	 * flag's load, as the writer orders its flag store before its look at the heads: one of the two sees
	 * the other, so no wake is lost. The eventfd write happens at most once per writer sleep.
	 */
	if (queued >= ring->q.size / 8) {
		atomic_thread_fence(memory_order_seq_cst);
		if (atomic_load_explicit(&log->sleeping, memory_order_relaxed) &&
		    atomic_exchange_explicit(&log->sleeping, false, memory_order_relaxed))
			wake_writer(log);
	}
}

/* Writes what ring holds (one writev, as much as the file takes). Returns the bytes it moved on. */
static size_t drain(struct l7_access_log *log, struct ring *ring)
{
	struct iovec iov[2];
	size_t len = xm_spsc_ring_peek(&ring->q, iov);
	ssize_t w;

	if (!len)
		return 0;
	/* Close may cancel the writer here, where it holds nothing, and nowhere else (see writer_main). */
	pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
	w = writev(log->fd, iov, iov[1].iov_len ? 2 : 1);
	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	if (w < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return 0;
		/* The file refuses (ENOSPC, EIO, EPIPE): these lines are lost, the next ones may fare better. */
		if (atomic_fetch_add(&log->write_errors, 1) == 0)
			log_warn("access log: write: %s; lines are dropped while it fails", strerror(errno));
		w = (ssize_t)len;
	}
	xm_spsc_ring_consume(&ring->q, (size_t)w);
	return (size_t)w;
}

static bool rings_empty(struct l7_access_log *log)
{
	for (size_t i = 0; i < log->n_rings; i++)
		if (!xm_spsc_ring_empty(&log->rings[i].q))
			return false;
	return true;
}

static void *writer_main(void *arg)
{
	struct l7_access_log *log = arg;
	sigset_t pipe_only;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	thread_set_background("access log");
	/* A reader that went away means EPIPE here, not a SIGPIPE that ends the agent. */
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
	for (;;) {
		bool stopping = atomic_load(&log->stop);
		size_t moved = 0;
		struct pollfd pfd = { .fd = log->wake_fd, .events = POLLIN };
		uint64_t count;

		for (size_t i = 0; i < log->n_rings; i++)
			moved += drain(log, &log->rings[i]);
		if (moved)
			continue;
		if (stopping)
			break;
		atomic_store(&log->sleeping, true); /* seq_cst: before the look at the heads below */
		/* A line queued between the drain and the flag found the flag unset: look once more. */
		if (rings_empty(log) && !atomic_load(&log->stop) && poll(&pfd, 1, IDLE_POLL_MS) > 0 &&
		    read(log->wake_fd, &count, sizeof(count)) < 0)
			log_debug("access log: eventfd read: %s", strerror(errno));
		atomic_store(&log->sleeping, false);
	}
	return NULL;
}

static void free_log(struct l7_access_log *log)
{
	if (log->rings)
		for (size_t i = 0; i < log->n_rings; i++)
			xm_spsc_ring_free(&log->rings[i].q);
	free(log->rings);
	if (log->wake_fd >= 0)
		close(log->wake_fd);
	if (log->fd >= 0)
		close(log->fd);
	free(log);
}

struct l7_access_log *l7_access_log_open_fd(int fd, enum l7_log_format fmt, size_t n_workers, size_t ring_bytes,
					    int *err)
{
	struct l7_access_log *log = calloc(1, sizeof(*log));
	int e;

	if (!log) {
		close(fd);
		*err = -ENOMEM;
		return NULL;
	}
	log->fd = fd;
	log->fmt = fmt;
	log->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	log->n_rings = n_workers ? n_workers : 1;
	log->rings = aligned_alloc(64, log->n_rings * sizeof(*log->rings));
	if (log->wake_fd < 0 || !log->rings) {
		*err = log->wake_fd < 0 ? -errno : -ENOMEM;
		log->n_rings = 0;
		free_log(log);
		return NULL;
	}
	memset(log->rings, 0, log->n_rings * sizeof(*log->rings));
	for (size_t i = 0; i < log->n_rings; i++) {
		if (xm_spsc_ring_init(&log->rings[i].q, ring_bytes)) {
			*err = -ENOMEM;
			free_log(log);
			return NULL;
		}
	}
	e = pthread_create(&log->writer, NULL, writer_main, log);
	if (e) {
		*err = -e;
		free_log(log);
		return NULL;
	}
	log->writer_started = true;
	*err = 0;
	return log;
}

struct l7_access_log *l7_access_log_open(const char *path, enum l7_log_format fmt, size_t n_workers, int *err)
{
	int fd;

	if (!strcmp(path, "-"))
		fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	else
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0) {
		*err = -errno;
		return NULL;
	}
	return l7_access_log_open_fd(fd, fmt, n_workers, L7_ACCESS_LOG_RING_BYTES, err);
}

void l7_access_log_close(struct l7_access_log *log)
{
	struct timespec deadline;

	if (!log)
		return;
	if (log->writer_started) {
		atomic_store(&log->stop, true);
		wake_writer(log);
		clock_gettime(CLOCK_REALTIME, &deadline);
		deadline.tv_sec += L7_ACCESS_LOG_CLOSE_WAIT_MS / 1000;
		deadline.tv_nsec += (L7_ACCESS_LOG_CLOSE_WAIT_MS % 1000) * 1000000L;
		if (deadline.tv_nsec >= 1000000000L) {
			deadline.tv_sec++;
			deadline.tv_nsec -= 1000000000L;
		}
		if (pthread_timedjoin_np(log->writer, NULL, &deadline) == ETIMEDOUT) {
			/* Blocked in write() on an output nobody reads: what is queued is lost. */
			log_warn("access log: the output took nothing for %d ms; closing without the rest",
				 L7_ACCESS_LOG_CLOSE_WAIT_MS);
			pthread_cancel(log->writer);
			pthread_join(log->writer, NULL);
		}
	}
	free_log(log);
}

void l7_access_log_collect(struct l7_access_log *log, struct xm_scrape *sc)
{
	uint64_t lines = 0, dropped = 0;

	if (!log)
		return;
	for (size_t i = 0; i < log->n_rings; i++) {
		lines += read_relaxed(&log->rings[i].lines);
		dropped += read_relaxed(&log->rings[i].dropped);
	}
	scrape_u64(scrape_family(sc, "xmesh_access_log_lines_total", "counter", "Access-log lines queued for writing."),
		   NULL, NULL, 0, lines);
	scrape_u64(scrape_family(sc, "xmesh_access_log_dropped_total", "counter",
				 "Access-log lines dropped because their worker's queue was full (the output was "
				 "slower than the requests)."),
		   NULL, NULL, 0, dropped);
	scrape_u64(scrape_family(sc, "xmesh_access_log_write_errors_total", "counter",
				 "Writes of the access log that failed; the lines they held are lost."),
		   NULL, NULL, 0, atomic_load(&log->write_errors));
}
