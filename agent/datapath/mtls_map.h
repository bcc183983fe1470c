/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Keeps a BPF hash keyed by struct xm_mtls_key with struct xm_mtls_policy values equal to a compiled table:
 * xm_mtls_policy (local pods, datapath/peer_auth.h) and xm_hbone_dsts (remote pods, datapath/hbone_capture.h).
 */
#ifndef XMESH_DATAPATH_MTLS_MAP_H
#define XMESH_DATAPATH_MTLS_MAP_H

#include "compile/peer_auth.h"

/*
 * Makes the map fd hold next: new and changed entries first, removed ones last, so each (pod, port) turns
 * from its old mode to its new one in one map update and never goes missing in between. old NULL: the map's
 * content is unknown (a restart, a failed sync): every entry of next is written, then every other key deleted.
 * what names the map in warnings. Returns 0 or -EIO (logged; the next sync must pass old NULL).
 */
int mtls_map_sync(int fd, const char *what, const struct xm_mtls_table *old, const struct xm_mtls_table *next);

#endif
