// SPDX-License-Identifier: Apache-2.0
#include "datapath/l7_capture.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <xmesh/sockmap.h>

#include "datapath/sock_ends.h"

int l7_capture_set_proxy(int proxy_map_fd, const struct l7_capture_proxy *proxy)
{
	struct xm_l7_proxy v;
	__u32 zero = 0;

	memset(&v, 0, sizeof(v));
	if (proxy && (proxy->v4 || proxy->v6)) {
		if (!proxy->port)
			return -EINVAL;
		v.addr4 = proxy->addr4;
		v.addr6 = proxy->addr6;
		v.port = htons(proxy->port);
		v.flags = (proxy->v4 ? XM_L7_PROXY_F_V4 : 0) | (proxy->v6 ? XM_L7_PROXY_F_V6 : 0);
	}
	/* One array element: the connect hook reads either the old value or the new one. */
	if (bpf_map_update_elem(proxy_map_fd, &zero, &v, BPF_ANY) < 0)
		return -errno;
	return 0;
}

int l7_capture_lookup(int origdst_fd, int accepted_fd, struct xm_svc_key *vip, uint32_t *svc_id)
{
	struct xm_l7_origdst_key k;
	struct xm_l7_origdst v;
	int err;

	memset(&k, 0, sizeof(k));
	err = sock_ends_of(accepted_fd, &k.proxy, &k.proxy_port, &k.client, &k.client_port, &k.family);
	if (err)
		return err;
	/* Taken out in the same call: each entry answers exactly one accepted connection. */
	if (bpf_map_lookup_and_delete_elem(origdst_fd, &k, &v) < 0)
		return -errno;
	memset(vip, 0, sizeof(*vip));
	vip->vip = v.vip;
	vip->port = v.vport;
	vip->proto = XM_PROTO_TCP;
	vip->family = v.family;
	*svc_id = v.svc_id;
	return 0;
}

static bool is_loopback(const union xm_addr *a, uint8_t family)
{
	static const uint8_t lo6[16] = { [15] = 1 };

	if (family == XM_FAMILY_V4)
		return (ntohl(a->v4) >> 24) == 127;
	return memcmp(a->bytes, lo6, sizeof(lo6)) == 0;
}

int l7_capture_sockmap_add(int sockhash_fd, int sk_storage_fd, int accepted_fd)
{
	struct xm_sockmap_sk st = { .flags = XM_SMSK_F_INSERTED | XM_SMSK_F_SEQ_AT_FIRST_MSG };
	struct xm_sock_pair_key key;
	struct tcp_info ti;
	socklen_t len = sizeof(ti);
	uint16_t lport, rport;
	__u64 value = (__u64)accepted_fd, cookie;
	int err;

	memset(&key, 0, sizeof(key));
	err = sock_ends_of(accepted_fd, &key.local, &lport, &key.remote, &rport, &key.family);
	if (err)
		return err;
	/* sockops' keys carry host-order ports. */
	key.local_port = ntohs(lport);
	key.remote_port = ntohs(rport);
	/* Every netns has its own loopback: sockops adds the netns cookie for those peers, and so must we. */
	if (is_loopback(&key.remote, key.family)) {
		socklen_t cl = sizeof(key.netns);

		if (getsockopt(accepted_fd, SOL_SOCKET, SO_NETNS_COOKIE, &key.netns, &cl) < 0)
			return -errno;
	}
	/* Inserted by sockops already (a listener in the proxy cgroup). It creates no socket storage: sk_msg
	 * does at the first message, so the storage cannot tell, the sockhash can (its lookup answers a cookie). */
	if (bpf_map_lookup_elem(sockhash_fd, &key, &cookie) == 0)
		return -EEXIST;
	memset(&ti, 0, sizeof(ti));
	if (getsockopt(accepted_fd, IPPROTO_TCP, TCP_INFO, &ti, &len) < 0)
		return -errno;
	/* sk_msg takes its baseline at the first message: nothing may have gone to TCP before it. */
	if (len < offsetof(struct tcp_info, tcpi_bytes_sent) + sizeof(ti.tcpi_bytes_sent))
		return -EOPNOTSUPP;
	if (ti.tcpi_bytes_sent || ti.tcpi_notsent_bytes || ti.tcpi_unacked)
		return -EBUSY;
	if (bpf_map_update_elem(sk_storage_fd, &accepted_fd, &st, BPF_NOEXIST) < 0)
		return -errno;
	if (bpf_map_update_elem(sockhash_fd, &key, &value, BPF_NOEXIST) < 0) {
		err = -errno;
		bpf_map_delete_elem(sk_storage_fd, &accepted_fd);
		return err;
	}
	return 0;
}

/* struct clone_args of linux/sched.h up to .cgroup (that header clashes with glibc's sched.h). */
struct xm_clone_args {
	__u64 flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup;
};
#define XM_CLONE_INTO_CGROUP 0x200000000ULL

/* In the child: only system calls (async-signal-safe), then _exit. */
static void child_send_socket(int chan, int domain, int type)
{
	char ctl[CMSG_SPACE(sizeof(int))] = { 0 };
	int code = 0; /* 0 with the fd attached, or socket()'s errno */
	struct iovec iov = { .iov_base = &code, .iov_len = sizeof(code) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
	int fd = socket(domain, type, 0);

	if (fd < 0) {
		code = errno;
		mh.msg_control = NULL;
		mh.msg_controllen = 0;
		_exit(sendmsg(chan, &mh, 0) == sizeof(code) ? 0 : 1);
	}
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &fd, sizeof(fd));
	_exit(sendmsg(chan, &mh, 0) == sizeof(code) ? 0 : 1);
}

int l7_capture_socket_in_cgroup(int cgroup_fd, int domain, int type)
{
	struct xm_clone_args args = { .flags = XM_CLONE_INTO_CGROUP,
				      .exit_signal = SIGCHLD,
				      .cgroup = (__u64)cgroup_fd };
	char ctl[CMSG_SPACE(sizeof(int))];
	int code = EIO;
	struct iovec iov = { .iov_base = &code, .iov_len = sizeof(code) };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl, .msg_controllen = sizeof(ctl) };
	struct cmsghdr *cm;
	int sp[2], fd = -1, err = 0, status;
	pid_t pid;
	ssize_t n;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) < 0)
		return -errno;
	pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (pid == 0)
		child_send_socket(sp[1], domain, type);
	close(sp[1]);
	if (pid < 0) {
		err = -errno;
		close(sp[0]);
		return err;
	}
	do
		n = recvmsg(sp[0], &mh, MSG_CMSG_CLOEXEC);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		err = -errno;
	close(sp[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (err)
		return err;
	cm = CMSG_FIRSTHDR(&mh);
	if (n == sizeof(code) && cm && cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS)
		memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
	if (fd >= 0)
		return fd;
	/* The child died before answering (n 0), or socket() failed there. */
	return n == sizeof(code) && code > 0 ? -code : -EIO;
}
