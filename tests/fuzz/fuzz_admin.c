// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the admin socket's command reader (admin_parse_command), on the bytes a client may
 * send, as they arrive and at EOF. Beyond memory safety it checks that a command is one line without its
 * line end, NUL-terminated within the buffer, and that the reader never takes more than it was given.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "admin/command.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check(const char *buf, size_t len, bool at_eof)
{
	char cmd[ADMIN_CMD_MAX];
	size_t n;
	int r;

	memset(cmd, 0x55, sizeof(cmd));
	r = admin_parse_command(buf, len, at_eof, cmd, sizeof(cmd));
	if (r < 0) {
		if (r != -E2BIG && r != -EINVAL && r != -ENODATA)
			abort();
		if (r == -ENODATA && (len || !at_eof))
			abort();
		return;
	}
	if (r == 0) {
		if (at_eof || memchr(buf, '\n', len) || len > sizeof(cmd))
			abort();
		return;
	}
	if ((size_t)r > len)
		abort();
	n = strnlen(cmd, sizeof(cmd));
	if (n == sizeof(cmd) || memchr(cmd, '\n', n) || memchr(cmd, '\r', n) || memcmp(cmd, buf, n))
		abort();
	/* The line ends where the reader stopped: LF or CR LF, or EOF (after a CR whose LF never came). */
	if (!((size_t)r == n + 1 && buf[n] == '\n') && !((size_t)r == n + 2 && buf[n] == '\r' && buf[n + 1] == '\n') &&
	    !(at_eof && (size_t)r == len && (n == len || (n + 1 == len && buf[n] == '\r'))))
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* Exactly the client's bytes, so ASan catches a read past them; the admin buffer holds 257. */
	size_t len = size > ADMIN_CMD_MAX + 1 ? ADMIN_CMD_MAX + 1 : size;
	char *buf = malloc(len ? len : 1);

	if (!buf)
		return 0;
	memcpy(buf, data, len);
	check(buf, len, false);
	check(buf, len, true);
	free(buf);
	return 0;
}
