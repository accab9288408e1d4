/* MQTT client: a small layer over paho.mqtt.c's MQTTAsync shared by every program that talks to
 * the broker (mqtt-ingestor, actuator, sensor-sim).
 *
 * What it adds to paho:
 *  - one options struct for URL, identity, session, credentials and TLS;
 *  - a blocking first connect that fails fast on refusals (bad credentials, not authorised) and
 *    keeps retrying on network errors until its deadline; automatic reconnect afterwards, with the
 *    subscriptions renewed on every reconnect (and logged);
 *  - a bounded publish window: at most max_inflight publishes are unconfirmed at once, so a fast
 *    producer blocks (or gets MQTT_BUSY) instead of growing paho's queue without limit;
 *  - one completion callback per publish, success or failure, with the reason: a QoS 1/2
 *    publish refused by the broker (MQTT 5 PUBACK reason code >= 0x80, e.g. 0x87 Not authorized)
 *    is a failure, never silently counted as sent;
 *  - pause/resume of the inbound stream for consumers whose sink is down;
 *  - counters, and paho's trace routed to log.h at debug level.
 *
 * Threads: paho runs its own threads. Every callback in struct mqtt_options (on_message,
 * on_publish_done, on_connected) runs on one of them, with paho's internal lock held. Callbacks
 * must be short and thread-safe, must not block, and must not call mqtt_client_free(),
 * mqtt_disconnect(), mqtt_pause() or mqtt_flush(). mqtt_publish() may be called from a callback
 * but never waits there (it returns MQTT_BUSY when the window is full). The other functions are
 * meant for one controlling thread; mqtt_publish() and mqtt_client_stats() may be called from
 * any thread. */
#ifndef IOTPIPE_MQTT_H
#define IOTPIPE_MQTT_H

#include "config.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Returned by mqtt_publish() when the window stayed full for the whole wait. */
#define MQTT_BUSY 1

struct mqtt_client;

/* A message arrived. topic is NUL-terminated (topic_len excludes the NUL; a topic with an
 * embedded NUL is passed whole); payload may contain any bytes, is not NUL-terminated, and may
 * be NULL when len is 0. Both are valid only during the call. Called on paho's thread: see the
 * note on threads above. paho has already acknowledged a QoS 1 message when this runs. */
typedef void mqtt_message_fn(void *ctx, const char *topic, size_t topic_len, const void *payload,
                             size_t len, int qos, bool retained);

/* A publish completed: ok is true when the broker acknowledged it (QoS 1/2) or it was written to
 * the socket (QoS 0). On failure, reason says why, e.g. "PUBACK reason 0x87 Not authorized" or
 * "not acknowledged before the session ended: Operation discarded before completion (-11)"
 * (the connection was lost without a persistent session, or the client was freed). msg_ctx is
 * the pointer given to mqtt_publish(). Called exactly once per accepted publish, on paho's thread
 * (or on the caller's thread from mqtt_client_free() for publishes still pending then). */
typedef void mqtt_publish_done_fn(void *ctx, void *msg_ctx, bool ok, const char *reason);

/* The client connected (first time: reconnect false) or reconnected after a loss or a resume,
 * and its subscriptions have been requested again. Called on paho's thread. */
typedef void mqtt_connected_fn(void *ctx, bool reconnect);

struct mqtt_sub {
	const char
	    *filter; /* e.g. "factory/#", or "$share/GROUP/factory/#" composed by the caller */
	int qos;
};

struct mqtt_options {
	const char *url;       /* mqtt://host:port or mqtts://host:port (tcp:// and ssl:// too) */
	const char *client_id; /* required; stable across restarts for a persistent session */
	int version;           /* 5 (MQTT 5) or 4 (MQTT 3.1.1) */
	bool clean_start;      /* false + session_expiry_s > 0: the broker keeps the session */
	long long session_expiry_s; /* MQTT 5 session expiry interval; ignored with 3.1.1 */
	int keepalive_s;
	int connect_timeout_s;
	int reconnect_min_s, reconnect_max_s; /* automatic reconnect back-off bounds */
	const char *username;                 /* NULL = none */
	const char *password;                 /* NULL = none; a secret: never logged */
	const char *ca_file;   /* PEM CA bundle for mqtts://; NULL = the system's store */
	const char *cert_file; /* PEM client certificate (chain) for mutual TLS; NULL = none */
	const char *key_file;  /* PEM private key of cert_file when not in it; NULL = none */
	bool insecure;         /* mqtts:// without verifying the server's certificate or name */
	/* Publish window (1..65535), lowered to the broker's receive maximum (MQTT 5). Bigger is
	 * not faster: paho scans lists of pending publishes per message, so its cost per message
	 * grows with the window; 20..100 is where it publishes fastest. */
	int max_inflight;

	const struct mqtt_sub
	    *subs; /* subscribed at every (re)connect; copied by mqtt_client_new */
	size_t nsubs;

	mqtt_message_fn *on_message;           /* required when nsubs > 0 */
	mqtt_publish_done_fn *on_publish_done; /* NULL = the caller only reads the counters */
	mqtt_connected_fn *on_connected;       /* NULL = not needed */
	void *ctx;                             /* first argument of every callback */
};

/* Fills o with the defaults: MQTT 5, clean start, no session expiry, keepalive 30 s, connect
 * timeout 10 s, reconnect back-off 1..16 s, window 100. The caller then sets url and
 * client_id and whatever else it needs. */
void mqtt_options_init(struct mqtt_options *o);

struct mqtt_stats {
	uint64_t connects;           /* successful connections, the first one included */
	uint64_t reconnects;         /* connects after the first */
	uint64_t connection_losses;  /* connections lost without being asked to disconnect */
	uint64_t published;          /* publishes accepted by mqtt_publish() */
	uint64_t confirmed;          /* ... completed with ok = true */
	uint64_t failed;             /* ... completed with ok = false */
	uint64_t received;           /* messages passed to on_message */
	uint64_t subscribe_failures; /* subscriptions the broker refused or that failed */
	int inflight;                /* publishes accepted and not yet completed */
	bool connected;
	bool paused;
};

/* The command-line flags every MQTT program shares, for its config table (config.h):
 *
 *   static struct mqtt_cli mc;
 *   static struct opt table[] = { MQTT_CLI_OPTS(&mc, "mqtt://localhost:1883", NULL, "0"), ... };
 *   ... config_parse ...
 *   mqtt_options_init(&o); if (mqtt_cli_apply(&mc, &o, err, sizeof(err)) < 0) config_die(...);
 *
 * The password is a secret option: --mqtt-password-file FILE or $IOTPIPE_MQTT_PASSWORD(_FILE),
 * never argv. A session expiry above 0 makes the session persistent (clean start off). */
struct mqtt_cli {
	const char *url, *client_id, *version, *username, *password;
	const char *ca_file, *cert_file, *key_file;
	bool insecure;
	long long keepalive_ms, session_expiry_ms;
};

/* clang-format off */
#define MQTT_CLI_OPTS(o, url_default, client_id_default, session_expiry_default)                   \
	{"mqtt", 0, OPT_STRING, &(o)->url, url_default, "URL",                                     \
	 "MQTT broker: mqtt://host:port or mqtts://host:port"},                                    \
		{"client-id", 0, OPT_STRING, &(o)->client_id, client_id_default, "ID",             \
		 "MQTT client id (stable, for a persistent session)"},                             \
		{"mqtt-version", 0, OPT_STRING, &(o)->version, "5", "5|3.1.1",                     \
		 "MQTT protocol version"},                                                         \
		{"mqtt-username", 0, OPT_STRING, &(o)->username, NULL, "NAME", "MQTT user name"},  \
		{"mqtt-password", 0, OPT_STRING, &(o)->password, NULL, NULL, "MQTT password",      \
		 OPT_SECRET},                                                                      \
		{"mqtt-ca", 0, OPT_STRING, &(o)->ca_file, NULL, "FILE",                            \
		 "CA certificates (PEM) to verify an mqtts:// broker"},                            \
		{"mqtt-cert", 0, OPT_STRING, &(o)->cert_file, NULL, "FILE",                        \
		 "client certificate (PEM) for mutual TLS"},                                       \
		{"mqtt-key", 0, OPT_STRING, &(o)->key_file, NULL, "FILE",                          \
		 "private key (PEM) of --mqtt-cert"},                                              \
		{"mqtt-insecure", 0, OPT_FLAG, &(o)->insecure, NULL, NULL,                         \
		 "do not verify the broker's certificate and host name (testing only)"},           \
		{"mqtt-keepalive", 0, OPT_DURATION, &(o)->keepalive_ms, "30s", NULL,               \
		 "MQTT keepalive interval", 0, 1000, 65535000},                                    \
		{"session-expiry", 0, OPT_DURATION, &(o)->session_expiry_ms,                       \
		 session_expiry_default, NULL,                                                     \
		 "keep the MQTT session this long after a disconnect (0: clean session)", 0, 0,    \
		 4294967295000.0}
/* clang-format on */

/* Copies the parsed flags into o (after mqtt_options_init). Strings stay borrowed from cli.
 * Returns 0, or -1 with the reason (unknown protocol version, missing client id). */
int mqtt_cli_apply(const struct mqtt_cli *cli, struct mqtt_options *o, char *err, size_t errlen);

/* Creates a client; nothing is sent before mqtt_connect(). Every string in o is copied.
 * Returns NULL with the reason (bad URL, TLS options on a plain URL, ...) in err. */
struct mqtt_client *mqtt_client_new(const struct mqtt_options *o, char *err, size_t errlen);

/* Connects and subscribes. Waits until connected and every subscription acknowledged, or at
 * most wait_ms. Returns 0; or -1 with the reason when the broker refused the connection or a
 * subscription, or no connection came up in time (retries go on in the background either way
 * until mqtt_client_free). Also returns -1 early when lifecycle_running() turns false. */
int mqtt_connect(struct mqtt_client *c, int wait_ms, char *err, size_t errlen);

/* mqtt_client_new + mqtt_connect, retrying (and logging each failure) until the broker answers,
 * as a service started before its broker should. Gives up, logging why, when the broker refuses
 * the credentials or options or when a stop was requested. Returns the client or NULL. */
struct mqtt_client *mqtt_client_open(const struct mqtt_options *o);

/* Publishes a copy of payload. Waits up to wait_ms for room in the window (never when called
 * from a callback). Returns 0 when accepted (on_publish_done will report the outcome), MQTT_BUSY
 * when the window stayed full, or -1 with the reason when paho refused it outright (bad topic,
 * bad QoS, client being freed). While the connection is down, accepted publishes wait in paho's
 * queue (bounded by the window) and go out after the reconnect. */
int mqtt_publish(struct mqtt_client *c, const char *topic, const void *payload, size_t len, int qos,
                 bool retain, int wait_ms, void *msg_ctx, char *err, size_t errlen);

/* Waits until every accepted publish has completed, at most timeout_ms. Returns the number still
 * pending (0 = all done). */
int mqtt_flush(struct mqtt_client *c, int timeout_ms);

/* Stops the inbound stream by disconnecting (keeping the session: with clean_start off and a
 * session expiry the broker queues QoS 1/2 messages meanwhile). Unsubscribing instead would make
 * the broker drop them. Messages paho had already received may still be delivered to on_message
 * shortly after this returns; they are acknowledged, so the caller must still handle them.
 * Publishing while paused is possible but they wait for mqtt_resume(). Returns 0 or -1. */
int mqtt_pause(struct mqtt_client *c, int timeout_ms, char *err, size_t errlen);
/* Reconnects after mqtt_pause(); does not wait (on_connected tells when it is back; failures
 * are retried with back-off). Returns 0 or -1 when the reconnect could not even be started. */
int mqtt_resume(struct mqtt_client *c, char *err, size_t errlen);

/* Disconnects cleanly, giving in-flight publishes up to timeout_ms to complete first.
 * Returns 0 or -1 with the reason. Automatic reconnect stops. */
int mqtt_disconnect(struct mqtt_client *c, int timeout_ms, char *err, size_t errlen);

void mqtt_client_stats(struct mqtt_client *c, struct mqtt_stats *out);

/* Disconnects if needed (1 s grace) and frees everything. Publishes still pending are reported to
 * on_publish_done as failed. Accepts NULL. */
void mqtt_client_free(struct mqtt_client *c);

/* "mqtt://host:1883 client sensor-sim-1": the context errors and logs of this client carry. */
const char *mqtt_client_name(const struct mqtt_client *c);

#endif
