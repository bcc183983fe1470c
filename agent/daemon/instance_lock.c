// SPDX-License-Identifier: Apache-2.0
#include "daemon/instance_lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The PID of the process holding a flock on (dev, ino), from /proc/locks; 0 when none is listed. */
static pid_t flock_holder(dev_t dev, ino_t ino)
{
	char line[256];
	pid_t pid = 0;
	FILE *f = fopen("/proc/locks", "re");

	if (!f)
		return 0;
	/* "1: FLOCK  ADVISORY  WRITE 17167 00:28:130151 0 EOF" (device numbers in hex) */
	while (!pid && fgets(line, sizeof(line), f)) {
		unsigned int maj, min;
		unsigned long long inode;
		char kind[16], mode[16];
		int p;

		if (sscanf(line, "%*d: %15s %*s %15s %d %x:%x:%llu", kind, mode, &p, &maj, &min, &inode) == 6 &&
		    !strcmp(kind, "FLOCK") && !strcmp(mode, "WRITE") && maj == major(dev) && min == minor(dev) &&
		    inode == (unsigned long long)ino)
			pid = p;
	}
	fclose(f);
	return pid;
}

int instance_lock_take(const char *dir, pid_t *holder)
{
	struct stat st;
	int fd, err;

	*holder = 0;
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) == 0)
		return fd;
	err = errno == EWOULDBLOCK ? -EWOULDBLOCK : -errno;
	if (err == -EWOULDBLOCK && fstat(fd, &st) == 0)
		*holder = flock_holder(st.st_dev, st.st_ino);
	close(fd);
	return err;
}
