/* The --retention option: how long each table keeps its rows. */
#ifndef RAW_SAVER_RETENTION_H
#define RAW_SAVER_RETENTION_H

#include "config.h"
#include "records.h"

#include <stddef.h>
#include <stdint.h>

/* Parses entries "PERIOD" (every table) and "TABLE=PERIOD" (one table, by table name such as
 * raw_messages or record name such as RawMessage); later entries override earlier ones, so
 * "30d,raw_messages=7d" keeps raw messages a week and the rest a month. PERIOD is a duration
 * (config.h); 0 keeps rows forever. out[type] receives milliseconds, 0 for forever.
 * Returns 0, or -1 with the reason. */
int retention_parse(const struct strlist *l, int64_t out[REC_TYPE_COUNT], char *err, size_t errlen);

#endif
