/* Event times from payloads: ISO 8601 text and epoch numbers of various units, to ms UTC.
 *
 * Hand-written rather than strptime/timegm: those depend on the locale and the TZ environment,
 * accept partial input silently, and are slow per record. Times without a zone are UTC: devices
 * that log local time without saying so cannot be corrected here, and UTC is what the suite
 * stores everywhere. */
#include "clean_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* 9999-12-31T23:59:59.999Z: later times are garbage, whatever their unit. */
#define TS_MAX_MS 253402300799999LL

int ts_unit_parse(const char *name)
{
	static const char *const names[] = {"auto", "ms", "s", "us", "ns", "iso8601"};
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++)
		if (strcmp(name, names[i]) == 0)
			return (int)i;
	return -1;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (valid for any year 0..9999). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
	static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 29;
	return dm[m - 1];
}

/* Reads exactly n digits at s[*i]; -1 if they are not all there. */
static int digits(const char *s, size_t len, size_t *i, int n)
{
	int v = 0;
	for (int k = 0; k < n; k++, (*i)++) {
		if (*i >= len || s[*i] < '0' || s[*i] > '9')
			return -1;
		v = v * 10 + (s[*i] - '0');
	}
	return v;
}

static bool at(const char *s, size_t len, size_t i, char c)
{
	return i < len && s[i] == c;
}

int ts_parse_iso(const char *s, size_t len, int64_t *ms)
{
	size_t i = 0;
	int y = digits(s, len, &i, 4);
	if (y < 0 || !at(s, len, i++, '-'))
		return -1;
	int mo = digits(s, len, &i, 2);
	if (mo < 1 || mo > 12 || !at(s, len, i++, '-'))
		return -1;
	int d = digits(s, len, &i, 2);
	if (d < 1 || d > days_in_month(y, mo))
		return -1;
	if (!(at(s, len, i, 'T') || at(s, len, i, 't') || at(s, len, i, ' ')))
		return -1;
	i++;
	int h = digits(s, len, &i, 2);
	if (h < 0 || h > 23 || !at(s, len, i++, ':'))
		return -1;
	int mi = digits(s, len, &i, 2);
	if (mi < 0 || mi > 59)
		return -1;
	int sec = 0, frac_ms = 0;
	if (at(s, len, i, ':')) {
		i++;
		sec = digits(s, len, &i, 2);
		/* 60 is a leap second; it lands on the next minute's first second. */
		if (sec < 0 || sec > 60)
			return -1;
		if (at(s, len, i, '.') || at(s, len, i, ',')) {
			i++;
			int nd = 0;
			while (i < len && s[i] >= '0' && s[i] <= '9') {
				if (nd < 3)
					frac_ms = frac_ms * 10 + (s[i] - '0');
				nd++;
				i++;
			}
			if (nd == 0 || nd > 9)
				return -1;
			for (; nd < 3; nd++)
				frac_ms *= 10;
		}
	}
	int64_t off_min = 0;
	if (at(s, len, i, 'Z') || at(s, len, i, 'z')) {
		i++;
	} else if (at(s, len, i, '+') || at(s, len, i, '-')) {
		int sign = s[i] == '-' ? -1 : 1;
		i++;
		int oh = digits(s, len, &i, 2);
		if (oh < 0 || oh > 23)
			return -1;
		int om = 0;
		bool colon = at(s, len, i, ':');
		if (colon)
			i++;
		if (colon || i < len) {
			om = digits(s, len, &i, 2);
			if (om < 0 || om > 59)
				return -1;
		}
		off_min = sign * (oh * 60 + om);
	}
	if (i != len)
		return -1;
	int64_t t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off_min * 60;
	*ms = t * 1000 + frac_ms;
	return 0;
}

int ts_from_number(double v, enum ts_unit unit, int64_t *ms)
{
	if (!isfinite(v) || v < 0)
		return -1;
	double scale;
	switch (unit) {
	case TS_AUTO:
		/* By magnitude: any ms time after 1973 is >= 1e11, which in seconds is year 5138;
		 * the same gap separates ms from us and us from ns. */
		if (v >= 1e17)
			scale = 1e-6;
		else if (v >= 1e14)
			scale = 1e-3;
		else if (v >= 1e11)
			scale = 1;
		else
			scale = 1e3;
		break;
	case TS_MS:
		scale = 1;
		break;
	case TS_S:
		scale = 1e3;
		break;
	case TS_US:
		scale = 1e-3;
		break;
	case TS_NS:
		scale = 1e-6;
		break;
	default:
		return -1;
	}
	double r = floor(v * scale);
	if (!(r <= (double)TS_MAX_MS))
		return -1;
	*ms = (int64_t)r;
	return 0;
}

int ts_from_json(const json_t *j, enum ts_unit unit, int64_t *ms, struct verdict *v)
{
	char snip[64];
	if (json_is_integer(j) || json_is_real(j)) {
		if (unit == TS_ISO8601)
			return verdict_set(v, CLEANER_TS_INVALID,
			                   "ts: expected ISO 8601 text, got %s",
			                   text_json_snippet(j, snip, sizeof(snip)));
		if (json_is_integer(j)) {
			/* Integers stay exact: a ns timestamp does not fit a double's 53 bits. */
			json_int_t x = json_integer_value(j);
			enum ts_unit u = unit;
			if (x < 0)
				goto bad;
			if (u == TS_AUTO)
				u = x >= 100000000000000000LL ? TS_NS
				    : x >= 100000000000000LL  ? TS_US
				    : x >= 100000000000LL     ? TS_MS
				                              : TS_S;
			if (u == TS_S && x > TS_MAX_MS / 1000)
				goto bad;
			*ms = u == TS_NS   ? x / 1000000
			      : u == TS_US ? x / 1000
			      : u == TS_S  ? x * 1000
			                   : x;
			if (*ms > TS_MAX_MS)
				goto bad;
			return 0;
		}
		if (ts_from_number(json_real_value(j), unit, ms) == 0)
			return 0;
		goto bad;
	}
	if (json_is_string(j)) {
		const char *s = json_string_value(j);
		size_t len = json_string_length(j);
		if (unit == TS_AUTO || unit == TS_ISO8601) {
			if (ts_parse_iso(s, len, ms) == 0)
				return 0;
			if (unit == TS_ISO8601)
				goto bad;
		}
		double d;
		if (text_number_parse(s, len, &d) == 0 && ts_from_number(d, unit, ms) == 0)
			return 0;
		goto bad;
	}
	return verdict_set(v, CLEANER_TS_INVALID, "ts: not a time: %s",
	                   text_json_snippet(j, snip, sizeof(snip)));
bad:
	return verdict_set(v, CLEANER_TS_INVALID, "ts: not a valid time: %s",
	                   text_json_snippet(j, snip, sizeof(snip)));
}

void ts_duration_format(int64_t ms, char *out, size_t n)
{
	static const struct {
		int64_t ms;
		const char *one, *many;
	} units[] = {
	    {86400000, "day", "days"},
	    {3600000, "hour", "hours"},
	    {60000, "minute", "minutes"},
	    {1000, "second", "seconds"},
	};
	if (ms < 0)
		ms = ms == INT64_MIN ? INT64_MAX : -ms;
	for (size_t i = 0; i < sizeof(units) / sizeof(*units); i++) {
		if (ms >= units[i].ms) {
			int64_t k = ms / units[i].ms;
			snprintf(out, n, "%lld %s", (long long)k,
			         k == 1 ? units[i].one : units[i].many);
			return;
		}
	}
	snprintf(out, n, "%lld ms", (long long)ms);
}
