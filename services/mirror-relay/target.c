/* Topic metadata and creation (see target.h). */
#include "target.h"

#include <stdio.h>
#include <string.h>

int target_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *err,
			    size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	if (!rkt) {
		snprintf(err, errlen, "%s: %s", topic, rd_kafka_err2str(rd_kafka_last_error()));
		return -1;
	}
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
	rd_kafka_topic_destroy(rkt);
	int rc = 0;
	if (e) {
		snprintf(err, errlen, "metadata of %s: %s", topic, rd_kafka_err2str(e));
	} else if (md->topic_cnt != 1) {
		snprintf(err, errlen, "metadata of %s: no answer for the topic", topic);
	} else if (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
		snprintf(err, errlen, "topic %s does not exist", topic);
		rc = -1;
	} else if (md->topics[0].err) {
		snprintf(err, errlen, "metadata of %s: %s", topic,
			 rd_kafka_err2str(md->topics[0].err));
	} else {
		rc = md->topics[0].partition_cnt;
	}
	if (md)
		rd_kafka_metadata_destroy(md);
	return rc;
}

int target_topic_exists(rd_kafka_t *rk, const char *topic, int *partitions, int timeout_ms,
			char *err, size_t errlen)
{
	const struct rd_kafka_metadata *md = NULL;
	rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, NULL, &md, timeout_ms);
	if (e) {
		snprintf(err, errlen, "topic list: %s", rd_kafka_err2str(e));
		return -1;
	}
	int rc = 0;
	for (int i = 0; i < md->topic_cnt; i++)
		if (strcmp(md->topics[i].topic, topic) == 0 && !md->topics[i].err) {
			*partitions = md->topics[i].partition_cnt;
			rc = 1;
			break;
		}
	rd_kafka_metadata_destroy(md);
	return rc;
}

int target_topic_create(rd_kafka_t *rk, const char *topic, int partitions, int replication,
			int timeout_ms, char *err, size_t errlen)
{
	char why[512];
	int rc = -1;
	rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, partitions, replication, why,
							 sizeof(why));
	rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
	rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
	rd_kafka_event_t *ev = NULL;
	if (!nt) {
		snprintf(err, errlen, "cannot create %s: %s", topic, why);
		goto out;
	}
	if (!ao || !q ||
	    rd_kafka_AdminOptions_set_request_timeout(ao, timeout_ms, why, sizeof(why)) ||
	    rd_kafka_AdminOptions_set_operation_timeout(ao, timeout_ms, why, sizeof(why))) {
		snprintf(err, errlen, "cannot create %s: admin options", topic);
		goto out;
	}
	rd_kafka_CreateTopics(rk, &nt, 1, ao, q);
	/* The request times out on its own; the extra second only covers the event's delivery. */
	ev = rd_kafka_queue_poll(q, timeout_ms + 1000);
	if (!ev) {
		snprintf(err, errlen, "cannot create %s: no answer", topic);
		goto out;
	}
	if (rd_kafka_event_error(ev)) {
		snprintf(err, errlen, "cannot create %s: %s", topic,
			 rd_kafka_event_error_string(ev));
		goto out;
	}
	size_t n = 0;
	const rd_kafka_topic_result_t **res =
		rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
	rd_kafka_resp_err_t e = n == 1 ? rd_kafka_topic_result_error(res[0])
				       : RD_KAFKA_RESP_ERR__BAD_MSG;
	if (e && e != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
		const char *s = n == 1 ? rd_kafka_topic_result_error_string(res[0]) : NULL;
		snprintf(err, errlen, "cannot create %s: %s", topic, s ? s : rd_kafka_err2str(e));
		goto out;
	}
	rc = 0;
out:
	if (ev)
		rd_kafka_event_destroy(ev);
	if (q)
		rd_kafka_queue_destroy(q);
	if (ao)
		rd_kafka_AdminOptions_destroy(ao);
	if (nt)
		rd_kafka_NewTopic_destroy(nt);
	return rc;
}
