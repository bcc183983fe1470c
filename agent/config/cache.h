/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The per-file parse cache behind config_load_cached: each file's objects as parsed, kept while the file's
 * identity (device, inode, size, modification and change times) stays the same, so that a reload parses only
 * the files that changed. Validation and compile still see the whole config, merged from the files.
 */
#ifndef XMESH_CONFIG_CACHE_H
#define XMESH_CONFIG_CACHE_H

#include <stdbool.h>
#include <sys/stat.h>

#include "config/model.h"

struct cached_file {
	char *path; /* as the loader was given it */
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime, ctime;
	bool cacheable;	       /* a regular file read without error: stdin and pipes are read every time */
	struct xm_config objs; /* the file's objects, unvalidated; objs.files[0] is its interned name */
	struct xm_diags diags; /* what parsing the file reported */
	int n_errors;
	bool used; /* named by the current load */
};

/*
 * An object from the Kubernetes API (kube/), kept as a "file" of its own keyed "Kind/namespace/name": one
 * changed object re-parses only itself. Only objects that parsed without error are kept (a rejected one is
 * reported by the watcher and left out).
 */
struct api_entry {
	char *key;
	struct xm_config objs; /* objs.files[0] is the key, the name diagnostics point at */
	bool dead;	       /* deleted in the batch being applied (keeps its key for the search) */
	/*
	 * Left out of the current build: validation found an error in it that involves other objects (a
	 * DestinationRule whose host matches no Service, a duplicate). An API object is rejected alone; the
	 * next build tries it again (the Service may have come).
	 */
	bool excluded, was_excluded; /* this build; the build before (the config thread logs the changes) */
	char why[512];		     /* the first error that excluded it */
};

/* A change to the API objects: objs set puts (the entry takes them), objs NULL deletes. */
struct api_change {
	char *key;
	struct xm_config *objs;
};

struct xm_config_cache {
	struct api_entry **api; /* sorted by key: merged after the files, in key order */
	size_t n_api;
	struct cached_file *files;
	size_t n_files;
	char **names; /* interned names of paths that could not be read (their diagnostics point here) */
	size_t n_names;
	size_t *order; /* indexes in files of the current load's files, in load order */
	size_t n_order;
	unsigned long parsed, reused; /* files, over the cache's life */
	size_t n_excluded;	      /* API entries left out of the last build */
};

/* The entry of path when it is cacheable and its identity matches st; NULL otherwise. */
struct cached_file *cache_lookup(struct xm_config_cache *c, const char *path, const struct stat *st);

/* A fresh entry for path (an older one of the same path is freed first) with st's identity; NULL on ENOMEM. */
struct cached_file *cache_fresh(struct xm_config_cache *c, const char *path, const char *name, const struct stat *st);

/* Marks cf as part of the current load (in order). Returns 0 or -ENOMEM. */
int cache_use(struct xm_config_cache *c, struct cached_file *cf);

/* name, interned for the cache's life. */
const char *cache_intern(struct xm_config_cache *c, const char *name);

/*
 * The current load's files merged into cfg (objects copied shallowly: their arrays stay the cache's, which
 * cfg->borrowed tells config_free), their diagnostics appended to diags and counted in *n_errors; entries
 * the load did not name are dropped. Returns 0 or -ENOMEM.
 */
int cache_merge(struct xm_config_cache *c, struct xm_config *cfg, struct xm_diags *diags, int *n_errors);

/* Applies changes (each taken: key and objs freed or kept). Returns 0 or -ENOMEM (the cache stays whole). */
int cache_api_apply(struct xm_config_cache *c, struct api_change *changes, size_t n);

/* Orders api entries (pointers) by key, for bsearch. */
int cache_api_key_cmp(const void *a, const void *b);

/* Frees a change list's contents. */
void api_changes_free(struct api_change *changes, size_t n);

#endif
