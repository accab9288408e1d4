/* kafka-mock: an in-memory Kafka cluster for development and tests.
 *
 * It wraps librdkafka's mock cluster (real Kafka protocol on loopback ports, no disk), prints the
 * bootstrap list as the first line on stdout, then serves control commands read from stdin (see
 * ctl.h) until SIGTERM or SIGINT. End of stdin only ends the commands: the cluster keeps running,
 * so scripts may start it with stdin from /dev/null or a FIFO. */
#include "ctl.h"

#include "config.h"
#include "kafka.h"
#include "lifecycle.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LINE_MAX_BYTES 4096

static const char details[] =
    "The first line on stdout is the bootstrap list (127.0.0.1:PORT,...). Then each line on\n"
    "stdin is a command, answered by one line on stdout, 'ok ...' or 'error ...':\n"
    "  down BROKER|all                     disconnect a broker and refuse connections\n"
    "  up BROKER|all                       accept connections again\n"
    "  topic NAME PARTITIONS [REPLICATION] create a topic\n"
    "  error API ERROR COUNT               fail the next COUNT requests of type API\n"
    "                                      (e.g. error Produce NOT_LEADER_FOR_PARTITION 3)\n"
    "  leader TOPIC PARTITION BROKER|none  move a partition's leadership\n"
    "  rtt BROKER|all MS                   delay every response of a broker\n"
    "  clear [API]                         drop pending injected errors\n"
    "  bootstrap, help, quit\n"
    "End of stdin does not stop the cluster; SIGTERM, SIGINT or 'quit' do (exit 0).\n"
    "Topics clients create on first use get 4 partitions. Every partition keeps about 5 MB;\n"
    "older data is dropped. This is a development and test cluster: deployments use real Kafka.";

/* A closed stdin/stdout/stderr would let a listening socket take fd 0 and be read as commands. */
static void stdio_fds_ensure_open(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) != -1 || errno != EBADF)
			continue;
		int n = open("/dev/null", fd == 0 ? O_RDONLY : O_WRONLY);
		if (n >= 0 && n != fd) {
			dup2(n, fd);
			close(n);
		}
	}
}

/* The mock cluster needs a client handle for its bookkeeping; it never connects anywhere, so it
 * has no bootstrap.servers. -X properties apply to it (e.g. debug=mock). */
static rd_kafka_t *mock_handle_new(char *err, size_t errlen)
{
	rd_kafka_conf_t *conf = kafka_conf_new(NULL, NULL, NULL, err, errlen);
	if (!conf)
		return NULL;
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
	if (!rk)
		rd_kafka_conf_destroy(conf);
	/* On success rd_kafka_new() owns conf. */
	return rk;
}

/* Writes one line and flushes it, so a reader waiting on a pipe or file sees it at once. */
static int stdout_line(const char *text)
{
	if (fputs(text, stdout) == EOF || fputc('\n', stdout) == EOF || fflush(stdout) == EOF)
		return -1;
	return 0;
}

struct ctl_reader {
	int fd; /* -1 once stdin reached its end */
	char line[LINE_MAX_BYTES];
	size_t len;
	bool overlong; /* discarding the rest of a line that did not fit */
	bool stdout_failed;
};

static void ctl_answer(struct ctl_reader *rd, const char *answer)
{
	if (!answer[0] || rd->stdout_failed)
		return;
	if (stdout_line(answer) < 0) {
		log_warn("cannot write answers to stdout (%s); commands still run",
		         strerror(errno));
		rd->stdout_failed = true;
	}
}

/* Runs every complete line in the buffer; keeps a partial one for the next read. */
static bool ctl_lines_run(struct ctl_reader *rd, rd_kafka_mock_cluster_t *mcluster, int broker_cnt)
{
	char answer[1024];
	size_t start = 0;
	bool quit = false;
	for (size_t i = 0; i < rd->len && !quit; i++) {
		if (rd->line[i] != '\n')
			continue;
		rd->line[i] = 0;
		if (rd->overlong) {
			rd->overlong = false;
		} else {
			quit = mock_ctl_execute(mcluster, broker_cnt, rd->line + start, answer,
			                        sizeof(answer));
			ctl_answer(rd, answer);
		}
		start = i + 1;
	}
	memmove(rd->line, rd->line + start, rd->len - start);
	rd->len -= start;
	if (rd->len == sizeof(rd->line)) {
		if (!rd->overlong)
			ctl_answer(rd, "error line too long (at most 4095 bytes)");
		rd->overlong = true;
		rd->len = 0;
	}
	return quit;
}

/* Waits up to 200 ms for input, so a stop signal is noticed promptly. Returns true on "quit". */
static bool ctl_poll(struct ctl_reader *rd, rd_kafka_mock_cluster_t *mcluster, int broker_cnt)
{
	struct pollfd pfd = {.fd = rd->fd, .events = POLLIN};
	int r = poll(&pfd, rd->fd < 0 ? 0 : 1, 200);
	if (r < 0 && errno != EINTR) {
		log_error("poll on stdin: %s; no more control commands", strerror(errno));
		rd->fd = -1;
	}
	if (r <= 0)
		return false;
	ssize_t n = read(rd->fd, rd->line + rd->len, sizeof(rd->line) - rd->len);
	if (n < 0) {
		if (errno == EINTR || errno == EAGAIN)
			return false;
		log_error("reading stdin: %s; no more control commands", strerror(errno));
		rd->fd = -1;
		return false;
	}
	if (n == 0) {
		log_info("end of stdin: no more control commands; running until SIGTERM");
		rd->fd = -1;
		/* A last command without a newline still counts. ctl_lines_run() never leaves
		 * the buffer full, so the newline fits. */
		if (rd->len == 0 || rd->overlong)
			return false;
		rd->line[rd->len++] = '\n';
		return ctl_lines_run(rd, mcluster, broker_cnt);
	}
	rd->len += (size_t)n;
	return ctl_lines_run(rd, mcluster, broker_cnt);
}

int main(int argc, char **argv)
{
	long long brokers = 1;
	struct strlist topics = {0};
	struct opt opts[] = {
	    {"broker-count", 0, OPT_INT, &brokers, "1", "N", "number of brokers (ids 1..N)", 0, 1,
	     MOCK_BROKERS_MAX},
	    {"topic", 't', OPT_LIST, &topics, NULL, "NAME:PARTITIONS[:REPLICATION]",
	     "create a topic at start (repeatable)"},
	    {NULL},
	};
	const struct config_spec spec = {
	    .prog = "kafka-mock",
	    .summary = "In-memory Kafka cluster for development and tests (librdkafka's mock "
	               "cluster).",
	    .details = details,
	    .opts = opts,
	};
	char err[512];
	int status = 1;
	rd_kafka_t *rk = NULL;
	rd_kafka_mock_cluster_t *mcluster = NULL;
	struct mock_topic_spec *specs = NULL;

	stdio_fds_ensure_open();
	config_parse(&spec, argc, argv);
	lifecycle_init();

	/* Every topic is checked before anything starts, so a typo exits 2 with the reason. */
	specs = calloc(topics.len + 1, sizeof(*specs));
	if (!specs)
		config_die("out of memory");
	for (size_t i = 0; i < topics.len; i++)
		if (mock_topic_spec_parse(topics.items[i], (int)brokers, &specs[i], err,
		                          sizeof(err)) < 0) {
			free(specs);
			config_die("--topic %s", err);
		}

	rk = mock_handle_new(err, sizeof(err));
	if (!rk) {
		free(specs);
		config_die("%s", err);
	}
	mcluster = rd_kafka_mock_cluster_new(rk, (int)brokers);
	if (!mcluster) {
		log_error(
		    "cannot start the mock cluster (%lld brokers): see the librdkafka log above",
		    brokers);
		goto out;
	}
	for (size_t i = 0; i < topics.len; i++) {
		if (mock_topic_create(mcluster, &specs[i], err, sizeof(err)) < 0) {
			log_error("--topic %s: %s", topics.items[i], err);
			goto out;
		}
		log_info("topic %s: %d partitions", specs[i].name, specs[i].partitions);
	}

	const char *bootstrap = rd_kafka_mock_cluster_bootstraps(mcluster);
	if (stdout_line(bootstrap) < 0) {
		log_error("cannot write the bootstrap list to stdout: %s", strerror(errno));
		goto out;
	}
	log_info("%lld broker(s) at %s", brokers, bootstrap);

	struct ctl_reader rd = {.fd = STDIN_FILENO};
	while (lifecycle_running())
		if (ctl_poll(&rd, mcluster, (int)brokers))
			lifecycle_request_stop();
	log_info("stopping");
	status = 0;
out:
	if (mcluster)
		rd_kafka_mock_cluster_destroy(mcluster);
	if (rk)
		rd_kafka_destroy(rk);
	free(specs);
	config_free();
	return status;
}
