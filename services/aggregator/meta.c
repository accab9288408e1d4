/* Commit metadata text form (see meta.h). Its input comes back from Kafka and anyone with access
 * to the consumer group can write it, so parsing is strict and reports what it did not accept. */
#include "meta.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void agg_meta_format(const struct agg_meta *m, char *out, size_t outlen)
{
	char wm[24] = "-";
	if (m->has_wm)
		snprintf(wm, sizeof(wm), "%" PRId64, m->wm);
	if (m->has_adv)
		snprintf(out, outlen, "wm=%s;next=%" PRId64 ";adv=%" PRId64 "@%" PRId64, wm,
		         m->next, m->adv_wm, m->adv_at);
	else
		snprintf(out, outlen, "wm=%s;next=%" PRId64, wm, m->next);
}

/* Parses a decimal int64 at *p ending at one of the stop characters; advances *p. */
static int parse_num(const char **p, const char *stops, int64_t *out)
{
	const char *s = *p;
	char *end;
	if (!(*s == '-' || (*s >= '0' && *s <= '9')))
		return -1;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || end == s || !strchr(stops, *end))
		return -1;
	*out = v;
	*p = end;
	return 0;
}

static int expect(const char **p, const char *lit)
{
	size_t n = strlen(lit);
	if (strncmp(*p, lit, n) != 0)
		return -1;
	*p += n;
	return 0;
}

int agg_meta_parse(const char *s, struct agg_meta *m, char *err, size_t errlen)
{
	struct agg_meta r = {.next = -1};
	const char *p = s;

	if (!s || !*s) {
		*m = r;
		return 0;
	}
	if (expect(&p, "wm=") < 0)
		goto bad;
	if (*p == '-' && p[1] == ';') {
		p++;
	} else {
		if (parse_num(&p, ";", &r.wm) < 0)
			goto bad;
		r.has_wm = true;
	}
	if (expect(&p, ";next=") < 0 || parse_num(&p, ";", &r.next) < 0 || r.next < 0)
		goto bad;
	if (*p) {
		if (expect(&p, ";adv=") < 0 || parse_num(&p, "@", &r.adv_wm) < 0 ||
		    expect(&p, "@") < 0 || parse_num(&p, "", &r.adv_at) < 0 || r.adv_at < 0)
			goto bad;
		r.has_adv = true;
	}
	*m = r;
	return 0;
bad:
	snprintf(err, errlen,
	         "commit metadata \"%.80s\" is not of the form "
	         "wm=<ms|->;next=<offset>[;adv=<ms>@<offset>]",
	         s);
	return -1;
}
