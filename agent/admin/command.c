// SPDX-License-Identifier: Apache-2.0
#include "admin/command.h"

#include <errno.h>
#include <string.h>

int admin_parse_command(const char *buf, size_t len, bool at_eof, char *cmd, size_t cmd_size)
{
	const char *lf = memchr(buf, '\n', len);
	size_t line = lf ? (size_t)(lf - buf) : len, taken = lf ? line + 1 : len, i;

	if (!lf && !at_eof)
		return len > cmd_size ? -E2BIG : 0; /* cmd_size - 1 characters, a CR */
	if (!lf && !len)
		return -ENODATA;
	if (line && buf[line - 1] == '\r')
		line--;
	for (i = 0; i < line; i++) {
		unsigned char c = (unsigned char)buf[i];

		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return -EINVAL;
	}
	if (line >= cmd_size)
		return -E2BIG;
	memcpy(cmd, buf, line);
	cmd[line] = '\0';
	return (int)taken;
}
