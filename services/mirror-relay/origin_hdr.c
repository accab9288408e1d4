/* Origin header classification (see origin_hdr.h). */
#include "origin_hdr.h"

#include <stdio.h>
#include <string.h>

enum origin_kind origin_hdr_classify(const void *val, size_t len, const char *alias,
				     struct origin *o)
{
	char text[512];
	if (!val)
		return ORIGIN_ABSENT;
	if (len >= sizeof(text) || memchr(val, 0, len))
		return ORIGIN_MALFORMED;
	memcpy(text, val, len);
	text[len] = 0;
	if (origin_parse(text, o) < 0)
		return ORIGIN_MALFORMED;
	if (strcmp(o->cluster, alias) == 0 || strcmp(o->cluster, "-") == 0)
		return ORIGIN_OWN;
	if (strcmp(o->cluster, ORIGIN_LOCAL_ALIAS) == 0)
		return ORIGIN_LOCAL;
	return ORIGIN_FOREIGN;
}
