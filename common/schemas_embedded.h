/* The Avro schemas compiled into every binary (generated from schemas/ at build time). */
#ifndef IOTPIPE_SCHEMAS_EMBEDDED_H
#define IOTPIPE_SCHEMAS_EMBEDDED_H

struct embedded_schema {
	const char *path; /* e.g. "schemas/Reading.avsc" or "schemas/history/Reading.v1.avsc" */
	const char *text; /* the .avsc JSON */
};

/* Terminated by an entry whose path is NULL. */
extern const struct embedded_schema embedded_schemas[];

#endif
