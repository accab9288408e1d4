/* Logging to stderr. Each event is formatted into one buffer and written with a single write()
 * so lines from librdkafka's and paho's threads never interleave mid-line. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static const char *log_prog = "iotpipe";
static volatile int log_level = LOG_INFO;
static const char *const level_names[] = {"ERROR", "WARN", "INFO", "DEBUG"};

void log_init(const char *prog, enum log_level level)
{
	const char *slash = prog ? strrchr(prog, '/') : NULL;
	log_prog = slash ? slash + 1 : (prog ? prog : "iotpipe");
	log_level = level;
}

void log_set_level(enum log_level level)
{
	log_level = level;
}

enum log_level log_get_level(void)
{
	return (enum log_level)log_level;
}

int log_level_parse(const char *name)
{
	static const char *const aliases[] = {"error", "warn", "info", "debug"};
	if (!name)
		return -1;
	for (int i = 0; i < 4; i++)
		if (strcasecmp(name, aliases[i]) == 0)
			return i;
	if (strcasecmp(name, "warning") == 0)
		return LOG_WARN;
	return -1;
}

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
{
	if ((int)level > log_level)
		return;
	char buf[4096];
	struct timespec now;
	struct tm tm;
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	int n = snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s %s:%d ",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, now.tv_nsec / 1000000, log_prog, level_names[level], file, line);
	if (n < 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof(buf) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m);
	if (len > sizeof(buf) - 2)
		len = sizeof(buf) - 2;
	/* One event, one line: a message with newlines (e.g. a libpq error) is folded. */
	for (size_t i = (size_t)n; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	while (len > (size_t)n && buf[len - 1] == ' ')
		len--;
	buf[len++] = '\n';
	ssize_t w = write(STDERR_FILENO, buf, len);
	(void)w;
}
