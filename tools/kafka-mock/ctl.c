/* Control commands for the mock cluster. Every argument is checked here before it reaches
 * librdkafka: the mock API asserts or misbehaves on out-of-range values (a partition count of 0,
 * a negative partition), and a test's typo should get an answer, not a crashed cluster. */
#include "ctl.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The request types the mock cluster serves (rdkafka_mock_handlers.c in librdkafka 2.0.2).
 * Errors pushed for any other type would never be returned, so those are refused. */
static const struct {
	const char *name;
	int16_t key;
} mock_apis[] = {
    {"Produce", 0},          {"Fetch", 1},
    {"ListOffsets", 2},      {"Metadata", 3},
    {"OffsetCommit", 8},     {"OffsetFetch", 9},
    {"FindCoordinator", 10}, {"JoinGroup", 11},
    {"Heartbeat", 12},       {"LeaveGroup", 13},
    {"SyncGroup", 14},       {"ApiVersions", 18},
    {"InitProducerId", 22},  {"AddPartitionsToTxn", 24},
    {"AddOffsetsToTxn", 25}, {"EndTxn", 26},
    {"TxnOffsetCommit", 28},
};
#define MOCK_API_CNT (sizeof(mock_apis) / sizeof(mock_apis[0]))

static const char help_text[] =
    "commands: down BROKER|all, up BROKER|all, topic NAME PARTITIONS [REPLICATION], "
    "error API ERROR COUNT, leader TOPIC PARTITION BROKER|none, rtt BROKER|all MS, "
    "clear [API], bootstrap, help, quit";

static void say(char *out, size_t outlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(char *out, size_t outlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(out, outlen, fmt, ap);
	va_end(ap);
}

/* Whole decimal number in [min, max]; nothing else on the token. */
static int parse_long(const char *s, long min, long max, long *out)
{
	if (!s || !*s)
		return -1;
	errno = 0;
	char *end;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -1;
	*out = v;
	return 0;
}

/* "all" means every broker (-1 for the mock API); otherwise an id in 1..broker_cnt. */
static int parse_broker(const char *s, int broker_cnt, bool allow_all, int32_t *id)
{
	long v;
	if (allow_all && s && strcasecmp(s, "all") == 0) {
		*id = -1;
		return 0;
	}
	if (parse_long(s, 1, broker_cnt, &v) < 0)
		return -1;
	*id = (int32_t)v;
	return 0;
}

static int parse_api(const char *s, int16_t *key)
{
	long v;
	bool numeric = parse_long(s, 0, INT16_MAX, &v) == 0;
	for (size_t i = 0; i < MOCK_API_CNT; i++)
		if (numeric ? mock_apis[i].key == v : strcasecmp(s, mock_apis[i].name) == 0) {
			*key = mock_apis[i].key;
			return 0;
		}
	return -1;
}

static const char *api_name(int16_t key)
{
	for (size_t i = 0; i < MOCK_API_CNT; i++)
		if (mock_apis[i].key == key)
			return mock_apis[i].name;
	return "?";
}

/* An error name as librdkafka spells it (NOT_LEADER_FOR_PARTITION, _TRANSPORT), with or without
 * the RD_KAFKA_RESP_ERR_ prefix, in any case; or its number. */
static int parse_error(const char *s, rd_kafka_resp_err_t *err)
{
	const struct rd_kafka_err_desc *descs;
	size_t cnt;
	long v;
	bool numeric = parse_long(s, -1000, 10000, &v) == 0;
	if (!numeric && strncasecmp(s, "RD_KAFKA_RESP_ERR_", 18) == 0)
		s += 18;
	rd_kafka_get_err_descs(&descs, &cnt);
	for (size_t i = 0; i < cnt; i++) {
		if (!descs[i].name || descs[i].code == RD_KAFKA_RESP_ERR_NO_ERROR)
			continue;
		if (numeric ? (long)descs[i].code == v : strcasecmp(s, descs[i].name) == 0) {
			*err = descs[i].code;
			return 0;
		}
	}
	return -1;
}

static bool topic_name_valid(const char *name, size_t len)
{
	if (len == 0 || len > MOCK_TOPIC_NAME_MAX)
		return false;
	if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return false;
	}
	return true;
}

static int topic_spec_fill(const char *name, size_t namelen, const char *parts, const char *repl,
                           int broker_cnt, struct mock_topic_spec *spec, char *err, size_t errlen)
{
	long p, r = 1;
	if (!topic_name_valid(name, namelen)) {
		say(err, errlen,
		    "topic name '%.*s' is not valid (1-%d characters of a-z A-Z 0-9 . _ -, not . "
		    "or ..)",
		    (int)(namelen > 300 ? 300 : namelen), name, MOCK_TOPIC_NAME_MAX);
		return -1;
	}
	if (parse_long(parts, 1, MOCK_PARTITIONS_MAX, &p) < 0) {
		say(err, errlen, "partition count '%s' is not a number in [1, %d]",
		    parts ? parts : "", MOCK_PARTITIONS_MAX);
		return -1;
	}
	if (repl && parse_long(repl, 1, broker_cnt, &r) < 0) {
		say(err, errlen,
		    "replication factor '%s' is not a number in [1, %d] (the broker count)", repl,
		    broker_cnt);
		return -1;
	}
	memcpy(spec->name, name, namelen);
	spec->name[namelen] = 0;
	spec->partitions = (int)p;
	spec->replication = (int)r;
	return 0;
}

int mock_topic_spec_parse(const char *text, int broker_cnt, struct mock_topic_spec *spec, char *err,
                          size_t errlen)
{
	const char *c1 = strchr(text, ':');
	if (!c1) {
		say(err, errlen, "'%s': expected NAME:PARTITIONS[:REPLICATION]", text);
		return -1;
	}
	char nums[64];
	snprintf(nums, sizeof(nums), "%s", c1 + 1);
	char *c2 = strchr(nums, ':');
	if (c2)
		*c2++ = 0;
	if (strlen(c1 + 1) >= sizeof(nums)) {
		say(err, errlen, "'%s': partition count too long", text);
		return -1;
	}
	return topic_spec_fill(text, (size_t)(c1 - text), nums, c2, broker_cnt, spec, err, errlen);
}

int mock_topic_create(rd_kafka_mock_cluster_t *mcluster, const struct mock_topic_spec *spec,
                      char *err, size_t errlen)
{
	rd_kafka_resp_err_t e =
	    rd_kafka_mock_topic_create(mcluster, spec->name, spec->partitions, spec->replication);
	if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
		say(err, errlen, "topic %s already exists", spec->name);
		return -1;
	}
	if (e) {
		say(err, errlen, "topic %s: %s", spec->name, rd_kafka_err2str(e));
		return -1;
	}
	return 0;
}

static void cmd_updown(rd_kafka_mock_cluster_t *mcluster, int broker_cnt, char **argv, int argc,
                       char *out, size_t outlen)
{
	bool up = strcmp(argv[0], "up") == 0;
	int32_t id;
	if (argc != 2 || parse_broker(argv[1], broker_cnt, true, &id) < 0) {
		say(out, outlen, "error usage: %s BROKER|all (brokers are 1..%d)", argv[0],
		    broker_cnt);
		return;
	}
	rd_kafka_resp_err_t e = up ? rd_kafka_mock_broker_set_up(mcluster, id)
	                           : rd_kafka_mock_broker_set_down(mcluster, id);
	if (e)
		say(out, outlen, "error %s %s: %s", argv[0], argv[1], rd_kafka_err2str(e));
	else
		say(out, outlen, "ok %s %s", argv[0], argv[1]);
}

static void cmd_topic(rd_kafka_mock_cluster_t *mcluster, int broker_cnt, char **argv, int argc,
                      char *out, size_t outlen)
{
	struct mock_topic_spec spec;
	char err[512];
	if (argc < 3 || argc > 4) {
		say(out, outlen, "error usage: topic NAME PARTITIONS [REPLICATION]");
		return;
	}
	if (topic_spec_fill(argv[1], strlen(argv[1]), argv[2], argc == 4 ? argv[3] : NULL,
	                    broker_cnt, &spec, err, sizeof(err)) < 0 ||
	    mock_topic_create(mcluster, &spec, err, sizeof(err)) < 0) {
		say(out, outlen, "error %s", err);
		return;
	}
	say(out, outlen, "ok topic %s partitions %d", spec.name, spec.partitions);
}

static void cmd_error(rd_kafka_mock_cluster_t *mcluster, char **argv, int argc, char *out,
                      size_t outlen)
{
	int16_t key;
	rd_kafka_resp_err_t code;
	long cnt;
	if (argc != 4) {
		say(out, outlen,
		    "error usage: error API ERROR COUNT (e.g. error Produce "
		    "NOT_LEADER_FOR_PARTITION 3)");
		return;
	}
	if (parse_api(argv[1], &key) < 0) {
		say(out, outlen,
		    "error unknown API '%.64s' (the mock serves Produce, Fetch, ListOffsets, "
		    "Metadata, "
		    "OffsetCommit, OffsetFetch, FindCoordinator, JoinGroup, Heartbeat, LeaveGroup, "
		    "SyncGroup, ApiVersions, InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, "
		    "EndTxn, TxnOffsetCommit, or their numbers)",
		    argv[1]);
		return;
	}
	if (parse_error(argv[2], &code) < 0) {
		say(out, outlen,
		    "error unknown error '%.64s' (a librdkafka error name such as "
		    "NOT_LEADER_FOR_PARTITION or _TRANSPORT, or its number)",
		    argv[2]);
		return;
	}
	if (parse_long(argv[3], 1, MOCK_ERROR_COUNT_MAX, &cnt) < 0) {
		say(out, outlen, "error count '%.64s' is not a number in [1, %d]", argv[3],
		    MOCK_ERROR_COUNT_MAX);
		return;
	}
	rd_kafka_resp_err_t *errs = malloc((size_t)cnt * sizeof(*errs));
	if (!errs) {
		say(out, outlen, "error out of memory for %ld errors", cnt);
		return;
	}
	for (long i = 0; i < cnt; i++)
		errs[i] = code;
	rd_kafka_mock_push_request_errors_array(mcluster, key, (size_t)cnt, errs);
	free(errs);
	say(out, outlen, "ok error %s %s %ld", api_name(key), rd_kafka_err2name(code), cnt);
}

static void cmd_leader(rd_kafka_mock_cluster_t *mcluster, int broker_cnt, char **argv, int argc,
                       char *out, size_t outlen)
{
	long part;
	int32_t id = -1;
	if (argc != 4) {
		say(out, outlen, "error usage: leader TOPIC PARTITION BROKER|none");
		return;
	}
	if (!topic_name_valid(argv[1], strlen(argv[1]))) {
		say(out, outlen, "error topic name '%.64s' is not valid", argv[1]);
		return;
	}
	if (parse_long(argv[2], 0, MOCK_PARTITIONS_MAX - 1, &part) < 0) {
		say(out, outlen, "error partition '%.64s' is not a number in [0, %d]", argv[2],
		    MOCK_PARTITIONS_MAX - 1);
		return;
	}
	if (strcasecmp(argv[3], "none") != 0 && parse_broker(argv[3], broker_cnt, false, &id) < 0) {
		say(out, outlen, "error broker '%.64s' is not 'none' or a number in [1, %d]",
		    argv[3], broker_cnt);
		return;
	}
	rd_kafka_resp_err_t e =
	    rd_kafka_mock_partition_set_leader(mcluster, argv[1], (int32_t)part, id);
	if (e)
		say(out, outlen, "error leader %s [%ld]: %s", argv[1], part, rd_kafka_err2str(e));
	else
		say(out, outlen, "ok leader %s %ld %s", argv[1], part, argv[3]);
}

static void cmd_rtt(rd_kafka_mock_cluster_t *mcluster, int broker_cnt, char **argv, int argc,
                    char *out, size_t outlen)
{
	int32_t id;
	long ms;
	if (argc != 3 || parse_broker(argv[1], broker_cnt, true, &id) < 0 ||
	    parse_long(argv[2], 0, MOCK_RTT_MS_MAX, &ms) < 0) {
		say(out, outlen, "error usage: rtt BROKER|all MS (brokers 1..%d, MS 0..%d)",
		    broker_cnt, MOCK_RTT_MS_MAX);
		return;
	}
	rd_kafka_resp_err_t e = rd_kafka_mock_broker_set_rtt(mcluster, id, (int)ms);
	if (e)
		say(out, outlen, "error rtt %s: %s", argv[1], rd_kafka_err2str(e));
	else
		say(out, outlen, "ok rtt %s %ld", argv[1], ms);
}

static void cmd_clear(rd_kafka_mock_cluster_t *mcluster, char **argv, int argc, char *out,
                      size_t outlen)
{
	int16_t key;
	if (argc > 2) {
		say(out, outlen, "error usage: clear [API]");
		return;
	}
	if (argc == 2) {
		if (parse_api(argv[1], &key) < 0) {
			say(out, outlen, "error unknown API '%.64s'", argv[1]);
			return;
		}
		rd_kafka_mock_clear_request_errors(mcluster, key);
		say(out, outlen, "ok clear %s", api_name(key));
		return;
	}
	for (size_t i = 0; i < MOCK_API_CNT; i++)
		rd_kafka_mock_clear_request_errors(mcluster, mock_apis[i].key);
	say(out, outlen, "ok clear all");
}

bool mock_ctl_execute(rd_kafka_mock_cluster_t *mcluster, int broker_cnt, char *line, char *answer,
                      size_t answerlen)
{
	char *argv[8];
	int argc = 0;
	answer[0] = 0;
	for (char *save = NULL, *tok = strtok_r(line, " \t\r\n", &save); tok;
	     tok = strtok_r(NULL, " \t\r\n", &save)) {
		if (argc == 0 && tok[0] == '#')
			return false;
		if (argc == (int)(sizeof(argv) / sizeof(argv[0]))) {
			say(answer, answerlen, "error too many arguments");
			return false;
		}
		argv[argc++] = tok;
	}
	if (argc == 0)
		return false;

	const char *cmd = argv[0];
	if (strcmp(cmd, "down") == 0 || strcmp(cmd, "up") == 0)
		cmd_updown(mcluster, broker_cnt, argv, argc, answer, answerlen);
	else if (strcmp(cmd, "topic") == 0)
		cmd_topic(mcluster, broker_cnt, argv, argc, answer, answerlen);
	else if (strcmp(cmd, "error") == 0)
		cmd_error(mcluster, argv, argc, answer, answerlen);
	else if (strcmp(cmd, "leader") == 0)
		cmd_leader(mcluster, broker_cnt, argv, argc, answer, answerlen);
	else if (strcmp(cmd, "rtt") == 0)
		cmd_rtt(mcluster, broker_cnt, argv, argc, answer, answerlen);
	else if (strcmp(cmd, "clear") == 0)
		cmd_clear(mcluster, argv, argc, answer, answerlen);
	else if (strcmp(cmd, "bootstrap") == 0 && argc == 1)
		say(answer, answerlen, "ok %s", rd_kafka_mock_cluster_bootstraps(mcluster));
	else if (strcmp(cmd, "help") == 0)
		say(answer, answerlen, "ok %s", help_text);
	else if (strcmp(cmd, "quit") == 0 && argc == 1) {
		say(answer, answerlen, "ok quit");
		return true;
	} else
		say(answer, answerlen, "error unknown command '%.64s' (try 'help')", cmd);
	return false;
}
