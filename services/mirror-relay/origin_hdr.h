/* What the relay makes of a record's iotpipe-origin header.
 *
 * The header names the record's first Kafka position, "cluster/topic/partition/offset". For the
 * relay of the cluster called `alias`:
 *   absent     the record was written here: the relay adds the header with its own position;
 *   own        the header names this cluster (alias, or "-" for records a service read from
 *              stdin): it is kept;
 *   local      the header names "local", the alias a service uses when it was given none
 *              (--cluster): it means "this cluster", so the relay writes the alias instead, or
 *              records of two edges would share identities at the central site;
 *   foreign    the header names another cluster: the record came here through another relay;
 *              with loop prevention it is not relayed again;
 *   malformed  not an origin at all (hostile or broken producer): replaced by the record's own
 *              position, so every relayed record carries an identity raw-saver can parse. */
#ifndef MIRROR_RELAY_ORIGIN_HDR_H
#define MIRROR_RELAY_ORIGIN_HDR_H

#include "stream.h"

#include <stddef.h>

enum origin_kind { ORIGIN_ABSENT, ORIGIN_OWN, ORIGIN_LOCAL, ORIGIN_FOREIGN, ORIGIN_MALFORMED };

/* The alias services use by default. */
#define ORIGIN_LOCAL_ALIAS "local"

/* Classifies a header value (val NULL: no header; not NUL-terminated, len bytes). Fills *o for
 * own, local and foreign origins. */
enum origin_kind origin_hdr_classify(const void *val, size_t len, const char *alias,
				     struct origin *o);

#endif
