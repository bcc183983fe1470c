/* SPDX-License-Identifier: Apache-2.0 */
/*
 * HBONE against an independent implementation: tests/tools/hbone_peer.py (Python's ssl and Debian's
 * python3-h2) as the client of our server and as the server of our client, over loopback, with
 * certificates made here and written as PEM for it. Byte-exact echo both ways; a Python client without a
 * certificate, or with one from another root, is refused.
 */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <linux/close_range.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/loop.h"
#include "hbone/hbone.h"
#include "hbone_fixture.h"
#include "hbone_pipe.h"

#define PEER   "tests/tools/hbone_peer.py"
#define PYTHON "/usr/bin/python3" /* Debian's, where python3-h2 is */
#define SRC_ID "spiffe://cluster.local/ns/a/sa/client"
#define DST_ID "spiffe://cluster.local/ns/b/sa/server"

static struct {
	struct xm_loop *loop;
	struct hbone_counters ctr;
	struct hbt_cert root, other_root, server_leaf, client_leaf, foreign_leaf;
	X509_STORE *store;
	char dir[64];
	int lfd;
	struct sockaddr_storage hbone_addr, echo_addr;
	struct hbt_echo *echo;
	struct hbone_server *srv;
	struct hbone_client *cl;
	pid_t child;
	int child_status;
	bool child_done;
} ix;

static int admit_all(void *ctx, const struct hbone_admit *a)
{
	(void)ctx, (void)a;
	return 200;
}

static int pick_cert(void *ctx, const struct sockaddr_storage *local, X509 **cert, EVP_PKEY **key,
		     STACK_OF(X509) * *chain)
{
	(void)ctx, (void)local;
	*cert = ix.server_leaf.cert;
	*key = ix.server_leaf.key;
	*chain = NULL;
	return 0;
}

static void setup(void)
{
	struct hbone_server_config scfg = { .verify = hbt_verify, .cert = pick_cert, .admit = admit_all };
	struct hbone_client_config ccfg = { .verify = hbt_verify };

	signal(SIGCHLD, SIG_DFL); /* the children's exit statuses are the verdicts */
	cr_assert_eq(access(PEER, R_OK), 0, PEER " missing (run from the repository's root)");
	cr_assert_eq(system(PYTHON " -c 'import h2' 2>/dev/null"), 0,
		     "python3-h2 missing (scripts/install-deps.sh installs it)");
	memset(&ix, 0, sizeof(ix));
	ix.loop = loop_new();
	cr_assert_not_null(ix.loop);
	ix.root = hbt_ca_new("root");
	ix.other_root = hbt_ca_new("other");
	ix.server_leaf = hbt_leaf_new(&ix.root, DST_ID);
	ix.client_leaf = hbt_leaf_new(&ix.root, SRC_ID);
	ix.foreign_leaf = hbt_leaf_new(&ix.other_root, SRC_ID);
	ix.store = hbt_store(&ix.root);
	snprintf(ix.dir, sizeof(ix.dir), "/tmp/xm-hbone-XXXXXX");
	cr_assert_not_null(mkdtemp(ix.dir));
	hbt_write_pem(ix.dir, "root", &ix.root);
	hbt_write_pem(ix.dir, "server", &ix.server_leaf);
	hbt_write_pem(ix.dir, "client", &ix.client_leaf);
	hbt_write_pem(ix.dir, "foreign", &ix.foreign_leaf);
	scfg.trust = ccfg.trust = ix.store;
	ix.echo = hbt_echo_start(ix.loop, &ix.echo_addr);
	ix.lfd = hbt_listen(&ix.hbone_addr);
	ix.srv = hbone_server_new(ix.loop, ix.lfd, &scfg, &ix.ctr);
	ix.cl = hbone_client_new(ix.loop, &ccfg, &ix.ctr);
	cr_assert(ix.srv && ix.cl);
}

static void teardown(void)
{
	char cmd[128];

	if (ix.child > 0 && !ix.child_done) {
		kill(ix.child, SIGKILL);
		waitpid(ix.child, NULL, 0);
	}
	hbone_client_free(ix.cl);
	hbone_server_free(ix.srv);
	hbt_run_for(ix.loop, 5);
	hbt_echo_stop(ix.echo);
	close(ix.lfd);
	X509_STORE_free(ix.store);
	hbt_cert_free(&ix.root);
	hbt_cert_free(&ix.other_root);
	hbt_cert_free(&ix.server_leaf);
	hbt_cert_free(&ix.client_leaf);
	hbt_cert_free(&ix.foreign_leaf);
	loop_free(ix.loop);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", ix.dir);
	(void)!system(cmd);
}

TestSuite(hbone_interop, .init = setup, .fini = teardown, .timeout = 60);

static void spawn(char *const argv[])
{
	ix.child_done = false;
	ix.child = fork();
	cr_assert_geq(ix.child, 0);
	if (ix.child == 0) {
		/* nothing of the test runner's (its pipes to the worker) goes to the peer */
		close_range(3, ~0u, 0);
		execv(argv[0], argv);
		_exit(127);
	}
}

static bool child_exited(void *arg)
{
	(void)arg;
	if (!ix.child_done && waitpid(ix.child, &ix.child_status, WNOHANG) == ix.child)
		ix.child_done = true;
	return ix.child_done;
}

static int run_peer_client(const char *cert, const char *extra)
{
	char ca[128], crt[128], key[128], connect[64], authority[64];
	char *argv[24];
	int n = 0;

	snprintf(ca, sizeof(ca), "%s/root.pem", ix.dir);
	cr_assert_gt(hbone_format_authority(&ix.hbone_addr, connect, sizeof(connect)), 0);
	cr_assert_gt(hbone_format_authority(&ix.echo_addr, authority, sizeof(authority)), 0);
	argv[n++] = PYTHON;
	argv[n++] = PEER;
	argv[n++] = "client";
	argv[n++] = "--ca";
	argv[n++] = ca;
	if (cert) {
		snprintf(crt, sizeof(crt), "%s/%s.pem", ix.dir, cert);
		snprintf(key, sizeof(key), "%s/%s.key", ix.dir, cert);
		argv[n++] = "--cert";
		argv[n++] = crt;
		argv[n++] = "--key";
		argv[n++] = key;
	}
	argv[n++] = "--connect";
	argv[n++] = connect;
	argv[n++] = "--authority";
	argv[n++] = authority;
	argv[n++] = "--expect-id";
	argv[n++] = DST_ID;
	if (extra)
		argv[n++] = (char *)extra;
	argv[n] = NULL;
	spawn(argv);
	cr_assert(hbt_run_until(ix.loop, child_exited, NULL, 60000), "the python client did not finish");
	cr_assert(WIFEXITED(ix.child_status), "status %d", ix.child_status);
	return WEXITSTATUS(ix.child_status);
}

Test(hbone_interop, python_client_to_c_server)
{
	cr_expect_eq(run_peer_client("client", NULL), 0);
	cr_expect_eq(atomic_load(&ix.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_SUCCESS]), 1);
	cr_expect_eq(atomic_load(&ix.ctr.streams_opened[HBONE_SIDE_SERVER]), 1);
	cr_expect_eq(atomic_load(&ix.ctr.bytes_received[HBONE_SIDE_SERVER]), 1u << 20);
	cr_expect_eq(atomic_load(&ix.ctr.bytes_sent[HBONE_SIDE_SERVER]), 1u << 20);
}

Test(hbone_interop, python_client_without_cert_refused)
{
	cr_expect_eq(run_peer_client(NULL, "--expect-refused"), 0);
	cr_expect_eq(atomic_load(&ix.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_FAILURE]), 1);
	cr_expect_eq(atomic_load(&ix.ctr.streams_opened[HBONE_SIDE_SERVER]), 0);
	cr_expect_eq(hbt_echo_connections(ix.echo), 0);
}

Test(hbone_interop, python_client_from_another_root_refused)
{
	cr_expect_eq(run_peer_client("foreign", "--expect-refused"), 0);
	cr_expect_eq(atomic_load(&ix.ctr.handshakes[HBONE_SIDE_SERVER][HBONE_HS_FAILURE]), 1);
	cr_expect_eq(atomic_load(&ix.ctr.streams_opened[HBONE_SIDE_SERVER]), 0);
}

/* ---- our client, their server ---- */

static bool port_file_ready(void *arg)
{
	return access(arg, R_OK) == 0 || child_exited(NULL);
}

#define BAGGAGE                                                                                                        \
	"k8s.cluster.name=Kubernetes,k8s.namespace.name=a,k8s.deployment.name=client,service.name=client,"             \
	"service.version=v1,cloud.region=,cloud.availability_zone="

/* The request headers as ztunnel sends them, checked byte for byte by the independent server's HPACK decoder. */
Test(hbone_interop, c_client_to_python_server)
{
	char ca[128], crt[128], key[128], port_file[128], client[64], fwd[160];
	char *argv[] = { PYTHON,
			 PEER,
			 "server",
			 "--ca",
			 ca,
			 "--cert",
			 crt,
			 "--key",
			 key,
			 "--port-file",
			 port_file,
			 "--authority",
			 "10.9.8.7:80",
			 "--expect-id",
			 SRC_ID,
			 "--expect-header",
			 fwd,
			 "--expect-header",
			 "baggage=" BAGGAGE,
			 NULL };
	struct sockaddr_storage dst, target;
	struct sockaddr_in *in = (struct sockaddr_in *)&dst;
	struct hbt_pipe e;
	struct hbone_open req = {
		.src_id = SRC_ID,
		.dst_id = DST_ID,
		.dst = &dst,
		.cert = ix.client_leaf.cert,
		.key = ix.client_leaf.key,
		.target = &target,
		.client = &ix.echo_addr,
		.forwarded_host = "web.a.svc.cluster.local",
		.baggage = BAGGAGE,
	};
	FILE *f;
	int port = 0;

	cr_assert_gt(hbone_format_authority(&ix.echo_addr, client, sizeof(client)), 0);
	snprintf(fwd, sizeof(fwd), "forwarded=for=\"%s\";host=web.a.svc.cluster.local", client);
	snprintf(ca, sizeof(ca), "%s/root.pem", ix.dir);
	snprintf(crt, sizeof(crt), "%s/server.pem", ix.dir);
	snprintf(key, sizeof(key), "%s/server.key", ix.dir);
	snprintf(port_file, sizeof(port_file), "%s/port", ix.dir);
	spawn(argv);
	cr_assert(hbt_run_until(ix.loop, port_file_ready, port_file, 20000));
	cr_assert_not(ix.child_done, "the python server exited early");
	f = fopen(port_file, "r");
	cr_assert_not_null(f);
	cr_assert_eq(fscanf(f, "%d", &port), 1);
	fclose(f);
	memset(&dst, 0, sizeof(dst));
	in->sin_family = AF_INET;
	in->sin_port = htons((uint16_t)port);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(hbone_parse_authority("10.9.8.7:80", 11, &target), 0);
	hbt_pipe_open(&e, ix.cl, &req, 42, 1u << 20);
	cr_assert(hbt_run_until(ix.loop, hbt_pipe_closed, &e, 30000), "sent %lu got %lu", e.sent, e.got);
	cr_expect_eq(e.status, 200);
	cr_expect_eq(e.close_err, 0);
	cr_expect_eq(e.got, e.total);
	cr_expect_not(e.mismatch);
	cr_expect_str_eq(e.peer, DST_ID);
	/* the python server exits once we close the connection */
	hbone_client_free(ix.cl);
	ix.cl = NULL;
	cr_assert(hbt_run_until(ix.loop, child_exited, NULL, 20000));
	cr_expect(WIFEXITED(ix.child_status) && WEXITSTATUS(ix.child_status) == 0, "status %d", ix.child_status);
}
