#!/usr/bin/env python3
"""Checks behind the cleaner's integration tests (test_cleaner.sh, test_cleaner_kill.sh).

  tally SUMMARY CLEAN REJECTED [METRICS]
      The cleaner's outputs (JSON lines) against sensor-sim's --summary: one Reading per valid
      reading, one Rejected per invalid message, and for each invalid kind as many rejections
      with that kind's reason_code. With METRICS (a /metrics dump), the cleaner's counters must
      say the same. Prints what it compared; exit 0 when everything matches.

  same GOT REF [--ignore F,F...] [--exact]
      Two JSON-lines files of records: prints "reference R distinct RD identities RI got G
      distinct GD identities GI missing M duplicates U unexpected X" (identities: distinct Reading
      identities (site, device, sensor, metric, ts); distinct records for other types). Exit 0
      when nothing of REF is missing and nothing unexpected arrived; with --exact, also no
      duplicates. Fields named by --ignore are left out of the comparison.
"""
import collections
import json
import re
import sys

# What sensor-sim's invalid kinds must become (docs/sensor-sim.md, docs/cleaner.md).
KIND_REASON = {
    "malformed": "json_malformed",
    "error_value": "value_error_code",
    "nan": "value_not_finite",
    "out_of_range": "value_out_of_range",
    "future_ts": "ts_future",
    "bad_id": "id_invalid",
}


def records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def metric_values(path, name):
    """{label value or "": sample} of one metric in Prometheus text."""
    out = {}
    pat = re.compile(r'^' + re.escape(name) + r'(?:\{reason="([^"]*)"\})? ([0-9.eE+-]+)$')
    with open(path, encoding="utf-8") as f:
        for line in f:
            m = pat.match(line.strip())
            if m:
                out[m.group(1) or ""] = float(m.group(2))
    return out


def tally(args):
    summary = json.load(open(args[0], encoding="utf-8"))
    clean, rejected = records(args[1]), records(args[2])
    ok = True
    want_clean, want_rej = summary["valid_readings"], summary["invalid"]
    print(f"messages {summary['messages']} (readings {summary['readings']}): "
          f"clean {len(clean)} of {want_clean} valid readings, "
          f"rejected {len(rejected)} of {want_rej} invalid messages")
    if len(clean) != want_clean or len(rejected) != want_rej:
        ok = False
    if any("reason" in r or "site" not in r for r in clean):
        print("the clean output holds something other than Readings")
        ok = False
    got = collections.Counter(r.get("reason_code") for r in rejected)
    want = collections.Counter()
    for kind, n in summary["invalid_by_kind"].items():
        if n:
            want[KIND_REASON[kind]] += n
    for code in sorted(set(got) | set(want)):
        mark = "" if got[code] == want[code] else "  <-- differs"
        print(f"  {code}: {got[code]} rejected, {want[code]} sent{mark}")
    if got != want:
        ok = False
    if len(args) > 3:
        m = metric_values(args[3], "iotpipe_cleaner_rejected_total")
        bad = {c: m.get(c, 0) for c in set(want) | set(m) if m.get(c, 0) != want[c]}
        readings = metric_values(args[3], "iotpipe_cleaner_readings_total").get("", -1)
        messages = metric_values(args[3], "iotpipe_cleaner_messages_total").get("", -1)
        print(f"metrics: messages {messages:.0f}, readings {readings:.0f}, rejected by reason "
              f"{'as sent' if not bad else 'differ: ' + json.dumps(bad)}")
        if bad or readings != want_clean or messages != summary["messages"]:
            ok = False
    return ok


def identity(r):
    if "site" in r and "ts" in r:
        return (r["site"], r["device"], r["sensor"], r["metric"], r["ts"])
    return json.dumps(r, sort_keys=True)


def same(args):
    ignore, exact, files = set(), False, []
    i = 0
    while i < len(args):
        if args[i] == "--ignore":
            ignore |= set(args[i + 1].split(","))
            i += 2
        elif args[i] == "--exact":
            exact = True
            i += 1
        else:
            files.append(args[i])
            i += 1
    got_recs, ref_recs = records(files[0]), records(files[1])

    def key(r):
        return json.dumps({k: v for k, v in r.items() if k not in ignore}, sort_keys=True)

    got = collections.Counter(key(r) for r in got_recs)
    ref = collections.Counter(key(r) for r in ref_recs)
    missing = sum(max(0, n - got[k]) for k, n in ref.items())
    dupes = sum(max(0, n - ref[k]) for k, n in got.items() if k in ref)
    unexpected = sum(n for k, n in got.items() if k not in ref)
    print(f"reference {len(ref_recs)} distinct {len(ref)} "
          f"identities {len({identity(r) for r in ref_recs})} "
          f"got {len(got_recs)} distinct {len(got)} identities {len({identity(r) for r in got_recs})} "
          f"missing {missing} duplicates {dupes} unexpected {unexpected}")
    for label, keys in (("missing", [k for k in ref if got[k] < ref[k]]),
                        ("unexpected", [k for k in got if k not in ref])):
        for k in keys[:3]:
            print(f"  {label}: {k[:300]}")
    return missing == 0 and unexpected == 0 and (not exact or dupes == 0)


def main():
    cmds = {"tally": tally, "same": same}
    if len(sys.argv) < 3 or sys.argv[1] not in cmds:
        sys.exit(__doc__)
    sys.exit(0 if cmds[sys.argv[1]](sys.argv[2:]) else 1)


main()
