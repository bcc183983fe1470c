// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: the SPIFFE ID parser (identity/spiffe.c), on the bytes a peer's certificate may carry in
 * its URI SAN. Beyond memory safety: an accepted ID is the input itself, its trust domain is valid and sits
 * right after the scheme, a second parse agrees, and Istio's /ns/<ns>/sa/<sa> parts format back to the same ID.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "identity/identity.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct xm_spiffe_id id, again;
	const char *why = NULL;
	char buf[XM_SPIFFE_MAX + 1];

	if (spiffe_parse((const char *)data, size, &id, &why)) {
		if (!why)
			abort();
		return 0;
	}
	if (why || strlen(id.uri) != size || memcmp(id.uri, data, size))
		abort();
	if (!spiffe_trust_domain_valid(id.trust_domain) ||
	    strncmp(id.uri + 9, id.trust_domain, strlen(id.trust_domain)))
		abort();
	if (spiffe_parse(id.uri, strlen(id.uri), &again, NULL) || strcmp(id.uri, again.uri) ||
	    strcmp(id.trust_domain, again.trust_domain) || strcmp(id.ns, again.ns) || strcmp(id.sa, again.sa))
		abort();
	if (id.ns[0]) {
		if (!id.sa[0] || spiffe_format(buf, sizeof(buf), id.trust_domain, id.ns, id.sa) || strcmp(buf, id.uri))
			abort();
	}
	return 0;
}
