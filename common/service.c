/* Start and stop sequence shared by the stream services. */
#include "service.h"

#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "records.h"

int service_start(const struct service_opts *o)
{
	char err[512];
	lifecycle_init();
	if (records_init(err, sizeof(err)) < 0) {
		log_error("%s", err);
		return -1;
	}
	if (metrics_serve((int)o->metrics_port, err, sizeof(err)) < 0) {
		log_error("%s", err);
		records_shutdown();
		return -1;
	}
	return 0;
}

struct stream *service_stream(const struct service_opts *o, enum rec_type in_type,
			      const struct stream_hooks *hooks)
{
	return service_stream_with(o, in_type, hooks, NULL);
}

struct stream *service_stream_with(const struct service_opts *o, enum rec_type in_type,
				   const struct stream_hooks *hooks,
				   const char *const *in_defaults)
{
	char err[512];
	struct stream_config cfg = {
		.brokers = o->brokers,
		.group = o->group,
		.in = o->in,
		.in_type = in_type,
		.cluster = o->cluster,
		.dead_letter = o->brokers && *o->brokers ? o->dead_letter : NULL,
		.checkpoint_ms = o->checkpoint_ms,
		.checkpoint_records = o->checkpoint_records,
		.in_defaults = in_defaults,
	};
	struct stream *s = stream_new(&cfg, hooks, err, sizeof(err));
	if (!s)
		log_error("%s", err);
	return s;
}

struct stream_out *service_output(struct stream *s, const char *spec, enum rec_type type)
{
	char err[512];
	struct stream_out *out = stream_output(s, spec, type, err, sizeof(err));
	if (!out)
		log_error("output %s: %s", spec ? spec : "(none)", err);
	return out;
}

int service_stop(struct stream *s)
{
	int rc = stream_close(s) == 0 ? 0 : 1;
	metrics_shutdown();
	records_shutdown();
	config_free();
	if (rc)
		log_error("stopped with records not acknowledged or not committed; they will be "
			  "read again on restart");
	else
		log_info("stopped cleanly");
	return rc;
}
