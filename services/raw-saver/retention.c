/* --retention parsing (see retention.h). */
#include "retention.h"

#include "tables.h"

#include <stdio.h>
#include <string.h>

int retention_parse(const struct strlist *l, int64_t out[REC_TYPE_COUNT], char *err, size_t errlen)
{
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		out[t] = 0;
	for (size_t i = 0; l && i < l->len; i++) {
		const char *item = l->items[i];
		const char *eq = strchr(item, '=');
		const char *period = eq ? eq + 1 : item;
		enum rec_type type = REC_UNKNOWN;
		if (eq) {
			char name[64];
			if ((size_t)(eq - item) >= sizeof(name)) {
				snprintf(err, errlen, "--retention %s: no such table", item);
				return -1;
			}
			snprintf(name, sizeof(name), "%.*s", (int)(eq - item), item);
			type = table_type_by_name(name);
			if (type == REC_UNKNOWN)
				type = records_type_by_name(name);
			if (type == REC_UNKNOWN) {
				snprintf(err, errlen,
				         "--retention %s: no table or record called %s", item,
				         name);
				return -1;
			}
		}
		long long ms;
		if (config_parse_duration_ms(period, &ms) < 0) {
			snprintf(err, errlen,
			         "--retention %s: '%s' is not a duration (e.g. 7d, 12h)", item,
			         period);
			return -1;
		}
		for (int t = 0; t < REC_TYPE_COUNT; t++)
			if (type == REC_UNKNOWN || type == (enum rec_type)t)
				out[t] = ms;
	}
	return 0;
}
