"""The fault suite's comparisons (docs/chaos.md): a run's snapshot against the undisturbed
run's, and against what the run's own iot.raw implies. Called through chaos.py check."""

import base64
import collections
import csv
import json
import os

from chaos_models import (close, fnum, model_aggregates, model_commands, model_events,
                          parse_rules)

TABLES = ["raw_messages", "readings", "rejected", "aggregates", "commands", "threshold_events"]
SITES = ["edge", "central"]

# What is compared with the undisturbed run, per table: every column except those that record
# when or where something was processed, which legitimately differ between runs.
#   raw_messages: origin_* (Kafka positions), received_at (the ingestor's clock)
#   readings: received_at (copied from the raw message)
#   rejected: origin_* and received_at as above; reason (its text can name a duration measured
#             from the cleaner's clock: "2 days in the future"; reason_code is compared)
#   commands: issued_at (the actuator's clock when it published)
EXCLUDED = {
    "raw_messages": {"origin_cluster", "origin_topic", "origin_partition", "origin_offset",
                     "received_at"},
    "readings": {"received_at"},
    "rejected": {"origin_cluster", "origin_topic", "origin_partition", "origin_offset",
                 "received_at", "reason"},
    "aggregates": set(),
    "commands": {"issued_at"},
    "threshold_events": set(),
}


def load_table(snap, site, table):
    """(header, rows as tuples of text; '' is NULL)"""
    with open(os.path.join(snap, site, table + ".csv"), newline="") as f:
        r = csv.reader(f)
        header = next(r)
        return header, [tuple(row) for row in r]


def project(header, rows, table):
    keep = [i for i, n in enumerate(header) if n not in EXCLUDED[table]]
    return [tuple(row[i] for i in keep) for row in rows]


def as_dicts(header, rows):
    return [dict(zip(header, r)) for r in rows]


def hex_of_payload(p):
    if isinstance(p, dict):
        return base64.b64decode(p["base64"]).hex()
    return p.encode().hex()


class Result:
    def __init__(self):
        self.checks = []

    def add(self, ok, name, detail=""):
        self.checks.append({"ok": bool(ok), "check": name, "detail": detail})
        return ok


def cmp_multisets(base_rows, run_rows):
    """Compares as multisets: the workload itself can send one content twice (two malformed
    messages cut to the same half), and then the undisturbed run has it twice too."""
    b, r = collections.Counter(base_rows), collections.Counter(run_rows)
    missing = sum(max(0, n - r[k]) for k, n in b.items())
    unexpected = sum(n for k, n in r.items() if k not in b)
    # copies beyond the undisturbed run's number of a content
    dups = sum(max(0, n - b[k]) for k, n in r.items() if k in b)
    return {"rows": sum(r.values()), "distinct": len(r), "missing": missing,
            "unexpected": unexpected, "dups": dups,
            "missing_examples": [list(k) for k in list(b.keys() - r.keys())[:3]],
            "unexpected_examples": [list(k) for k in list(r.keys() - b.keys())[:3]]}


def check_oracles(run, rules, opts, res, edge):
    """What the run's own inputs imply, whatever the baseline says."""
    # raw_messages at the edge == what is in iot.raw, position by position.
    raw = {}
    with open(os.path.join(run, "iot.raw.jsonl")) as f:
        for line in f:
            if line.strip():
                e = json.loads(line)
                v = e["value"]
                raw[(str(e["partition"]), str(e["offset"]))] = (
                    v["source"], v["topic"], hex_of_payload(v["payload"]), str(v["qos"]),
                    "true" if v["retained"] else "false", str(v["received_at"]))
    h, rows = edge["raw_messages"]
    tab = {}
    for d in as_dicts(h, rows):
        tab[(d["origin_partition"], d["origin_offset"])] = (
            d["source"], d["topic"], d["payload"], d["qos"], d["retained"], d["received_at"])
    miss = len(raw.keys() - tab.keys())
    extra = len(tab.keys() - raw.keys())
    diff = sum(1 for k in raw.keys() & tab.keys() if raw[k] != tab[k])
    res.add(miss == 0 and extra == 0 and diff == 0,
            "edge raw_messages = iot.raw record by record",
            "iot.raw %d, table %d, missing %d, extra %d, different %d"
            % (len(raw), len(tab), miss, extra, diff))

    # readings and rejected == an undisturbed cleaner run over exactly that iot.raw.
    want = {}
    with open(os.path.join(run, "offline.clean.jsonl")) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                loc = r.get("location") or {}
                want[(r["site"], r["device"], r["sensor"], r["metric"], str(r["ts"]))] = (
                    r["unit"], float(r["value"]), loc.get("lat"), loc.get("lon"),
                    r.get("device_type"), json.dumps(r.get("tags") or {}, sort_keys=True))
    h, rows = edge["readings"]
    got = {}
    for d in as_dicts(h, rows):
        got[(d["site"], d["device"], d["sensor"], d["metric"], d["ts"])] = (
            d["unit"], float(d["value"]), fnum(d["location_lat"]), fnum(d["location_lon"]),
            d["device_type"] or None, json.dumps(json.loads(d["tags"] or "{}"), sort_keys=True))
    miss = len(want.keys() - got.keys())
    extra = len(got.keys() - want.keys())
    diff = sum(1 for k in want.keys() & got.keys() if want[k] != got[k])
    res.add(miss == 0 and extra == 0 and diff == 0,
            "readings = the cleaner's output for iot.raw",
            "expected %d, table %d, missing %d, extra %d, different %d"
            % (len(want), len(got), miss, extra, diff))
    wrej = collections.Counter()
    with open(os.path.join(run, "offline.rejected.jsonl")) as f:
        for line in f:
            if line.strip():
                r = json.loads(line)
                wrej[(r["source"], r["topic"], hex_of_payload(r["payload"]), str(r["qos"]),
                      "true" if r["retained"] else "false", r["stage"], r["reason_code"])] += 1
    h, rows = edge["rejected"]
    grej = collections.Counter(
        (d["source"], d["topic"], d["payload"], d["qos"], d["retained"], d["stage"],
         d["reason_code"]) for d in as_dicts(h, rows))
    res.add(wrej == grej, "rejected = one row per rejected iot.raw record",
            "expected %d, table %d, differing contents %d"
            % (sum(wrej.values()), sum(grej.values()), len(set(wrej.items()) ^ set(grej.items()))))

    # aggregates, threshold events and commands == the models over the readings table.
    readings = as_dicts(*edge["readings"])
    h, rows = edge["aggregates"]
    magg = model_aggregates(readings, opts.window_ms, opts.flush_ms)
    gagg = {}
    for d in as_dicts(h, rows):
        gagg[(d["site"], d["device"], d["sensor"], d["metric"], int(d["window_start"]))] = d
    bad = []
    for k in magg.keys() & gagg.keys():
        w, g = magg[k], gagg[k]
        ok = (g["unit"] == w["unit"] and int(g["window_end"]) == w["window_end"]
              and int(g["count"]) == w["count"] and int(g["first_ts"]) == w["first_ts"]
              and int(g["last_ts"]) == w["last_ts"]
              and all(float(g[f]) == w[f] for f in ("min", "max", "first", "last"))
              and close(float(g["mean"]), w["mean"]) and close(float(g["stddev"]), w["stddev"], 1e-6))
        if not ok:
            bad.append(k)
    miss = magg.keys() - gagg.keys()
    extra = gagg.keys() - magg.keys()
    res.add(not bad and not miss and not extra,
            "aggregates = the windows of the readings table (no reading late or lost)",
            "expected %d, table %d, missing %d, extra %d, different %d%s"
            % (len(magg), len(gagg), len(miss), len(extra), len(bad),
               "; e.g. %s" % (sorted(miss or extra or bad)[0],) if (bad or miss or extra) else ""))

    mev = model_events(readings, rules)
    h, rows = edge["threshold_events"]
    gev = {}
    for d in as_dicts(h, rows):
        gev[(d["site"], d["device"], d["sensor"], d["metric"], d["rule"], int(d["started_at"]),
             d["state"])] = (float(d["threshold"]), float(d["hysteresis"]),
                             int(d["ended_at"]) if d["ended_at"] else None,
                             int(d["exceeded_for_ms"]), float(d["average"]), float(d["max"]),
                             int(d["count"]))
    bad = [k for k in mev.keys() & gev.keys()
           if not (mev[k][:4] == gev[k][:4] and close(mev[k][4], gev[k][4])
                   and mev[k][5:] == gev[k][5:])]
    miss = mev.keys() - gev.keys()
    extra = gev.keys() - mev.keys()
    res.add(not bad and not miss and not extra,
            "threshold_events = the rules' episodes over the readings table",
            "expected %d, table %d, missing %d, extra %d, different %d%s"
            % (len(mev), len(gev), len(miss), len(extra), len(bad),
               "; e.g. %s" % (sorted(miss or extra or bad)[0],) if (bad or miss or extra) else ""))

    mcmd = model_commands(readings, rules)
    h, rows = edge["commands"]
    gcmd = collections.defaultdict(list)
    for d in as_dicts(h, rows):
        gcmd[(d["rule"], d["site"], d["device"], d["sensor"])].append(
            (int(d["reading_ts"]), d["side"], float(d["value"])))
    missing, repeats, wrong = 0, 0, []
    for key in mcmd.keys() | gcmd.keys():
        want_l, got_l = mcmd.get(key, []), gcmd.get(key, [])
        got_set = set(got_l)
        missing += sum(1 for c in want_l if c not in got_set)
        want_set = set(want_l)
        for c in got_l:
            if c in want_set:
                continue
            # A repeat: the side the model had already sent for this sensor at that time
            # (docs/actuator.md, Commands on replay).
            before = [w for w in want_l if w[0] <= c[0]]
            if before and before[-1][1] == c[1]:
                repeats += 1
            else:
                wrong.append((key, c))
    res.add(missing == 0 and not wrong,
            "commands = the rules' state changes over the readings table (repeats allowed)",
            "expected %d, table %d, missing %d, repeats of the current side %d, wrong %d%s"
            % (sum(len(v) for v in mcmd.values()), sum(len(v) for v in gcmd.values()), missing,
               repeats, len(wrong), "; e.g. %s" % (wrong[0],) if wrong else ""))
    return repeats


def cmd_check(args):
    base, run = args.base, args.run
    rules = parse_rules(args.rules)
    res = Result()
    out = {"scenario": args.scenario, "tables": {}, "lossy": args.lossy}
    snap = {s: {t: load_table(run, s, t) for t in TABLES} for s in SITES}
    bsnap = {s: {t: load_table(base, s, t) for t in TABLES} for s in SITES}

    for t in TABLES:
        out["tables"][t] = {}
        bh, brows = bsnap["edge"][t]
        bproj = project(bh, brows, t)
        for s in SITES:
            h, rows = snap[s][t]
            out["tables"][t][s] = cmp_multisets(bproj, project(h, rows, t))
        out["tables"][t]["baseline"] = len(bproj)

    # The baseline itself: both sites equal, and the models agree (the workload is sound).
    # Centre = edge, row for row with every column: the centre holds copies.
    for t in TABLES:
        e, c = sorted(snap["edge"][t][1]), sorted(snap["central"][t][1])
        ec = collections.Counter(e) == collections.Counter(c)
        res.add(ec, "%s: central = edge, every column" % t,
                "edge %d rows, central %d" % (len(e), len(c)))

    for t in TABLES:
        st = out["tables"][t]["edge"]
        name = "%s: edge = undisturbed run" % t
        detail = "rows %d (undisturbed %d): missing %d, unexpected %d, copies %d" % (
            st["rows"], out["tables"][t]["baseline"], st["missing"], st["unexpected"], st["dups"])
        if st["missing"] or st["unexpected"]:
            detail += "; e.g. %s" % (st["missing_examples"] or st["unexpected_examples"])[:1]
        if t == "raw_messages":
            ok = st["unexpected"] == 0 and (args.lossy or st["missing"] == 0)
            if not args.mqtt_dups:
                ok = ok and st["dups"] == 0
        elif t == "commands":
            # extra rows are checked against the model (repeats of the current side)
            ok = args.lossy or st["missing"] == 0
        elif t == "rejected":
            ok = st["unexpected"] == 0 and (args.lossy or st["missing"] == 0)
        else:
            ok = args.lossy or (st["missing"] == 0 and st["unexpected"] == 0)
        res.add(ok, name, detail)

    repeats = check_oracles(run, rules, args, res, snap["edge"])
    out["command_repeats"] = repeats

    # The ingestor's documented loss window, measured.
    base_raw = collections.Counter(project(*bsnap["edge"]["raw_messages"], "raw_messages"))
    raw_in_kafka = collections.Counter()
    with open(os.path.join(run, "iot.raw.jsonl")) as f:
        for line in f:
            if line.strip():
                v = json.loads(line)["value"]
                raw_in_kafka[(v["source"], v["topic"], hex_of_payload(v["payload"]),
                              str(v["qos"]), "true" if v["retained"] else "false")] += 1
    published = 0
    try:
        with open(os.path.join(run, "sim-summaries.jsonl")) as f:
            published = sum(json.loads(l)["confirmed"] for l in f if l.strip())
    except (OSError, ValueError, KeyError):
        pass
    lost = sum(max(0, n - raw_in_kafka[k]) for k, n in base_raw.items())
    out["loss"] = {"published": published, "undisturbed": sum(base_raw.values()),
                   "in_iot_raw": sum(raw_in_kafka.values()), "lost": lost,
                   "lost_readings": len(set(project(*bsnap["edge"]["readings"], "readings"))
                                        - set(project(*snap["edge"]["readings"], "readings")))}
    if not args.lossy:
        res.add(lost == 0, "every published message reached iot.raw",
                "%d of %d messages missing; %d published, %d records in iot.raw"
                % (lost, sum(base_raw.values()), published, sum(raw_in_kafka.values())))

    with open(os.path.join(run, "late.count")) as f:
        out["late"] = int(f.read().strip() or 0)

    # What happened to the processes.
    def lines(name):
        try:
            with open(os.path.join(run, name)) as f:
                return [l.split() for l in f if l.strip()]
        except OSError:
            return []
    for w in lines("final-exits"):
        res.add(w[1] == "0", "%s stopped cleanly at the end (exit %s)" % (w[0], w[1]))
    out["self_exits"] = [" ".join(w) for w in lines("self-exits")]
    for w in lines("self-exits"):
        res.add(int(w[1]) < 128, "%s was not killed by a signal it raised (exit %s)" % (w[0], w[1]))
    out["term_exits"] = [" ".join(w) for w in lines("term-exits")]
    if args.strict_term:
        for w in lines("term-exits"):
            res.add(w[1] == "0", "%s exited 0 on SIGTERM (exit %s)" % (w[0], w[1]))
    for name, what in (("unsettled", "the pipeline settled"), ("sim-failed",
                       "every publish was confirmed to sensor-sim"),
                       ("action-errors", "every fault action was applied"),
                       ("sanitizer", "no sanitizer report in any log")):
        p = os.path.join(run, name)
        if os.path.exists(p):
            with open(p) as f:
                res.add(False, what, f.read().strip().replace("\n", "; ")[:400])
    out["checks"] = res.checks
    out["ok"] = all(c["ok"] for c in res.checks)
    out["faults"] = args.faults
    try:
        out["seconds"] = int(open(os.path.join(run, "seconds")).read())
    except (OSError, ValueError):
        out["seconds"] = None
    with open(os.path.join(run, "result.json"), "w") as f:
        json.dump(out, f, indent=1)
    for c in res.checks:
        print("%s - %s%s" % ("ok" if c["ok"] else "not ok", c["check"],
                             ": " + c["detail"] if c["detail"] else ""))
    if args.lossy:
        lo = out["loss"]
        print("# MEASURED ingestor kill -9 loss: %d of %d published messages never reached "
              "iot.raw (%d readings); %d records in iot.raw" % (
                  lo["lost"], lo["published"], lo["lost_readings"], lo["in_iot_raw"]))
    return 0 if out["ok"] else 1
