/* SPDX-License-Identifier: Apache-2.0 */
/*
 * xm_mix64 (include/xmesh/hash.h), the mixer BPF and the agent share: golden values of murmur3's fmix64,
 * computed apart from this code. The BPF side compiles the same header; tests/bpf/test_xdp_lb.c checks
 * that the flow label the XDP program writes equals the agent's recomputation over it.
 */
#include <inttypes.h>

#include <criterion/criterion.h>
#include <xmesh/hash.h>

Test(hash, mix64_golden_values)
{
	static const struct {
		uint64_t in, out;
	} golden[] = {
		{ 0, 0 },
		{ 1, 0xb456bcfc34c2cb2cULL },
		{ 0xdeadbeef, 0xd24bd59f862a1dacULL },
		{ 0x0123456789abcdefULL, 0x87cbfbfe89022ceaULL },
		{ UINT64_MAX, 0x64b5720b4b825f21ULL },
	};

	for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++)
		cr_expect_eq(xm_mix64(golden[i].in), golden[i].out,
			     "xm_mix64(%016" PRIx64 ") = %016" PRIx64 ", want %016" PRIx64, golden[i].in,
			     xm_mix64(golden[i].in), golden[i].out);
}
