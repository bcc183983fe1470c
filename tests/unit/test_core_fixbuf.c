/* SPDX-License-Identifier: Apache-2.0 */
/* fixbuf: snprintf's contract (the whole length counted, the stored text cut and NUL-terminated), and never a
 * byte past the buffer. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "core/fixbuf.h"

/* The same pieces into a buffer of size bytes, guarded on both sides. */
static size_t build(char *out, size_t size)
{
	char guarded[64 + 2];
	struct fixbuf o;
	size_t n;

	cr_assert_leq(size, 64);
	memset(guarded, '#', sizeof(guarded));
	fb_init(&o, guarded + 1, size);
	fb_puts(&o, "GET ");
	fb_put(&o, "/path?q", 5);
	fb_put(&o, "", 0);
	fb_puts(&o, " ");
	fb_put_u64(&o, 0);
	fb_puts(&o, " ");
	fb_put_u64(&o, UINT64_MAX);
	n = fb_finish(&o);
	cr_assert_eq(guarded[0], '#', "a byte written before the buffer");
	for (size_t i = size + 1; i < sizeof(guarded); i++)
		cr_assert_eq(guarded[i], '#', "size %zu: byte %zu past the buffer written", size, i - 1);
	memcpy(out, guarded + 1, size);
	return n;
}

Test(core_fixbuf, counts_the_whole_text_and_stores_what_fits)
{
	static const char whole[] = "GET /path 0 18446744073709551615";
	char got[64];

	for (size_t size = 0; size <= sizeof(whole) + 4; size++) {
		char want[64];
		size_t n = build(got, size);

		cr_expect_eq(n, strlen(whole), "size %zu: the length the whole text needs", size);
		if (!size)
			continue;
		snprintf(want, size, "%s", whole);
		cr_expect_str_eq(got, want, "size %zu: as snprintf would store it", size);
	}
}

Test(core_fixbuf, reads_empty_at_once_and_size_zero_writes_nothing)
{
	char one = 'x', buf[8];
	struct fixbuf o;

	memset(buf, 'x', sizeof(buf));
	fb_init(&o, buf, sizeof(buf));
	cr_expect_str_eq(buf, "", "a text cut off before fb_finish still reads as a string");
	fb_init(&o, &one, 0);
	fb_puts(&o, "abc");
	cr_expect_eq(fb_finish(&o), 3);
	cr_expect_eq(one, 'x', "size 0: not even the NUL");
	fb_init(&o, NULL, 0);
	fb_put_u64(&o, 42);
	cr_expect_eq(fb_finish(&o), 2, "a NULL buffer of size 0 measures");
}
