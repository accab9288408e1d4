#!/usr/bin/env python3
"""Turns RawMessage JSON lines into the inputs of raw-saver's naive peers in bench/raw_saver.sh,
with the same rows: a COPY text file, one INSERT per row, or multi-row INSERTs.

  raw_saver_rows.py copy|single|multi [--rows-per-insert 1000] [--autocommit] < raw.jsonl > out

single and multi run in one transaction, unless --autocommit (each statement commits).

Origins (the primary key) are synthetic positions: partition i % 16, offset i."""
import argparse
import base64
import datetime
import json
import sys


def rows(stream):
    for i, line in enumerate(stream):
        r = json.loads(line)
        p = r["payload"]
        payload = base64.b64decode(p["base64"]) if isinstance(p, dict) else p.encode()
        ts = datetime.datetime.fromtimestamp(r["received_at"] / 1000, datetime.timezone.utc)
        yield (i % 16, i, r["source"], r["topic"], payload, r["qos"], r["retained"],
               ts.isoformat(timespec="milliseconds"))


def sql_text(s):
    return "'" + s.replace("'", "''") + "'"


def sql_values(r):
    part, off, source, topic, payload, qos, retained, ts = r
    return "('local','iot.raw',%d,%d,%s,%s,'\\x%s',%d,%s,'%s')" % (
        part, off, sql_text(source), sql_text(topic), payload.hex(), qos,
        "true" if retained else "false", ts)


def copy_text(s):
    return s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["copy", "single", "multi"])
    ap.add_argument("--rows-per-insert", type=int, default=1000)
    ap.add_argument("--autocommit", action="store_true")
    a = ap.parse_args()
    out = sys.stdout
    cols = ("INSERT INTO raw_messages (origin_cluster, origin_topic, origin_partition, "
            "origin_offset, source, topic, payload, qos, retained, received_at) VALUES ")
    if a.mode == "copy":
        for part, off, source, topic, payload, qos, retained, ts in rows(sys.stdin):
            out.write("local\tiot.raw\t%d\t%d\t%s\t%s\t\\\\x%s\t%d\t%s\t%s\n" % (
                part, off, copy_text(source), copy_text(topic), payload.hex(), qos,
                "t" if retained else "f", ts))
        return
    if not a.autocommit:
        out.write("BEGIN;\n")
    if a.mode == "single":
        for r in rows(sys.stdin):
            out.write(cols + sql_values(r) + ";\n")
    else:
        batch = []
        for r in rows(sys.stdin):
            batch.append(sql_values(r))
            if len(batch) == a.rows_per_insert:
                out.write(cols + ",\n".join(batch) + ";\n")
                batch = []
        if batch:
            out.write(cols + ",\n".join(batch) + ";\n")
    if not a.autocommit:
        out.write("COMMIT;\n")


main()
