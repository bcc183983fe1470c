// SPDX-License-Identifier: Apache-2.0
/*
 * Noticing that the plug-in CA's files changed, as istiod notices a new cacerts secret: a cheap stamp of what
 * stat() says of them, compared by the identity module every tick. stat() follows symlinks, so the atomic
 * swap of a mounted secret's ..data link (every file then resolves to a new inode) changes the stamp as much
 * as an operator's cp or mv does. Polling needs no thread and no inotify descriptor, and sees a directory
 * that is replaced or mounted over, which an inotify watch on the old one would not.
 */
#include <stdio.h>
#include <sys/stat.h>

#include "core/fnv.h"
#include "identity/identity.h"

static const char *const ca_files[] = { "ca-cert.pem", "ca-key.pem", "root-cert.pem", "cert-chain.pem" };

uint64_t ca_files_stamp(const char *dir)
{
	uint64_t h = XM_FNV1A64_BASIS;
	char path[4200];
	struct stat st;

	for (size_t i = 0; i < sizeof(ca_files) / sizeof(ca_files[0]); i++) {
		uint64_t v[7] = { 0 };

		snprintf(path, sizeof(path), "%.4000s/%s", dir, ca_files[i]);
		if (!stat(path, &st)) {
			v[0] = st.st_dev;
			v[1] = st.st_ino;
			v[2] = (uint64_t)st.st_size;
			v[3] = (uint64_t)st.st_mtim.tv_sec;
			v[4] = (uint64_t)st.st_mtim.tv_nsec;
			v[5] = (uint64_t)st.st_ctim.tv_sec;
			v[6] = (uint64_t)st.st_ctim.tv_nsec;
		}
		h = xm_fnv1a64(h, v, sizeof(v));
	}
	return h;
}
