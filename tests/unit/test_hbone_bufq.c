// SPDX-License-Identifier: Apache-2.0
/* The stream queue's iovec view (hb_bufq_iov), which the server's sendmsg to the target sends from. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <string.h>

#include "hbone/internal.h"

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + (i >> 8));
}

/* The bytes the iovecs cover, in order, against the pattern from offset off. */
static size_t check_iov(const struct iovec *iov, size_t n, size_t off)
{
	size_t total = 0;

	for (size_t k = 0; k < n; k++) {
		const uint8_t *p = iov[k].iov_base;

		cr_assert_gt(iov[k].iov_len, 0, "iov %zu is empty", k);
		for (size_t j = 0; j < iov[k].iov_len; j++)
			cr_assert_eq(p[j], pattern(off + total + j), "byte %zu", off + total + j);
		total += iov[k].iov_len;
	}
	return total;
}

Test(hbone_bufq, iov_covers_the_queue_in_order_and_stops_at_max)
{
	struct hb_bufq q = { 0 };
	static uint8_t data[40000];
	struct iovec iov[8];
	size_t n;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = pattern(i);
	cr_assert_eq(hb_bufq_iov(&q, iov, 8), 0);
	cr_assert_eq(hb_bufq_append(&q, data, sizeof(data)), 0);

	n = hb_bufq_iov(&q, iov, 8);
	cr_assert_eq(n, 3); /* 16384 + 16384 + 7232 */
	cr_assert_eq(check_iov(iov, n, 0), sizeof(data));

	n = hb_bufq_iov(&q, iov, 2);
	cr_assert_eq(n, 2);
	cr_assert_eq(check_iov(iov, n, 0), 2 * HB_BLOCK);

	hb_bufq_consume(&q, 20000); /* into the second block */
	n = hb_bufq_iov(&q, iov, 8);
	cr_assert_eq(n, 2);
	cr_assert_eq(check_iov(iov, n, 20000), sizeof(data) - 20000);
	cr_assert_eq(q.len, sizeof(data) - 20000);

	hb_bufq_consume(&q, q.len);
	cr_assert_eq(hb_bufq_iov(&q, iov, 8), 0);
	hb_bufq_free(&q);
}
