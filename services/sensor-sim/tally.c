/* Run summary: counting, JSON and log forms. */
#include "tally.h"

#include "buf.h"
#include "log.h"

#include <stdio.h>

void tally_add(struct tally *t, const struct gen_msg *m)
{
	t->messages++;
	t->readings += (uint64_t)m->readings;
	t->bad_readings += (uint64_t)m->bad_readings;
	t->batched += m->batched;
	if ((unsigned)m->invalid < GEN_INVALID_COUNT)
		t->by_invalid[m->invalid]++;
	if ((unsigned)m->format < GEN_BASE_COUNT)
		t->by_format[m->format]++;
}

static int set_u64(json_t *o, const char *k, uint64_t v)
{
	return json_object_set_new(o, k, json_integer((json_int_t)v));
}

json_t *tally_json(const struct tally *t)
{
	json_t *o = json_object(), *inv = json_object(), *fmt = json_object();
	if (!o || !inv || !fmt)
		goto fail;
	int r = 0;
	for (int k = GEN_VALID + 1; k < GEN_INVALID_COUNT; k++)
		r |= set_u64(inv, gen_invalid_name(k), t->by_invalid[k]);
	for (int f = 0; f < GEN_BASE_COUNT; f++)
		r |= set_u64(fmt, gen_format_name(f), t->by_format[f]);
	r |= json_object_set_new(o, "mode", json_string(t->mode ? t->mode : "mqtt"));
	r |= set_u64(o, "messages", t->messages);
	r |= set_u64(o, "valid", t->by_invalid[GEN_VALID]);
	r |= set_u64(o, "invalid", t->messages - t->by_invalid[GEN_VALID]);
	r |= json_object_set_new(o, "invalid_by_kind", inv);
	inv = NULL;
	r |= set_u64(o, "readings", t->readings);
	r |= set_u64(o, "valid_readings", t->readings - t->bad_readings);
	r |= set_u64(o, "batched", t->batched);
	r |= json_object_set_new(o, "formats", fmt);
	fmt = NULL;
	r |= set_u64(o, "published", t->published);
	r |= set_u64(o, "confirmed", t->confirmed);
	r |= set_u64(o, "failed", t->failed);
	r |= set_u64(o, "unconfirmed", t->unconfirmed);
	r |= set_u64(o, "reconnects", t->reconnects);
	r |= set_u64(o, "commands", t->commands);
	r |= set_u64(o, "commands_unknown_room", t->commands_unknown_room);
	r |= set_u64(o, "commands_bad", t->commands_bad);
	r |= set_u64(o, "heatpumps_on", t->heatpumps_on);
	r |= set_u64(o, "rooms", t->rooms);
	r |= json_object_set_new(o, "elapsed_ms", json_integer(t->elapsed_ms));
	double secs = (double)t->elapsed_ms / 1000.0;
	r |= json_object_set_new(o, "rate", json_real(secs > 0 ? (double)t->messages / secs : 0));
	if (r)
		goto fail;
	return o;
fail:
	json_decref(inv);
	json_decref(fmt);
	json_decref(o);
	return NULL;
}

void tally_log(const struct tally *t)
{
	double secs = (double)t->elapsed_ms / 1000.0;
	struct buf b = {0};
	for (int f = 0; f < GEN_BASE_COUNT; f++)
		if (t->by_format[f])
			buf_printf(&b, " %s=%llu", gen_format_name(f),
			           (unsigned long long)t->by_format[f]);
	buf_terminate(&b);
	log_info("sent %llu messages (%llu readings, %llu batched) in %.3f s, %.0f msg/s;"
	         " formats:%s",
	         (unsigned long long)t->messages, (unsigned long long)t->readings,
	         (unsigned long long)t->batched, secs, secs > 0 ? (double)t->messages / secs : 0.0,
	         b.data ? (char *)b.data : "");
	buf_reset(&b);
	for (int k = GEN_VALID + 1; k < GEN_INVALID_COUNT; k++)
		buf_printf(&b, " %s=%llu", gen_invalid_name(k),
		           (unsigned long long)t->by_invalid[k]);
	buf_terminate(&b);
	log_info("invalid: %llu messages (%llu readings):%s",
	         (unsigned long long)(t->messages - t->by_invalid[GEN_VALID]),
	         (unsigned long long)t->bad_readings, b.data ? (char *)b.data : "");
	buf_free(&b);
	if (t->mode && t->mode[0] == 'm') {
		log_info("delivery: published %llu, confirmed %llu, failed %llu, unconfirmed %llu,"
		         " reconnects %llu",
		         (unsigned long long)t->published, (unsigned long long)t->confirmed,
		         (unsigned long long)t->failed, (unsigned long long)t->unconfirmed,
		         (unsigned long long)t->reconnects);
		log_info("closed loop: %llu heat-pump commands (%llu for unknown rooms, %llu"
		         " unreadable), %llu of %llu heat pumps on",
		         (unsigned long long)t->commands,
		         (unsigned long long)t->commands_unknown_room,
		         (unsigned long long)t->commands_bad, (unsigned long long)t->heatpumps_on,
		         (unsigned long long)t->rooms);
	}
}
