/* Batches of encoded records (see batch.h). */
#include "batch.h"

#include "lifecycle.h"
#include "pgbin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int grow(void **p, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t c = *cap ? *cap * 2 : 1024;
	void *q = realloc(*p, c * size);
	if (!q)
		return -1;
	*p = q;
	*cap = c;
	return 0;
}

void batch_refuse(struct batch_row *r, const char *table, const char *sqlstate, const char *why)
{
	free(r->reason);
	size_t n = strlen(table) + strlen(why) + 3;
	r->reason = malloc(n);
	if (r->reason)
		snprintf(r->reason, n, "%s: %s", table, why);
	snprintf(r->sqlstate, sizeof(r->sqlstate), "%s", sqlstate);
	r->refused = true;
}

int batch_add(struct batch *b, const struct table *tables, const struct stream_msg *m,
              const struct origin *o, const char *dead_topic)
{
	char err[512];
	if (!m->rec || m->type < 0 || m->type >= REC_TYPE_COUNT)
		return -1;
	const struct table *t = &tables[m->type];
	struct batch_table *tb = &b->tb[m->type];
	if (grow((void **)&b->rows, &b->cap, b->n, sizeof(*b->rows)) < 0 ||
	    grow((void **)&tb->idx, &tb->cap, tb->n, sizeof(*tb->idx)) < 0)
		return -1;
	if (m->partition >= 0 && posmap_raise(&b->pos, m->topic, m->partition, m->offset + 1) < 0)
		return -1;
	struct batch_row *r = &b->rows[b->n];
	*r = (struct batch_row){
	    .type = m->type,
	    .from_dead_topic = dead_topic && strcmp(m->topic, dead_topic) == 0,
	    .value_off = b->values.len,
	    .tuple_off = tb->tuples.len,
	    .kafka_ts = m->timestamp,
	    .origin = *o,
	};
	int rc = m->kmsg ? buf_append(&b->values, m->kmsg->payload, m->kmsg->len)
	                 : records_encode(m->type, m->rec, &b->values, err, sizeof(err));
	if (rc < 0)
		goto fail;
	r->value_len = b->values.len - r->value_off;
	if (tb->tuples.len == 0) {
		if (pgbin_copy_header(&tb->tuples) < 0)
			goto fail;
		r->tuple_off = tb->tuples.len;
	}
	if (pgbin_copy_row(&tb->tuples, (int16_t)t->ncols) < 0)
		goto fail;
	for (size_t c = 0; c < t->ncols; c++)
		if (table_col_put(&t->cols[c], m->rec, o, &tb->tuples, err, sizeof(err)) < 0) {
			if (strstr(err, "out of memory"))
				goto fail;
			/* Not encodable: queued refused, without a tuple. */
			tb->tuples.len = r->tuple_off;
			batch_refuse(r, t->name, "", err);
			break;
		}
	r->tuple_len = tb->tuples.len - r->tuple_off;
	if (b->n == 0)
		b->first_at = now_mono_ms();
	tb->idx[tb->n++] = b->n++;
	return 0;
fail:
	b->values.len = r->value_off;
	tb->tuples.len = r->tuple_off;
	free(r->reason);
	return -1;
}

void batch_clear(struct batch *b)
{
	for (size_t i = 0; i < b->n; i++)
		free(b->rows[i].reason);
	b->n = 0;
	for (int t = 0; t < REC_TYPE_COUNT; t++) {
		b->tb[t].n = 0;
		buf_reset(&b->tb[t].tuples);
	}
	buf_reset(&b->values);
	posmap_clear(&b->pos);
}

void batch_free(struct batch *b)
{
	if (!b)
		return;
	batch_clear(b);
	free(b->rows);
	for (int t = 0; t < REC_TYPE_COUNT; t++) {
		free(b->tb[t].idx);
		buf_free(&b->tb[t].tuples);
	}
	buf_free(&b->values);
	posmap_free(&b->pos);
	memset(b, 0, sizeof(*b));
}

static struct partpos *posmap_find(const struct posmap *m, const char *topic, int32_t partition)
{
	if (m->last < m->n && m->p[m->last].partition == partition &&
	    strcmp(m->p[m->last].topic, topic) == 0)
		return &m->p[m->last];
	for (size_t i = 0; i < m->n; i++)
		if (m->p[i].partition == partition && strcmp(m->p[i].topic, topic) == 0) {
			((struct posmap *)m)->last = i;
			return &m->p[i];
		}
	return NULL;
}

int posmap_raise(struct posmap *m, const char *topic, int32_t partition, int64_t next)
{
	struct partpos *p = posmap_find(m, topic, partition);
	if (!p) {
		if (m->n == m->cap) {
			size_t cap = m->cap ? m->cap * 2 : 16;
			struct partpos *n = realloc(m->p, cap * sizeof(*n));
			if (!n)
				return -1;
			memset(n + m->cap, 0, (cap - m->cap) * sizeof(*n));
			m->p = n;
			m->cap = cap;
		}
		/* Entries keep their topic string when cleared, so a steady set of partitions
		 * allocates nothing after the first batch. */
		p = &m->p[m->n];
		if (!p->topic || strcmp(p->topic, topic) != 0) {
			char *copy = strdup(topic);
			if (!copy)
				return -1;
			free(p->topic);
			p->topic = copy;
		}
		p->partition = partition;
		p->next = -1;
		m->last = m->n++;
	}
	if (next > p->next)
		p->next = next;
	return 0;
}

int64_t posmap_get(const struct posmap *m, const char *topic, int32_t partition)
{
	const struct partpos *p = posmap_find(m, topic, partition);
	return p ? p->next : -1;
}

void posmap_forget(struct posmap *m, const char *topic, int32_t partition)
{
	struct partpos *p = posmap_find(m, topic, partition);
	if (p)
		p->next = -1;
}

int posmap_merge(struct posmap *to, const struct posmap *from)
{
	for (size_t i = 0; i < from->n; i++)
		if (posmap_raise(to, from->p[i].topic, from->p[i].partition, from->p[i].next) < 0)
			return -1;
	return 0;
}

void posmap_clear(struct posmap *m)
{
	m->n = 0;
	m->last = 0;
}

void posmap_free(struct posmap *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->cap && m->p; i++)
		free(m->p[i].topic);
	free(m->p);
	memset(m, 0, sizeof(*m));
}
