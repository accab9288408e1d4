"""What the derived tables must hold, computed from the readings table: the aggregator's
windows, and the actuator's episodes and state changes (docs/aggregator.md, docs/actuator.md).
Used by chaos_check.py; the fault suite is described in docs/chaos.md."""

import collections
import fnmatch
import math
import re

def fnum(s):
    return None if s == "" else float(s)


def close(a, b, rel=1e-9):
    if a is None or b is None:
        return a is None and b is None
    return abs(a - b) <= rel * max(1.0, abs(a), abs(b))


def parse_rules(path):
    rules, cur = [], None
    with open(path) as f:
        for line in f:
            s = line.strip()
            if not s or s[0] in "#;":
                continue
            m = re.match(r"\[rule (.+)\]$", s)
            if m:
                cur = {"name": m.group(1), "site": "*", "device": "*", "sensor": "*"}
                rules.append(cur)
            elif "=" in s and cur is not None:
                k, v = s.split("=", 1)
                cur[k.strip()] = v.strip()
    return rules


def matches(rule, r):
    return (r["metric"] == rule["metric"]
            and all(fnmatch.fnmatchcase(r[k], rule[k]) for k in ("site", "device", "sensor")))


def series(readings, rule):
    """{(site, device, sensor): [(ts, value)] in event-time order} for a rule's readings."""
    out = collections.defaultdict(list)
    for r in readings:
        if matches(rule, r):
            out[(r["site"], r["device"], r["sensor"])].append((int(r["ts"]), float(r["value"])))
    for v in out.values():
        v.sort()
    return out


def model_events(readings, rules):
    """ThresholdEvent rows of an uninterrupted actuator fed the readings in event-time order
    (docs/actuator.md, Threshold episodes): {identity: values}."""
    out = {}
    for rule in rules:
        if "threshold" not in rule:
            continue
        thr, hy = float(rule["threshold"]), float(rule.get("hysteresis", 0))
        for (site, dev, sen), pts in series(readings, rule).items():
            ep = None
            for ts, v in pts:
                if ep is None:
                    if v > thr:
                        ep = {"start": ts, "n": 1, "mean": v, "max": v}
                        out[(site, dev, sen, rule["metric"], rule["name"], ts, "started")] = \
                            (thr, hy, None, 0, v, v, 1)
                elif v < thr - hy:
                    out[(site, dev, sen, rule["metric"], rule["name"], ep["start"], "ended")] = \
                        (thr, hy, ts, max(0, ts - ep["start"]), ep["mean"], ep["max"], ep["n"])
                    ep = None
                else:
                    ep["n"] += 1
                    ep["mean"] += v / ep["n"] - ep["mean"] / ep["n"]
                    ep["max"] = max(ep["max"], v)
    return out


def model_commands(readings, rules):
    """{(rule, site, device, sensor): [(reading_ts, side, value)]}: the state changes."""
    out = {}
    for rule in rules:
        if "low" not in rule:
            continue
        lo, hi = float(rule["low"]), float(rule["high"])
        for key, pts in series(readings, rule).items():
            side, cmds = None, []
            for ts, v in pts:
                want = "low" if v < lo else "high" if v > hi else None
                if want and want != side:
                    cmds.append((ts, want, v))
                    side = want
            if cmds:
                out[(rule["name"],) + key] = cmds
    return out


def model_aggregates(readings, window_ms, before_ms):
    groups = collections.defaultdict(list)
    for r in readings:
        ts = int(r["ts"])
        if ts >= before_ms:
            continue
        start = ts - ts % window_ms
        groups[(r["site"], r["device"], r["sensor"], r["metric"], start)].append(
            (ts, float(r["value"]), r["unit"]))
    out = {}
    for key, pts in groups.items():
        pts.sort()
        vals = [v for _, v, _ in pts]
        n = len(vals)
        mean = math.fsum(vals) / n
        sd = math.sqrt(math.fsum((v - mean) ** 2 for v in vals) / n)
        out[key] = {"unit": pts[0][2], "window_end": key[4] + window_ms, "count": n, "mean": mean,
                    "min": min(vals), "max": max(vals), "stddev": sd, "first": pts[0][1],
                    "first_ts": pts[0][0], "last": pts[-1][1], "last_ts": pts[-1][0]}
    return out
