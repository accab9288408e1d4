/* Process lifecycle: SIGTERM/SIGINT ask for a graceful drain, SIGHUP asks for a reload.
 * The handlers only set flags; main loops poll them between short waits. */
#ifndef IOTPIPE_LIFECYCLE_H
#define IOTPIPE_LIFECYCLE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

/* Installs the handlers and ignores SIGPIPE (a closed stdout is reported by write errors). */
void lifecycle_init(void);
/* True until SIGTERM or SIGINT arrived (or lifecycle_request_stop was called). */
bool lifecycle_running(void);
void lifecycle_request_stop(void);
/* True once per SIGHUP received since the last call. */
bool lifecycle_take_reload(void);

/* Milliseconds on the monotonic clock, for timeouts and latencies. */
int64_t now_mono_ms(void);
/* Milliseconds since the epoch (UTC), for record timestamps. */
int64_t now_wall_ms(void);

#endif
