/* The shared MQTT client (common/mqtt.c) against a real mosquitto started on a free loopback
 * port: round trips with exact bytes, refusals reported with their reason codes, the publish
 * window, pause/resume with a persistent session, pending publishes at free, and reconnecting
 * with renewed subscriptions after a broker restart. Skipped when mosquitto is not installed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lifecycle.h"
#include "log.h"
#include "mqtt.h"

static char dir[64];
static char url[64];
static int port;
static pid_t broker = -1;

static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(a);
	if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &len) < 0)
		return -1;
	close(fd);
	return ntohs(a.sin_port);
}

static bool port_open(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET,
	                        .sin_port = htons((uint16_t)port),
	                        .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	if (fd >= 0)
		close(fd);
	return ok;
}

static void sleep_ms(int ms)
{
	struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int broker_start(void)
{
	broker = fork();
	if (broker == 0) {
		char conf[96];
		snprintf(conf, sizeof(conf), "%s/mosquitto.conf", dir);
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		execlp("mosquitto", "mosquitto", "-c", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) {
		if (port_open())
			return 0;
		int st;
		if (waitpid(broker, &st, WNOHANG) == broker) {
			broker = -1;
			return -1;
		}
		sleep_ms(50);
	}
	return -1;
}

static void broker_stop(void)
{
	if (broker > 0) {
		kill(broker, SIGTERM);
		waitpid(broker, NULL, 0);
		broker = -1;
	}
}

static void write_file(const char *name, const char *text)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int setup(void **state)
{
	(void)state;
	if (system("command -v mosquitto >/dev/null 2>&1 && command -v mosquitto_passwd >/dev/null "
	           "2>&1") != 0)
		return 0; /* tests skip */
	snprintf(dir, sizeof(dir), "/tmp/iotpipe-mqtt-test-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	port = free_port();
	snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", port);
	char conf[1024], cmd[256];
	/* Users: "u" may use ok/#, q/# and t/# only; "admin" may do anything. */
	snprintf(cmd, sizeof(cmd),
	         "mosquitto_passwd -c -b %s/pw u pw-u >/dev/null 2>&1 && "
	         "mosquitto_passwd -b %s/pw admin pw-a >/dev/null 2>&1",
	         dir, dir);
	if (system(cmd) != 0)
		return -1;
	write_file("acl", "user u\ntopic readwrite ok/#\ntopic readwrite q/#\ntopic readwrite t/#\n"
	                  "user admin\ntopic readwrite #\n");
	snprintf(conf, sizeof(conf),
	         "listener %d 127.0.0.1\nallow_anonymous false\npassword_file %s/pw\n"
	         "acl_file %s/acl\npersistence false\nmax_queued_messages 10000\n",
	         port, dir, dir);
	write_file("mosquitto.conf", conf);
	chmod(dir, 0755);
	char pw[96], acl[96];
	snprintf(pw, sizeof(pw), "%s/pw", dir);
	snprintf(acl, sizeof(acl), "%s/acl", dir);
	chmod(pw, 0644);
	chmod(acl, 0644);
	return broker_start();
}

static int teardown(void **state)
{
	(void)state;
	broker_stop();
	if (dir[0]) {
		char cmd[128];
		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd) != 0)
			return -1;
	}
	return 0;
}

/* ---- a recording caller ---- */

struct rec {
	atomic_int received, ok, failed, connected, reconnected;
	atomic_int bytes_ok; /* messages whose payload matched what was sent */
	char reason[256];
	const void *expect;
	size_t expect_len;
};

static void on_message(void *ctx, const char *topic, size_t topic_len, const void *payload,
                       size_t len, int qos, bool retained)
{
	struct rec *r = ctx;
	(void)retained;
	assert_int_equal(strlen(topic), topic_len);
	assert_true(qos >= 0 && qos <= 2);
	if (r->expect && len == r->expect_len && memcmp(payload, r->expect, len) == 0)
		atomic_fetch_add(&r->bytes_ok, 1);
	atomic_fetch_add(&r->received, 1);
}

static void on_done(void *ctx, void *msg_ctx, bool ok, const char *reason)
{
	struct rec *r = ctx;
	(void)msg_ctx;
	if (ok) {
		atomic_fetch_add(&r->ok, 1);
	} else {
		snprintf(r->reason, sizeof(r->reason), "%s", reason ? reason : "(none)");
		atomic_fetch_add(&r->failed, 1);
	}
}

static void on_connected(void *ctx, bool reconnect)
{
	struct rec *r = ctx;
	atomic_fetch_add(reconnect ? &r->reconnected : &r->connected, 1);
}

static struct mqtt_client *client(struct rec *r, const char *id, const char *user, const char *pass,
                                  const struct mqtt_sub *subs, size_t nsubs, int version,
                                  long long expiry)
{
	struct mqtt_options o;
	mqtt_options_init(&o);
	o.url = url;
	o.client_id = id;
	o.username = user;
	o.password = pass;
	o.subs = subs;
	o.nsubs = nsubs;
	o.version = version;
	o.session_expiry_s = expiry;
	o.clean_start = expiry == 0;
	o.on_message = on_message;
	o.on_publish_done = on_done;
	o.on_connected = on_connected;
	o.ctx = r;
	char err[256];
	struct mqtt_client *c = mqtt_client_new(&o, err, sizeof(err));
	if (!c)
		fail_msg("mqtt_client_new: %s", err);
	return c;
}

static bool wait_for(atomic_int *v, int want, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (atomic_load(v) >= want)
			return true;
		sleep_ms(10);
	}
	return atomic_load(v) >= want;
}

#define SKIP_WITHOUT_BROKER()                                                                      \
	do {                                                                                       \
		if (broker <= 0)                                                                   \
			skip();                                                                    \
	} while (0)

static void test_round_trip(void **state)
{
	(void)state;
	SKIP_WITHOUT_BROKER();
	for (int version = 4; version <= 5; version++) {
		struct rec r = {0};
		/* Payload bytes are opaque: NUL and invalid UTF-8 must arrive unchanged. */
		static const unsigned char payload[] = {'{', 0, 0xff, 0xfe, '"', '}', 0x80};
		r.expect = payload;
		r.expect_len = sizeof(payload);
		struct mqtt_sub sub = {"t/#", 1};
		struct mqtt_client *c = client(&r, "rt", "u", "pw-u", &sub, 1, version, 0);
		char err[256];
		assert_int_equal(mqtt_connect(c, 5000, err, sizeof(err)), 0);
		assert_int_equal(atomic_load(&r.connected), 1);
		for (int i = 0; i < 200; i++)
			assert_int_equal(mqtt_publish(c, "t/x", payload, sizeof(payload), i % 2,
			                              false, 5000, NULL, err, sizeof(err)),
			                 0);
		assert_int_equal(mqtt_flush(c, 5000), 0);
		assert_true(wait_for(&r.received, 200, 5000));
		assert_int_equal(atomic_load(&r.bytes_ok), 200);
		assert_int_equal(atomic_load(&r.ok), 200);
		assert_int_equal(atomic_load(&r.failed), 0);
		struct mqtt_stats st;
		mqtt_client_stats(c, &st);
		assert_int_equal(st.published, 200);
		assert_int_equal(st.confirmed, 200);
		assert_int_equal(st.received, 200);
		assert_int_equal(st.inflight, 0);
		assert_true(st.connected);
		assert_int_equal(mqtt_disconnect(c, 1000, err, sizeof(err)), 0);
		mqtt_client_free(c);
	}
	mqtt_client_free(NULL);
}

static void test_refusals(void **state)
{
	(void)state;
	SKIP_WITHOUT_BROKER();
	struct rec r = {0};
	char err[256];

	/* Bad credentials: refused at once, not after the whole wait. */
	struct mqtt_client *c = client(&r, "bad", "u", "wrong", NULL, 0, 5, 0);
	int64_t t0 = now_mono_ms();
	assert_int_equal(mqtt_connect(c, 20000, err, sizeof(err)), -1);
	assert_true(now_mono_ms() - t0 < 10000);
	assert_non_null(strstr(err, "0x87"));
	assert_null(strstr(err, "wrong")); /* the password never shows */
	mqtt_client_free(c);

	/* Malformed filters are refused at creation: a broker would drop the connection over them
	 * and reconnecting would repeat that forever. (mosquitto's ACL file never refuses a
	 * SUBSCRIBE, it filters deliveries, so a broker-side refusal is not exercised here.) */
	static const char *const bad_filters[] = {"a/#/b",    "a#",        "a/b+",
	                                          "$share/g", "$share//a", "$share/g+/a"};
	for (size_t i = 0; i < sizeof(bad_filters) / sizeof(*bad_filters); i++) {
		struct mqtt_sub bad = {bad_filters[i], 1};
		struct mqtt_options bo;
		mqtt_options_init(&bo);
		bo.url = url;
		bo.client_id = "f";
		bo.subs = &bad;
		bo.nsubs = 1;
		bo.on_message = on_message;
		assert_null(mqtt_client_new(&bo, err, sizeof(err)));
		assert_non_null(strstr(err, bad_filters[i]));
	}
	struct mqtt_sub good[] = {{"a/+/b/#", 1}, {"#", 0}, {"$share/g/+", 1}, {"+", 2}};
	c = client(&r, "sub", "u", "pw-u", good, 4, 5, 0);
	mqtt_client_free(c);

	/* A publish the ACL denies: MQTT 5 says so in the PUBACK, and the caller hears it. */
	c = client(&r, "pub", "u", "pw-u", NULL, 0, 5, 0);
	assert_int_equal(mqtt_connect(c, 5000, err, sizeof(err)), 0);
	assert_int_equal(
	    mqtt_publish(c, "secret/x", "1", 1, 1, false, 1000, NULL, err, sizeof(err)), 0);
	assert_int_equal(mqtt_publish(c, "ok/x", "1", 1, 1, false, 1000, NULL, err, sizeof(err)),
	                 0);
	assert_int_equal(mqtt_flush(c, 5000), 0);
	assert_int_equal(atomic_load(&r.failed), 1);
	assert_int_equal(atomic_load(&r.ok), 1);
	assert_non_null(strstr(r.reason, "PUBACK reason 0x87"));

	/* What can never be valid is refused before it reaches the broker. */
	assert_int_equal(mqtt_publish(c, "a/#", "1", 1, 1, false, 0, NULL, err, sizeof(err)), -1);
	assert_int_equal(mqtt_publish(c, "a/+/b", "1", 1, 1, false, 0, NULL, err, sizeof(err)), -1);
	assert_int_equal(mqtt_publish(c, "", "1", 1, 1, false, 0, NULL, err, sizeof(err)), -1);
	assert_int_equal(mqtt_publish(c, "ok/x", "1", 1, 3, false, 0, NULL, err, sizeof(err)), -1);
	mqtt_client_free(c);

	/* Options that cannot work are refused at creation, with the URL for context. */
	struct mqtt_options o;
	mqtt_options_init(&o);
	o.client_id = "x";
	o.url = "http://127.0.0.1:1883";
	assert_null(mqtt_client_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "http://127.0.0.1:1883"));
	o.url = url;
	o.ca_file = "/nonexistent/ca.pem";
	assert_null(mqtt_client_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "mqtts://"));
	o.url = "mqtts://127.0.0.1:1";
	assert_null(mqtt_client_new(&o, err, sizeof(err)));
	assert_non_null(strstr(err, "/nonexistent/ca.pem"));
	o.ca_file = NULL;
	o.client_id = NULL;
	assert_null(mqtt_client_new(&o, err, sizeof(err)));
}

static void test_pause_keeps_session(void **state)
{
	(void)state;
	SKIP_WITHOUT_BROKER();
	struct rec r = {0}, pr = {0};
	char err[256];
	struct mqtt_sub sub = {"q/#", 1};
	struct mqtt_client *c = client(&r, "persistent", "u", "pw-u", &sub, 1, 5, 60);
	struct mqtt_client *p = client(&pr, "producer", "admin", "pw-a", NULL, 0, 5, 0);
	assert_int_equal(mqtt_connect(c, 5000, err, sizeof(err)), 0);
	assert_int_equal(mqtt_connect(p, 5000, err, sizeof(err)), 0);

	assert_int_equal(mqtt_pause(c, 1000, err, sizeof(err)), 0);
	struct mqtt_stats st;
	mqtt_client_stats(c, &st);
	assert_true(st.paused);
	assert_false(st.connected);
	/* The broker queues these for the paused session. */
	for (int i = 0; i < 50; i++)
		assert_int_equal(
		    mqtt_publish(p, "q/1", "m", 1, 1, false, 5000, NULL, err, sizeof(err)), 0);
	assert_int_equal(mqtt_flush(p, 5000), 0);
	sleep_ms(200);
	assert_int_equal(atomic_load(&r.received), 0);

	/* Publishing while paused is accepted and waits; a full window says busy, not blocks. */
	assert_int_equal(mqtt_publish(c, "q/2", "x", 1, 1, false, 0, NULL, err, sizeof(err)), 0);

	assert_int_equal(mqtt_resume(c, err, sizeof(err)), 0);
	assert_true(wait_for(&r.reconnected, 1, 5000));
	/* 50 queued while away + our own publish on q/2 coming back. */
	assert_true(wait_for(&r.received, 51, 5000));
	assert_int_equal(mqtt_flush(c, 5000), 0);
	assert_int_equal(atomic_load(&r.ok), 1);
	mqtt_client_stats(c, &st);
	assert_int_equal(st.reconnects, 1);
	assert_false(st.paused);
	mqtt_client_free(c);
	mqtt_client_free(p);
}

static void test_window_and_free(void **state)
{
	(void)state;
	SKIP_WITHOUT_BROKER();
	struct rec r = {0};
	char err[256];
	struct mqtt_options o;
	mqtt_options_init(&o);
	o.url = url;
	o.client_id = "window";
	o.username = "u";
	o.password = "pw-u";
	o.max_inflight = 3;
	o.on_publish_done = on_done;
	o.ctx = &r;
	struct mqtt_client *c = mqtt_client_new(&o, err, sizeof(err));
	assert_non_null(c);
	/* Before any connection, publishes queue (up to the window) and then report busy. */
	for (int i = 0; i < 3; i++)
		assert_int_equal(
		    mqtt_publish(c, "ok/w", "1", 1, 1, false, 0, NULL, err, sizeof(err)), 0);
	int64_t t0 = now_mono_ms();
	assert_int_equal(mqtt_publish(c, "ok/w", "1", 1, 1, false, 300, NULL, err, sizeof(err)),
	                 MQTT_BUSY);
	assert_true(now_mono_ms() - t0 >= 250);
	struct mqtt_stats st;
	mqtt_client_stats(c, &st);
	assert_int_equal(st.inflight, 3);
	assert_int_equal(mqtt_flush(c, 100), 3);
	/* Freed with publishes pending: each is reported as failed, none forgotten. */
	mqtt_client_free(c);
	assert_int_equal(atomic_load(&r.failed), 3);
	assert_int_equal(atomic_load(&r.ok), 0);
}

static void test_reconnect_after_broker_restart(void **state)
{
	(void)state;
	SKIP_WITHOUT_BROKER();
	struct rec r = {0};
	char err[256];
	struct mqtt_sub sub = {"t/#", 1};
	struct mqtt_client *c = client(&r, "restart", "u", "pw-u", &sub, 1, 5, 0);
	assert_int_equal(mqtt_connect(c, 5000, err, sizeof(err)), 0);
	broker_stop();
	assert_int_equal(broker_start(), 0);
	/* Back within the reconnect back-off, subscriptions renewed without the caller. */
	assert_true(wait_for(&r.reconnected, 1, 10000));
	struct mqtt_stats st;
	for (int i = 0; i < 100; i++) {
		mqtt_client_stats(c, &st);
		if (st.connected)
			break;
		sleep_ms(50);
	}
	sleep_ms(200); /* the SUBACK */
	assert_int_equal(mqtt_publish(c, "t/again", "1", 1, 1, false, 1000, NULL, err, sizeof(err)),
	                 0);
	assert_true(wait_for(&r.received, 1, 5000));
	mqtt_client_stats(c, &st);
	assert_int_equal(st.reconnects, 1);
	assert_true(st.connection_losses >= 1);
	mqtt_client_free(c);
}

int main(void)
{
	log_init("test_mqtt", LOG_WARN);
	signal(SIGPIPE, SIG_IGN);
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_pause_keeps_session),
	    cmocka_unit_test(test_reconnect_after_broker_restart),
	    /* Last: paho 1.3.12 drops the copies of publishes it never sent when a client is
	     * destroyed, and LSan sees that once paho restarts its heap tracking for a later
	     * client. Nothing of ours leaks; no later client means no false report. */
	    cmocka_unit_test(test_window_and_free),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
