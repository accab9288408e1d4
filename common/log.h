/* Logging: one line per event on stderr, filtered by level.
 *
 * Line format: 2026-11-22T10:00:00.123Z cleaner WARN common/kafka.c:88 message
 * Libraries (librdkafka, paho) are routed through log_write() so every line looks the same. */
#ifndef IOTPIPE_LOG_H
#define IOTPIPE_LOG_H

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* prog is borrowed and must outlive logging (argv[0]'s basename or a literal). */
void log_init(const char *prog, enum log_level level);
void log_set_level(enum log_level level);
enum log_level log_get_level(void);
/* Returns the level for "error|warn|info|debug" (case-insensitive), or -1. */
int log_level_parse(const char *name);

void log_write(enum log_level level, const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define log_error(...) log_write(LOG_ERROR, __FILE__, __LINE__, __VA_ARGS__)
#define log_warn(...) log_write(LOG_WARN, __FILE__, __LINE__, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, __FILE__, __LINE__, __VA_ARGS__)
#define log_debug(...)                                                                             \
	do {                                                                                       \
		if (log_get_level() >= LOG_DEBUG)                                                  \
			log_write(LOG_DEBUG, __FILE__, __LINE__, __VA_ARGS__);                     \
	} while (0)

#endif
