// SPDX-License-Identifier: Apache-2.0
/*
 * PeerAuthentication STRICT and AuthorizationPolicy for plaintext clients in the kernel as a module: the TC
 * program on the pods' host-side veths (attached once the config has a STRICT pod port or a pod whose
 * policies deny some plaintext client on this node, and to each veth that appears after), the policy maps in
 * step with each snapshot, xmesh_plaintext_rejected_total and xmesh_authz_plaintext_denied_total; after a
 * change, the established plaintext connections it now denies closed (daemon/plain_sweep.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "compile/plain_judge.h"
#include "compile/snapshot.h"
#include "core/log.h"
#include "core/strbuf.h"
#include "daemon/daemon.h"
#include "daemon/module.h"
#include "daemon/plain_sweep.h"
#include "datapath/peer_auth.h"
#include "metrics/peer_auth_metrics.h"

struct peer_auth_mod {
	struct xm_peer_auth_dp dp;
	struct xm_snapshot *published; /* whose table the map holds; NULL: unknown, sync it whole */
	/* Whose plaintext AuthorizationPolicy table xm_authz_plain holds (a table too big keeps the one before). */
	struct xm_snapshot *published_authz;
	bool enforcing; /* a STRICT port or a plaintext denial was seen: veths are watched from then on */
	struct plain_sweeper *sweeper; /* closes established connections a change denies; NULL: could not start */
};

static int peer_auth_mod_init(struct xm_agent *a, void **state)
{
	const struct xm_agent_opts *o = daemon_opts(a);
	struct peer_auth_mod *m = calloc(1, sizeof(*m));
	int err;

	*state = NULL;
	if (!m)
		return -ENOMEM;
	err = peer_auth_dp_open(&m->dp, o->bpffs, o->ifaces, o->n_ifaces);
	if (err) {
		free(m);
		return err;
	}
	m->sweeper = plain_sweeper_new(NULL);
	if (!m->sweeper)
		log_warn("peerauthentication: established plaintext connections will not be closed when a policy "
			 "change denies them (no sweeper: %s)",
			 strerror(errno));
	*state = m;
	return 0;
}

/*
 * After next's tables are in the maps: the pods whose STRICT or AuthorizationPolicy entries changed since old
 * (NULL: unknown, all guarded pods) get their established connections judged again (docs/mtls.md "Closing
 * what a change denies").
 */
static void sweep_changed(struct peer_auth_mod *m, const struct xm_snapshot *old, struct xm_snapshot *next)
{
	struct plain_rules o = { .authz = old ? &old->authz_plain : NULL, .mtls = old ? &old->mtls : NULL },
			   n = { .authz = &next->authz_plain, .mtls = &next->mtls };
	struct xm_local_ip_key *pods;
	long changed;

	if (!m->sweeper || (!next->mtls.n && !next->authz_plain.n))
		return;
	changed = plain_rules_changed_pods(old ? &o : NULL, &n, &pods);
	if (changed > 0)
		plain_sweeper_request(m->sweeper, next, pods, (size_t)changed);
	else if (changed < 0)
		log_warn("peerauthentication: out of memory: established plaintext connections not judged again");
	free(pods);
}

static void scan(struct peer_auth_mod *m)
{
	int n = peer_auth_dp_scan(&m->dp);

	if (n < 0)
		log_warn("peerauthentication: listing interfaces: %s", strerror(-n));
	else if (n > 0)
		log_info("peerauthentication: STRICT enforced on %d more veth(s), %zu in all", n, m->dp.n_attached);
}

static int peer_auth_mod_apply(void *state, struct xm_snapshot *next)
{
	struct peer_auth_mod *m = state;
	struct xm_snapshot *before;
	int err;

	/* Attach before the first entry is published: a STRICT port or a denied client is never served unguarded. */
	if ((next->mtls.n || next->authz_plain.n) && !m->enforcing) {
		m->enforcing = true;
		log_info("peerauthentication: %s: plaintext is judged in the kernel",
			 next->mtls.n ? "a local pod port is STRICT"
				      : "AuthorizationPolicy denies plaintext to a local pod");
	}
	if (m->enforcing)
		scan(m);
	/* What the kernel enforced before (both tables known), to tell which pods' entries change. */
	before = m->published && m->published_authz && m->published == m->published_authz ? snapshot_get(m->published)
											  : NULL;
	err = peer_auth_dp_sync_local(&m->dp, m->published ? &m->published->local : NULL, &next->local);
	if (peer_auth_dp_sync(&m->dp, m->published ? &m->published->mtls : NULL, &next->mtls))
		err = -EIO;
	snapshot_put(m->published);
	m->published = err ? NULL : snapshot_get(next);
	if (!next->authz_plain_err) { /* else logged by the build; the kernel keeps judging by the previous table */
		if (peer_auth_dp_sync_authz(&m->dp, m->published_authz ? &m->published_authz->authz_plain : NULL,
					    &next->authz_plain)) {
			snapshot_put(m->published_authz);
			m->published_authz = NULL;
			snapshot_put(before);
			return -EIO;
		}
		snapshot_put(m->published_authz);
		m->published_authz = snapshot_get(next);
	}
	if (!err)
		sweep_changed(m, before, next);
	snapshot_put(before);
	return err;
}

static void peer_auth_mod_tick(void *state, const struct xm_snapshot *cur, uint64_t now_ms)
{
	struct peer_auth_mod *m = state;

	(void)cur;
	(void)now_ms;
	if (m->enforcing)
		scan(m);
}

static void peer_auth_mod_status(void *state, const struct xm_snapshot *cur, bool json, struct strbuf *out)
{
	const struct peer_auth_mod *m = state;

	(void)cur;
	if (json)
		sb_printf(out,
			  ",\"peer_authentication\":{\"strict_entries\":%zu,\"authz_plaintext_entries\":%zu,"
			  "\"veths\":%zu}",
			  m->dp.n_entries, m->dp.n_authz_entries, m->dp.n_attached);
	else
		sb_printf(out,
			  "peerauthentication: %zu pod port entries with STRICT, %zu AuthorizationPolicy entries for "
			  "plaintext, TC egress on %zu veth(s)\n",
			  m->dp.n_entries, m->dp.n_authz_entries, m->dp.n_attached);
	if (m->sweeper)
		plain_sweeper_status(m->sweeper, json, out);
}

static void peer_auth_mod_collect(void *state, const struct xm_snapshot *cur, struct xm_scrape *sc)
{
	const struct peer_auth_mod *m = state;

	peer_auth_metrics_collect(peer_auth_dp_rejected_fd(&m->dp), cur, sc);
	authz_plain_metrics_collect(peer_auth_dp_authz_denied_fd(&m->dp), cur, sc);
	if (m->sweeper) {
		struct plain_close_count *v;
		struct plain_sweep_problems p;
		size_t n;

		if (!plain_sweeper_counts(m->sweeper, &v, &n, &p)) {
			authz_plain_closed_metrics_collect(v, n, &p, cur, sc);
			free(v);
		}
	}
}

static void peer_auth_mod_close(void *state)
{
	struct peer_auth_mod *m = state;

	plain_sweeper_free(m->sweeper); /* first: a running sweep holds a snapshot, never the maps */
	snapshot_put(m->published);
	snapshot_put(m->published_authz);
	peer_auth_dp_close(&m->dp);
	free(m);
}

const struct xm_module xm_module_peer_auth = {
	.name = "peerauthentication",
	.init = peer_auth_mod_init,
	.apply = peer_auth_mod_apply,
	.tick = peer_auth_mod_tick,
	.status = peer_auth_mod_status,
	.collect = peer_auth_mod_collect,
	.close = peer_auth_mod_close,
};
