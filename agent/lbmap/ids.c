// SPDX-License-Identifier: Apache-2.0
/* Writes the ids that publishing gave each service port and backend back into the compiled state. */
#include <arpa/inet.h>

#include "lbmap/lbmap.h"

void lbmap_assign_ids(const struct xm_lbmap *m, struct xm_lb_state *st)
{
	for (size_t i = 0; i < st->n_services; i++) {
		struct xm_lb_service *s = &st->services[i];

		s->svc_id = lbmap_svc_id(m, &s->key);
		s->outlier_id = lbmap_outlier_id(m, &s->key);
		for (size_t j = 0; j < s->n_backends; j++) {
			struct xm_lb_backend *b = &s->backends[j];

			b->id = lbmap_backend_id(m, &b->addr, htons(b->port), b->family);
		}
	}
}
