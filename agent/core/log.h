/* SPDX-License-Identifier: Apache-2.0 */
/* Logging to stderr: one line per event, with a level and a monotonic-safe wall-clock timestamp. */
#ifndef XMESH_LOG_H
#define XMESH_LOG_H

#include <stdbool.h>

enum xm_log_level {
	XM_LOG_DEBUG,
	XM_LOG_INFO,
	XM_LOG_WARN,
	XM_LOG_ERROR
};

void xm_log_set_level(enum xm_log_level level);
/* Whether a line of level would be written (to skip preparing a debug line nobody reads). */
bool xm_log_enabled(enum xm_log_level level);
void xm_log(enum xm_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_debug(...) xm_log(XM_LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  xm_log(XM_LOG_INFO, __VA_ARGS__)
#define log_warn(...)  xm_log(XM_LOG_WARN, __VA_ARGS__)
#define log_error(...) xm_log(XM_LOG_ERROR, __VA_ARGS__)

#endif
