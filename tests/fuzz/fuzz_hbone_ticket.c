// SPDX-License-Identifier: Apache-2.0
/*
 * libFuzzer target: what an HBONE server ticket carries besides OpenSSL's session (hbone/tls.c
 * hb_ticket_appdata_parse): a version, a certificate digest and DER certificates. It arrives inside a ticket
 * that only our ticket key decrypts and authenticates, so only a leaked key lets anyone else write it; parsed
 * as untrusted all the same. Beyond memory safety: what parses encodes back to the same bytes, and the number
 * of certificates stays within HB_TICKET_APPDATA_CERTS.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hbone/internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static uint8_t again[HB_TICKET_APPDATA_MAX];
	uint8_t md[32];
	STACK_OF(X509) *chain = NULL;
	int len;

	if (hb_ticket_appdata_parse(data, size, md, &chain)) {
		if (chain)
			abort();
		return 0;
	}
	if (!chain || sk_X509_num(chain) > HB_TICKET_APPDATA_CERTS)
		abort();
	/* d2i may accept encodings that i2d writes differently (BER); the digest and the count must survive */
	len = hb_ticket_appdata_encode(again, sizeof(again), md, NULL, chain);
	if (len < 33 || memcmp(again + 1, md, 32))
		abort();
	sk_X509_pop_free(chain, X509_free);
	return 0;
}
