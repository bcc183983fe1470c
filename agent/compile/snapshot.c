// SPDX-License-Identifier: Apache-2.0
#include "compile/snapshot.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct xm_snapshot *snapshot_build(const struct xm_config *cfg, const struct xm_compile_opts *opts, int *err)
{
	struct xm_snapshot *s = calloc(1, sizeof(*s));

	*err = -ENOMEM;
	if (!s)
		return NULL;
	atomic_init(&s->refs, 1);
	*err = compile_lb(cfg, opts, &s->lb);
	if (!*err)
		*err = identities_build(cfg, opts->trust_domain, &s->identities);
	if (!*err)
		*err = local_addrs_build(cfg, opts->node_name, &s->local);
	if (!*err)
		*err = compile_node_addrs(cfg, &s->nodes);
	if (!*err)
		*err = mtls_table_build(cfg, opts->node_name, opts->root_namespace, &s->mtls);
	if (!*err)
		*err = mtls_remote_build(cfg, opts->node_name, opts->root_namespace, &s->mtls_remote);
	if (!*err)
		*err = authz_table_build(cfg, opts->root_namespace, &s->authz);
	if (!*err) {
		s->authz_plain_err =
		    authz_plain_build(&s->identities, &s->authz, opts->node_name, opts->trust_domain, &s->authz_plain);
		if (s->authz_plain_err == -ENOMEM)
			*err = -ENOMEM;
	}
	if (!*err)
		*err = l7_routes_build(cfg, &s->lb, &s->identities, &s->routes);
	if (*err) {
		snapshot_put(s);
		return NULL;
	}
	return s;
}

static int id_cmp(const void *a, const void *b)
{
	uint32_t x = ((const struct xm_snap_ref *)a)->id, y = ((const struct xm_snap_ref *)b)->id;

	return x < y ? -1 : x > y;
}

/* By id, then by position: the first service listing a backend answers for it. */
static int ref_cmp(const void *a, const void *b)
{
	const struct xm_snap_ref *x = a, *y = b;
	int c = id_cmp(a, b);

	if (c)
		return c;
	if (x->svc != y->svc)
		return x->svc < y->svc ? -1 : 1;
	return x->backend < y->backend ? -1 : x->backend > y->backend;
}

int snapshot_index(struct xm_snapshot *s)
{
	size_t i, j, n_be = 0;

	free(s->by_svc_id);
	free(s->by_backend_id);
	s->n_by_svc_id = s->n_by_backend_id = 0;
	for (i = 0; i < s->lb.n_services; i++)
		n_be += s->lb.services[i].n_backends;
	s->by_svc_id = malloc((s->lb.n_services + 1) * sizeof(*s->by_svc_id));
	s->by_backend_id = malloc((n_be + 1) * sizeof(*s->by_backend_id));
	if (!s->by_svc_id || !s->by_backend_id) {
		free(s->by_svc_id);
		free(s->by_backend_id);
		s->by_svc_id = s->by_backend_id = NULL;
		return -ENOMEM;
	}
	for (i = 0; i < s->lb.n_services; i++) {
		const struct xm_lb_service *svc = &s->lb.services[i];

		if (svc->svc_id)
			s->by_svc_id[s->n_by_svc_id++] = (struct xm_snap_ref){ svc->svc_id, (uint32_t)i, 0 };
		for (j = 0; j < svc->n_backends; j++)
			if (svc->backends[j].id)
				s->by_backend_id[s->n_by_backend_id++] =
				    (struct xm_snap_ref){ svc->backends[j].id, (uint32_t)i, (uint32_t)j };
	}
	qsort(s->by_svc_id, s->n_by_svc_id, sizeof(*s->by_svc_id), ref_cmp);
	qsort(s->by_backend_id, s->n_by_backend_id, sizeof(*s->by_backend_id), ref_cmp);
	/* Keep the first entry of each backend id: bsearch must not land on an arbitrary duplicate. */
	for (i = 0, j = 0; i < s->n_by_backend_id; i++)
		if (!j || s->by_backend_id[j - 1].id != s->by_backend_id[i].id)
			s->by_backend_id[j++] = s->by_backend_id[i];
	s->n_by_backend_id = j;
	return 0;
}

static const struct xm_snap_ref *find_ref(const struct xm_snap_ref *v, size_t n, uint32_t id)
{
	struct xm_snap_ref key = { .id = id };

	return id && n ? bsearch(&key, v, n, sizeof(*v), id_cmp) : NULL;
}

const struct xm_lb_service *snapshot_service(const struct xm_snapshot *s, uint32_t svc_id)
{
	const struct xm_snap_ref *r = find_ref(s->by_svc_id, s->n_by_svc_id, svc_id);

	return r ? &s->lb.services[r->svc] : NULL;
}

const struct xm_lb_backend *snapshot_backend(const struct xm_snapshot *s, uint32_t backend_id)
{
	const struct xm_snap_ref *r = find_ref(s->by_backend_id, s->n_by_backend_id, backend_id);

	return r ? &s->lb.services[r->svc].backends[r->backend] : NULL;
}

static int key_cmp(const void *key, const void *svc)
{
	return memcmp(key, &((const struct xm_lb_service *)svc)->key, sizeof(struct xm_svc_key));
}

const struct xm_lb_service *snapshot_service_by_key(const struct xm_snapshot *s, const struct xm_svc_key *key)
{
	return s->lb.n_services ? bsearch(key, s->lb.services, s->lb.n_services, sizeof(*s->lb.services), key_cmp)
				: NULL;
}

struct xm_snapshot *snapshot_get(struct xm_snapshot *s)
{
	if (s)
		atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
	return s;
}

void snapshot_put(struct xm_snapshot *s)
{
	if (!s || atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	l7_routes_free(&s->routes); /* before lb: it points into it */
	lb_state_free(&s->lb);
	identities_free(&s->identities);
	local_addrs_free(&s->local);
	node_addrs_free(&s->nodes);
	mtls_table_free(&s->mtls);
	mtls_table_free(&s->mtls_remote);
	authz_table_free(&s->authz);
	authz_plain_free(&s->authz_plain);
	free(s->by_svc_id);
	free(s->by_backend_id);
	free(s);
}
