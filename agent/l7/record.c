// SPDX-License-Identifier: Apache-2.0
#include "l7/record.h"

#include <string.h>

/* Envoy's ResponseFlagUtils order (ALL_RESPONSE_STRINGS_FLAGS), so a combination prints as Envoy prints it. */
static const struct {
	uint32_t flag;
	const char *code;
} flag_codes[] = {
	{ L7_RF_UH, "UH" }, { L7_RF_UT, "UT" }, { L7_RF_UF, "UF" },   { L7_RF_UC, "UC" },
	{ L7_RF_UO, "UO" }, { L7_RF_NR, "NR" }, { L7_RF_DI, "DI" },   { L7_RF_FI, "FI" },
	{ L7_RF_RL, "RL" }, { L7_RF_DC, "DC" }, { L7_RF_URX, "URX" }, { L7_RF_BAD_REQUEST, "DPE" },
};

void l7_flags_format(uint32_t flags, char *buf, size_t len)
{
	size_t used = 0;

	if (!len)
		return;
	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(flag_codes) / sizeof(flag_codes[0]); i++) {
		size_t code_len = strlen(flag_codes[i].code), sep = used ? 1 : 0;

		if (!(flags & flag_codes[i].flag))
			continue;
		if (used + sep + code_len + 1 > len)
			break;
		if (sep)
			buf[used++] = ',';
		memcpy(buf + used, flag_codes[i].code, code_len + 1);
		used += code_len;
	}
	if (!used && len >= 2)
		memcpy(buf, "-", 2);
}
