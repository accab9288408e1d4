/* Threshold episodes: open above the threshold, closed below threshold - hysteresis, with a
 * "started" and an "ended" event whose content depends only on the readings of the episode,
 * so that a replay after a crash reproduces them byte for byte. */
#include "engine.h"

void episode_unlink(struct slot *slot, struct sensor_state *s)
{
	if (s->open_prev)
		s->open_prev->open_next = s->open_next;
	else
		slot->open_head = s->open_next;
	if (s->open_next)
		s->open_next->open_prev = s->open_prev;
	s->open_prev = s->open_next = NULL;
	s->open = false;
	slot->nopen--;
}

static void episode_link(struct slot *slot, struct sensor_state *s)
{
	s->open = true;
	s->open_prev = NULL;
	s->open_next = slot->open_head;
	if (slot->open_head)
		slot->open_head->open_prev = s;
	slot->open_head = s;
	slot->nopen++;
}

static void event_emit(struct actuator *a, const struct rule *rule, const struct sensor_state *s,
                       enum episode_state state, int64_t ended_at, bool replay,
                       const struct act_sink *sink)
{
	if (replay) {
		a->stats.replayed++;
		return;
	}
	struct act_event e = {
	    .site = s->site,
	    .device = s->device,
	    .sensor = s->sensor,
	    .metric = rule->metric,
	    .rule = rule->name,
	    .threshold = rule->threshold,
	    .hysteresis = rule->hysteresis,
	    .state = state,
	    .started_at = s->started_at,
	    .ended_at = state == EPISODE_ENDED ? ended_at : 0,
	    .exceeded_for_ms = 0,
	    .average = s->mean,
	    .max = s->max,
	    .count = s->count,
	};
	/* Readings act in arrival order; one that arrived late could end an episode "before" it
	 * started, and a duration is never negative. */
	if (state == EPISODE_ENDED && ended_at > s->started_at)
		e.exceeded_for_ms = ended_at - s->started_at;
	if (sink && sink->event)
		sink->event(sink->ctx, &e);
	a->stats.events++;
}

int episode_step(struct step *st, struct sensor_state **sp)
{
	const struct rule *rule = st->slot->rule;
	struct sensor_state *s = *sp;
	double v = st->r->value;
	if (!s || !s->open) {
		if (!(v > rule->threshold))
			return 0;
		if (!(s = step_state(st, s)))
			return -1;
		*sp = s;
		s->partition = st->partition;
		s->first_offset = st->offset;
		s->started_at = s->last_ts = st->r->ts;
		s->count = 1;
		s->mean = s->max = v;
		episode_link(st->slot, s);
		event_emit(st->a, rule, s, EPISODE_STARTED, 0, st->replay, st->sink);
		return 0;
	}
	if (v < rule->threshold - rule->hysteresis) {
		/* The reading that ends the episode is not part of it. */
		event_emit(st->a, rule, s, EPISODE_ENDED, st->r->ts, st->replay, st->sink);
		episode_unlink(st->slot, s);
		return 0;
	}
	s->count++;
	/* Mean updated as mean + v/n - mean/n: no running sum to overflow to infinity. */
	s->mean += v / (double)s->count - s->mean / (double)s->count;
	if (v > s->max)
		s->max = v;
	s->last_ts = st->r->ts;
	return 0;
}

size_t actuator_close_all(struct actuator *a, const struct act_sink *sink)
{
	size_t n = 0;
	for (size_t i = 0; i < a->rs->len; i++) {
		struct slot *slot = &a->slots[i];
		while (slot->open_head) {
			struct sensor_state *s = slot->open_head;
			event_emit(a, slot->rule, s, EPISODE_ENDED, s->last_ts, false, sink);
			episode_unlink(slot, s);
			n++;
			if (s->side == SIDE_UNKNOWN) {
				statetab_remove(&slot->tab, s);
				a->nstates--;
			}
		}
	}
	return n;
}
