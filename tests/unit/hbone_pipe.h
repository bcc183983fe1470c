/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A client stream of the HBONE tests: writes total bytes of the pattern hbt_byte(seed, i), reads the echo back
 * and checks it, shuts its side down when all went (unless hold). Shared by test_hbone.c,
 * test_hbone_accounting.c and test_hbone_interop.c.
 */
#ifndef XMESH_TEST_HBONE_PIPE_H
#define XMESH_TEST_HBONE_PIPE_H

#include <stdbool.h>
#include <stdint.h>

#include "hbone/hbone.h"

struct hbt_pipe {
	struct hbone_stream *s;
	uint64_t seed, total; /* bytes to send */
	uint64_t sent, got;
	bool shut, paused_reader;
	bool hold; /* never shut down: a long-lived stream */
	int status, close_err;
	bool opened, closed, mismatch;
	char peer[HBONE_ID_MAX]; /* the server's identity, as the stream saw it opening */
};

extern const struct hbone_stream_ops hbt_pipe_ops;

/* Writes what the stream takes of what is left to send; shuts down when all went. */
void hbt_pipe_pump(struct hbt_pipe *p);

/*
 * Opens p on cl with req (its client address, when unset, 10.1.2.3:40000), to send total bytes of seed;
 * asserts the stream was created.
 */
void hbt_pipe_open(struct hbt_pipe *p, struct hbone_client *cl, struct hbone_open *req, uint64_t seed, uint64_t total);

/* hbt_run_until conditions on one struct hbt_pipe. */
bool hbt_pipe_closed(void *arg);
bool hbt_pipe_opened(void *arg);

#endif
