/* SPDX-License-Identifier: Apache-2.0 */
/* `mkdir -p`: a directory and its missing parents. */
#ifndef XMESH_MKDIR_P_H
#define XMESH_MKDIR_P_H

#include <sys/types.h>

/* Creates path and every missing parent with mode; an existing directory is fine. 0 or negative errno. */
int xm_mkdir_p(const char *path, mode_t mode);

/* The same for the directory that holds file (its dirname). */
int xm_mkdir_parent(const char *file, mode_t mode);

#endif
