/* The command state machine: edge-triggered, one command per change of the wanted side, and
 * re-assertion of the last command for devices that may have missed it. */
#include "engine.h"

#include <stdio.h>
#include <string.h>

/* Renders the command for side of the rule into the engine's buffers. */
static int command_render(struct actuator *a, const struct rule *rule, enum side side,
                          const struct tmpl_vars *v, char *why, size_t whylen)
{
	int rc = tmpl_render(rule->topic[side], v, &a->topic, why, whylen);
	if (rc == TMPL_OK)
		rc = tmpl_render(rule->payload[side], v, &a->payload, why, whylen);
	return rc;
}

static void command_emit(struct actuator *a, const struct rule *rule, const struct sensor_state *s,
                         const char *metric, int64_t now_ms, const struct act_sink *sink)
{
	struct act_command c = {
	    .topic = (const char *)a->topic.data,
	    .payload = (const char *)a->payload.data,
	    .qos = rule->qos,
	    .retained = rule->retain,
	    .rule = rule->name,
	    .side = (enum side)s->side,
	    .site = s->site,
	    .device = s->device,
	    .sensor = s->sensor,
	    .metric = metric,
	    .value = s->cmd_value,
	    .reading_ts = s->cmd_reading_ts,
	    .issued_at = now_ms,
	};
	if (sink && sink->command)
		sink->command(sink->ctx, &c);
}

int command_step(struct step *st, struct sensor_state **sp)
{
	const struct rule *rule = st->slot->rule;
	double v = st->r->value;
	int want = v < rule->low ? SIDE_LOW : v > rule->high ? SIDE_HIGH : SIDE_UNKNOWN;
	if (want == SIDE_UNKNOWN || (*sp && (*sp)->side == want))
		return 0;
	struct tmpl_vars vars = {st->r->site,   st->r->device, st->r->sensor,
	                         st->r->metric, rule->name,    v};
	char why[256];
	int rc = command_render(st->a, rule, (enum side)want, &vars, why, sizeof(why));
	if (rc == TMPL_REFUSED)
		return step_fail(st, &st->a->stats.refused, "%s command refused: %s",
		                 side_name((enum side)want), why);
	if (rc != TMPL_OK)
		return step_fail(st, &st->a->stats.errors, "%s", why);
	struct sensor_state *s = step_state(st, *sp);
	if (!s)
		return -1;
	*sp = s;
	s->side = want;
	s->cmd_value = v;
	s->cmd_reading_ts = st->r->ts;
	s->cmd_issued_at = st->now_ms;
	if (st->replay) {
		st->a->stats.replayed++;
		return 0;
	}
	command_emit(st->a, rule, s, st->r->metric, st->now_ms, st->sink);
	st->a->stats.commands++;
	return 0;
}

/* ---- re-assertion ---- */

struct reassert_ctx {
	struct actuator *a;
	const struct rule *rule;
	int64_t now_ms, older_than_ms;
	const struct act_sink *sink;
	size_t sent;
};

static bool reassert_state(struct sensor_state *s, void *ctx)
{
	struct reassert_ctx *c = ctx;
	if (s->side == SIDE_UNKNOWN || c->now_ms - s->cmd_issued_at < c->older_than_ms)
		return false;
	struct tmpl_vars vars = {s->site,         s->device,     s->sensor,
	                         c->rule->metric, c->rule->name, s->cmd_value};
	char why[256];
	int rc = command_render(c->a, c->rule, (enum side)s->side, &vars, why, sizeof(why));
	if (rc != TMPL_OK) {
		/* Only possible if a reload changed the templates: counted, retried next round. */
		(*(rc == TMPL_REFUSED ? &c->a->stats.refused : &c->a->stats.errors))++;
		return false;
	}
	s->cmd_issued_at = c->now_ms;
	command_emit(c->a, c->rule, s, c->rule->metric, c->now_ms, c->sink);
	c->a->stats.reasserted++;
	c->sent++;
	return false;
}

size_t actuator_reassert(struct actuator *a, int64_t now_ms, int64_t older_than_ms,
                         const struct act_sink *sink)
{
	struct reassert_ctx c = {a, NULL, now_ms, older_than_ms, sink, 0};
	for (size_t i = 0; i < a->rs->len; i++) {
		if (!a->slots[i].rule->has_commands)
			continue;
		c.rule = a->slots[i].rule;
		statetab_each(&a->slots[i].tab, reassert_state, &c);
	}
	return c.sent;
}

bool actuator_command_forget(struct actuator *a, const char *rule, const char *site,
                             const char *device, const char *sensor, enum side side)
{
	for (size_t i = 0; i < a->rs->len; i++) {
		struct slot *slot = &a->slots[i];
		if (strcmp(slot->rule->name, rule) != 0)
			continue;
		uint64_t hash = statetab_hash(a->hash_key, site, device, sensor);
		struct sensor_state *s = statetab_find(&slot->tab, hash, site, device, sensor);
		if (!s || s->side != (int)side)
			return false;
		s->side = SIDE_UNKNOWN;
		if (!s->open) {
			statetab_remove(&slot->tab, s);
			a->nstates--;
		}
		return true;
	}
	return false;
}
