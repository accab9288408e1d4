/* MQTT client over paho's MQTTAsync (see mqtt.h for the contract).
 *
 * Locking: c->mu guards the client's own state (publish slots, connection flags, pending
 * subscriptions). paho calls our callbacks with its own lock held, and they take c->mu briefly;
 * the controlling thread never holds c->mu while calling into paho, so the two locks are never
 * taken in the opposite order.
 *
 * The publish window is a pool of max_inflight slots, each the paho context of one publish. A
 * slot carries the caller's msg_ctx to the completion callback and goes back to the free list
 * when paho reports the outcome, so the window needs no allocation per message and the number of
 * unconfirmed publishes can never exceed the pool. */
#include "mqtt.h"

#include "lifecycle.h"
#include "log.h"

#include <MQTTAsync.h>

#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct pub_slot {
	struct mqtt_client *c;
	void *msg_ctx;
	int qos; /* names the acknowledgement that refused it */
	struct pub_slot *next;
};

struct sub_entry {
	struct mqtt_client *c;
	char *filter;
	int qos;
};

struct mqtt_client {
	MQTTAsync h;
	char name[320];
	char *url, *client_id, *username, *password, *ca_file, *cert_file, *key_file;
	int version;
	bool clean_start, insecure, tls;
	long long session_expiry_s;
	int keepalive_s, connect_timeout_s, reconnect_min_s, reconnect_max_s;
	MQTTAsync_SSLOptions ssl;
	MQTTProperties connect_props;

	struct sub_entry *subs;
	size_t nsubs;

	mqtt_message_fn *on_message;
	mqtt_publish_done_fn *on_publish_done;
	mqtt_connected_fn *on_connected;
	void *ctx;

	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct pub_slot *slots, *free_slots;
	int max_inflight, inflight, waiters;
	int window; /* max_inflight, lowered to the broker's receive maximum (MQTT 5) */
	bool connected, paused, closing;
	bool started; /* paho was asked to connect and retries on its own until told to stop */
	int session_present; /* -1 unknown (automatic reconnects do not report it) */
	size_t subs_pending, subs_failed;
	bool connect_fatal;    /* the broker refused the connection: waiting longer is pointless */
	int disconnect_done;   /* 0 pending, 1 done, -1 failed */
	char connect_err[256]; /* why the last connect attempt failed */
	char sub_err[256];

	atomic_uint_fast64_t connects, reconnects, losses, published, confirmed, failed, received,
	    sub_failures;
};

/* Set while one of our trampolines runs, so mqtt_publish() never blocks paho's own thread. */
static _Thread_local bool in_callback;

static char *dup_or_null(const char *s, bool *oom)
{
	if (!s)
		return NULL;
	char *d = strdup(s);
	if (!d)
		*oom = true;
	return d;
}

/* paho's strerror keeps unknown codes in a static buffer, so only known codes go through it. */
static void paho_rc_str(int rc, char *out, size_t n)
{
	if (rc <= MQTTASYNC_SUCCESS && rc >= MQTTASYNC_MAX_BUFFERED)
		snprintf(out, n, "%s (%d)", MQTTAsync_strerror(rc), rc);
	else if (rc == -99)
		snprintf(out, n, "out of memory (%d)", rc);
	else
		snprintf(out, n, "paho error %d", rc);
}

/* CONNACK return codes of MQTT 3.1.1 (MQTT 5 uses reason codes >= 0x80 instead). */
static const char *connack3_str(int rc)
{
	static const char *const names[] = {
	    "accepted",           "unacceptable protocol version", "identifier rejected",
	    "server unavailable", "bad user name or password",     "not authorized"};
	return rc >= 0 && rc <= 5 ? names[rc] : "refused";
}

/* Refusals that retrying with the same options cannot fix. */
static bool connack_fatal(int version, int rc)
{
	if (version < MQTTVERSION_5)
		return rc == 1 || rc == 2 || rc == 4 || rc == 5;
	switch (rc) {
	case MQTTREASONCODE_UNSUPPORTED_PROTOCOL_VERSION:
	case MQTTREASONCODE_CLIENT_IDENTIFIER_NOT_VALID:
	case MQTTREASONCODE_BAD_USER_NAME_OR_PASSWORD:
	case MQTTREASONCODE_NOT_AUTHORIZED:
	case MQTTREASONCODE_BANNED:
	case MQTTREASONCODE_BAD_AUTHENTICATION_METHOD:
		return true;
	default:
		return false;
	}
}

static void connect_failure_str(struct mqtt_client *c, int code, const char *message, char *out,
                                size_t n)
{
	char rcs[96];
	if (code > 0 && c->version >= MQTTVERSION_5)
		snprintf(rcs, sizeof(rcs), "refused by the broker: %s (0x%02x)",
		         MQTTReasonCode_toString((enum MQTTReasonCodes)code), code);
	else if (code > 0)
		snprintf(rcs, sizeof(rcs), "refused by the broker: %s (%d)", connack3_str(code),
		         code);
	else
		paho_rc_str(code, rcs, sizeof(rcs));
	if (message && *message)
		snprintf(out, n, "%s: %s", message, rcs);
	else
		snprintf(out, n, "%s", rcs);
}

static void trace_to_log(enum MQTTASYNC_TRACE_LEVELS level, char *message)
{
	(void)level;
	log_debug("paho: %s", message);
}

static int tls_error_to_log(const char *str, size_t len, void *u)
{
	struct mqtt_client *c = u;
	int l = len > 512 ? 512 : (int)len;
	while (l > 0 && (str[l - 1] == '\n' || str[l - 1] == '\r'))
		l--;
	log_warn("%s: TLS: %.*s", c->name, l, str);
	return 0;
}

/* ---- publish completion ---- */

/* Returns a slot to the window. */
static void slot_put(struct mqtt_client *c, struct pub_slot *s)
{
	pthread_mutex_lock(&c->mu);
	s->msg_ctx = NULL;
	s->next = c->free_slots;
	c->free_slots = s;
	c->inflight--;
	/* Every acknowledgement wakes a waiting publisher. Refilling a full window in bursts
	 * saves context switches but measured 2-4x slower here: the bursts stall paho's sending
	 * behind TCP acknowledgements. */
	if (c->waiters > 0)
		pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

/* A publish completed: counts it, tells the caller, frees its slot. */
static void slot_release(struct pub_slot *s, bool ok, const char *reason)
{
	struct mqtt_client *c = s->c;
	if (ok)
		atomic_fetch_add(&c->confirmed, 1);
	else
		atomic_fetch_add(&c->failed, 1);
	/* The caller hears of the outcome before the slot is free, so mqtt_flush() returning 0
	 * means every completion callback has finished. */
	if (c->on_publish_done)
		c->on_publish_done(c->ctx, s->msg_ctx, ok, reason);
	slot_put(c, s);
}

static void pub_ok3(void *context, MQTTAsync_successData *d)
{
	(void)d;
	in_callback = true;
	slot_release(context, true, NULL);
	in_callback = false;
}

static void pub_ok5(void *context, MQTTAsync_successData5 *d)
{
	(void)d;
	in_callback = true;
	slot_release(context, true, NULL);
	in_callback = false;
}

static void pub_failure_reason(int code, const char *message, char *out, size_t n)
{
	char rcs[96];
	paho_rc_str(code, rcs, sizeof(rcs));
	if (code == MQTTASYNC_OPERATION_INCOMPLETE)
		snprintf(out, n, "not acknowledged before the session ended: %s", rcs);
	else if (message && *message)
		snprintf(out, n, "%s: %s", message, rcs);
	else
		snprintf(out, n, "%s", rcs);
}

static void pub_fail3(void *context, MQTTAsync_failureData *d)
{
	char reason[256];
	pub_failure_reason(d ? d->code : MQTTASYNC_FAILURE, d ? d->message : NULL, reason,
	                   sizeof(reason));
	in_callback = true;
	slot_release(context, false, reason);
	in_callback = false;
}

static void pub_fail5(void *context, MQTTAsync_failureData5 *d)
{
	char reason[256];
	struct pub_slot *s = context;
	/* Only acknowledgement refusals carry a reason code >= 0x80; other failures leave it at
	 * 0 and are reported by their library code alone. The packet type is taken from the QoS:
	 * paho 1.3.12 reads d->packet_type from the packet it has just freed. */
	if (d && d->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR) {
		snprintf(reason, sizeof(reason), "%s reason 0x%02x %s",
		         s->qos == 1 ? "PUBACK" : "PUBREC", (unsigned)d->reasonCode,
		         MQTTReasonCode_toString(d->reasonCode));
	} else {
		pub_failure_reason(d ? d->code : MQTTASYNC_FAILURE, d ? d->message : NULL, reason,
		                   sizeof(reason));
	}
	in_callback = true;
	slot_release(context, false, reason);
	in_callback = false;
}

/* ---- subscriptions ---- */

static void sub_settled(struct mqtt_client *c, bool failed)
{
	pthread_mutex_lock(&c->mu);
	if (c->subs_pending > 0)
		c->subs_pending--;
	if (failed)
		c->subs_failed++;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void sub_granted(struct sub_entry *s, int granted)
{
	struct mqtt_client *c = s->c;
	if (granted < s->qos)
		log_warn("%s: subscribed to %s with QoS %d (asked for %d)", c->name, s->filter,
		         granted, s->qos);
	else
		log_info("%s: subscribed to %s (QoS %d)", c->name, s->filter, granted);
	sub_settled(c, false);
}

static void sub_refused(struct sub_entry *s, const char *why)
{
	struct mqtt_client *c = s->c;
	atomic_fetch_add(&c->sub_failures, 1);
	log_error("%s: subscription to %s failed: %s", c->name, s->filter, why);
	pthread_mutex_lock(&c->mu);
	snprintf(c->sub_err, sizeof(c->sub_err), "subscription to %s failed: %s", s->filter, why);
	pthread_mutex_unlock(&c->mu);
	sub_settled(c, true);
}

static void sub_ok3(void *context, MQTTAsync_successData *d)
{
	in_callback = true;
	int q = d ? d->alt.qos : 0;
	if (q == MQTT_BAD_SUBSCRIBE)
		sub_refused(context, "refused by the broker (0x80)");
	else
		sub_granted(context, q);
	in_callback = false;
}

static void sub_ok5(void *context, MQTTAsync_successData5 *d)
{
	in_callback = true;
	int rc = d ? (int)d->reasonCode : 0;
	if (rc >= MQTTREASONCODE_UNSPECIFIED_ERROR) {
		char why[96];
		snprintf(why, sizeof(why), "%s (0x%02x)",
		         MQTTReasonCode_toString((enum MQTTReasonCodes)rc), rc);
		sub_refused(context, why);
	} else {
		sub_granted(context, rc);
	}
	in_callback = false;
}

static void sub_fail3(void *context, MQTTAsync_failureData *d)
{
	char why[128];
	in_callback = true;
	if (d && d->code == MQTT_BAD_SUBSCRIBE)
		snprintf(why, sizeof(why), "refused by the broker (0x80)");
	else
		paho_rc_str(d ? d->code : MQTTASYNC_FAILURE, why, sizeof(why));
	sub_refused(context, why);
	in_callback = false;
}

static void sub_fail5(void *context, MQTTAsync_failureData5 *d)
{
	char why[128];
	in_callback = true;
	if (d && d->reasonCode >= MQTTREASONCODE_UNSPECIFIED_ERROR)
		snprintf(why, sizeof(why), "refused by the broker: %s (0x%02x)",
		         MQTTReasonCode_toString(d->reasonCode), (unsigned)d->reasonCode);
	else
		paho_rc_str(d ? d->code : MQTTASYNC_FAILURE, why, sizeof(why));
	sub_refused(context, why);
	in_callback = false;
}

/* Requests every subscription; outcomes arrive in the callbacks above. */
static void subscribe_all(struct mqtt_client *c)
{
	for (size_t i = 0; i < c->nsubs; i++) {
		struct sub_entry *s = &c->subs[i];
		MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
		ro.context = s;
		if (c->version >= MQTTVERSION_5) {
			ro.onSuccess5 = sub_ok5;
			ro.onFailure5 = sub_fail5;
		} else {
			ro.onSuccess = sub_ok3;
			ro.onFailure = sub_fail3;
		}
		int rc = MQTTAsync_subscribe(c->h, s->filter, s->qos, &ro);
		if (rc != MQTTASYNC_SUCCESS) {
			char why[96];
			paho_rc_str(rc, why, sizeof(why));
			sub_refused(s, why);
		}
	}
}

/* ---- connection events ---- */

static void on_connected(void *context, char *cause)
{
	struct mqtt_client *c = context;
	in_callback = true;
	uint64_t n = atomic_fetch_add(&c->connects, 1) + 1;
	bool reconnect = n > 1;
	pthread_mutex_lock(&c->mu);
	bool unwanted = c->paused || c->closing;
	c->connected = !unwanted;
	c->connect_fatal = false;
	c->connect_err[0] = 0;
	c->subs_pending = c->nsubs;
	c->subs_failed = 0;
	c->sub_err[0] = 0;
	int sp = c->session_present;
	c->session_present = -1;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);

	if (unwanted) {
		/* paho's retry loop can still complete a reconnect that was under way when the
		 * caller paused or disconnected; take the connection down again before anything
		 * arrives. */
		log_info("%s: connected while paused; disconnecting again", c->name);
		MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer;
		if (c->version >= MQTTVERSION_5) {
			MQTTAsync_disconnectOptions d5 = MQTTAsync_disconnectOptions_initializer5;
			d = d5;
		}
		MQTTAsync_disconnect(c->h, &d);
		in_callback = false;
		return;
	}

	const char *session = sp < 0 ? "" : sp ? ", session resumed" : ", new session";
	if (reconnect) {
		atomic_fetch_add(&c->reconnects, 1);
		log_info("%s: reconnected (%s%s); resubscribing %zu filter(s)", c->name,
		         cause ? cause : "reconnect", session, c->nsubs);
	} else {
		log_info("%s: connected (MQTT %s%s)", c->name,
		         c->version >= MQTTVERSION_5 ? "5" : "3.1.1", session);
	}
	subscribe_all(c);
	if (c->on_connected)
		c->on_connected(c->ctx, reconnect);
	in_callback = false;
}

static void on_connection_lost(void *context, char *cause)
{
	struct mqtt_client *c = context;
	in_callback = true;
	atomic_fetch_add(&c->losses, 1);
	pthread_mutex_lock(&c->mu);
	c->connected = false;
	bool expected = c->closing || c->paused;
	pthread_mutex_unlock(&c->mu);
	if (!expected)
		log_warn("%s: connection lost (%s); reconnecting automatically", c->name,
		         cause ? cause : "socket closed or keepalive expired");
	in_callback = false;
}

static void on_disconnected5(void *context, MQTTProperties *props, enum MQTTReasonCodes rc)
{
	struct mqtt_client *c = context;
	(void)props;
	in_callback = true;
	log_warn("%s: the broker closed the session: %s (0x%02x)", c->name,
	         MQTTReasonCode_toString(rc), (unsigned)rc);
	in_callback = false;
}

static int on_message_arrived(void *context, char *topic, int topic_len, MQTTAsync_message *m)
{
	struct mqtt_client *c = context;
	in_callback = true;
	size_t tl = topic_len > 0 ? (size_t)topic_len : strlen(topic);
	atomic_fetch_add(&c->received, 1);
	if (c->on_message)
		c->on_message(c->ctx, topic, tl, m->payload,
		              m->payloadlen > 0 ? (size_t)m->payloadlen : 0, m->qos,
		              m->retained != 0);
	MQTTAsync_freeMessage(&m);
	MQTTAsync_free(topic);
	in_callback = false;
	return 1; /* handled: paho must not deliver it again */
}

static void connect_ok(struct mqtt_client *c, int session_present, int receive_max)
{
	pthread_mutex_lock(&c->mu);
	c->session_present = session_present;
	int w = receive_max > 0 && receive_max < c->max_inflight ? receive_max : c->max_inflight;
	bool changed = w != c->window;
	c->window = w;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	/* paho holds publishes beyond the broker's receive maximum in its queue and, once they
	 * pile up there, only sends them on a 1 s timer: keep the window within the maximum. */
	if (changed && w < c->max_inflight)
		log_info(
		    "%s: the broker accepts %d unacknowledged publishes; window lowered from %d",
		    c->name, w, c->max_inflight);
}

static void connect_ok3(void *context, MQTTAsync_successData *d)
{
	connect_ok(context, d ? d->alt.connect.sessionPresent : -1, 0);
}

static void connect_ok5(void *context, MQTTAsync_successData5 *d)
{
	int rm = 0;
	if (d && MQTTProperties_hasProperty(&d->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
		rm = MQTTProperties_getNumericValue(&d->properties,
		                                    MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
	connect_ok(context, d ? d->alt.connect.sessionPresent : -1, rm);
}

static void connect_failed(struct mqtt_client *c, int code, const char *message)
{
	char why[256];
	connect_failure_str(c, code, message, why, sizeof(why));
	bool fatal = code > 0 && connack_fatal(c->version, code);
	log_warn("%s: connect failed: %s%s", c->name, why, fatal ? "" : "; retrying automatically");
	pthread_mutex_lock(&c->mu);
	snprintf(c->connect_err, sizeof(c->connect_err), "%s", why);
	if (fatal)
		c->connect_fatal = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void connect_fail3(void *context, MQTTAsync_failureData *d)
{
	in_callback = true;
	connect_failed(context, d ? d->code : MQTTASYNC_FAILURE, d ? d->message : NULL);
	in_callback = false;
}

static void connect_fail5(void *context, MQTTAsync_failureData5 *d)
{
	in_callback = true;
	connect_failed(context, d ? d->code : MQTTASYNC_FAILURE, d ? d->message : NULL);
	in_callback = false;
}

static void disconnect_settled(struct mqtt_client *c, int result)
{
	pthread_mutex_lock(&c->mu);
	c->disconnect_done = result;
	c->connected = false;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
}

static void disconnect_ok3(void *context, MQTTAsync_successData *d)
{
	(void)d;
	disconnect_settled(context, 1);
}

static void disconnect_ok5(void *context, MQTTAsync_successData5 *d)
{
	(void)d;
	disconnect_settled(context, 1);
}

static void disconnect_fail3(void *context, MQTTAsync_failureData *d)
{
	(void)d;
	disconnect_settled(context, -1);
}

static void disconnect_fail5(void *context, MQTTAsync_failureData5 *d)
{
	(void)d;
	disconnect_settled(context, -1);
}

/* ---- construction ---- */

void mqtt_options_init(struct mqtt_options *o)
{
	memset(o, 0, sizeof(*o));
	o->version = 5;
	o->clean_start = true;
	o->keepalive_s = 30;
	o->connect_timeout_s = 10;
	o->reconnect_min_s = 1;
	o->reconnect_max_s = 16;
	o->max_inflight = 100;
}

int mqtt_cli_apply(const struct mqtt_cli *cli, struct mqtt_options *o, char *err, size_t errlen)
{
	const char *v = cli->version ? cli->version : "5";
	if (strcmp(v, "5") == 0 || strcmp(v, "5.0") == 0) {
		o->version = 5;
	} else if (strcmp(v, "3.1.1") == 0 || strcmp(v, "4") == 0 || strcmp(v, "311") == 0) {
		o->version = 4;
	} else {
		snprintf(err, errlen, "--mqtt-version: '%s' is not 5 or 3.1.1", v);
		return -1;
	}
	if (!cli->client_id || !*cli->client_id) {
		snprintf(err, errlen, "--client-id is required");
		return -1;
	}
	o->url = cli->url;
	o->client_id = cli->client_id;
	o->username = cli->username;
	o->password = cli->password;
	o->ca_file = cli->ca_file;
	o->cert_file = cli->cert_file;
	o->key_file = cli->key_file;
	o->insecure = cli->insecure;
	if (cli->keepalive_ms > 0)
		o->keepalive_s = (int)((cli->keepalive_ms + 999) / 1000);
	o->session_expiry_s = (cli->session_expiry_ms + 999) / 1000;
	o->clean_start = o->session_expiry_s == 0;
	return 0;
}

static bool has_prefix(const char *s, const char *p)
{
	return strncmp(s, p, strlen(p)) == 0;
}

static int check_readable(const char *what, const char *path, char *err, size_t errlen)
{
	if (path && access(path, R_OK) != 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -1;
	}
	return 0;
}

/* Why a subscription filter is malformed, or NULL. Brokers answer a malformed filter by closing
 * the connection, and automatic reconnect would then retry it forever. */
static const char *filter_problem(const char *f)
{
	if (strncmp(f, "$share/", 7) == 0) {
		const char *group = f + 7, *slash = strchr(group, '/');
		if (!slash || slash == group || !slash[1])
			return "a shared subscription is $share/GROUP/FILTER";
		if (strpbrk(group, "+#") && strpbrk(group, "+#") < slash)
			return "the share group must not contain wildcards";
		f = slash + 1;
	}
	for (const char *lvl = f;;) {
		const char *end = strchr(lvl, '/');
		size_t len = end ? (size_t)(end - lvl) : strlen(lvl);
		const char *hash = memchr(lvl, '#', len), *plus = memchr(lvl, '+', len);
		if (hash && (len != 1 || end))
			return "'#' must be a whole level, and the last";
		if (plus && len != 1)
			return "'+' must be a whole level";
		if (!end)
			return NULL;
		lvl = end + 1;
	}
}

static int options_check(const struct mqtt_options *o, bool *tls, char *err, size_t errlen)
{
	if (!o->url || !*o->url) {
		snprintf(err, errlen, "no broker URL (mqtt://host:port or mqtts://host:port)");
		return -1;
	}
	const char *url = o->url;
	if (!o->client_id || !*o->client_id) {
		snprintf(err, errlen, "%s: a client id is required", url);
		return -1;
	}
	if (has_prefix(url, "mqtts://") || has_prefix(url, "ssl://")) {
		*tls = true;
	} else if (has_prefix(url, "mqtt://") || has_prefix(url, "tcp://")) {
		*tls = false;
	} else {
		snprintf(err, errlen,
		         "%s: unsupported URL scheme (use mqtt://host:port or "
		         "mqtts://host:port)",
		         url);
		return -1;
	}
	const char *hostport = strstr(url, "://") + 3;
	if (!*hostport || *hostport == ':' || *hostport == '/') {
		snprintf(err, errlen, "%s: no host in the URL", url);
		return -1;
	}
	if (!*tls && (o->ca_file || o->cert_file || o->key_file || o->insecure)) {
		snprintf(err, errlen, "%s: TLS options need an mqtts:// URL", url);
		return -1;
	}
	if (o->version != 5 && o->version != 4) {
		snprintf(err, errlen, "%s: MQTT version must be 5 or 4 (3.1.1), not %d", url,
		         o->version);
		return -1;
	}
	if (o->max_inflight < 1 || o->max_inflight > 65535) {
		snprintf(err, errlen, "%s: the publish window must be 1..65535, not %d", url,
		         o->max_inflight);
		return -1;
	}
	if (o->session_expiry_s < 0 || o->session_expiry_s > 0xFFFFFFFFLL) {
		snprintf(err, errlen, "%s: session expiry %lld s is out of range", url,
		         o->session_expiry_s);
		return -1;
	}
	if (o->nsubs > 0 && !o->on_message) {
		snprintf(err, errlen, "%s: subscriptions need a message callback", url);
		return -1;
	}
	for (size_t i = 0; i < o->nsubs; i++) {
		if (!o->subs[i].filter || !*o->subs[i].filter) {
			snprintf(err, errlen, "%s: subscription %zu has an empty filter", url,
			         i + 1);
			return -1;
		}
		const char *why = filter_problem(o->subs[i].filter);
		if (why) {
			snprintf(err, errlen, "%s: subscription %s: %s", url, o->subs[i].filter,
			         why);
			return -1;
		}
		if (o->subs[i].qos < 0 || o->subs[i].qos > 2) {
			snprintf(err, errlen, "%s: subscription %s: QoS must be 0, 1 or 2", url,
			         o->subs[i].filter);
			return -1;
		}
	}
	if (check_readable("CA file", o->ca_file, err, errlen) < 0 ||
	    check_readable("client certificate", o->cert_file, err, errlen) < 0 ||
	    check_readable("client key", o->key_file, err, errlen) < 0)
		return -1;
	return 0;
}

struct mqtt_client *mqtt_client_new(const struct mqtt_options *o, char *err, size_t errlen)
{
	bool tls = false;
	if (options_check(o, &tls, err, errlen) < 0)
		return NULL;
	struct mqtt_client *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "%s: out of memory", o->url);
		return NULL;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cv, &ca);
	pthread_condattr_destroy(&ca);
	c->session_present = -1;
	snprintf(c->name, sizeof(c->name), "%s client %s", o->url, o->client_id);

	bool oom = false;
	c->url = dup_or_null(o->url, &oom);
	c->client_id = dup_or_null(o->client_id, &oom);
	c->username = dup_or_null(o->username, &oom);
	c->password = dup_or_null(o->password, &oom);
	c->ca_file = dup_or_null(o->ca_file, &oom);
	c->cert_file = dup_or_null(o->cert_file, &oom);
	c->key_file = dup_or_null(o->key_file, &oom);
	c->version = o->version == 5 ? MQTTVERSION_5 : MQTTVERSION_3_1_1;
	c->clean_start = o->clean_start;
	c->insecure = o->insecure;
	c->tls = tls;
	c->session_expiry_s = o->session_expiry_s;
	c->keepalive_s = o->keepalive_s > 0 ? o->keepalive_s : 30;
	c->connect_timeout_s = o->connect_timeout_s > 0 ? o->connect_timeout_s : 10;
	c->reconnect_min_s = o->reconnect_min_s > 0 ? o->reconnect_min_s : 1;
	c->reconnect_max_s =
	    o->reconnect_max_s >= c->reconnect_min_s ? o->reconnect_max_s : c->reconnect_min_s;
	c->on_message = o->on_message;
	c->on_publish_done = o->on_publish_done;
	c->on_connected = o->on_connected;
	c->ctx = o->ctx;
	c->max_inflight = o->max_inflight;
	c->window = c->max_inflight;

	if (o->nsubs) {
		c->subs = calloc(o->nsubs, sizeof(*c->subs));
		if (!c->subs)
			oom = true;
		else
			c->nsubs = o->nsubs;
		for (size_t i = 0; i < c->nsubs; i++) {
			c->subs[i].c = c;
			c->subs[i].filter = dup_or_null(o->subs[i].filter, &oom);
			c->subs[i].qos = o->subs[i].qos;
		}
	}
	c->slots = calloc((size_t)c->max_inflight, sizeof(*c->slots));
	if (!c->slots)
		oom = true;
	else
		for (int i = c->max_inflight - 1; i >= 0; i--) {
			c->slots[i].c = c;
			c->slots[i].next = c->free_slots;
			c->free_slots = &c->slots[i];
		}
	if (oom) {
		snprintf(err, errlen, "%s: out of memory", c->name);
		goto fail;
	}

	if (c->tls) {
		MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
		ssl.trustStore = c->ca_file;
		ssl.keyStore = c->cert_file;
		ssl.privateKey = c->key_file;
		ssl.enableServerCertAuth = !c->insecure;
		ssl.verify = !c->insecure;
		ssl.ssl_error_cb = tls_error_to_log;
		ssl.ssl_error_context = c;
		c->ssl = ssl;
	}

	/* paho's trace is process-wide; it is only worth its cost when someone reads debug logs. */
	if (log_get_level() >= LOG_DEBUG) {
		MQTTAsync_setTraceCallback(trace_to_log);
		MQTTAsync_setTraceLevel(MQTTASYNC_TRACE_PROTOCOL);
	}

	MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
	co.MQTTVersion = c->version;
	/* Publishes made during a reconnect wait in paho's queue; the window bounds that queue,
	 * and the margin keeps paho's own limit (which drops messages) out of reach. */
	co.sendWhileDisconnected = 1;
	co.allowDisconnectedSendAtAnyTime = 1; /* also before the first connect and while paused */
	co.maxBufferedMessages = c->max_inflight + 64;
	co.deleteOldestMessages = 0;
	int rc = MQTTAsync_createWithOptions(&c->h, c->url, c->client_id,
	                                     MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		char why[96];
		paho_rc_str(rc, why, sizeof(why));
		snprintf(err, errlen, "%s: cannot create the client: %s", c->name, why);
		c->h = NULL;
		goto fail;
	}
	/* Only now: paho's heap tracking starts with its first client, and memory it hands out
	 * before that could not be given back. */
	if (c->version >= MQTTVERSION_5 && c->session_expiry_s > 0) {
		MQTTProperty p = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};
		p.value.integer4 = (unsigned int)c->session_expiry_s;
		if (MQTTProperties_add(&c->connect_props, &p) != 0) {
			snprintf(err, errlen, "%s: cannot set the session expiry", c->name);
			goto fail;
		}
	}
	rc = MQTTAsync_setCallbacks(c->h, c, on_connection_lost, on_message_arrived, NULL);
	if (rc == MQTTASYNC_SUCCESS)
		rc = MQTTAsync_setConnected(c->h, c, on_connected);
	if (rc == MQTTASYNC_SUCCESS && c->version >= MQTTVERSION_5)
		rc = MQTTAsync_setDisconnected(c->h, c, on_disconnected5);
	if (rc != MQTTASYNC_SUCCESS) {
		char why[96];
		paho_rc_str(rc, why, sizeof(why));
		snprintf(err, errlen, "%s: cannot set callbacks: %s", c->name, why);
		goto fail;
	}
	return c;
fail:
	mqtt_client_free(c);
	return NULL;
}

const char *mqtt_client_name(const struct mqtt_client *c)
{
	return c ? c->name : "(no client)";
}

/* ---- connecting ---- */

static void connect_options_fill(struct mqtt_client *c, MQTTAsync_connectOptions *co)
{
	if (c->version >= MQTTVERSION_5) {
		MQTTAsync_connectOptions init = MQTTAsync_connectOptions_initializer5;
		*co = init;
		co->cleanstart = c->clean_start;
		co->connectProperties = c->connect_props.count ? &c->connect_props : NULL;
		co->onSuccess5 = connect_ok5;
		co->onFailure5 = connect_fail5;
	} else {
		MQTTAsync_connectOptions init = MQTTAsync_connectOptions_initializer;
		*co = init;
		co->cleansession = c->clean_start;
		co->onSuccess = connect_ok3;
		co->onFailure = connect_fail3;
	}
	co->MQTTVersion = c->version;
	co->context = c;
	co->keepAliveInterval = c->keepalive_s;
	co->connectTimeout = c->connect_timeout_s;
	co->maxInflight = c->max_inflight;
	co->retryInterval = 0;
	co->automaticReconnect = 1;
	co->minRetryInterval = c->reconnect_min_s;
	co->maxRetryInterval = c->reconnect_max_s;
	co->username = c->username;
	co->password = c->password;
	co->ssl = c->tls ? &c->ssl : NULL;
}

static int start_connect(struct mqtt_client *c, char *err, size_t errlen)
{
	MQTTAsync_connectOptions co;
	connect_options_fill(c, &co);
	pthread_mutex_lock(&c->mu);
	c->connect_fatal = false;
	c->connect_err[0] = 0;
	pthread_mutex_unlock(&c->mu);
	int rc = MQTTAsync_connect(c->h, &co);
	if (rc != MQTTASYNC_SUCCESS) {
		char why[96];
		paho_rc_str(rc, why, sizeof(why));
		snprintf(err, errlen, "%s: cannot start connecting: %s", c->name, why);
		return -1;
	}
	pthread_mutex_lock(&c->mu);
	c->started = true;
	pthread_mutex_unlock(&c->mu);
	return 0;
}

static struct timespec deadline_after(int ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += ms / 1000;
	ts.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	return ts;
}

int mqtt_connect(struct mqtt_client *c, int wait_ms, char *err, size_t errlen)
{
	/* Called again after a timeout, it only waits longer: paho is still retrying. */
	pthread_mutex_lock(&c->mu);
	bool started = c->started;
	pthread_mutex_unlock(&c->mu);
	if (!started && start_connect(c, err, errlen) < 0)
		return -1;
	int64_t deadline = now_mono_ms() + (wait_ms > 0 ? wait_ms : 0);
	int ret = -1;
	pthread_mutex_lock(&c->mu);
	for (;;) {
		if (c->connect_fatal) {
			snprintf(err, errlen, "%s: %s", c->name, c->connect_err);
			break;
		}
		if (c->connected && c->subs_pending == 0) {
			if (c->subs_failed == 0)
				ret = 0;
			else
				snprintf(err, errlen, "%s: %s", c->name, c->sub_err);
			break;
		}
		int64_t left = deadline - now_mono_ms();
		if (left <= 0 || !lifecycle_running()) {
			snprintf(err, errlen, "%s: %s within %d ms%s%s", c->name,
			         c->connected ? "subscriptions not acknowledged" : "no connection",
			         wait_ms, c->connect_err[0] ? ": " : "", c->connect_err);
			break;
		}
		/* Short waits so a stop request is noticed while the broker is unreachable. */
		struct timespec ts = deadline_after(left < 200 ? (int)left : 200);
		pthread_cond_timedwait(&c->cv, &c->mu, &ts);
	}
	pthread_mutex_unlock(&c->mu);
	return ret;
}

/* ---- publishing ---- */

int mqtt_publish(struct mqtt_client *c, const char *topic, const void *payload, size_t len, int qos,
                 bool retain, int wait_ms, void *msg_ctx, char *err, size_t errlen)
{
	size_t tl = topic ? strlen(topic) : 0;
	/* A wildcard in a published topic is a protocol violation that makes the broker drop the
	 * connection, taking every other in-flight message with it: refuse it here. */
	if (tl == 0 || tl > 65535 || memchr(topic, '+', tl) || memchr(topic, '#', tl)) {
		snprintf(err, errlen, "%s: invalid topic for publishing: '%.80s'", c->name,
		         topic ? topic : "");
		return -1;
	}
	if (len > (size_t)INT_MAX) {
		snprintf(err, errlen, "%s: payload of %zu bytes on %s is too large", c->name, len,
		         topic);
		return -1;
	}
	if (qos < 0 || qos > 2) {
		snprintf(err, errlen, "%s: QoS must be 0, 1 or 2, not %d", c->name, qos);
		return -1;
	}

	pthread_mutex_lock(&c->mu);
	if (c->inflight >= c->window && !c->closing && !in_callback && wait_ms > 0) {
		struct timespec ts = deadline_after(wait_ms);
		c->waiters++;
		while (c->inflight >= c->window && !c->closing)
			if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
				break;
		c->waiters--;
	}
	if (c->closing) {
		pthread_mutex_unlock(&c->mu);
		snprintf(err, errlen, "%s: client is closing", c->name);
		return -1;
	}
	struct pub_slot *s = c->inflight < c->window ? c->free_slots : NULL;
	if (!s) {
		pthread_mutex_unlock(&c->mu);
		return MQTT_BUSY;
	}
	c->free_slots = s->next;
	c->inflight++;
	s->msg_ctx = msg_ctx;
	s->qos = qos;
	pthread_mutex_unlock(&c->mu);

	MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
	ro.context = s;
	if (c->version >= MQTTVERSION_5) {
		ro.onSuccess5 = pub_ok5;
		ro.onFailure5 = pub_fail5;
	} else {
		ro.onSuccess = pub_ok3;
		ro.onFailure = pub_fail3;
	}
	atomic_fetch_add(&c->published, 1);
	int rc = MQTTAsync_send(c->h, topic, (int)len, payload, qos, retain, &ro);
	if (rc == MQTTASYNC_SUCCESS)
		return 0;

	atomic_fetch_sub(&c->published, 1);
	slot_put(c, s);
	if (rc == MQTTASYNC_MAX_BUFFERED_MESSAGES)
		return MQTT_BUSY;
	char why[96];
	paho_rc_str(rc, why, sizeof(why));
	snprintf(err, errlen, "%s: publish to %.200s refused: %s", c->name, topic, why);
	return -1;
}

int mqtt_flush(struct mqtt_client *c, int timeout_ms)
{
	struct timespec ts = deadline_after(timeout_ms > 0 ? timeout_ms : 0);
	pthread_mutex_lock(&c->mu);
	c->waiters++;
	while (c->inflight > 0 && timeout_ms > 0)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
			break;
	c->waiters--;
	int left = c->inflight;
	pthread_mutex_unlock(&c->mu);
	return left;
}

/* ---- disconnecting ---- */

static int disconnect_wait(struct mqtt_client *c, int timeout_ms, char *err, size_t errlen)
{
	MQTTAsync_disconnectOptions d;
	if (c->version >= MQTTVERSION_5) {
		MQTTAsync_disconnectOptions init = MQTTAsync_disconnectOptions_initializer5;
		d = init;
		d.onSuccess5 = disconnect_ok5;
		d.onFailure5 = disconnect_fail5;
	} else {
		MQTTAsync_disconnectOptions init = MQTTAsync_disconnectOptions_initializer;
		d = init;
		d.onSuccess = disconnect_ok3;
		d.onFailure = disconnect_fail3;
	}
	d.context = c;
	d.timeout = timeout_ms > 0 ? timeout_ms : 0;
	pthread_mutex_lock(&c->mu);
	c->disconnect_done = 0;
	c->started = false;
	pthread_mutex_unlock(&c->mu);
	int rc = MQTTAsync_disconnect(c->h, &d);
	if (rc != MQTTASYNC_SUCCESS) {
		if (rc == MQTTASYNC_DISCONNECTED)
			return 0;
		char why[96];
		paho_rc_str(rc, why, sizeof(why));
		snprintf(err, errlen, "%s: disconnect failed: %s", c->name, why);
		return -1;
	}
	/* paho checks its disconnect timeout about every 3 s, so allow for that on top. */
	struct timespec ts = deadline_after(d.timeout + 4000);
	int ret = 0;
	pthread_mutex_lock(&c->mu);
	while (c->disconnect_done == 0)
		if (pthread_cond_timedwait(&c->cv, &c->mu, &ts) == ETIMEDOUT)
			break;
	if (c->disconnect_done != 1) {
		snprintf(err, errlen, "%s: disconnect %s", c->name,
		         c->disconnect_done == 0 ? "not confirmed in time" : "failed");
		ret = -1;
	}
	c->connected = false;
	pthread_mutex_unlock(&c->mu);
	return ret;
}

int mqtt_pause(struct mqtt_client *c, int timeout_ms, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->mu);
	bool already = c->paused;
	c->paused = true;
	pthread_mutex_unlock(&c->mu);
	if (already)
		return 0;
	log_info("%s: pausing: disconnecting, the broker keeps the session", c->name);
	return disconnect_wait(c, timeout_ms, err, errlen);
}

int mqtt_resume(struct mqtt_client *c, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->mu);
	bool was = c->paused;
	c->paused = false;
	pthread_mutex_unlock(&c->mu);
	if (!was)
		return 0;
	log_info("%s: resuming: reconnecting", c->name);
	return start_connect(c, err, errlen);
}

int mqtt_disconnect(struct mqtt_client *c, int timeout_ms, char *err, size_t errlen)
{
	pthread_mutex_lock(&c->mu);
	bool was_paused = c->paused;
	c->paused = true; /* a loss from here on is expected, not worth a warning */
	pthread_mutex_unlock(&c->mu);
	if (was_paused)
		return 0;
	return disconnect_wait(c, timeout_ms, err, errlen);
}

void mqtt_client_stats(struct mqtt_client *c, struct mqtt_stats *out)
{
	out->connects = atomic_load(&c->connects);
	out->reconnects = atomic_load(&c->reconnects);
	out->connection_losses = atomic_load(&c->losses);
	out->published = atomic_load(&c->published);
	out->confirmed = atomic_load(&c->confirmed);
	out->failed = atomic_load(&c->failed);
	out->received = atomic_load(&c->received);
	out->subscribe_failures = atomic_load(&c->sub_failures);
	pthread_mutex_lock(&c->mu);
	out->inflight = c->inflight;
	out->connected = c->connected;
	out->paused = c->paused;
	pthread_mutex_unlock(&c->mu);
}

void mqtt_client_free(struct mqtt_client *c)
{
	if (!c)
		return;
	if (c->h) {
		char err[256];
		pthread_mutex_lock(&c->mu);
		bool connected = c->connected && !c->paused;
		pthread_mutex_unlock(&c->mu);
		if (connected && mqtt_disconnect(c, 1000, err, sizeof(err)) < 0)
			log_warn("%s", err);
		pthread_mutex_lock(&c->mu);
		c->closing = true;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		/* paho's heap tracking ends with its last client; what it allocated for us must go
		 * back before that. */
		MQTTProperties_free(&c->connect_props);
		/* Reports whatever is still pending to the failure callbacks, on this thread. */
		MQTTAsync_destroy(&c->h);
	}
	MQTTProperties_free(&c->connect_props);
	for (size_t i = 0; i < c->nsubs; i++)
		free(c->subs[i].filter);
	free(c->subs);
	free(c->slots);
	free(c->url);
	free(c->client_id);
	free(c->username);
	if (c->password) {
		/* Secrets do not outlive their use in freed heap memory. */
		explicit_bzero(c->password, strlen(c->password));
		free(c->password);
	}
	free(c->ca_file);
	free(c->cert_file);
	free(c->key_file);
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

struct mqtt_client *mqtt_client_open(const struct mqtt_options *o)
{
	char err[512];
	struct mqtt_client *c = mqtt_client_new(o, err, sizeof(err));
	if (!c) {
		log_error("%s", err);
		return NULL;
	}
	while (lifecycle_running()) {
		if (mqtt_connect(c, 10000, err, sizeof(err)) == 0)
			return c;
		if (strstr(err, "refused") || strstr(err, "authori") || strstr(err, "password")) {
			log_error("%s; not retrying: the broker refuses these credentials or options",
				  err);
			break;
		}
		log_warn("%s; retrying", err);
	}
	mqtt_client_free(c);
	return NULL;
}
