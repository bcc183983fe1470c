/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin protocol's request: one command line. A pure parser over the bytes received so far, shared by
 * the admin socket and its fuzz target.
 */
#ifndef XMESH_ADMIN_COMMAND_H
#define XMESH_ADMIN_COMMAND_H

#include <stdbool.h>
#include <stddef.h>

#define ADMIN_CMD_MAX 256 /* a command line, its NUL included */

/*
 * Looks for the command line in buf[0..len). When it is complete (a LF arrived, or at_eof and some bytes
 * came), copies it without its line end (LF or CR LF) into cmd as a string and returns how many bytes of
 * buf it took (> 0). Returns 0 when more bytes are needed, -E2BIG when the line cannot fit in cmd_size,
 * -EINVAL for a byte no command holds (NUL, controls other than HT), -ENODATA at EOF with nothing sent.
 */
int admin_parse_command(const char *buf, size_t len, bool at_eof, char *cmd, size_t cmd_size);

#endif
