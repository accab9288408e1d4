/* Avro schemas, canonical form, fingerprints and the binary codec (see avro.h for the value
 * model and why the suite carries its own codec).
 *
 * A parsed schema is a graph of nodes; named types referenced again point at the node that
 * defined them (so recursive schemas work). The root owns every node in `nodes`.
 * Decoding never trusts a length: each string, bytes, array and map block is checked against
 * the bytes left before anything is allocated, and recursion is bounded. */
#include "avro.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

#define AVRO_MAX_DEPTH 64

struct avro_field {
	char *name;
	struct avro_schema *type;
	json_t *def; /* the field's default in schema JSON form, or NULL */
};

struct avro_schema {
	enum avro_type type;
	char *name; /* fullname of named types */
	char *logical;
	struct avro_field *fields;
	size_t nfields;
	char **symbols;
	size_t nsymbols;
	struct avro_schema *items; /* array items, map values */
	struct avro_schema **branches;
	size_t nbranches;
	size_t size; /* fixed */
	/* Root only: */
	struct avro_schema **nodes;
	size_t nnodes;
	char *canonical;
	uint64_t fingerprint;
};

static const char *const type_names[] = {"null",  "boolean", "int",	"long",	 "float",
					 "double", "bytes",  "string", "record", "enum",
					 "array", "map",	"union",  "fixed"};

/* ---- CRC-64-AVRO ---- */

#define CRC64_EMPTY 0xc15d213aa4d7a795ULL
static uint64_t crc64_table[256];
static int crc64_ready;

static void crc64_init(void)
{
	for (int i = 0; i < 256; i++) {
		uint64_t fp = (uint64_t)i;
		for (int j = 0; j < 8; j++)
			fp = (fp >> 1) ^ (CRC64_EMPTY & -(fp & 1));
		crc64_table[i] = fp;
	}
	crc64_ready = 1;
}

uint64_t avro_crc64(const void *data, size_t len)
{
	if (!crc64_ready)
		crc64_init();
	const uint8_t *p = data;
	uint64_t fp = CRC64_EMPTY;
	for (size_t i = 0; i < len; i++)
		fp = (fp >> 8) ^ crc64_table[(fp ^ p[i]) & 0xff];
	return fp;
}

/* ---- schema parsing ---- */

struct parse_ctx {
	struct avro_schema *root;
	char *err;
	size_t errlen;
};

static struct avro_schema *node_new(struct parse_ctx *c, enum avro_type t)
{
	struct avro_schema *s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	struct avro_schema **n = realloc(c->root->nodes, (c->root->nnodes + 1) * sizeof(*n));
	if (!n) {
		free(s);
		return NULL;
	}
	c->root->nodes = n;
	c->root->nodes[c->root->nnodes++] = s;
	s->type = t;
	return s;
}

static void node_free(struct avro_schema *s)
{
	free(s->name);
	free(s->logical);
	for (size_t i = 0; i < s->nfields; i++) {
		free(s->fields[i].name);
		json_decref(s->fields[i].def);
	}
	free(s->fields);
	for (size_t i = 0; i < s->nsymbols; i++)
		free(s->symbols[i]);
	free(s->symbols);
	free(s->branches);
	free(s->canonical);
	free(s);
}

void avro_schema_free(struct avro_schema *s)
{
	if (!s)
		return;
	struct avro_schema **nodes = s->nodes;
	size_t n = s->nnodes;
	for (size_t i = 0; i < n; i++)
		if (nodes[i] != s)
			node_free(nodes[i]);
	free(nodes);
	node_free(s);
}

static int primitive_type(const char *name)
{
	for (int t = AVRO_NULL; t <= AVRO_STRING; t++)
		if (strcmp(name, type_names[t]) == 0)
			return t;
	return -1;
}

static bool valid_name(const char *s)
{
	if (!s || !*s)
		return false;
	for (const char *p = s; *p; p++) {
		bool alpha = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || *p == '_';
		if (!alpha && !(p != s && *p >= '0' && *p <= '9'))
			return false;
	}
	return true;
}

static char *fullname(const char *name, const char *ns)
{
	char *r;
	if (strchr(name, '.') || !ns || !*ns)
		r = strdup(name);
	else if (asprintf(&r, "%s.%s", ns, name) < 0)
		r = NULL;
	return r;
}

static struct avro_schema *find_named(struct parse_ctx *c, const char *name, const char *ns)
{
	char *full = fullname(name, ns);
	struct avro_schema *found = NULL;
	/* Index nnodes stands for the root, which is not in its own node list. */
	for (size_t i = 0; full && i <= c->root->nnodes && !found; i++) {
		struct avro_schema *s = i < c->root->nnodes ? c->root->nodes[i] : c->root;
		if (s->name && (strcmp(s->name, full) == 0 || strcmp(s->name, name) == 0))
			found = s;
	}
	free(full);
	return found;
}

static struct avro_schema *parse_node(struct parse_ctx *c, struct avro_schema *into,
				      const json_t *j, const char *ns, int depth);

static struct avro_schema *parse_named_head(struct parse_ctx *c, struct avro_schema *s,
					    const json_t *j, const char *ns, char **ns_out)
{
	const char *name = json_string_value(json_object_get(j, "name"));
	const char *own_ns = json_string_value(json_object_get(j, "namespace"));
	if (!name) {
		errf(c->err, c->errlen, "%s schema without a name", type_names[s->type]);
		return NULL;
	}
	const char *use_ns = own_ns ? own_ns : ns;
	s->name = fullname(name, use_ns);
	if (!s->name)
		return NULL;
	const char *last = strrchr(s->name, '.');
	if (!valid_name(last ? last + 1 : s->name)) {
		errf(c->err, c->errlen, "invalid name '%s'", name);
		return NULL;
	}
	for (size_t i = 0; i <= c->root->nnodes; i++) {
		struct avro_schema *o = i < c->root->nnodes ? c->root->nodes[i] : c->root;
		if (o != s && o->name && strcmp(o->name, s->name) == 0) {
			errf(c->err, c->errlen, "name '%s' defined twice", s->name);
			return NULL;
		}
	}
	*ns_out = last ? strndup(s->name, (size_t)(last - s->name)) : strdup("");
	return *ns_out ? s : NULL;
}

static struct avro_schema *parse_record(struct parse_ctx *c, struct avro_schema *s,
					const json_t *j, const char *ns, int depth)
{
	char *inner_ns = NULL;
	if (!parse_named_head(c, s, j, ns, &inner_ns))
		goto fail;
	const json_t *fields = json_object_get(j, "fields");
	if (!json_is_array(fields)) {
		errf(c->err, c->errlen, "record %s: fields must be an array", s->name);
		goto fail;
	}
	s->nfields = 0;
	s->fields = calloc(json_array_size(fields) + 1, sizeof(*s->fields));
	if (!s->fields)
		goto fail;
	size_t i;
	const json_t *f;
	json_array_foreach(fields, i, f)
	{
		const char *fname = json_string_value(json_object_get(f, "name"));
		const json_t *ftype = json_object_get(f, "type");
		if (!fname || !valid_name(fname) || !ftype) {
			errf(c->err, c->errlen, "record %s: field %zu needs a valid name and a type",
			       s->name, i);
			goto fail;
		}
		for (size_t k = 0; k < s->nfields; k++)
			if (strcmp(s->fields[k].name, fname) == 0) {
				errf(c->err, c->errlen, "record %s: field '%s' defined twice",
				       s->name, fname);
				goto fail;
			}
		struct avro_field *fl = &s->fields[s->nfields++];
		if (!(fl->name = strdup(fname)))
			goto fail;
		const json_t *def = json_object_get(f, "default");
		fl->def = def ? json_deep_copy(def) : NULL;
		if (!(fl->type = parse_node(c, NULL, ftype, inner_ns, depth + 1)))
			goto fail;
	}
	free(inner_ns);
	return s;
fail:
	free(inner_ns);
	return NULL;
}

static struct avro_schema *parse_node(struct parse_ctx *c, struct avro_schema *into,
				      const json_t *j, const char *ns, int depth)
{
	if (depth > AVRO_MAX_DEPTH) {
		errf(c->err, c->errlen, "schema nested too deeply");
		return NULL;
	}
	if (json_is_string(j)) {
		const char *name = json_string_value(j);
		int t = primitive_type(name);
		if (t >= 0) {
			struct avro_schema *s = into ? into : node_new(c, (enum avro_type)t);
			if (s)
				s->type = (enum avro_type)t;
			return s;
		}
		struct avro_schema *named = find_named(c, name, ns);
		if (!named)
			errf(c->err, c->errlen, "unknown type '%s'", name);
		return named;
	}
	if (json_is_array(j)) {
		struct avro_schema *s = into ? into : node_new(c, AVRO_UNION);
		if (!s)
			return NULL;
		s->type = AVRO_UNION;
		size_t n = json_array_size(j);
		if (n == 0) {
			errf(c->err, c->errlen, "empty union");
			return NULL;
		}
		if (!(s->branches = calloc(n, sizeof(*s->branches))))
			return NULL;
		for (size_t i = 0; i < n; i++) {
			struct avro_schema *b = parse_node(c, NULL, json_array_get(j, i), ns, depth + 1);
			if (!b)
				return NULL;
			if (b->type == AVRO_UNION) {
				errf(c->err, c->errlen, "union directly inside a union");
				return NULL;
			}
			for (size_t k = 0; k < s->nbranches; k++)
				if (s->branches[k]->type == b->type && !b->name) {
					errf(c->err, c->errlen, "union has two '%s' branches",
					       type_names[b->type]);
					return NULL;
				}
			s->branches[s->nbranches++] = b;
		}
		return s;
	}
	if (!json_is_object(j)) {
		errf(c->err, c->errlen, "a schema must be a string, an array or an object");
		return NULL;
	}
	const char *tname = json_string_value(json_object_get(j, "type"));
	if (!tname) {
		const json_t *inner = json_object_get(j, "type");
		if (inner && (json_is_object(inner) || json_is_array(inner)))
			return parse_node(c, into, inner, ns, depth + 1);
		errf(c->err, c->errlen, "schema object without a type");
		return NULL;
	}
	int t = primitive_type(tname);
	enum avro_type type = AVRO_NULL;
	if (t >= 0)
		type = (enum avro_type)t;
	else if (strcmp(tname, "record") == 0 || strcmp(tname, "error") == 0)
		type = AVRO_RECORD;
	else if (strcmp(tname, "enum") == 0)
		type = AVRO_ENUM;
	else if (strcmp(tname, "array") == 0)
		type = AVRO_ARRAY;
	else if (strcmp(tname, "map") == 0)
		type = AVRO_MAP;
	else if (strcmp(tname, "fixed") == 0)
		type = AVRO_FIXED;
	else {
		/* {"type": "SomeNamedType"} refers to a defined name. */
		struct avro_schema *named = find_named(c, tname, ns);
		if (!named)
			errf(c->err, c->errlen, "unknown type '%s'", tname);
		return named;
	}
	struct avro_schema *s = into ? into : node_new(c, type);
	if (!s)
		return NULL;
	s->type = type;
	const char *logical = json_string_value(json_object_get(j, "logicalType"));
	if (logical && !(s->logical = strdup(logical)))
		return NULL;
	char *inner_ns = NULL;
	switch (type) {
	case AVRO_RECORD:
		return parse_record(c, s, j, ns, depth);
	case AVRO_ENUM: {
		if (!parse_named_head(c, s, j, ns, &inner_ns))
			return free(inner_ns), NULL;
		free(inner_ns);
		const json_t *syms = json_object_get(j, "symbols");
		if (!json_is_array(syms) || json_array_size(syms) == 0) {
			errf(c->err, c->errlen, "enum %s: symbols must be a non-empty array",
			       s->name);
			return NULL;
		}
		if (!(s->symbols = calloc(json_array_size(syms), sizeof(char *))))
			return NULL;
		size_t i;
		const json_t *sym;
		json_array_foreach(syms, i, sym)
		{
			const char *v = json_string_value(sym);
			if (!valid_name(v)) {
				errf(c->err, c->errlen, "enum %s: invalid symbol", s->name);
				return NULL;
			}
			if (!(s->symbols[s->nsymbols++] = strdup(v)))
				return NULL;
		}
		return s;
	}
	case AVRO_FIXED: {
		if (!parse_named_head(c, s, j, ns, &inner_ns))
			return free(inner_ns), NULL;
		free(inner_ns);
		const json_t *size = json_object_get(j, "size");
		if (!json_is_integer(size) || json_integer_value(size) < 0 ||
		    json_integer_value(size) > (1 << 20)) {
			errf(c->err, c->errlen, "fixed %s: size must be an integer in [0, 1Mi]",
			       s->name);
			return NULL;
		}
		s->size = (size_t)json_integer_value(size);
		return s;
	}
	case AVRO_ARRAY:
	case AVRO_MAP: {
		const json_t *it = json_object_get(j, type == AVRO_ARRAY ? "items" : "values");
		if (!it) {
			errf(c->err, c->errlen, "%s without %s", tname,
			       type == AVRO_ARRAY ? "items" : "values");
			return NULL;
		}
		s->items = parse_node(c, NULL, it, ns, depth + 1);
		return s->items ? s : NULL;
	}
	default:
		return s;
	}
}

/* ---- Parsing Canonical Form ---- */

static int canon(const struct avro_schema *s, struct buf *b, const struct avro_schema ***seen,
		 size_t *nseen)
{
	switch (s->type) {
	case AVRO_NULL:
	case AVRO_BOOLEAN:
	case AVRO_INT:
	case AVRO_LONG:
	case AVRO_FLOAT:
	case AVRO_DOUBLE:
	case AVRO_BYTES:
	case AVRO_STRING:
		return buf_printf(b, "\"%s\"", type_names[s->type]);
	case AVRO_UNION:
		if (buf_putc(b, '[') < 0)
			return -1;
		for (size_t i = 0; i < s->nbranches; i++)
			if ((i && buf_putc(b, ',') < 0) || canon(s->branches[i], b, seen, nseen) < 0)
				return -1;
		return buf_putc(b, ']');
	case AVRO_ARRAY:
	case AVRO_MAP:
		if (buf_printf(b, "{\"type\":\"%s\",\"%s\":", type_names[s->type],
			       s->type == AVRO_ARRAY ? "items" : "values") < 0 ||
		    canon(s->items, b, seen, nseen) < 0)
			return -1;
		return buf_putc(b, '}');
	default:
		break;
	}
	/* Named type: full definition the first time, its name afterwards. */
	for (size_t i = 0; i < *nseen; i++)
		if ((*seen)[i] == s)
			return buf_printf(b, "\"%s\"", s->name);
	const struct avro_schema **n = realloc(*seen, (*nseen + 1) * sizeof(*n));
	if (!n)
		return -1;
	*seen = n;
	n[(*nseen)++] = s;
	if (buf_printf(b, "{\"name\":\"%s\",\"type\":\"%s\"", s->name, type_names[s->type]) < 0)
		return -1;
	if (s->type == AVRO_RECORD) {
		if (buf_printf(b, ",\"fields\":[") < 0)
			return -1;
		for (size_t i = 0; i < s->nfields; i++) {
			if (buf_printf(b, "%s{\"name\":\"%s\",\"type\":", i ? "," : "",
				       s->fields[i].name) < 0 ||
			    canon(s->fields[i].type, b, seen, nseen) < 0 || buf_putc(b, '}') < 0)
				return -1;
		}
		if (buf_putc(b, ']') < 0)
			return -1;
	} else if (s->type == AVRO_ENUM) {
		if (buf_printf(b, ",\"symbols\":[") < 0)
			return -1;
		for (size_t i = 0; i < s->nsymbols; i++)
			if (buf_printf(b, "%s\"%s\"", i ? "," : "", s->symbols[i]) < 0)
				return -1;
		if (buf_putc(b, ']') < 0)
			return -1;
	} else if (s->type == AVRO_FIXED) {
		if (buf_printf(b, ",\"size\":%zu", s->size) < 0)
			return -1;
	}
	return buf_putc(b, '}');
}

struct avro_schema *avro_schema_parse(const char *json_text, char *err, size_t errlen)
{
	json_error_t jerr;
	json_t *j = json_loads(json_text, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &jerr);
	if (!j) {
		errf(err, errlen, "schema JSON: %s at line %d column %d", jerr.text, jerr.line,
		       jerr.column);
		return NULL;
	}
	struct avro_schema *root = calloc(1, sizeof(*root));
	struct buf b = {0};
	const struct avro_schema **seen = NULL;
	size_t nseen = 0;
	if (!root) {
		errf(err, errlen, "out of memory");
		goto fail;
	}
	struct parse_ctx c = {root, err, errlen};
	errf(err, errlen, "out of memory");
	/* A bare reference cannot be a root: parse into the root node itself. */
	struct avro_schema *got = parse_node(&c, root, j, "", 0);
	if (got != root) {
		if (got)
			errf(err, errlen, "schema root must define a type");
		goto fail;
	}
	if (canon(root, &b, &seen, &nseen) < 0 || buf_terminate(&b) < 0) {
		errf(err, errlen, "out of memory");
		goto fail;
	}
	root->canonical = (char *)b.data;
	root->fingerprint = avro_crc64(b.data, b.len);
	free(seen);
	json_decref(j);
	return root;
fail:
	free(seen);
	buf_free(&b);
	avro_schema_free(root);
	json_decref(j);
	return NULL;
}

const char *avro_schema_name(const struct avro_schema *s)
{
	return s->name ? s->name : type_names[s->type];
}

const char *avro_schema_canonical(const struct avro_schema *s)
{
	return s->canonical;
}

uint64_t avro_schema_fingerprint(const struct avro_schema *s)
{
	return s->fingerprint;
}

size_t avro_record_field_count(const struct avro_schema *s)
{
	return s->type == AVRO_RECORD ? s->nfields : 0;
}

const char *avro_record_field_name(const struct avro_schema *s, size_t i)
{
	return i < avro_record_field_count(s) ? s->fields[i].name : NULL;
}

const struct avro_schema *avro_record_field_schema(const struct avro_schema *s, size_t i)
{
	return i < avro_record_field_count(s) ? s->fields[i].type : NULL;
}

enum avro_type avro_schema_type(const struct avro_schema *s)
{
	return s->type;
}

const char *avro_schema_logical(const struct avro_schema *s)
{
	return s->logical;
}

const struct avro_schema *avro_schema_items(const struct avro_schema *s)
{
	return s->items;
}

size_t avro_union_size(const struct avro_schema *s)
{
	return s->type == AVRO_UNION ? s->nbranches : 0;
}

const struct avro_schema *avro_union_branch(const struct avro_schema *s, size_t i)
{
	return i < avro_union_size(s) ? s->branches[i] : NULL;
}

const json_t *avro_record_field_default(const struct avro_schema *s, size_t i)
{
	return i < avro_record_field_count(s) ? s->fields[i].def : NULL;
}

bool avro_enum_has_symbol(const struct avro_schema *s, const char *sym)
{
	for (size_t i = 0; s->type == AVRO_ENUM && sym && i < s->nsymbols; i++)
		if (strcmp(s->symbols[i], sym) == 0)
			return true;
	return false;
}

size_t avro_fixed_size(const struct avro_schema *s)
{
	return s->type == AVRO_FIXED ? s->size : 0;
}

const struct avro_schema *avro_schema_nonnull(const struct avro_schema *s)
{
	if (s->type == AVRO_UNION && s->nbranches == 2) {
		if (s->branches[0]->type == AVRO_NULL)
			return s->branches[1];
		if (s->branches[1]->type == AVRO_NULL)
			return s->branches[0];
	}
	return s;
}

/* Field path for error messages ("location.lat"), kept as a stack of borrowed names and only
 * formatted when something fails, so the hot path pays one store per field. */
struct path {
	const char *names[AVRO_MAX_DEPTH + 2];
	int depth;
};

static void path_format(const struct path *p, char *out, size_t outlen)
{
	size_t j = 0;
	out[0] = 0;
	for (int i = 0; i < p->depth && j + 1 < outlen; i++)
		j += (size_t)snprintf(out + j, outlen - j, "%s%s", i ? "." : "", p->names[i]);
	if (!out[0])
		snprintf(out, outlen, "value");
}

/* ---- encoding ---- */

struct enc_ctx {
	struct buf *out;
	char *err;
	size_t errlen;
	struct path path;
};

static int put_long(struct buf *b, int64_t v)
{
	uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
	uint8_t tmp[10];
	size_t n = 0;
	while (z & ~0x7FULL) {
		tmp[n++] = (uint8_t)((z & 0x7F) | 0x80);
		z >>= 7;
	}
	tmp[n++] = (uint8_t)z;
	return buf_append(b, tmp, n);
}

static int enc_fail(struct enc_ctx *c, const char *what)
{
	char where[256];
	path_format(&c->path, where, sizeof(where));
	errf(c->err, c->errlen, "%s: %s", where, what);
	return -1;
}

static bool value_fits(const struct avro_schema *s, const json_t *v)
{
	switch (s->type) {
	case AVRO_NULL:
		return json_is_null(v);
	case AVRO_BOOLEAN:
		return json_is_boolean(v);
	case AVRO_INT:
		return json_is_integer(v) && json_integer_value(v) >= INT32_MIN &&
		       json_integer_value(v) <= INT32_MAX;
	case AVRO_LONG:
		return json_is_integer(v);
	case AVRO_FLOAT:
	case AVRO_DOUBLE:
		return json_is_number(v);
	case AVRO_BYTES:
	case AVRO_STRING:
		return json_is_string(v);
	case AVRO_FIXED:
		return json_is_string(v) && json_string_length(v) == s->size;
	case AVRO_ENUM:
		if (!json_is_string(v))
			return false;
		for (size_t i = 0; i < s->nsymbols; i++)
			if (strcmp(s->symbols[i], json_string_value(v)) == 0)
				return true;
		return false;
	case AVRO_RECORD:
	case AVRO_MAP:
		return json_is_object(v);
	case AVRO_ARRAY:
		return json_is_array(v);
	case AVRO_UNION:
		return false;
	}
	return false;
}

static int enc(struct enc_ctx *c, const struct avro_schema *s, const json_t *v, int depth);

static int enc_record(struct enc_ctx *c, const struct avro_schema *s, const json_t *v, int depth)
{
	if (!json_is_object(v))
		return enc_fail(c, "expected an object");
	int rc = 0;
	c->path.depth++;
	/* Records are usually built in schema order: walking the members alongside the fields finds
	 * each one without hashing; a member out of order is looked up as usual. */
	void *it = json_object_iter((json_t *)v);
	for (size_t i = 0; i < s->nfields && rc == 0; i++) {
		const struct avro_field *f = &s->fields[i];
		c->path.names[c->path.depth - 1] = f->name;
		const json_t *fv;
		size_t nlen = strlen(f->name);
		if (it && json_object_iter_key_len(it) == nlen &&
		    memcmp(json_object_iter_key(it), f->name, nlen) == 0) {
			fv = json_object_iter_value(it);
			it = json_object_iter_next((json_t *)v, it);
		} else {
			fv = json_object_get(v, f->name);
		}
		if (!fv)
			fv = f->def;
		if (!fv)
			rc = enc_fail(c, "missing");
		else
			rc = enc(c, f->type, fv, depth + 1);
	}
	if (rc == 0)
		c->path.depth--;
	return rc;
}

static int enc(struct enc_ctx *c, const struct avro_schema *s, const json_t *v, int depth)
{
	struct buf *b = c->out;
	if (depth > AVRO_MAX_DEPTH)
		return enc_fail(c, "nested too deeply");
	switch (s->type) {
	case AVRO_NULL:
		return json_is_null(v) ? 0 : enc_fail(c, "expected null");
	case AVRO_BOOLEAN:
		if (!json_is_boolean(v))
			return enc_fail(c, "expected true or false");
		return buf_putc(b, json_is_true(v) ? 1 : 0);
	case AVRO_INT:
	case AVRO_LONG:
		if (!value_fits(s, v))
			return enc_fail(c, s->type == AVRO_INT ? "expected a 32-bit integer"
							       : "expected an integer");
		return put_long(b, json_integer_value(v));
	case AVRO_FLOAT: {
		if (!json_is_number(v))
			return enc_fail(c, "expected a number");
		float f = (float)json_number_value(v);
		uint32_t u;
		memcpy(&u, &f, 4);
		uint8_t le[4] = {(uint8_t)u, (uint8_t)(u >> 8), (uint8_t)(u >> 16),
				 (uint8_t)(u >> 24)};
		return buf_append(b, le, 4);
	}
	case AVRO_DOUBLE: {
		if (!json_is_number(v))
			return enc_fail(c, "expected a number");
		double d = json_number_value(v);
		uint64_t u;
		memcpy(&u, &d, 8);
		uint8_t le[8];
		for (int i = 0; i < 8; i++)
			le[i] = (uint8_t)(u >> (8 * i));
		return buf_append(b, le, 8);
	}
	case AVRO_BYTES:
	case AVRO_STRING:
		if (!json_is_string(v))
			return enc_fail(c, "expected a string");
		if (put_long(b, (int64_t)json_string_length(v)) < 0)
			return -1;
		return buf_append(b, json_string_value(v), json_string_length(v));
	case AVRO_FIXED:
		if (!value_fits(s, v))
			return enc_fail(c, "expected a string of the fixed size");
		return buf_append(b, json_string_value(v), s->size);
	case AVRO_ENUM:
		for (size_t i = 0; json_is_string(v) && i < s->nsymbols; i++)
			if (strcmp(s->symbols[i], json_string_value(v)) == 0)
				return put_long(b, (int64_t)i);
		return enc_fail(c, "not one of the enum's symbols");
	case AVRO_RECORD:
		return enc_record(c, s, v, depth);
	case AVRO_ARRAY: {
		if (!json_is_array(v))
			return enc_fail(c, "expected an array");
		size_t n = json_array_size(v);
		if (n && put_long(b, (int64_t)n) < 0)
			return -1;
		for (size_t i = 0; i < n; i++)
			if (enc(c, s->items, json_array_get(v, i), depth + 1) < 0)
				return -1;
		return buf_putc(b, 0);
	}
	case AVRO_MAP: {
		if (!json_is_object(v))
			return enc_fail(c, "expected an object");
		size_t n = json_object_size(v);
		if (n && put_long(b, (int64_t)n) < 0)
			return -1;
		const char *k;
		size_t klen;
		json_t *item;
		json_object_keylen_foreach((json_t *)v, k, klen, item)
		{
			if (put_long(b, (int64_t)klen) < 0 || buf_append(b, k, klen) < 0 ||
			    enc(c, s->items, item, depth + 1) < 0)
				return -1;
		}
		return buf_putc(b, 0);
	}
	case AVRO_UNION:
		for (size_t i = 0; i < s->nbranches; i++)
			if (value_fits(s->branches[i], v))
				return put_long(b, (int64_t)i) < 0
					       ? -1
					       : enc(c, s->branches[i], v, depth + 1);
		return enc_fail(c, "value matches no branch of the union");
	}
	return enc_fail(c, "unsupported type");
}

int avro_encode(const struct avro_schema *s, const json_t *value, struct buf *out, char *err,
		size_t errlen)
{
	struct enc_ctx c = {.out = out, .err = err, .errlen = errlen};
	size_t start = out->len;
	if (err && errlen)
		err[0] = 0;
	if (enc(&c, s, value, 0) < 0) {
		if (c.err && !c.err[0])
			errf(err, errlen, "out of memory");
		out->len = start;
		return -1;
	}
	return 0;
}

/* ---- decoding with resolution ---- */

struct dec_ctx {
	const uint8_t *p, *start, *end;
	char *err;
	size_t errlen;
	struct path path;
	bool failed;
};

static int dec_fail(struct dec_ctx *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int dec_fail(struct dec_ctx *c, const char *fmt, ...)
{
	if (c->failed)
		return -1;
	c->failed = true;
	char what[160];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	char where[256];
	path_format(&c->path, where, sizeof(where));
	errf(c->err, c->errlen, "%s: %s at byte %td", where, what,
	       c->p - c->start);
	return -1;
}

static int get_long(struct dec_ctx *c, int64_t *out)
{
	uint64_t z = 0;
	for (int shift = 0; shift < 70; shift += 7) {
		if (c->p >= c->end)
			return dec_fail(c, "truncated varint");
		uint8_t byte = *c->p++;
		if (shift == 63 && (byte & 0x7E))
			return dec_fail(c, "varint overflows 64 bits");
		z |= (uint64_t)(byte & 0x7F) << shift;
		if (!(byte & 0x80)) {
			*out = (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
			return 0;
		}
	}
	return dec_fail(c, "varint too long");
}

static int get_len(struct dec_ctx *c, size_t *out)
{
	int64_t n;
	if (get_long(c, &n) < 0)
		return -1;
	if (n < 0)
		return dec_fail(c, "negative length %lld", (long long)n);
	if ((uint64_t)n > (uint64_t)(c->end - c->p))
		return dec_fail(c, "length %lld exceeds the %td bytes left", (long long)n,
				c->end - c->p);
	*out = (size_t)n;
	return 0;
}

static bool same_name(const struct avro_schema *w, const struct avro_schema *r)
{
	if (!w->name || !r->name)
		return false;
	if (strcmp(w->name, r->name) == 0)
		return true;
	const char *wl = strrchr(w->name, '.'), *rl = strrchr(r->name, '.');
	return strcmp(wl ? wl + 1 : w->name, rl ? rl + 1 : r->name) == 0;
}

/* Can data of writer type w be read as reader type r (ignoring r being a union)? */
static bool resolvable(const struct avro_schema *w, const struct avro_schema *r)
{
	if (w->type == r->type) {
		switch (w->type) {
		case AVRO_RECORD:
		case AVRO_ENUM:
			return same_name(w, r);
		case AVRO_FIXED:
			return same_name(w, r) && w->size == r->size;
		default:
			return true;
		}
	}
	switch (w->type) {
	case AVRO_INT:
		return r->type == AVRO_LONG || r->type == AVRO_FLOAT || r->type == AVRO_DOUBLE;
	case AVRO_LONG:
		return r->type == AVRO_FLOAT || r->type == AVRO_DOUBLE;
	case AVRO_FLOAT:
		return r->type == AVRO_DOUBLE;
	case AVRO_STRING:
		return r->type == AVRO_BYTES;
	case AVRO_BYTES:
		return r->type == AVRO_STRING;
	default:
		return false;
	}
}

static json_t *default_value(const struct avro_schema *r, const json_t *def)
{
	/* A union's default belongs to its first branch; our in-memory form is the bare value. */
	(void)r;
	return json_deep_copy(def);
}

static int dec(struct dec_ctx *c, const struct avro_schema *w, const struct avro_schema *r,
	       json_t **out, int depth);

static int dec_record(struct dec_ctx *c, const struct avro_schema *w, const struct avro_schema *r,
		      json_t **out, int depth)
{
	json_t *obj = NULL;
	if (out && !(obj = json_object()))
		return dec_fail(c, "out of memory");
	/* Written with the reader's own schema (the usual case): fields pair up by position and
	 * none is missing. */
	bool same = w == r;
	c->path.depth++;
	for (size_t i = 0; i < w->nfields; i++) {
		const struct avro_field *wf = &w->fields[i];
		const struct avro_field *rf = same ? &r->fields[i] : NULL;
		for (size_t k = 0; r && k < r->nfields && !rf; k++)
			if (strcmp(r->fields[k].name, wf->name) == 0)
				rf = &r->fields[k];
		c->path.names[c->path.depth - 1] = wf->name;
		json_t *v = NULL;
		if (dec(c, wf->type, rf ? rf->type : NULL, obj && rf ? &v : NULL, depth + 1) < 0)
			goto fail;
		if (v && json_object_set_new_nocheck(obj, wf->name, v) < 0)
			goto fail;
	}
	c->path.depth--;
	for (size_t k = 0; obj && r && !same && k < r->nfields; k++) {
		const struct avro_field *rf = &r->fields[k];
		if (json_object_get(obj, rf->name))
			continue;
		if (!rf->def) {
			dec_fail(c, "reader field '%s' is not written and has no default", rf->name);
			goto fail;
		}
		if (json_object_set_new_nocheck(obj, rf->name, default_value(rf->type, rf->def)) <
		    0)
			goto fail;
	}
	if (out)
		*out = obj;
	return 0;
fail:
	json_decref(obj);
	return dec_fail(c, "out of memory");
}

static int dec_blocks(struct dec_ctx *c, const struct avro_schema *w, const struct avro_schema *r,
		      json_t **out, int depth)
{
	bool is_map = w->type == AVRO_MAP;
	json_t *coll = NULL;
	if (out && !(coll = is_map ? json_object() : json_array()))
		return dec_fail(c, "out of memory");
	for (;;) {
		int64_t count;
		if (get_long(c, &count) < 0)
			goto fail;
		if (count == 0)
			break;
		if (count < 0) {
			int64_t bytes;
			if (count == INT64_MIN || get_long(c, &bytes) < 0) {
				dec_fail(c, "bad block header");
				goto fail;
			}
			count = -count;
		}
		/* Every item costs at least one byte except null and empty records: bound the
		 * count by the bytes left so a forged count cannot make us loop or allocate. */
		if ((uint64_t)count > (uint64_t)(c->end - c->p) + 1024) {
			dec_fail(c, "block of %lld items exceeds the bytes left", (long long)count);
			goto fail;
		}
		for (int64_t i = 0; i < count; i++) {
			json_t *v = NULL;
			if (is_map) {
				size_t klen;
				if (get_len(c, &klen) < 0)
					goto fail;
				const char *key = (const char *)c->p;
				if (!utf8_valid(key, klen) || memchr(key, 0, klen)) {
					dec_fail(c, "map key is not valid UTF-8");
					goto fail;
				}
				c->p += klen;
				if (dec(c, w->items, r ? r->items : NULL, coll ? &v : NULL,
					depth + 1) < 0)
					goto fail;
				if (v && json_object_setn_new_nocheck(coll, key, klen, v) < 0)
					goto fail;
			} else {
				if (dec(c, w->items, r ? r->items : NULL, coll ? &v : NULL,
					depth + 1) < 0)
					goto fail;
				if (v && json_array_append_new(coll, v) < 0)
					goto fail;
			}
		}
	}
	if (out)
		*out = coll;
	return 0;
fail:
	json_decref(coll);
	return dec_fail(c, "out of memory");
}

static int dec(struct dec_ctx *c, const struct avro_schema *w, const struct avro_schema *r,
	       json_t **out, int depth)
{
	if (depth > AVRO_MAX_DEPTH)
		return dec_fail(c, "nested too deeply");
	if (w->type == AVRO_UNION) {
		int64_t idx;
		if (get_long(c, &idx) < 0)
			return -1;
		if (idx < 0 || (uint64_t)idx >= w->nbranches)
			return dec_fail(c, "union branch %lld out of range", (long long)idx);
		return dec(c, w->branches[idx], r, out, depth + 1);
	}
	if (r && r->type == AVRO_UNION) {
		for (size_t i = 0; i < r->nbranches; i++)
			if (resolvable(w, r->branches[i]))
				return dec(c, w, r->branches[i], out, depth + 1);
		return dec_fail(c, "writer type %s matches no branch of the reader's union",
				avro_schema_name(w));
	}
	if (r && r != w && !resolvable(w, r))
		return dec_fail(c, "writer type %s cannot be read as %s", avro_schema_name(w),
				avro_schema_name(r));
	json_t *v = NULL;
	int64_t l;
	size_t n;
	switch (w->type) {
	case AVRO_NULL:
		if (out)
			v = json_null();
		break;
	case AVRO_BOOLEAN:
		if (c->p >= c->end)
			return dec_fail(c, "truncated boolean");
		if (*c->p > 1)
			return dec_fail(c, "boolean byte %u", *c->p);
		if (out)
			v = json_boolean(*c->p);
		c->p++;
		break;
	case AVRO_INT:
	case AVRO_LONG:
		if (get_long(c, &l) < 0)
			return -1;
		if (w->type == AVRO_INT && (l < INT32_MIN || l > INT32_MAX))
			return dec_fail(c, "int out of 32-bit range");
		if (out)
			v = (r && (r->type == AVRO_FLOAT || r->type == AVRO_DOUBLE))
				    ? json_real((double)l)
				    : json_integer(l);
		break;
	case AVRO_FLOAT:
	case AVRO_DOUBLE: {
		size_t sz = w->type == AVRO_FLOAT ? 4 : 8;
		if ((size_t)(c->end - c->p) < sz)
			return dec_fail(c, "truncated %s", type_names[w->type]);
		uint64_t u = 0;
		for (size_t i = 0; i < sz; i++)
			u |= (uint64_t)c->p[i] << (8 * i);
		c->p += sz;
		double d;
		if (sz == 4) {
			float f;
			uint32_t u32 = (uint32_t)u;
			memcpy(&f, &u32, 4);
			d = f;
		} else {
			memcpy(&d, &u, 8);
		}
		if (!isfinite(d))
			return dec_fail(c, "non-finite %s", type_names[w->type]);
		if (out)
			v = json_real(d);
		break;
	}
	case AVRO_STRING:
	case AVRO_BYTES:
		if (get_len(c, &n) < 0)
			return -1;
		if (out) {
			bool as_text = r ? r->type == AVRO_STRING : w->type == AVRO_STRING;
			/* NUL is valid UTF-8 but no consumer of ours can carry it in text. */
			if (as_text && (!utf8_valid(c->p, n) || memchr(c->p, 0, n)))
				return dec_fail(c, "string is not valid UTF-8 text");
			v = json_stringn_nocheck((const char *)c->p, n);
		}
		c->p += n;
		break;
	case AVRO_FIXED:
		if ((size_t)(c->end - c->p) < w->size)
			return dec_fail(c, "truncated fixed");
		if (out)
			v = json_stringn_nocheck((const char *)c->p, w->size);
		c->p += w->size;
		break;
	case AVRO_ENUM: {
		if (get_long(c, &l) < 0)
			return -1;
		if (l < 0 || (uint64_t)l >= w->nsymbols)
			return dec_fail(c, "enum index %lld out of range", (long long)l);
		const char *sym = w->symbols[l];
		if (r) {
			bool known = false;
			for (size_t i = 0; i < r->nsymbols && !known; i++)
				known = strcmp(r->symbols[i], sym) == 0;
			if (!known)
				return dec_fail(c, "enum symbol '%s' unknown to the reader", sym);
		}
		if (out)
			v = json_string(sym);
		break;
	}
	case AVRO_RECORD:
		return dec_record(c, w, r, out, depth);
	case AVRO_ARRAY:
	case AVRO_MAP:
		return dec_blocks(c, w, r, out, depth);
	case AVRO_UNION:
		break;
	}
	if (out) {
		if (!v)
			return dec_fail(c, "out of memory");
		*out = v;
	}
	return 0;
}

int avro_decode(const struct avro_schema *writer, const struct avro_schema *reader,
		const uint8_t *data, size_t len, json_t **out, char *err, size_t errlen)
{
	struct dec_ctx c = {.p = data, .start = data, .end = data + len, .err = err,
			    .errlen = errlen};
	json_t *v = NULL;
	*out = NULL;
	if (dec(&c, writer, reader ? reader : writer, &v, 0) < 0)
		return -1;
	if (c.p != c.end) {
		json_decref(v);
		return dec_fail(&c, "%td trailing bytes", c.end - c.p);
	}
	*out = v;
	return 0;
}

int avro_schema_compatible(const struct avro_schema *w, const struct avro_schema *r, char *err,
			   size_t errlen)
{
	if (w->type == AVRO_UNION) {
		for (size_t i = 0; i < w->nbranches; i++)
			if (avro_schema_compatible(w->branches[i], r, err, errlen) < 0)
				return -1;
		return 0;
	}
	if (r->type == AVRO_UNION) {
		for (size_t i = 0; i < r->nbranches; i++)
			if (resolvable(w, r->branches[i]))
				return avro_schema_compatible(w, r->branches[i], err, errlen);
		errf(err, errlen, "%s matches no branch of the reader's union",
		       avro_schema_name(w));
		return -1;
	}
	if (!resolvable(w, r)) {
		errf(err, errlen, "%s cannot be read as %s", avro_schema_name(w),
		       avro_schema_name(r));
		return -1;
	}
	if (w->type == AVRO_RECORD) {
		for (size_t k = 0; k < r->nfields; k++) {
			const struct avro_field *wf = NULL;
			for (size_t i = 0; i < w->nfields && !wf; i++)
				if (strcmp(w->fields[i].name, r->fields[k].name) == 0)
					wf = &w->fields[i];
			if (!wf && !r->fields[k].def) {
				errf(err, errlen, "%s.%s: not written and no default", r->name,
				       r->fields[k].name);
				return -1;
			}
			if (wf && w != r &&
			    avro_schema_compatible(wf->type, r->fields[k].type, err, errlen) < 0)
				return -1;
		}
	} else if (w->type == AVRO_ARRAY || w->type == AVRO_MAP) {
		return avro_schema_compatible(w->items, r->items, err, errlen);
	}
	return 0;
}
