/* SPDX-License-Identifier: Apache-2.0 */
/* Fixed-size integer types that both BPF (vmlinux.h) and userspace (linux/types.h) agree on. */
#ifndef XMESH_TYPES_H
#define XMESH_TYPES_H

#ifndef __VMLINUX_H__
#include <linux/bpf.h> /* struct bpf_spin_lock in shared values */
#include <linux/types.h>
#endif

#define XM_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

#endif
