// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the :authority of an HBONE CONNECT (hbone/authority.c), "IP:port" or "[IPv6]:port" from
 * any peer holding a certificate; it names the pod the server connects to. Beyond memory safety: a refusal
 * is -EINVAL; an accepted authority is IPv4 or IPv6 with a port other than 0, read from the given bytes only
 * (a copy without a terminating NUL parses the same); formatting it as ztunnel does and parsing that again
 * gives the same address.
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
	struct sockaddr_storage ss, again, round;
	char *copy = malloc(size ? size : 1), text[80];
	int rc, n;

	if (!copy)
		return 0;
	memcpy(copy, data, size);
	rc = hbone_parse_authority(copy, size, &ss); /* exactly size bytes: ASan sees any read past them */
	if (rc) {
		free(copy);
		if (rc != -EINVAL)
			abort();
		return 0;
	}
	if (hbone_parse_authority(copy, size, &again) || memcmp(&ss, &again, sizeof(ss)))
		abort();
	free(copy);
	if (ss.ss_family == AF_INET) {
		if (((struct sockaddr_in *)&ss)->sin_port == 0)
			abort();
	} else if (ss.ss_family == AF_INET6) {
		if (((struct sockaddr_in6 *)&ss)->sin6_port == 0)
			abort();
	} else {
		abort();
	}
	n = hbone_format_authority(&ss, text, sizeof(text));
	if (n <= 0 || hbone_parse_authority(text, (size_t)n, &round) || memcmp(&round, &ss, sizeof(ss)))
		abort();
	return 0;
}
