// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the Forwarded header of an HBONE CONNECT (hbone/forwarded.c), which any peer holding a
 * certificate sends and which picks the source workload and the Service of the destination's istio_tcp_*.
 * Beyond memory safety: a refusal leaves nothing behind; an accepted header has a NUL-terminated host= and an
 * address of a known family; parsing is deterministic; the address, formatted as ztunnel does and parsed
 * again, is the same address.
 */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hbone/hbone.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct hbone_forwarded f, again, round;
	static const struct hbone_forwarded zero;
	char auth[80], hdr[96];
	int rc = hbone_parse_forwarded((const char *)data, size, &f);

	if (rc) {
		if (rc != -EINVAL || memcmp(&f, &zero, sizeof(f)))
			abort();
		return 0;
	}
	if (!memchr(f.host, '\0', sizeof(f.host)))
		abort();
	if (hbone_parse_forwarded((const char *)data, size, &again) || memcmp(&f, &again, sizeof(f)))
		abort();
	if (!f.has_for)
		return 0;
	if (f.for_addr.ss_family != AF_INET && f.for_addr.ss_family != AF_INET6)
		abort();
	if (hbone_format_authority(&f.for_addr, auth, sizeof(auth)) < 0)
		abort();
	strcpy(hdr, "for=\"");
	strcat(hdr, auth);
	strcat(hdr, "\"");
	if (hbone_parse_forwarded(hdr, strlen(hdr), &round) || !round.has_for ||
	    memcmp(&round.for_addr, &f.for_addr, sizeof(f.for_addr)))
		abort();
	return 0;
}
