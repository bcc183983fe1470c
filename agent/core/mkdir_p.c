// SPDX-License-Identifier: Apache-2.0
#include "core/mkdir_p.h"

#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <sys/stat.h>

int xm_mkdir_p(const char *path, mode_t mode)
{
	char tmp[PATH_MAX];
	struct stat st;
	char *p;

	if (snprintf(tmp, sizeof(tmp), "%s", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	/* EEXIST also covers a file of that name: say so instead of failing later with ENOTDIR. */
	if (stat(tmp, &st) < 0)
		return -errno;
	return S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
}

int xm_mkdir_parent(const char *file, mode_t mode)
{
	char copy[PATH_MAX];

	if (snprintf(copy, sizeof(copy), "%s", file) >= (int)sizeof(copy))
		return -ENAMETOOLONG;
	return xm_mkdir_p(dirname(copy), mode);
}
