/* Table mapping of the record types (see tables.h), and the statements that write a batch.
 *
 * A batch goes to the server as one array parameter per column and is unpacked there by
 * unnest(), so a statement's text is fixed per table and prepared once per connection;
 * no record data ever becomes SQL text. */
#include "tables.h"

#include "pgbin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_KEY 10

struct table_spec {
	const char *name;
	const char *time_col;
	bool upsert;
	/* Leading origin_* columns filled from the Kafka origin (RawMessage). */
	bool origin_columns;
	/* A nested Origin field whose null is filled from the Kafka origin (Rejected). */
	const char *origin_field;
	/* The primary key; it includes the partition column, as PostgreSQL requires. */
	const char *key[MAX_KEY];
};

/* The identities of the architecture's delivery table, as primary keys. */
static const struct table_spec specs[REC_TYPE_COUNT] = {
    [REC_RAW_MESSAGE] =
        {
            .name = "raw_messages",
            .time_col = "received_at",
            .origin_columns = true,
            .key = {"origin_cluster", "origin_topic", "origin_partition", "origin_offset",
                    "received_at"},
        },
    [REC_READING] =
        {
            .name = "readings",
            .time_col = "ts",
            .key = {"site", "device", "sensor", "metric", "ts"},
        },
    [REC_REJECTED] =
        {
            .name = "rejected",
            .time_col = "received_at",
            .origin_field = "origin",
            .key = {"origin_cluster", "origin_topic", "origin_partition", "origin_offset", "stage",
                    "received_at"},
        },
    [REC_AGGREGATE] =
        {
            .name = "aggregates",
            .time_col = "window_start",
            .upsert = true,
            .key = {"site", "device", "sensor", "metric", "window_start", "window_ms"},
        },
    [REC_COMMAND] =
        {
            .name = "commands",
            .time_col = "issued_at",
            .key = {"topic", "issued_at", "rule", "site", "device", "sensor", "metric",
                    "reading_ts"},
        },
    [REC_THRESHOLD_EVENT] =
        {
            .name = "threshold_events",
            .time_col = "started_at",
            .key = {"site", "device", "sensor", "metric", "rule", "started_at", "state"},
        },
    [REC_FORECAST] =
        {
            .name = "forecasts",
            .time_col = "window_start",
            .upsert = true,
            .key = {"site", "device", "sensor", "metric", "window_start", "window_ms", "model",
                    "horizon"},
        },
};

static const char *const origin_names[] = {"cluster", "topic", "partition", "offset"};

const char *table_name(enum rec_type type)
{
	return type >= 0 && type < REC_TYPE_COUNT ? specs[type].name : NULL;
}

enum rec_type table_type_by_name(const char *name)
{
	for (int t = 0; name && t < REC_TYPE_COUNT; t++)
		if (strcmp(specs[t].name, name) == 0)
			return (enum rec_type)t;
	return REC_UNKNOWN;
}

uint32_t col_kind_oid(enum col_kind k)
{
	static const uint32_t oids[] = {PG_OID_TEXT,   PG_OID_BYTEA,       PG_OID_BOOL,
	                                PG_OID_INT4,   PG_OID_INT8,        PG_OID_FLOAT4,
	                                PG_OID_FLOAT8, PG_OID_TIMESTAMPTZ, PG_OID_JSONB};
	return oids[k];
}

uint32_t col_kind_array_oid(enum col_kind k)
{
	/* pg_type.typarray of each element type. */
	static const uint32_t oids[] = {1009, 1001, 1000, 1007, 1016, 1021, 1022, 1185, 3807};
	return oids[k];
}

const char *col_kind_sql(enum col_kind k)
{
	static const char *const names[] = {
	    "text",   "bytea", "boolean",          "integer",
	    "bigint", "real",  "double precision", "timestamp with time zone",
	    "jsonb"};
	return names[k];
}

/* The column kind of a (non-union, non-record) Avro type; -1 when there is none. */
static int kind_of(const struct avro_schema *s)
{
	switch (avro_schema_type(s)) {
	case AVRO_STRING:
	case AVRO_ENUM:
		return COL_TEXT;
	case AVRO_BYTES:
	case AVRO_FIXED:
		return COL_BYTEA;
	case AVRO_BOOLEAN:
		return COL_BOOL;
	case AVRO_INT:
		return COL_INT4;
	case AVRO_LONG: {
		const char *lt = avro_schema_logical(s);
		return lt && strcmp(lt, "timestamp-millis") == 0 ? COL_TIMESTAMPTZ : COL_INT8;
	}
	case AVRO_FLOAT:
		return COL_FLOAT4;
	case AVRO_DOUBLE:
		return COL_FLOAT8;
	case AVRO_MAP:
	case AVRO_ARRAY:
		return COL_JSONB;
	default:
		return -1;
	}
}

static int col_add(struct table *t, const char *name, int kind, bool nullable, const char *field,
                   const char *sub, int origin, char *err, size_t errlen)
{
	struct table_col *n = realloc(t->cols, (t->ncols + 1) * sizeof(*n));
	if (!n) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	t->cols = n;
	struct table_col *c = &t->cols[t->ncols++];
	*c = (struct table_col){.kind = (enum col_kind)kind,
	                        .nullable = nullable,
	                        .field = field,
	                        .sub = sub,
	                        .origin = origin};
	snprintf(c->name, sizeof(c->name), "%s", name);
	return 0;
}

/* Non-null branch of a union ["null", X] (sets *nullable), or the schema itself. Other unions
 * have no column mapping and give NULL. */
static const struct avro_schema *unwrap(const struct avro_schema *s, bool *nullable)
{
	*nullable = false;
	if (avro_schema_type(s) != AVRO_UNION)
		return s;
	if (avro_union_size(s) != 2)
		return NULL;
	const struct avro_schema *x = avro_schema_nonnull(s);
	if (x == s || avro_schema_type(x) == AVRO_UNION)
		return NULL;
	*nullable = true;
	return x;
}

static int origin_part_of(const char *name)
{
	for (int i = 0; i < 4; i++)
		if (strcmp(name, origin_names[i]) == 0)
			return i;
	return ORIGIN_NONE;
}

static int add_fields(struct table *t, const struct table_spec *sp, const struct avro_schema *rs,
                      char *err, size_t errlen)
{
	for (size_t i = 0; i < avro_record_field_count(rs); i++) {
		const char *fname = avro_record_field_name(rs, i);
		bool nullable;
		const struct avro_schema *fs = unwrap(avro_record_field_schema(rs, i), &nullable);
		if (!fs) {
			snprintf(err, errlen,
			         "%s.%s: unions other than [\"null\", X] have no column",
			         records_name(t->type), fname);
			return -1;
		}
		if (avro_schema_type(fs) != AVRO_RECORD) {
			int kind = kind_of(fs);
			if (kind < 0) {
				snprintf(err, errlen, "%s.%s: no column type for Avro %s",
				         records_name(t->type), fname, avro_schema_name(fs));
				return -1;
			}
			if (col_add(t, fname, kind, nullable, fname, NULL, ORIGIN_NONE, err,
			            errlen))
				return -1;
			continue;
		}
		bool from_origin = sp->origin_field && strcmp(fname, sp->origin_field) == 0;
		for (size_t j = 0; j < avro_record_field_count(fs); j++) {
			const char *sname = avro_record_field_name(fs, j);
			bool sub_nullable;
			const struct avro_schema *ss =
			    unwrap(avro_record_field_schema(fs, j), &sub_nullable);
			int kind = ss ? kind_of(ss) : -1;
			if (kind < 0) {
				snprintf(err, errlen,
				         "%s.%s.%s: no column type (records nest one "
				         "level deep)",
				         records_name(t->type), fname, sname);
				return -1;
			}
			char name[128];
			snprintf(name, sizeof(name), "%s_%s", fname, sname);
			int origin = from_origin ? origin_part_of(sname) : ORIGIN_NONE;
			bool null_ok = (nullable || sub_nullable) && origin == ORIGIN_NONE;
			if (col_add(t, name, kind, null_ok, fname, sname, origin, err, errlen))
				return -1;
		}
	}
	return 0;
}

static int build_sql(struct table *t, char *err, size_t errlen)
{
	struct buf cols = {0}, sql = {0}, copy = {0};
	int rc = -1;
	for (size_t i = 0; i < t->ncols; i++)
		buf_printf(&cols, "%s\"%s\"", i ? ", " : "", t->cols[i].name);
	buf_printf(&sql, "INSERT INTO \"%s\" AS t (%.*s) SELECT ", t->name, (int)cols.len,
	           (char *)cols.data);
	if (t->upsert) {
		/* ON CONFLICT DO UPDATE refuses to touch a row twice in one statement, and a batch
		 * may hold two versions of one identity: keep the last one received. */
		buf_printf(&sql, "DISTINCT ON (");
		for (size_t i = 0, k = 0; i < t->ncols; i++)
			if (t->cols[i].key)
				buf_printf(&sql, "%s\"%s\"", k++ ? ", " : "", t->cols[i].name);
		buf_printf(&sql, ") ");
	}
	buf_printf(&sql, "%.*s FROM unnest(", (int)cols.len, (char *)cols.data);
	for (size_t i = 0; i < t->ncols; i++)
		buf_printf(&sql, "%s$%zu::%s[]", i ? ", " : "", i + 1,
		           col_kind_sql(t->cols[i].kind));
	buf_printf(&sql, ")%s AS u(%.*s%s)", t->upsert ? " WITH ORDINALITY" : "", (int)cols.len,
	           (char *)cols.data, t->upsert ? ", iotpipe_ord" : "");
	if (!t->upsert) {
		buf_printf(&sql, " ON CONFLICT DO NOTHING");
	} else {
		buf_printf(&sql, " ORDER BY ");
		for (size_t i = 0; i < t->ncols; i++)
			if (t->cols[i].key)
				buf_printf(&sql, "\"%s\", ", t->cols[i].name);
		buf_printf(&sql, "iotpipe_ord DESC ON CONFLICT (");
		for (size_t i = 0, k = 0; i < t->ncols; i++)
			if (t->cols[i].key)
				buf_printf(&sql, "%s\"%s\"", k++ ? ", " : "", t->cols[i].name);
		buf_printf(&sql, ") DO UPDATE SET ");
		for (size_t i = 0, k = 0; i < t->ncols; i++)
			if (!t->cols[i].key)
				buf_printf(&sql, "%s\"%s\" = EXCLUDED.\"%s\"", k++ ? ", " : "",
				           t->cols[i].name, t->cols[i].name);
		/* A replayed batch then leaves the rows (and the table's bloat) alone. */
		buf_printf(&sql, " WHERE (");
		for (size_t i = 0, k = 0; i < t->ncols; i++)
			if (!t->cols[i].key)
				buf_printf(&sql, "%st.\"%s\"", k++ ? ", " : "", t->cols[i].name);
		buf_printf(&sql, ") IS DISTINCT FROM (");
		for (size_t i = 0, k = 0; i < t->ncols; i++)
			if (!t->cols[i].key)
				buf_printf(&sql, "%sEXCLUDED.\"%s\"", k++ ? ", " : "",
				           t->cols[i].name);
		buf_printf(&sql, ")");
	}
	buf_printf(&copy, "COPY \"%s\" (%.*s) FROM STDIN (FORMAT binary)", t->name, (int)cols.len,
	           (char *)cols.data);
	if (buf_terminate(&sql) < 0 || buf_terminate(&copy) < 0) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	t->insert_sql = (char *)sql.data;
	t->copy_sql = (char *)copy.data;
	sql = (struct buf){0};
	copy = (struct buf){0};
	rc = 0;
out:
	buf_free(&cols);
	buf_free(&sql);
	buf_free(&copy);
	return rc;
}

int table_init(struct table *t, enum rec_type type, char *err, size_t errlen)
{
	memset(t, 0, sizeof(*t));
	const struct avro_schema *rs = records_schema(type);
	if (!rs || type < 0 || type >= REC_TYPE_COUNT) {
		snprintf(err, errlen, "no schema for record type %d", (int)type);
		return -1;
	}
	const struct table_spec *sp = &specs[type];
	t->type = type;
	t->name = sp->name;
	t->time_col = sp->time_col;
	t->upsert = sp->upsert;
	if (sp->origin_columns) {
		static const int kinds[] = {COL_TEXT, COL_TEXT, COL_INT4, COL_INT8};
		for (int i = 0; i < 4; i++) {
			char name[64];
			snprintf(name, sizeof(name), "origin_%s", origin_names[i]);
			if (col_add(t, name, kinds[i], false, NULL, NULL, i, err, errlen))
				goto fail;
		}
	}
	if (add_fields(t, sp, rs, err, errlen))
		goto fail;
	bool has_time = false;
	for (size_t i = 0; i < t->ncols; i++)
		if (strcmp(t->cols[i].name, sp->time_col) == 0)
			has_time = t->cols[i].kind == COL_TIMESTAMPTZ && !t->cols[i].nullable;
	if (!has_time) {
		snprintf(err, errlen, "%s: partition column %s is not a non-null timestamp",
		         sp->name, sp->time_col);
		goto fail;
	}
	for (size_t k = 0; k < MAX_KEY && sp->key[k]; k++) {
		size_t i = 0;
		while (i < t->ncols && strcmp(t->cols[i].name, sp->key[k]) != 0)
			i++;
		if (i == t->ncols || t->cols[i].nullable) {
			snprintf(err, errlen, "%s: key column %s is %s", sp->name, sp->key[k],
			         i == t->ncols ? "not in the schema" : "nullable");
			goto fail;
		}
		t->cols[i].key = true;
	}
	t->param_types = calloc(t->ncols, sizeof(*t->param_types));
	if (!t->param_types) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < t->ncols; i++)
		t->param_types[i] = col_kind_array_oid(t->cols[i].kind);
	if (build_sql(t, err, errlen))
		goto fail;
	return 0;
fail:
	table_free(t);
	return -1;
}

void table_free(struct table *t)
{
	if (!t)
		return;
	free(t->cols);
	free(t->param_types);
	free(t->insert_sql);
	free(t->copy_sql);
	memset(t, 0, sizeof(*t));
}

static int put_origin(const struct table_col *c, const struct origin *o, struct buf *b)
{
	switch (c->origin) {
	case ORIGIN_CLUSTER:
		return pgbin_bytes(b, o->cluster, strlen(o->cluster));
	case ORIGIN_TOPIC:
		return pgbin_bytes(b, o->topic, strlen(o->topic));
	case ORIGIN_PARTITION:
		return pgbin_int4(b, o->partition);
	default:
		return pgbin_int8(b, o->offset);
	}
}

int table_col_put(const struct table_col *c, const json_t *rec, const struct origin *o,
                  struct buf *b, char *err, size_t errlen)
{
	const json_t *v = c->field ? json_object_get(rec, c->field) : NULL;
	if (v && c->sub)
		v = json_is_object(v) ? json_object_get(v, c->sub) : NULL;
	int rc;
	if (!v || json_is_null(v)) {
		if (c->origin != ORIGIN_NONE && o) {
			rc = put_origin(c, o, b);
		} else if (c->nullable) {
			rc = pgbin_null(b);
		} else {
			snprintf(err, errlen, "%s: missing", c->name);
			return -1;
		}
		if (rc < 0)
			snprintf(err, errlen, "%s: out of memory", c->name);
		return rc;
	}
	switch (c->kind) {
	case COL_TEXT:
	case COL_BYTEA:
		if (!json_is_string(v))
			goto mistyped;
		rc = pgbin_bytes(b, json_string_value(v), json_string_length(v));
		break;
	case COL_BOOL:
		if (!json_is_boolean(v))
			goto mistyped;
		rc = pgbin_bool(b, json_is_true(v));
		break;
	case COL_INT4:
		if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
		    json_integer_value(v) > INT32_MAX)
			goto mistyped;
		rc = pgbin_int4(b, (int32_t)json_integer_value(v));
		break;
	case COL_INT8:
		if (!json_is_integer(v))
			goto mistyped;
		rc = pgbin_int8(b, json_integer_value(v));
		break;
	case COL_TIMESTAMPTZ:
		if (!json_is_integer(v))
			goto mistyped;
		rc = pgbin_timestamptz_ms(b, json_integer_value(v));
		break;
	case COL_FLOAT4:
		if (!json_is_number(v))
			goto mistyped;
		rc = pgbin_float4(b, (float)json_number_value(v));
		break;
	case COL_FLOAT8:
		if (!json_is_number(v))
			goto mistyped;
		rc = pgbin_float8(b, json_number_value(v));
		break;
	default:
		rc = pgbin_jsonb(b, v);
		break;
	}
	if (rc < 0)
		snprintf(err, errlen, "%s: out of memory", c->name);
	return rc;
mistyped:
	snprintf(err, errlen, "%s: value of the wrong type for %s", c->name, col_kind_sql(c->kind));
	return -1;
}
