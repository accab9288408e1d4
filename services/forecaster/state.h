/* A series' state as bytes: the value of its record in the state topic, and the unit of the
 * state file that `--in -` runs use.
 *
 * Layout (version 1, little-endian): 'F' 'C' version model-kind, window_ms, the five identity
 * strings (u16 length + bytes), last window, the pending forecast, the residual variance, the
 * error sums, the model (plus the daily profile for hw). About 200 bytes (hw: 580). A blob is
 * hostile input: every length, number and count is checked before it becomes a series. */
#ifndef IOTPIPE_FORECASTER_STATE_H
#define IOTPIPE_FORECASTER_STATE_H

#include "buf.h"
#include "model.h"
#include "series.h"

#include <stddef.h>

#define STATE_VERSION 1

/* Appends the blob of s (made by model kind k) to out. Returns 0 or -1 (memory). */
int state_blob_encode(const struct series *s, enum model_kind k, struct buf *out);

enum state_status { STATE_OK = 0, STATE_INVALID = -1, STATE_OTHER_MODEL = -2, STATE_NOMEM = -3 };

/* Decodes a blob into a new series (partition set to `partition`). With key given, the blob's
 * identity must produce that key. STATE_OTHER_MODEL: a valid blob of another model than k (the
 * service was restarted with another --model). On failure *out is NULL and err says why. */
enum state_status state_blob_decode(const void *data, size_t len, const void *key, size_t key_len,
                                    enum model_kind k, int32_t partition, struct series **out,
                                    char *err, size_t errlen);

/* The state file: a header line, then per series a u32 key length, the key, a u32 blob length
 * and the blob. Saved to PATH.tmp then renamed, so a crash leaves the old file whole. */
int state_file_save(const char *path, struct series_table *t, enum model_kind k, char *err,
                    size_t errlen);
/* Loads a state file into t (partition 0). A missing file is an empty state. Series of another
 * model are skipped (counted in *skipped); a damaged file is an error. Returns the number of
 * series loaded or -1 with the reason. */
long state_file_load(const char *path, struct series_table *t, enum model_kind k, size_t *skipped,
                     char *err, size_t errlen);

#endif
