// SPDX-License-Identifier: Apache-2.0
#include "config/cache.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config/authz_policy.h"
#include "config/diag.h"
#include "config/envoy_filter.h"
#include "config/fields.h"

struct xm_config_cache *config_cache_new(void)
{
	return calloc(1, sizeof(struct xm_config_cache));
}

static void cached_file_clear(struct cached_file *cf)
{
	free(cf->path);
	config_free(&cf->objs);
	diags_free(&cf->diags);
	memset(cf, 0, sizeof(*cf));
}

static void api_entry_free(struct api_entry *e)
{
	if (!e)
		return;
	free(e->key);
	config_free(&e->objs);
	free(e);
}

void api_changes_free(struct api_change *changes, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		free(changes[i].key);
		if (changes[i].objs)
			config_free(changes[i].objs);
		free(changes[i].objs);
	}
}

int cache_api_key_cmp(const void *a, const void *b)
{
	return strcmp((*(struct api_entry *const *)a)->key, (*(struct api_entry *const *)b)->key);
}

int cache_api_apply(struct xm_config_cache *c, struct api_change *changes, size_t n)
{
	size_t added = 0, kept = 0, sorted = c->n_api;
	struct api_entry **grown;
	int err = 0;

	/* Room for every addition first. */
	grown = realloc(c->api, (c->n_api + n + 1) * sizeof(*c->api));
	if (!grown) {
		api_changes_free(changes, n);
		return -ENOMEM;
	}
	c->api = grown;
	for (size_t i = 0; i < n; i++) {
		struct api_change *ch = &changes[i];
		struct api_entry **slot = sorted
					      ? bsearch(&(struct api_entry *){ &(struct api_entry){ .key = ch->key } },
							c->api, sorted, sizeof(*c->api), cache_api_key_cmp)
					      : NULL;
		struct api_entry *e;

		/* An entry added in this batch is not sorted in yet: look among the additions too. */
		for (size_t j = sorted; !slot && j < sorted + added; j++)
			if (!strcmp(c->api[j]->key, ch->key))
				slot = &c->api[j];
		if (slot) {
			e = *slot;
			config_free(&e->objs);
			memset(&e->objs, 0, sizeof(e->objs));
			e->dead = !ch->objs;
			if (ch->objs)
				e->objs = *ch->objs;
			free(ch->objs);
			free(ch->key);
			continue;
		}
		if (!ch->objs) {
			free(ch->key);
			continue;
		}
		e = calloc(1, sizeof(*e));
		if (!e) {
			err = -ENOMEM; /* the object stays as it was; the next change to it tries again */
			free(ch->key);
			config_free(ch->objs);
			free(ch->objs);
			continue;
		}
		e->key = ch->key;
		e->objs = *ch->objs;
		free(ch->objs);
		c->api[sorted + added++] = e;
	}
	c->n_api += added;
	for (size_t i = 0; i < c->n_api; i++) {
		if (c->api[i]->dead)
			api_entry_free(c->api[i]);
		else
			c->api[kept++] = c->api[i];
	}
	c->n_api = kept;
	if (added)
		qsort(c->api, c->n_api, sizeof(*c->api), cache_api_key_cmp);
	return err;
}

void config_cache_free(struct xm_config_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_api; i++)
		api_entry_free(c->api[i]);
	free(c->api);
	for (size_t i = 0; i < c->n_files; i++)
		cached_file_clear(&c->files[i]);
	free(c->files);
	for (size_t i = 0; i < c->n_names; i++)
		free(c->names[i]);
	free(c->names);
	free(c->order);
	free(c);
}

static bool same_time(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec == b->tv_sec && a->tv_nsec == b->tv_nsec;
}

static struct cached_file *find_path(struct xm_config_cache *c, const char *path)
{
	for (size_t i = 0; i < c->n_files; i++) {
		if (c->files[i].path && !strcmp(c->files[i].path, path))
			return &c->files[i];
	}
	return NULL;
}

struct cached_file *cache_lookup(struct xm_config_cache *c, const char *path, const struct stat *st)
{
	struct cached_file *cf = find_path(c, path);

	/* The change time moves with every write, also one that keeps size and modification time. */
	if (!cf || !cf->cacheable || !S_ISREG(st->st_mode) || cf->dev != st->st_dev || cf->ino != st->st_ino ||
	    cf->size != st->st_size || !same_time(&cf->mtime, &st->st_mtim) || !same_time(&cf->ctime, &st->st_ctim))
		return NULL;
	c->reused++;
	return cf;
}

/*
 * Modified less than a second ago: another write of the same size within the file system's timestamp tick
 * would leave the identity unchanged, so the file is read again next time (git's "racily clean" rule).
 */
static bool racy(const struct stat *st)
{
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	return now.tv_sec - st->st_mtim.tv_sec < 1 ||
	       (now.tv_sec - st->st_mtim.tv_sec == 1 && now.tv_nsec < st->st_mtim.tv_nsec);
}

struct cached_file *cache_fresh(struct xm_config_cache *c, const char *path, const char *name, const struct stat *st)
{
	struct cached_file *cf = find_path(c, path);
	char **slot;

	/* Entries are addressed by index (cache_use): files may move when it grows. */
	if (cf)
		cached_file_clear(cf);
	else if (!(cf = array_push(&c->files, &c->n_files, sizeof(*c->files))))
		return NULL;
	cf->path = strdup(path);
	slot = cf->path ? array_push(&cf->objs.files, &cf->objs.n_files, sizeof(char *)) : NULL;
	if (!slot || !(*slot = strdup(name))) {
		cached_file_clear(cf); /* a pathless entry is skipped, and dropped by the next merge */
		return NULL;
	}
	cf->dev = st->st_dev;
	cf->ino = st->st_ino;
	cf->size = st->st_size;
	cf->mtime = st->st_mtim;
	cf->ctime = st->st_ctim;
	cf->cacheable = S_ISREG(st->st_mode) && !racy(st);
	c->parsed++;
	return cf;
}

int cache_use(struct xm_config_cache *c, struct cached_file *cf)
{
	size_t *idx = array_push(&c->order, &c->n_order, sizeof(size_t));

	if (!idx)
		return -ENOMEM;
	*idx = (size_t)(cf - c->files);
	cf->used = true;
	return 0;
}

const char *cache_intern(struct xm_config_cache *c, const char *name)
{
	char **slot;

	for (size_t i = 0; i < c->n_names; i++) {
		if (!strcmp(c->names[i], name))
			return c->names[i];
	}
	slot = array_push(&c->names, &c->n_names, sizeof(*c->names));
	if (!slot)
		return NULL;
	*slot = strdup(name);
	if (!*slot) {
		c->n_names--;
		return NULL;
	}
	return *slot;
}

/* Appends n objects of size bytes from src to dst (sized for the whole merge) at *at. */
static void append(void *dst, size_t *at, const void *src, size_t n, size_t size)
{
	if (n)
		memcpy((char *)dst + *at * size, src, n * size);
	*at += n;
}

/* An array of n objects of size bytes, or NULL for none; *failed on ENOMEM. */
static void *alloc_objs(size_t n, size_t size, bool *failed)
{
	void *p = n ? malloc(n * size) : NULL;

	if (n && !p)
		*failed = true;
	return p;
}

/* The i-th source of a merge (the files named, in order, then the API's objects), or NULL when excluded. */
static const struct xm_config *merge_source(const struct xm_config_cache *c, size_t i)
{
	if (i < c->n_order)
		return &c->files[c->order[i]].objs;
	return c->api[i - c->n_order]->excluded ? NULL : &c->api[i - c->n_order]->objs;
}

int cache_merge(struct xm_config_cache *c, struct xm_config *cfg, struct xm_diags *diags, int *n_errors)
{
	size_t n_svc = 0, n_sl = 0, n_pod = 0, n_node = 0, n_rule = 0, n_vs = 0, n_ef = 0, n_pa = 0, n_az = 0, kept = 0;
	bool failed = false;
	int err = 0;

	for (size_t i = 0; i < c->n_order + c->n_api; i++) {
		const struct xm_config *o = merge_source(c, i);

		if (!o)
			continue;
		n_svc += o->n_services;
		n_sl += o->n_slices;
		n_pod += o->n_pods;
		n_node += o->n_nodes;
		n_rule += o->n_rules;
		n_vs += o->n_virtual_services;
		n_ef += o->n_envoy_filters;
		n_pa += o->n_peer_auths;
		n_az += o->n_authz_policies;
	}
	cfg->borrowed = true;
	cfg->services = alloc_objs(n_svc, sizeof(*cfg->services), &failed);
	cfg->slices = alloc_objs(n_sl, sizeof(*cfg->slices), &failed);
	cfg->pods = alloc_objs(n_pod, sizeof(*cfg->pods), &failed);
	cfg->nodes = alloc_objs(n_node, sizeof(*cfg->nodes), &failed);
	cfg->rules = alloc_objs(n_rule, sizeof(*cfg->rules), &failed);
	cfg->virtual_services = alloc_objs(n_vs, sizeof(*cfg->virtual_services), &failed);
	cfg->envoy_filters = alloc_objs(n_ef, sizeof(*cfg->envoy_filters), &failed);
	cfg->peer_auths = alloc_objs(n_pa, sizeof(*cfg->peer_auths), &failed);
	cfg->authz_policies = alloc_objs(n_az, sizeof(*cfg->authz_policies), &failed);
	if (failed) {
		err = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < c->n_order + c->n_api; i++) {
		const struct cached_file *cf = i < c->n_order ? &c->files[c->order[i]] : NULL;
		const struct xm_config *o = merge_source(c, i);

		if (!o)
			continue;

		append(cfg->services, &cfg->n_services, o->services, o->n_services, sizeof(*o->services));
		append(cfg->slices, &cfg->n_slices, o->slices, o->n_slices, sizeof(*o->slices));
		append(cfg->pods, &cfg->n_pods, o->pods, o->n_pods, sizeof(*o->pods));
		append(cfg->nodes, &cfg->n_nodes, o->nodes, o->n_nodes, sizeof(*o->nodes));
		append(cfg->rules, &cfg->n_rules, o->rules, o->n_rules, sizeof(*o->rules));
		append(cfg->virtual_services, &cfg->n_virtual_services, o->virtual_services, o->n_virtual_services,
		       sizeof(*o->virtual_services));
		append(cfg->envoy_filters, &cfg->n_envoy_filters, o->envoy_filters, o->n_envoy_filters,
		       sizeof(*o->envoy_filters));
		append(cfg->peer_auths, &cfg->n_peer_auths, o->peer_auths, o->n_peer_auths, sizeof(*o->peer_auths));
		append(cfg->authz_policies, &cfg->n_authz_policies, o->authz_policies, o->n_authz_policies,
		       sizeof(*o->authz_policies));
		if (!cf)
			continue; /* API objects: only those without errors are kept, their warnings were logged */
		for (size_t d = 0; d < cf->diags.n; d++) {
			const struct xm_diag *dg = &cf->diags.items[d];

			if (dg->warning ? diags_warn(diags, &dg->loc, "%s", dg->msg)
					: diags_add(diags, &dg->loc, "%s", dg->msg))
				err = -ENOMEM;
		}
		*n_errors += cf->n_errors;
	}
out:
	/* Files no longer named are forgotten; the rest wait for the next load. */
	for (size_t i = 0; i < c->n_files; i++) {
		struct cached_file *cf = &c->files[i];

		if (!cf->used || !cf->path) {
			cached_file_clear(cf);
			continue;
		}
		cf->used = false;
		if (kept != i)
			c->files[kept] = *cf;
		kept++;
	}
	c->n_files = kept;
	c->n_order = 0;
	return err;
}
