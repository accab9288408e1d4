/* The cleaner's options: defaults and format names (the table entries are CLEANER_OPTS). */
#include "clean_internal.h"

#include <string.h>

static const char *const format_names[CLEANER_FORMAT_COUNT] = {
    [CLEANER_FORMAT_AUTO] = "auto",
    [CLEANER_FORMAT_FACTORY] = "factory",
    [CLEANER_FORMAT_HOME] = "home",
    [CLEANER_FORMAT_POWER] = "power",
    [CLEANER_FORMAT_TEMPERATURE] = "temperature",
    [CLEANER_FORMAT_BARE] = "bare",
};

const char *cleaner_format_name(enum cleaner_format f)
{
	return (unsigned)f < CLEANER_FORMAT_COUNT ? format_names[f] : NULL;
}

int cleaner_format_parse(const char *name)
{
	for (int i = 0; i < CLEANER_FORMAT_COUNT; i++)
		if (strcmp(name, format_names[i]) == 0)
			return i;
	return -1;
}

void cleaner_opts_default(struct cleaner_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->format = "auto";
	o->max_payload = 256 * 1024;
	o->max_batch = 10000;
	o->max_age_ms = 7LL * 24 * 3600 * 1000;
	o->max_skew_ms = 5LL * 60 * 1000;
}
