// SPDX-License-Identifier: Apache-2.0
/*
 * The L7 proxy's own cgroup, next to the served one: its path, creation and removal. The cgroup holds the
 * proxy's listening sockets and no process; sockmap's sockops runs there (datapath/sockmap.h).
 */
#include "datapath/l7_proxy_cgroup.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SIBLING_SUFFIX "-l7-proxy"
#define CHILD_NAME     "xmesh-l7-proxy"

/* Whether dir is a cgroup directory (every cgroup, the root included, has cgroup.procs). */
static bool is_cgroup(const char *dir)
{
	char path[PATH_MAX];

	if (snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= (int)sizeof(path))
		return false;
	return access(path, F_OK) == 0;
}

int l7_proxy_cgroup_path(const char *served, char *buf, size_t len)
{
	char parent[PATH_MAX];
	size_t n = strlen(served);
	char *slash;
	int w;

	while (n > 1 && served[n - 1] == '/')
		n--;
	if (n >= sizeof(parent))
		return -ENAMETOOLONG;
	memcpy(parent, served, n);
	parent[n] = '\0';
	slash = strrchr(parent, '/');
	if (slash && slash != parent) {
		*slash = '\0';
		if (is_cgroup(parent)) {
			w = snprintf(buf, len, "%.*s" SIBLING_SUFFIX, (int)n, served);
			return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
		}
	}
	w = snprintf(buf, len, "%.*s/" CHILD_NAME, (int)n, served);
	return w < 0 || (size_t)w >= len ? -ENAMETOOLONG : 0;
}

bool l7_proxy_cgroup_inherits(const char *served, const char *proxy)
{
	size_t n = strlen(served);

	while (n > 1 && served[n - 1] == '/')
		n--;
	return !strncmp(served, proxy, n) && proxy[n] == '/';
}

int l7_proxy_cgroup_create(const char *path)
{
	if (mkdir(path, 0755) && errno != EEXIST)
		return -errno;
	return 0;
}

int l7_proxy_cgroup_remove(const char *served)
{
	char path[PATH_MAX];
	int err = l7_proxy_cgroup_path(served, path, sizeof(path));

	if (err)
		return err;
	if (rmdir(path) && errno != ENOENT)
		return -errno;
	return 0;
}
