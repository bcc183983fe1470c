/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Durations as Istio reads them (Go's time.ParseDuration, a superset of protobuf's "1.5s"): one or more
 * <decimal><unit> terms, units ns us µs ms s m h, e.g. "10s", "1m30s", "500ms", "1.5s", "100us"; "0" alone.
 * Negative values and numbers without a unit are rejected.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "config/model.h"

#define NS_PER_MS	1000000ULL
#define DURATION_MAX_NS ((unsigned __int128)INT64_MAX) /* Go's limit: about 292 years */

struct unit {
	const char *suffix;
	uint64_t ns;
};

/* Longest suffixes first so that "ms" is not read as "m" followed by garbage. */
static const struct unit units[] = {
	{ "ns", 1ULL },
	{ "us", 1000ULL },
	{ "\xc2\xb5s", 1000ULL }, /* U+00B5 micro sign */
	{ "\xce\xbcs", 1000ULL }, /* U+03BC Greek mu */
	{ "ms", NS_PER_MS },
	{ "s", 1000 * NS_PER_MS },
	{ "m", 60 * 1000 * NS_PER_MS },
	{ "h", 3600 * 1000 * NS_PER_MS },
};

static const struct unit *match_unit(const char *s)
{
	const struct unit *best = NULL;
	size_t best_len = 0;

	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		size_t len = strlen(units[i].suffix);

		if (len > best_len && strncmp(s, units[i].suffix, len) == 0) {
			best = &units[i];
			best_len = len;
		}
	}
	return best;
}

int config_parse_duration_ms(const char *s, uint64_t *ms)
{
	unsigned __int128 total = 0;

	if (!s || !*s)
		return -EINVAL;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	while (*s) {
		unsigned __int128 whole = 0, frac = 0, scale = 1;
		const struct unit *u;
		bool digits = false;

		for (; *s >= '0' && *s <= '9'; s++) {
			whole = whole * 10 + (unsigned)(*s - '0');
			if (whole > DURATION_MAX_NS)
				return -EINVAL;
			digits = true;
		}
		if (*s == '.') {
			for (s++; *s >= '0' && *s <= '9'; s++) {
				/* Digits past 10^-18 cannot change a nanosecond count: ignore them. */
				if (scale < 1000000000000000000ULL) {
					frac = frac * 10 + (unsigned)(*s - '0');
					scale *= 10;
				}
				digits = true;
			}
		}
		if (!digits)
			return -EINVAL;
		u = match_unit(s);
		if (!u)
			return -EINVAL;
		s += strlen(u->suffix);
		total += whole * u->ns + frac * u->ns / scale;
		if (total > DURATION_MAX_NS)
			return -EINVAL;
	}
	/* Round up: a non-zero duration never becomes 0 ms, which means "unset" in the model. */
	*ms = (uint64_t)((total + NS_PER_MS - 1) / NS_PER_MS);
	return 0;
}
