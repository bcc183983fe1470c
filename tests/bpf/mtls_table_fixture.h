/* SPDX-License-Identifier: Apache-2.0 */
/* Compiled mTLS tables by hand, and a check that a BPF map keyed like xm_mtls_policy holds exactly one. */
#ifndef XMESH_TEST_MTLS_TABLE_FIXTURE_H
#define XMESH_TEST_MTLS_TABLE_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "compile/peer_auth.h"

/* One entry: ip (IPv4 or IPv6 text), port host order (0: the workload's mode). */
struct xm_mtls_entry mtx_entry(const char *ip, uint16_t port, uint8_t mode, uint8_t flags);

/* A table over items, sorted in place as mtls_table_build sorts (memcmp of the key). */
struct xm_mtls_table mtx_table(struct xm_mtls_entry *items, size_t n);

/* Asserts that the map fd holds exactly t's entries and values. */
void mtx_assert_map_is(int fd, const struct xm_mtls_table *t);

#endif
