/* SPDX-License-Identifier: Apache-2.0 */
/* Istio durations: accepted forms with their millisecond values, and rejected forms. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdint.h>

#include "config/model.h"

Test(config_duration, accepted)
{
	static const struct {
		const char *text;
		uint64_t ms;
	} table[] = {
		{ "10s", 10000 },
		{ "1m", 60000 },
		{ "500ms", 500 },
		{ "1h", 3600000 },
		{ "1.5s", 1500 },
		{ "0s", 0 },
		{ "0", 0 },
		{ "100us", 1 },	       /* below a millisecond rounds up: 0 would mean "unset" */
		{ "100\xc2\xb5s", 1 }, /* micro sign */
		{ "1ns", 1 },
		{ "1000000ns", 1 },
		{ "1000001ns", 2 },
		{ "1m30s", 90000 },
		{ "1h2m3s4ms", 3723004 },
		{ "0.5m", 30000 },
		{ ".25s", 250 },
		{ "2.s", 2000 },
		{ "0.000000001s", 1 },
		{ "1.0000000000000000000001s", 1000 }, /* digits past a nanosecond are dropped, as Go does */
		{ "2562047h", 2562047ULL * 3600000 },
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		uint64_t ms = 12345;
		int r = config_parse_duration_ms(table[i].text, &ms);

		cr_expect_eq(r, 0, "%s: returned %d", table[i].text, r);
		cr_expect_eq(ms, table[i].ms, "%s: %llu ms, expected %llu", table[i].text, (unsigned long long)ms,
			     (unsigned long long)table[i].ms);
	}
}

Test(config_duration, rejected)
{
	static const char *const table[] = {
		"",
		"10",
		"-1s",
		"+1s",
		"s",
		"1x",
		"10 s",
		" 10s",
		"10s ",
		"1.5.s",
		"1e3s",
		"1d",
		"1S",
		"1sec",
		"ms",
		".s",
		"10s10",
		"--1s",
		"0x10s",
		"1h-1m",
		"9999999999999999999h",
		"2562048h",
		"99999999999999999999999999s",
	};

	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		uint64_t ms = 777;

		cr_expect_eq(config_parse_duration_ms(table[i], &ms), -EINVAL, "\"%s\" should be rejected", table[i]);
		cr_expect_eq(ms, 777, "\"%s\": output untouched on error", table[i]);
	}
	cr_expect_eq(config_parse_duration_ms(NULL, NULL), -EINVAL);
}
