#!/usr/bin/python3
"""chaos.py: the fault suite's waiting, snapshots, comparisons and report (docs/chaos.md).

  chaos.py ready CONF [--timeout S]      every service up, every consumer with its partitions
  chaos.py settle CONF --state FILE      one poll: exit 0 when the pipeline has drained, else
                                         print why not (the caller polls)
  chaos.py snapshot CONF DIR             every table of both sites, sorted, into DIR/<site>/
  chaos.py check BASE RUN [options]      compares a run's snapshot with the undisturbed one and
                                         with what its own inputs imply; writes RUN/result.json
  chaos.py report [--out F] [--json F] RUN...   the table of the runs' results

CONF is written by tests/chaos/lib.sh, one setting a line: "service NAME PORT" (the newest
line of a name counts), "db SITE CONNINFO", "bootstrap SITE LIST", "alias NAME".
Runs with Debian's python3 (confluent_kafka for committed offsets); psql for the databases.
The comparisons are in chaos_check.py, the models of the derived tables in chaos_models.py.
"""

import argparse
import collections
import csv
import io
import json
import os
import re
import subprocess
import sys
import time
import urllib.request

from chaos_check import TABLES, cmd_check

RELAYED = ["iot.raw", "iot.clean", "iot.rejected", "iot.aggregates", "iot.commands",
           "iot.events"]
PARTITIONS = 16


# --- configuration, metrics, databases --------------------------------------------------------

def load_conf(path):
    conf = {"services": {}, "db": {}, "bootstrap": {}, "alias": "edge1"}
    with open(path) as f:
        for line in f:
            w = line.rstrip("\n").split(" ", 2)
            if w[0] == "service":
                conf["services"][w[1]] = int(w[2])
            elif w[0] in ("db", "bootstrap"):
                conf[w[0]][w[1]] = w[2]
            elif w[0] == "alias":
                conf["alias"] = w[1]
    return conf


SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")


def fetch(port, path, timeout=3):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.read().decode()


def metrics(port):
    """{name: total over its series}"""
    out = collections.defaultdict(float)
    for line in fetch(port, "/metrics").splitlines():
        m = SAMPLE.match(line)
        if m and not line.startswith("#"):
            try:
                out[m.group(1)] += float(m.group(3))
            except ValueError:
                pass
    return out


def psql(conninfo, sql):
    env = dict(os.environ, PGTZ="UTC")
    r = subprocess.run(["psql", "-XqAt", "-v", "ON_ERROR_STOP=1", "-d", conninfo, "-c", sql],
                       capture_output=True, text=True, timeout=120, env=env)
    if r.returncode != 0:
        raise RuntimeError("psql: %s" % r.stderr.strip()[:300])
    return r.stdout


def counts(conf):
    sql = " UNION ALL ".join("SELECT '%s', count(*) FROM %s" % (t, t) for t in TABLES)
    out = {}
    for site, ci in conf["db"].items():
        out[site] = {}
        for line in psql(ci, sql).splitlines():
            t, n = line.split("|")
            out[site][t] = int(n)
    return out


# --- ready / settle ------------------------------------------------------------------------------

def cmd_ready(args):
    conf = load_conf(args.conf)
    deadline = time.monotonic() + args.timeout
    waiting = set(conf["services"])
    while waiting and time.monotonic() < deadline:
        conf = load_conf(args.conf)
        for name in sorted(waiting):
            try:
                port = conf["services"][name]
                fetch(port, "/readyz")
                if name == "mqtt-ingestor" or "iotpipe_records_in_total" in metrics(port):
                    waiting.discard(name)
            except (OSError, ValueError):
                pass
        time.sleep(0.3)
    if waiting:
        print("not ready after %ds: %s" % (args.timeout, ", ".join(sorted(waiting))))
        return 1
    return 0


def committed_behind(bootstrap, group, topics):
    """Partitions whose committed offset is not yet the end of the partition."""
    from confluent_kafka import Consumer, TopicPartition
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "log_level": 0})
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(PARTITIONS)]
        got = c.committed(tps, timeout=10)
        behind = []
        for tp in got:
            lo, hi = c.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            done = tp.offset if tp.offset >= 0 else lo
            if done < hi:
                behind.append("%s[%d] %d<%d" % (tp.topic, tp.partition, done, hi))
        return behind
    finally:
        c.close()


def settle_reason(conf):
    """Why the pipeline has not drained, or None."""
    svc = conf["services"]
    m = {}
    for name, port in svc.items():
        try:
            m[name] = metrics(port)
        except (OSError, ValueError) as e:
            return "%s: no metrics (%s)" % (name, e)
    ing = m["mqtt-ingestor"]
    rec, prod = ing.get("iotpipe_ingestor_received_total"), ing.get("iotpipe_ingestor_produced_total")
    drop = ing.get("iotpipe_ingestor_dropped_total", 0)
    if rec is None or prod is None or rec > prod + drop:
        return "mqtt-ingestor: %s received, %s acknowledged by Kafka" % (rec, prod)
    if ing.get("iotpipe_ingestor_queue_records", 0) or ing.get("iotpipe_ingestor_paused", 0):
        return "mqtt-ingestor: records queued or intake paused"
    try:
        # connected to the broker (which may still hold messages for it) and not paused
        fetch(svc["mqtt-ingestor"], "/readyz")
    except OSError as e:
        return "mqtt-ingestor is not ready (%s)" % e
    for name, mm in m.items():
        if name == "mqtt-ingestor":
            continue
        if "iotpipe_records_in_total" not in mm:
            return "%s has no partitions yet" % name
        if mm.get("iotpipe_consumer_lag", 0):
            return "%s is %d records behind" % (name, mm["iotpipe_consumer_lag"])
    relay = m["mirror-relay"]
    if relay.get("iotpipe_relay_lag_records", 0) or relay.get("iotpipe_relay_queued_records", 0):
        return "mirror-relay: %d records not yet at the centre" % relay.get("iotpipe_relay_lag_records", 0)
    alias = conf["alias"]
    for group, site, topics in (("cleaner", "edge", ["iot.raw"]),
                                ("mirror-relay", "edge", RELAYED),
                                ("saver-edge", "edge", RELAYED),
                                ("saver-central", "central", ["%s.%s" % (alias, t) for t in RELAYED])):
        behind = committed_behind(conf["bootstrap"][site], group, topics)
        if behind:
            return "group %s has not committed %s%s" % (group, ", ".join(behind[:3]),
                                                        " ..." if len(behind) > 3 else "")
    c = counts(conf)
    for t in TABLES:
        if c["edge"][t] != c["central"][t]:
            return "%s: edge %d rows, central %d" % (t, c["edge"][t], c["central"][t])
    return None, c


def cmd_settle(args):
    conf = load_conf(args.conf)
    try:
        r = settle_reason(conf)
    except Exception as e:  # a broker or database that is still coming back
        r = "%s: %s" % (type(e).__name__, e)
    if not isinstance(r, tuple):
        if os.path.exists(args.state):
            os.unlink(args.state)
        print(r)
        return 1
    c = r[1]
    prev, stable = None, 0
    try:
        with open(args.state) as f:
            s = json.load(f)
            prev, stable = s["counts"], s["stable"]
    except (OSError, ValueError, KeyError):
        pass
    stable = stable + 1 if prev == c else 0
    with open(args.state, "w") as f:
        json.dump({"counts": c, "stable": stable}, f)
    if stable >= args.stable:
        return 0
    print("drained; waiting for the tables to stay unchanged (%d/%d)" % (stable, args.stable))
    return 1


# --- snapshots ------------------------------------------------------------------------------------

def columns(conninfo, table):
    out = []
    for line in psql(conninfo, "SELECT column_name, data_type FROM information_schema.columns "
                     "WHERE table_name = '%s' AND table_schema = 'public' ORDER BY ordinal_position"
                     % table).splitlines():
        name, typ = line.split("|")
        out.append((name, typ))
    return out


def cmd_snapshot(args):
    conf = load_conf(args.conf)
    summary = {}
    for site, ci in conf["db"].items():
        os.makedirs(os.path.join(args.dir, site), exist_ok=True)
        summary[site] = {}
        for t in TABLES:
            cols = columns(ci, t)
            exprs = []
            for name, typ in cols:
                # Times as ms since the epoch, bytes as hex, floats in PostgreSQL's shortest
                # exact form, jsonb in its normalised text.
                if typ.startswith("timestamp"):
                    exprs.append("(extract(epoch FROM %s) * 1000)::bigint" % name)
                elif typ == "bytea":
                    exprs.append("encode(%s, 'hex')" % name)
                else:
                    exprs.append("%s::text" % name)
            text = psql(ci, "COPY (SELECT %s FROM %s) TO STDOUT WITH (FORMAT csv)"
                        % (", ".join(exprs), t))
            rows = sorted(tuple(r) for r in csv.reader(io.StringIO(text)))
            with open(os.path.join(args.dir, site, t + ".csv"), "w", newline="") as f:
                w = csv.writer(f)
                w.writerow([n for n, _ in cols])
                w.writerows(rows)
            summary[site][t] = len(rows)
    with open(os.path.join(args.dir, "counts.json"), "w") as f:
        json.dump(summary, f)
    return 0


# --- report ---------------------------------------------------------------------------------------

SHORT = {"raw_messages": "raw", "readings": "readings", "rejected": "rejected",
         "aggregates": "aggregates", "commands": "commands", "threshold_events": "events"}


def cmd_report(args):
    results = []
    for d in args.runs:
        try:
            with open(os.path.join(d, "result.json")) as f:
                results.append(json.load(f))
        except (OSError, ValueError):
            results.append({"scenario": os.path.basename(d), "ok": False, "tables": {},
                            "checks": [{"ok": False, "check": "no result", "detail": ""}],
                            "faults": "", "seconds": None})
    lines = []
    head = "%-18s %-6s %5s  %s" % ("scenario", "result", "secs", "  ".join(
        "%-17s" % SHORT[t] for t in TABLES))
    lines.append("Counts per table: edge/central rows, then (missing/unexpected/copies) against "
                 "the undisturbed run; copies are rows beyond one per content.")
    lines.append(head)
    lines.append("-" * len(head))
    for r in results:
        cells = []
        for t in TABLES:
            st = r["tables"].get(t)
            if not st:
                cells.append("%-17s" % "-")
                continue
            e, c = st["edge"], st["central"]
            cells.append("%-17s" % ("%d/%d (%d/%d/%d)" % (e["rows"], c["rows"], e["missing"],
                                                          e["unexpected"], e["dups"])))
        lines.append("%-18s %-6s %5s  %s" % (r["scenario"], "PASS" if r["ok"] else "FAIL",
                                             r.get("seconds") or "?", "  ".join(cells)))
    lines.append("")
    for r in results:
        lines.append("%s: %s" % (r["scenario"], "PASS" if r["ok"] else "FAIL"))
        lines.append("  faults: %s" % (r.get("faults") or "none"))
        extra = []
        if r.get("self_exits"):
            extra.append("exited by themselves (restarted): %s" % ", ".join(r["self_exits"]))
        if r.get("term_exits"):
            extra.append("SIGTERM exit statuses: %s" % ", ".join(r["term_exits"]))
        if r.get("command_repeats"):
            extra.append("commands repeated after a restart: %d" % r["command_repeats"])
        if r.get("late"):
            extra.append("late readings in iot.late: %d" % r["late"])
        if r.get("lossy") and r.get("loss"):
            lo = r["loss"]
            extra.append("ingestor loss (measured, allowed): %d of %d published messages never "
                         "reached iot.raw (%d readings); iot.raw holds %d records, "
                         "checked below" % (lo["lost"], lo["published"],
                                                  lo["lost_readings"], lo["in_iot_raw"]))
        for x in extra:
            lines.append("  " + x)
        for c in r["checks"]:
            if not c["ok"] or args.verbose:
                lines.append("  %s %s%s" % ("ok " if c["ok"] else "FAIL", c["check"],
                                            ": " + c["detail"] if c["detail"] else ""))
    passed = sum(1 for r in results if r["ok"])
    lines.append("")
    lines.append("%d of %d scenarios passed" % (passed, len(results)))
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if passed == len(results) else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("ready")
    a.add_argument("conf")
    a.add_argument("--timeout", type=int, default=90)
    a = sub.add_parser("settle")
    a.add_argument("conf")
    a.add_argument("--state", required=True)
    a.add_argument("--stable", type=int, default=3)
    a = sub.add_parser("snapshot")
    a.add_argument("conf")
    a.add_argument("dir")
    a = sub.add_parser("check")
    a.add_argument("base")
    a.add_argument("run")
    a.add_argument("--scenario", required=True)
    a.add_argument("--faults", default="")
    a.add_argument("--rules", required=True)
    a.add_argument("--window-ms", type=int, required=True)
    a.add_argument("--flush-ms", type=int, required=True)
    a.add_argument("--mqtt-dups", action="store_true",
                   help="the scenario makes MQTT redeliver: copies in raw_messages are allowed")
    a.add_argument("--lossy", action="store_true",
                   help="the ingestor is killed: loss is measured, not a failure")
    a.add_argument("--strict-term", action="store_true",
                   help="every SIGTERM must end in exit status 0")
    a = sub.add_parser("report")
    a.add_argument("--out", help="also write the table to this file")
    a.add_argument("--json", help="write every scenario's result to this file")
    a.add_argument("--verbose", action="store_true", help="list the checks that passed too")
    a.add_argument("runs", nargs="+")
    args = p.parse_args()
    return {"ready": cmd_ready, "settle": cmd_settle, "snapshot": cmd_snapshot,
            "check": cmd_check, "report": cmd_report}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
