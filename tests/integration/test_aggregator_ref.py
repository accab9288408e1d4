#!/usr/bin/env python3
"""Input and reference behind the aggregator's integration tests (test_aggregator.sh,
test_aggregator_kill.sh). The reference re-implements docs/aggregator.md from the text, not from
the C code: the two must agree on every window.

  gen [--seed N] [--sites N] [--devices N] [--seconds N] [--start MS] [--grace MS]
      [--window MS] [--bursts N --gap S] [--sentinel] [--pause-marks] [--invalid FRACTION]
      Deterministic Reading JSON lines on stdout, in arrival order: per device a temperature
      and a humidity sensor, and on the first device an energy meter near 1e9 (Welford
      territory), one reading per sensor per second of event time from --start. Mixed in:
      readings delayed but within --grace (out of order), readings delayed by more than
      --window + --grace (late), redelivered duplicates (same value, and now and then another
      value for the same identity, whose first value must win), now and then another unit.
      --bursts N splits event time into N bursts with --gap seconds between them, aligned so
      that no reading of a burst falls into a window of an earlier burst (--window must be the
      largest window used); --pause-marks writes a line "pause" between bursts. --sentinel ends
      every site with one reading an hour later, which closes every earlier window by
      watermark (its own window stays open). --invalid: that fraction of readings is one the
      aggregator refuses (a value of 1e200, a device name of 300 bytes).

  ref --window MS [--hop MS] --grace MS [--group-by LIST] [--stdin] [--close-idle]
      INPUT AGGREGATES LATE
      Simulates the aggregator over INPUT: iot-cat -E envelopes (each partition in offset
      order, as a consumer sees them), or with --stdin plain readings as one stream whose end
      closes every window. --close-idle: a line "pause" in a --stdin input closes every open
      window (what an idle partition's advance does once its readings stop). Writes the
      aggregates it expects and the late readings (JSON lines) and prints "readings R added A
      duplicate D late L invalid I windows W open O" (readings: those accepted).

  compare GOT REF [--late GOT_LATE REF_LATE]
      GOT must hold exactly REF's aggregates: every identity (site, device, sensor, metric,
      window_start, window_ms) once, the integers and copied values (min, max, first, last
      and their times, unit) equal, mean and stddev within a relative 1e-9 (stddev also
      within 1e-15 of the values' magnitude: far below what a sum of squares loses near 1e9).
      With --late, the late readings must be the same multiset. Prints what it compared.

  distinct GOT REF [--late GOT_LATE REF_LATE]
      For kill tests: GOT may repeat an aggregate (a re-sent window) but only with the same
      content; its distinct aggregates must equal REF's (which has each once). With --late, GOT
      must hold REF's late readings, each at least as often (they are at-least-once), and no
      other.
      Prints "ref R got G distinct D resent S ...".

  pace RATE
      Copies stdin to stdout at RATE lines per second (in steps of a twentieth of a second).
"""
import argparse
import collections
import json
import math
import random
import sys
import time

FIELDS = ("site", "device", "sensor", "metric")
IDENTITY = FIELDS + ("window_start", "window_ms")
EXACT = ("unit", "window_end", "count", "min", "max", "first", "first_ts", "last", "last_ts")


# ---- gen ----------------------------------------------------------------------------------


def gen(a):
    rnd = random.Random(a.seed)
    step = 1000
    series = []  # (site, device, sensor, metric, unit, base, jitter)
    for s in range(a.sites):
        for d in range(a.devices):
            # Each series has its own phase within the second, so times do not all coincide.
            series.append(("s%02d" % s, "d%d" % d, "t", "temperature", "C",
                           18 + s % 5 + d * 0.5, rnd.randrange(step)))
            series.append(("s%02d" % s, "d%d" % d, "h", "humidity", "%",
                           40 + (s * 7 + d) % 20, rnd.randrange(step)))
            if d == 0:
                series.append(("s%02d" % s, "d0", "e", "energy", "kWh",
                               1e9 + s * 1000, rnd.randrange(step)))
    events = []  # (arrival, seq, record)
    seq = 0
    # Bursts: event time runs in --bursts stretches of --seconds / bursts seconds each; the next
    # starts --gap seconds after the previous ended, rounded up to a window boundary beyond
    # the previous burst's last window plus the grace.
    per = a.seconds // a.bursts
    t = a.start
    burst_starts = []
    for b in range(a.bursts):
        burst_starts.append(t)
        end = t + per * step
        t = end + a.gap * step + a.window + a.grace
        t = (t + a.window - 1) // a.window * a.window
    energy = [se[5] for se in series]
    for b, t0 in enumerate(burst_starts):
        for k in range(per):
            for i, (site, dev, sen, met, unit, base, jit) in enumerate(series):
                ts = t0 + k * step + jit
                if met == "energy":
                    energy[i] += round(rnd.uniform(0.001, 0.05), 6)
                    value = energy[i]
                elif met == "temperature":
                    value = round(base + 2 * math.sin(k / 30.0 + i) + rnd.gauss(0, 0.2), 3)
                else:
                    value = round(base + 5 * math.cos(k / 45.0 + i) + rnd.gauss(0, 0.5), 2)
                u = unit
                if met == "temperature" and rnd.random() < 0.01:
                    u = "degC"  # a unit that disagrees: the window keeps its first reading's
                rec = {"site": site, "device": dev, "sensor": sen, "metric": met, "unit": u,
                       "value": value, "ts": ts, "received_at": ts, "location": None,
                       "device_type": None, "tags": {}}
                arrival = ts
                x = rnd.random()
                if x < 0.05:  # out of order, within the grace
                    arrival = ts + rnd.randrange(1, max(2, a.grace - step))
                elif x < 0.055 and k * step > a.window + a.grace + 2 * step:
                    # late: beyond the window and the grace (only within its own burst)
                    arrival = ts + a.window + a.grace + 2 * step + rnd.randrange(
                        min(2 * a.window, (per - k) * step) or 1)
                    arrival = min(arrival, t0 + per * step - 1)
                if rnd.random() < a.invalid:  # refused: counts as consumed, nothing else
                    if rnd.random() < 0.5:
                        rec = dict(rec, value=1e200)
                    else:
                        rec = dict(rec, device="x" * 300)
                events.append((arrival, b, seq, rec))
                seq += 1
                y = rnd.random()
                if y < 0.01:  # redelivered: same identity, same value, a little later
                    events.append((arrival + rnd.randrange(0, max(1, a.grace // 2)), b, seq,
                                   dict(rec)))
                    seq += 1
                elif y < 0.012:  # same identity, another value: the first one counts
                    dup = dict(rec, value=round(value + 100.5, 3))
                    events.append((arrival + rnd.randrange(1, max(2, a.grace // 2)), b, seq,
                                   dup))
                    seq += 1
    events.sort(key=lambda e: (e[1], e[0], e[2]))
    out = sys.stdout
    last_burst = 0
    for arrival, b, _, rec in events:
        if b != last_burst:
            if a.pause_marks:
                out.write("pause\n")
            last_burst = b
        out.write(json.dumps(rec) + "\n")
    if a.sentinel:
        ts = events[-1][0] + 3600 * 1000
        if a.pause_marks:
            out.write("pause\n")
        for s in range(a.sites):
            out.write(json.dumps({"site": "s%02d" % s, "device": "end", "sensor": "end",
                                  "metric": "end", "unit": "-", "value": 0.0, "ts": ts,
                                  "received_at": ts, "location": None, "device_type": None,
                                  "tags": {}}) + "\n")


# ---- ref ----------------------------------------------------------------------------------


class Window:
    __slots__ = ("key", "start", "unit", "ids", "vals")

    def __init__(self, key, start, unit):
        self.key, self.start, self.unit = key, start, unit
        self.ids = set()
        self.vals = []  # (value, ts) in arrival order


class Partition:
    def __init__(self):
        self.wm = None  # largest event time minus the grace; None before the first reading
        self.open = {}  # (group key, start) -> Window


def window_starts(ts, size, hop):
    first = ((ts - size) // hop + 1) * hop  # Python's // is floor division
    return range(first, ts // hop * hop + 1, hop)


def finish(w, size):
    n = len(w.vals)
    vals = [v for v, _ in w.vals]
    mean = math.fsum(vals) / n
    # Two passes in exact-sum arithmetic: the reference for Welford's single pass.
    mean = mean + math.fsum(v - mean for v in vals) / n
    var = math.fsum((v - mean) ** 2 for v in vals) / n
    first = min(range(n), key=lambda i: (w.vals[i][1], i))  # earliest; ties: first arrival
    last = max(range(n), key=lambda i: (w.vals[i][1], i))  # latest; ties: last arrival
    o = dict(zip(FIELDS, w.key))
    o.update(unit=w.unit, window_start=w.start, window_end=w.start + size, window_ms=size,
             count=n, mean=mean, min=min(vals), max=max(vals), stddev=math.sqrt(var),
             first=w.vals[first][0], first_ts=w.vals[first][1], last=w.vals[last][0],
             last_ts=w.vals[last][1])
    return o


def refused(r):
    """What the aggregator refuses (docs/aggregator.md, Refused readings)."""
    if any(len(r[f].encode()) > 256 for f in FIELDS + ("unit",)):
        return True
    v = r["value"]
    return not math.isfinite(v) or abs(v) > 1e150 or abs(r["ts"]) > 2 ** 53


def simulate(streams, size, hop, grace, group_by, close_at_end, close_on_pause):
    """streams: {partition: [reading or "pause", ...] in offset order}."""
    emitted, late, tally = [], [], collections.Counter()
    open_left = 0
    for part in sorted(streams):
        p = Partition()

        def close(until):
            for k in sorted((k for k, w in p.open.items() if k[1] + size <= until),
                            key=lambda k: k[1]):
                emitted.append(finish(p.open.pop(k), size))

        for r in streams[part]:
            if r == "pause":
                if close_on_pause and p.open:
                    last_end = max(k[1] for k in p.open) + size
                    close(last_end)
                    p.wm = max(p.wm, last_end) if p.wm is not None else last_end
                continue
            if refused(r):
                tally["invalid"] += 1
                continue
            tally["readings"] += 1
            key = tuple(r[f] if f in group_by else "*" for f in FIELDS)
            ident = tuple(r[f] for f in FIELDS) + (r["ts"],)
            outcome = set()
            for start in window_starts(r["ts"], size, hop):
                if p.wm is not None and start + size <= p.wm:
                    outcome.add("late")
                    continue
                w = p.open.get((key, start))
                if w is None:
                    w = p.open[(key, start)] = Window(key, start, r["unit"])
                if ident in w.ids:
                    outcome.add("duplicate")
                    continue
                w.ids.add(ident)
                w.vals.append((r["value"], r["ts"]))
                outcome.add("added")
            for what in ("late", "added", "duplicate"):
                if what in outcome:
                    tally[what] += 1
                    break
            if "late" in outcome:
                late.append(r)
            wm = r["ts"] - grace
            if p.wm is None or wm > p.wm:
                p.wm = wm
                close(wm)
        if close_at_end:
            close(float("inf"))
        open_left += len(p.open)
    tally["windows"] = len(emitted)
    tally["open"] = open_left
    return emitted, late, tally


def read_input(path, stdin_mode):
    streams = collections.defaultdict(list)
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            if line == "pause":
                streams[0].append("pause")
                continue
            o = json.loads(line)
            if stdin_mode:
                streams[0].append(o)
            else:
                streams[o["partition"]].append((o["offset"], o["value"]))
    if not stdin_mode:
        for part, recs in streams.items():
            recs.sort(key=lambda x: x[0])
            streams[part] = [r for _, r in recs]
    return streams


def ref(a):
    group_by = set(a.group_by.split(","))
    streams = read_input(a.input, a.stdin)
    emitted, late, tally = simulate(streams, a.window, a.hop or a.window, a.grace, group_by,
                                    a.stdin, a.close_idle)
    with open(a.aggregates, "w") as f:
        for o in emitted:
            f.write(json.dumps(o) + "\n")
    with open(a.late, "w") as f:
        for r in late:
            f.write(json.dumps(r) + "\n")
    print("readings %d added %d duplicate %d late %d invalid %d windows %d open %d" % (
        tally["readings"], tally["added"], tally["duplicate"], tally["late"], tally["invalid"],
        tally["windows"], tally["open"]))


# ---- compare, distinct ----------------------------------------------------------------------


def records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def ident(o):
    return tuple(o[k] for k in IDENTITY)


def differences(got, want):
    """What differs between two aggregates of one identity (empty when they agree)."""
    bad = []
    for k in EXACT:
        if got.get(k) != want[k]:
            bad.append("%s %r != %r" % (k, got.get(k), want[k]))
    scale = max(abs(want["min"]), abs(want["max"]))
    for k, tol in (("mean", 1e-9 * abs(want["mean"])),
                   ("stddev", 1e-9 * want["stddev"] + 1e-15 * scale)):
        if not isinstance(got.get(k), (int, float)) or abs(got[k] - want[k]) > tol:
            bad.append("%s %r != %r" % (k, got.get(k), want[k]))
    return bad


def compare(a):
    got, want = records(a.got), records(a.ref)
    problems = []
    by_id = {}
    for o in got:
        if ident(o) in by_id:
            problems.append("emitted twice: %s" % (ident(o),))
        by_id[ident(o)] = o
    want_ids = {ident(o) for o in want}
    missing = [w for w in want if ident(w) not in by_id]
    extra = [i for i in by_id if i not in want_ids]
    for w in missing[:5]:
        problems.append("missing: %s" % (ident(w),))
    for i in extra[:5]:
        problems.append("unexpected: %s" % (i,))
    wrong = 0
    for w in want:
        g = by_id.get(ident(w))
        if g is None:
            continue
        d = differences(g, w)
        if d:
            wrong += 1
            if wrong <= 5:
                problems.append("%s: %s" % (ident(w), "; ".join(d)))
    line = "aggregates: reference %d got %d missing %d unexpected %d different %d" % (
        len(want), len(got), len(missing), len(extra), wrong)
    if a.late:
        def late_key(r):
            return tuple(r[f] for f in FIELDS) + (r["ts"], r["value"], r["unit"])
        gl = collections.Counter(map(late_key, records(a.late[0])))
        rl = collections.Counter(map(late_key, records(a.late[1])))
        line += "; late readings: reference %d got %d" % (sum(rl.values()), sum(gl.values()))
        if gl != rl:
            problems.append("late readings differ: missing %s unexpected %s" % (
                list((rl - gl).items())[:3], list((gl - rl).items())[:3]))
    print(line)
    for p in problems[:20]:
        print("  " + p)
    return 1 if problems else 0


def field_diff(a, b):
    return ", ".join("%s %r / %r" % (k, a.get(k), b.get(k))
                     for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k))


def distinct(a):
    got, want = records(a.got), records(a.ref)
    problems = []
    ref_by = {}
    for o in want:
        if ident(o) in ref_by:
            problems.append("the reference run emitted %s twice" % (ident(o),))
        ref_by[ident(o)] = o
    got_by = {}
    resent = 0
    for o in got:
        i = ident(o)
        if i in got_by:
            resent += 1
            if o != got_by[i]:
                problems.append("re-sent with other values: %s: %s" % (i, field_diff(got_by[i], o)))
        got_by[i] = o
    missing = [i for i in ref_by if i not in got_by]
    extra = [i for i in got_by if i not in ref_by]
    for i in missing[:5]:
        problems.append("missing: %s" % (i,))
    for i in extra[:5]:
        problems.append("unexpected: %s" % (i,))
    wrong = [i for i in ref_by if i in got_by and got_by[i] != ref_by[i]]
    for i in wrong[:5]:
        problems.append("different: %s: %s" % (i, field_diff(ref_by[i], got_by[i])))
    line = "ref %d got %d distinct %d resent %d missing %d unexpected %d different %d" % (
        len(want), len(got), len(got_by), resent, len(missing), len(extra), len(wrong))
    if a.late:
        def late_key(r):
            return tuple(r[f] for f in FIELDS) + (r["ts"], r["value"], r["unit"])
        gl = collections.Counter(map(late_key, records(a.late[0])))
        rl = collections.Counter(map(late_key, records(a.late[1])))
        line += " late: ref %d got %d" % (sum(rl.values()), sum(gl.values()))
        # A redelivered late reading is late again: REF may list one twice, GOT at least as
        # often.
        if set(gl) != set(rl) or rl - gl:
            problems.append("late readings differ: missing %s unexpected %s" % (
                list((rl - gl).items())[:3], sorted(set(gl) - set(rl))[:3]))
    print(line)
    for p in problems[:20]:
        print("  " + p)
    return 1 if problems else 0


def pace(a):
    step = max(1, a.rate // 20)
    t0 = time.monotonic()
    n = 0
    out = sys.stdout
    for line in sys.stdin:
        out.write(line)
        n += 1
        if n % step == 0:
            out.flush()
            delay = t0 + n / a.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
    out.flush()
    return 0


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen")
    g.add_argument("--seed", type=int, default=1)
    g.add_argument("--sites", type=int, default=8)
    g.add_argument("--devices", type=int, default=3)
    g.add_argument("--seconds", type=int, default=240)
    g.add_argument("--start", type=int, default=1704067200000)  # 2024-01-01T00:00:00Z
    g.add_argument("--grace", type=int, default=3000)
    g.add_argument("--window", type=int, default=10000)
    g.add_argument("--bursts", type=int, default=1)
    g.add_argument("--gap", type=int, default=0)
    g.add_argument("--sentinel", action="store_true")
    g.add_argument("--invalid", type=float, default=0.0)
    g.add_argument("--pause-marks", action="store_true")
    r = sub.add_parser("ref")
    r.add_argument("--window", type=int, required=True)
    r.add_argument("--hop", type=int, default=0)
    r.add_argument("--grace", type=int, required=True)
    r.add_argument("--group-by", default="site,device,sensor,metric")
    r.add_argument("--stdin", action="store_true")
    r.add_argument("--close-idle", action="store_true")
    r.add_argument("input")
    r.add_argument("aggregates")
    r.add_argument("late")
    c = sub.add_parser("compare")
    c.add_argument("got")
    c.add_argument("ref")
    c.add_argument("--late", nargs=2)
    d = sub.add_parser("distinct")
    d.add_argument("got")
    d.add_argument("ref")
    d.add_argument("--late", nargs=2)
    p = sub.add_parser("pace")
    p.add_argument("rate", type=int)
    a = ap.parse_args()
    if a.cmd == "pace":
        return pace(a)
    if a.cmd == "gen":
        gen(a)
        return 0
    if a.cmd == "ref":
        ref(a)
        return 0
    return compare(a) if a.cmd == "compare" else distinct(a)


if __name__ == "__main__":
    sys.exit(main())
