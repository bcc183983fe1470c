// SPDX-License-Identifier: Apache-2.0
#include "core/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static enum xm_log_level min_level = XM_LOG_INFO;

void xm_log_set_level(enum xm_log_level level)
{
	min_level = level;
}

bool xm_log_enabled(enum xm_log_level level)
{
	return level >= min_level;
}

void xm_log(enum xm_log_level level, const char *fmt, ...)
{
	static const char *const names[] = { "debug", "info", "warn", "error" };
	char line[2048], stamp[32];
	struct timespec ts;
	struct tm tm;
	va_list ap;

	if (level < min_level)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%H:%M:%S", &tm);
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* One fprintf per line keeps lines whole when several writers share stderr. */
	fprintf(stderr, "%s.%03ld xmesh %s: %s\n", stamp, ts.tv_nsec / 1000000, names[level], line);
}
