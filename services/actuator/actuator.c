/* The engine's core: creation, rules replacement, and the per-reading loop that runs every
 * matching rule's command and episode machines (commands.c, episodes.c) and keeps the
 * partition's offsets (offsets.c). */
#include "engine.h"

#include "fmt.h"
#include "siphash.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct actuator *actuator_new(struct ruleset *rs, size_t max_states, char *err, size_t errlen)
{
	if (!max_states) {
		snprintf(err, errlen, "the state cap must be at least 1");
		return NULL;
	}
	struct actuator *a = calloc(1, sizeof(*a));
	if (!a || !(a->slots = calloc(rs->len ? rs->len : 1, sizeof(*a->slots)))) {
		free(a);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->rs = rs;
	for (size_t i = 0; i < rs->len; i++)
		a->slots[i].rule = &rs->rules[i];
	a->max_states = max_states;
	siphash_key_random(a->hash_key);
	return a;
}

static void slots_free(struct slot *slots, size_t n)
{
	for (size_t i = 0; i < n; i++)
		statetab_clear(&slots[i].tab);
	free(slots);
}

void actuator_free(struct actuator *a)
{
	if (!a)
		return;
	slots_free(a->slots, a->rs->len);
	rules_free(a->rs);
	free(a->parts);
	buf_free(&a->topic);
	buf_free(&a->payload);
	free(a);
}

const struct ruleset *actuator_rules(const struct actuator *a)
{
	return a->rs;
}

const struct actuator_stats *actuator_stats(const struct actuator *a)
{
	return &a->stats;
}

size_t actuator_state_count(const struct actuator *a)
{
	return a->nstates;
}

size_t actuator_open_episodes(const struct actuator *a)
{
	size_t n = 0;
	for (size_t i = 0; i < a->rs->len; i++)
		n += a->slots[i].nopen;
	return n;
}

struct prune {
	struct slot *slot;
	bool keep_commands, keep_events;
	size_t episodes_dropped;
};

/* Forgets what the new version of a rule no longer does; true when nothing is left. */
static bool prune_state(struct sensor_state *s, void *ctx)
{
	struct prune *p = ctx;
	if (!p->keep_commands)
		s->side = SIDE_UNKNOWN;
	if (!p->keep_events && s->open) {
		episode_unlink(p->slot, s);
		p->episodes_dropped++;
	}
	return s->side == SIDE_UNKNOWN && !s->open;
}

int actuator_rules_replace(struct actuator *a, struct ruleset *rs, struct act_reload_report *rep,
                           char *err, size_t errlen)
{
	struct act_reload_report r = {0};
	struct slot *slots = calloc(rs->len ? rs->len : 1, sizeof(*slots));
	bool *taken = calloc(a->rs->len ? a->rs->len : 1, sizeof(*taken));
	if (!slots || !taken) {
		free(slots);
		free(taken);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (size_t j = 0; j < rs->len; j++) {
		const struct rule *nr = &rs->rules[j];
		slots[j].rule = nr;
		for (size_t i = 0; i < a->rs->len; i++) {
			struct slot *old = &a->slots[i];
			if (taken[i] || strcmp(old->rule->name, nr->name) != 0 ||
			    !rule_same_match(old->rule, nr))
				continue;
			taken[i] = true;
			slots[j].tab = old->tab;
			slots[j].open_head = old->open_head;
			slots[j].nopen = old->nopen;
			memset(&old->tab, 0, sizeof(old->tab));
			struct prune p = {&slots[j], nr->has_commands, nr->has_events, 0};
			size_t removed = statetab_each(&slots[j].tab, prune_state, &p);
			a->nstates -= removed;
			r.states_dropped += removed;
			r.episodes_dropped += p.episodes_dropped;
			r.rules_kept++;
			break;
		}
	}
	for (size_t i = 0; i < a->rs->len; i++) {
		if (taken[i])
			continue;
		a->nstates -= a->slots[i].tab.count;
		r.states_dropped += a->slots[i].tab.count;
		r.episodes_dropped += a->slots[i].nopen;
	}
	slots_free(a->slots, a->rs->len);
	free(taken);
	rules_free(a->rs);
	a->rs = rs;
	a->slots = slots;
	if (rep)
		*rep = r;
	return 0;
}

int step_fail(const struct step *st, uint64_t *counter, const char *fmt, ...)
{
	char q[3][96];
	int n = snprintf(st->err, st->errlen, "rule \"%s\", %s/%s/%s: ", st->slot->rule->name,
	                 fmt_quote(st->r->site, q[0], sizeof(q[0])),
	                 fmt_quote(st->r->device, q[1], sizeof(q[1])),
	                 fmt_quote(st->r->sensor, q[2], sizeof(q[2])));
	if (n >= 0 && (size_t)n < st->errlen) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(st->err + n, st->errlen - (size_t)n, fmt, ap);
		va_end(ap);
	}
	(*counter)++;
	return -1;
}

struct sensor_state *step_state(struct step *st, struct sensor_state *s)
{
	if (s)
		return s;
	struct actuator *a = st->a;
	if (a->nstates >= a->max_states) {
		step_fail(st, &a->stats.state_full,
		          "state table full (%zu states, the configured maximum): not tracked",
		          a->max_states);
		return NULL;
	}
	s = statetab_add(&st->slot->tab, st->hash, st->r->site, st->r->device, st->r->sensor);
	if (!s) {
		step_fail(st, &a->stats.errors, "out of memory for a new state");
		return NULL;
	}
	s->partition = st->partition;
	a->nstates++;
	return s;
}

int actuator_process(struct actuator *a, int32_t partition, int64_t offset,
                     const struct act_reading *r, int64_t now_ms, const struct act_sink *sink,
                     char *err, size_t errlen)
{
	struct part *pt = partition_get(a, partition, err, errlen);
	if (!pt)
		return -1;
	if (offset < 0) {
		snprintf(err, errlen, "offset %" PRId64 " is negative", offset);
		return -1;
	}
	if (offset < pt->next) {
		a->stats.duplicates++;
		return 0;
	}
	a->stats.readings++;
	if (!isfinite(r->value)) {
		snprintf(err, errlen, "value is not a finite number");
		pt->next = offset + 1;
		return -1;
	}
	struct step st = {a,      NULL,   r,     partition,
	                  offset, now_ms, 0,     offset < pt->emitted_below,
	                  sink,   err,    errlen};
	bool hashed = false;
	int rc = 0;
	for (size_t i = 0; i < a->rs->len; i++) {
		struct slot *slot = &a->slots[i];
		const struct rule *rule = slot->rule;
		if (!rule_matches(rule, r->site, r->device, r->sensor, r->metric))
			continue;
		a->stats.matched++;
		if (!hashed) {
			st.hash = statetab_hash(a->hash_key, r->site, r->device, r->sensor);
			hashed = true;
		}
		st.slot = slot;
		struct sensor_state *s =
		    statetab_find(&slot->tab, st.hash, r->site, r->device, r->sensor);
		/* A sensor's readings come in event-time order (one partition, in the order its
		 * device sent them). One no newer than the last this state took is a repeat that an
		 * upstream stage wrote again after a crash (at a new offset, so the offset check
		 * above lets it through) or a straggler: acting on it would count it twice in an
		 * episode, end an episode with a reading from before its end, or undo a command. */
		if (s && r->ts <= s->last_ts) {
			a->stats.stale++;
			continue;
		}
		if (rule->has_commands && command_step(&st, &s) < 0)
			rc = -1;
		if (rule->has_events && episode_step(&st, &s) < 0)
			rc = -1;
		/* A state, once needed, stays (until a reload, a revocation or a forgotten command
		 * drops it), so that the time of its last reading is remembered after an episode
		 * ends: a repeat of a reading from inside that episode must not open another. */
		if (s)
			s->last_ts = r->ts;
	}
	pt->next = offset + 1;
	return rc;
}
