/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The one loader of xmesh's BPF objects (sock_lb, sockmap, xdp_lb): bpffs prepared, the object opened with
 * its maps pinned by name under bpffs (a previous agent's maps adopted), pins of an incompatible version
 * replaced, the object loaded (missing maps created and pinned). Also libbpf's messages, routed to the
 * agent's log, with the kernel messages of expected outcomes kept out of the warnings.
 */
#ifndef XMESH_DATAPATH_BPF_LOADER_H
#define XMESH_DATAPATH_BPF_LOADER_H

#include <bpf/libbpf.h>

/* A skeleton's functions, without its type: what bpf_loader_open needs. Made by XM_BPF_SKEL_OPS. */
struct xm_bpf_skel_ops {
	const char *name; /* the object's name, for messages */
	void *(*open)(const struct bpf_object_open_opts *opts);
	struct bpf_object *(*object)(void *skel);
	int (*load)(void *skel);
	void (*destroy)(void *skel);
	/* Optional: runs between open and load, e.g. to set the object's read-only globals. */
	void (*before_load)(void *skel);
};

/* Defines NAME_skel_ops for the bpftool skeleton NAME (skel/NAME.skel.h included before). */
#define XM_BPF_SKEL_OPS(NAME)                                                                                          \
	static void *NAME##_skel_open(const struct bpf_object_open_opts *opts)                                         \
	{                                                                                                              \
		return NAME##__open_opts(opts);                                                                        \
	}                                                                                                              \
	static struct bpf_object *NAME##_skel_object(void *skel)                                                       \
	{                                                                                                              \
		return ((struct NAME *)skel)->obj;                                                                     \
	}                                                                                                              \
	static int NAME##_skel_load(void *skel)                                                                        \
	{                                                                                                              \
		return NAME##__load(skel);                                                                             \
	}                                                                                                              \
	static void NAME##_skel_destroy(void *skel)                                                                    \
	{                                                                                                              \
		NAME##__destroy(skel);                                                                                 \
	}                                                                                                              \
	static const struct xm_bpf_skel_ops __attribute__((unused))                                                    \
	NAME##_skel_ops = { #NAME, NAME##_skel_open, NAME##_skel_object, NAME##_skel_load, NAME##_skel_destroy, NULL }

/*
 * Opens and loads ops' object with its maps pinned under bpffs (created, and bpffs mounted, if needed).
 * hint: appended to a load failure's log line (what the user can do). Returns the skeleton, or NULL with
 * *err = -errno (logged; nothing stays open).
 */
void *bpf_loader_open(const struct xm_bpf_skel_ops *ops, const char *bpffs, const char *hint, int *err);

/* Opens a cgroup directory for attaching programs: the fd, or -errno (logged). */
int bpf_loader_open_cgroup(const char *cgroup);

/*
 * libbpf's messages go to the agent's log: warnings as warnings, the rest as debug. Between
 * bpf_loader_expect(msg) and bpf_loader_expect(NULL), a kernel message containing msg is an outcome the
 * caller expects and handles (e.g. "Exclusivity flag on" when the clsact qdisc is already there): logged
 * at debug level only. Called by bpf_loader_open; idempotent.
 */
void bpf_loader_log_to_agent(void);
void bpf_loader_expect(const char *msg);

#endif
