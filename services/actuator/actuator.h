/* The actuator's decision engine: readings in; commands and threshold events out.
 *
 * For every reading, each rule that matches it (in file order) runs two small machines on the
 * reading's (rule, site, device, sensor):
 *   - commands, edge-triggered: value < low wants side "low", value > high wants side "high",
 *     anything from low to high inclusive wants nothing; a command is emitted only when the
 *     wanted side differs from the last one sent (unknown at first);
 *   - an episode: opens when value > threshold, closes when value < threshold - hysteresis; a
 *     "started" event when it opens, an "ended" one when it closes.
 * Readings act in the order given (per partition, Kafka's offset order), not sorted by their
 * time: that makes the outcome a function of the input sequence, which replay after a crash
 * relies on.
 *
 * Crash safety (docs/actuator.md has the argument): per partition the engine knows the next
 * offset to process and the first offset of every open episode. actuator_commit_point gives the
 * offset to commit (the earliest one still needed) and a metadata string holding the offset up
 * to which outputs were already emitted. After a restart, actuator_partition_restore with that
 * metadata makes the replayed readings rebuild state without emitting again; from the first
 * new offset on, outputs are emitted exactly as an uninterrupted run would have.
 *
 * Outputs go to a sink during the call that produces them; the structs passed are valid only
 * for that call. The engine never allocates per reading: only when a sensor first needs state,
 * and when an output buffer grows. Not thread-safe: one engine per consuming thread. */
#ifndef IOTPIPE_ACTUATOR_ACTUATOR_H
#define IOTPIPE_ACTUATOR_ACTUATOR_H

#include "rules.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A reading as the engine sees it. Strings are borrowed, NUL-terminated, and must not contain
 * NUL themselves (act_reading_from_json checks that). */
struct act_reading {
	const char *site, *device, *sensor, *metric;
	double value;
	int64_t ts;
};

/* A command to publish: fields of schemas/Command.avsc. */
struct act_command {
	const char *topic, *payload;
	int qos;
	bool retained;
	const char *rule;
	enum side side;
	const char *site, *device, *sensor, *metric;
	double value;
	int64_t reading_ts, issued_at;
};

enum episode_state { EPISODE_STARTED, EPISODE_ENDED };

/* A threshold event: fields of schemas/ThresholdEvent.avsc. ended_at is meaningful only when
 * state is EPISODE_ENDED (it is null in the record otherwise). */
struct act_event {
	const char *site, *device, *sensor, *metric, *rule;
	double threshold, hysteresis;
	enum episode_state state;
	int64_t started_at, ended_at, exceeded_for_ms;
	double average, max;
	int64_t count;
};

/* Where outputs go. Either callback may be NULL (the output is then dropped). A sink must
 * deliver what it is given, or the caller must stop without committing past it (a command
 * the broker later refuses is reported with actuator_command_forget). Callbacks must not call
 * back into the engine. */
struct act_sink {
	void (*command)(void *ctx, const struct act_command *c);
	void (*event)(void *ctx, const struct act_event *e);
	void *ctx;
};

/* Counters for metrics; they only grow. */
struct actuator_stats {
	uint64_t readings;   /* readings processed */
	uint64_t duplicates; /* readings at offsets already processed: ignored */
	uint64_t stale;      /* (reading, rule) pairs no newer than the sensor's last: ignored */
	uint64_t matched;    /* (reading, rule) pairs that matched */
	uint64_t commands;   /* commands handed to the sink */
	uint64_t events;     /* threshold events handed to the sink */
	uint64_t replayed;   /* outputs withheld while replaying what a previous run emitted */
	uint64_t refused;    /* commands not sent: a substituted value is not allowed (topic) */
	uint64_t state_full; /* (reading, rule) pairs not tracked: the state cap was reached */
	uint64_t reasserted; /* commands repeated by actuator_reassert */
	uint64_t errors;     /* out of memory while rendering a command */
};

struct actuator;

/* Creates an engine over the rules rs, tracking at most max_states sensor states (all rules
 * together; > 0). Takes ownership of rs on success only. Returns NULL with the reason. */
struct actuator *actuator_new(struct ruleset *rs, size_t max_states, char *err, size_t errlen);
/* Frees the engine and its ruleset. Accepts NULL. */
void actuator_free(struct actuator *a);

const struct ruleset *actuator_rules(const struct actuator *a);
const struct actuator_stats *actuator_stats(const struct actuator *a);
size_t actuator_state_count(const struct actuator *a);
size_t actuator_open_episodes(const struct actuator *a);

/* What a rules replacement kept and dropped, for the log line. */
struct act_reload_report {
	size_t rules_kept;       /* rules whose state carried over (same name and match) */
	size_t states_dropped;   /* states of rules removed or whose match changed */
	size_t episodes_dropped; /* open episodes discarded without an "ended" event */
};

/* Swaps in a new ruleset (from rules_load, typically on SIGHUP). A rule keeps its per-sensor
 * state when the new file has a rule of the same name watching the same readings (metric and
 * patterns); thresholds and templates may change under it. Other state is dropped, including
 * open episodes, which then never report an end. On success takes ownership of rs and frees the
 * old ruleset; on failure (out of memory) nothing changes and rs stays the caller's. */
int actuator_rules_replace(struct actuator *a, struct ruleset *rs, struct act_reload_report *rep,
                           char *err, size_t errlen);

/* Processes one reading from (partition, offset); offsets must increase per partition (a
 * smaller or equal one than already processed is a redelivery and is ignored). now_ms is the
 * wall clock stamped on commands. Returns 0, or -1 when some rule could not act on the reading
 * (a refused topic, a full state table, no memory): err says why, the stats say which, and the
 * other rules still acted. Partitions are 0 .. 1048575. */
int actuator_process(struct actuator *a, int32_t partition, int64_t offset,
                     const struct act_reading *r, int64_t now_ms, const struct act_sink *sink,
                     char *err, size_t errlen);

/* Marks an offset processed without a reading (an undecodable record), so commits move on. */
int actuator_skip(struct actuator *a, int32_t partition, int64_t offset, char *err, size_t errlen);

/* Sends again the last command of every state whose last command is at least older_than_ms
 * old (re-assertion, for devices that missed a retained message), stamping issued_at = now_ms.
 * Scans every state: call it at a fraction of the re-assert period, not per reading.
 * Returns how many were sent. */
size_t actuator_reassert(struct actuator *a, int64_t now_ms, int64_t older_than_ms,
                         const struct act_sink *sink);

/* The broker did not confirm a command (the publish failed): forgets that it was sent, so the
 * sensor's next reading beyond the threshold sends it again. Does nothing when the sensor's
 * state has moved to the other side since, or is gone. Returns true when forgotten. Must not
 * be called from a sink callback. */
bool actuator_command_forget(struct actuator *a, const char *rule, const char *site,
                             const char *device, const char *sensor, enum side side);

/* End of input (--in -): closes every open episode with an "ended" event whose ended_at is the
 * last reading's time in the episode. Returns how many. Not for shutdown with Kafka input:
 * there, open episodes are rebuilt by replay after the restart. */
size_t actuator_close_all(struct actuator *a, const struct act_sink *sink);

#define ACT_META_MAX 64

/* Where a consumer of partition may commit, once every output of the readings processed so far
 * has been acknowledged: *offset is the earliest offset an open episode still needs, else the
 * next offset to process; meta (ACT_META_MAX bytes) records how far outputs were emitted.
 * Returns 1, or 0 when nothing was processed on the partition (nothing to commit). */
int actuator_commit_point(const struct actuator *a, int32_t partition, int64_t *offset, char *meta,
                          size_t metalen);

/* On (re)assignment of a partition, before its first reading: meta is the metadata committed
 * with its offset (NULL or "" when there was none). Replayed readings below the recorded offset
 * then rebuild state without emitting. Returns 0, or -1 when meta is not ours (the partition is
 * then processed as if new: events may repeat, with the same identity). */
int actuator_partition_restore(struct actuator *a, int32_t partition, const char *meta, char *err,
                               size_t errlen);

/* On revocation of a partition: forgets its states and open episodes (the next owner rebuilds
 * them from the committed offset). Commit first. */
void actuator_partition_drop(struct actuator *a, int32_t partition);

#endif
