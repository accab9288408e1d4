#!/usr/bin/env python3
"""Compares RawMessage JSON lines read back from Kafka (iot-cat) with what sensor-sim published
(sensor-sim --stdout with the same seed). Prints "expected E got G distinct D missing M
duplicates U unexpected X" and exits 0 when nothing expected is missing and nothing unexpected
arrived. With --allow-missing it only reports (for measuring the kill -9 window)."""
import collections
import json
import sys


def key(line):
    r = json.loads(line)
    return (r["topic"], json.dumps(r["payload"], sort_keys=True))


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    allow_missing = "--allow-missing" in sys.argv
    got = collections.Counter(key(l) for l in open(args[0]) if l.strip())
    want = collections.Counter(key(l) for l in open(args[1]) if l.strip())
    # Multisets: a generator may publish the same (topic, payload) twice, and then both
    # copies are expected.
    missing = sum(max(0, n - got[k]) for k, n in want.items())
    dupes = sum(max(0, n - want[k]) for k, n in got.items() if k in want)
    unexpected = sum(n for k, n in got.items() if k not in want)
    print(f"expected {sum(want.values())} got {sum(got.values())} distinct {len(got)} "
          f"missing {missing} duplicates {dupes} unexpected {unexpected}")
    for label, keys in (("missing", [k for k in want if got[k] < want[k]]),
                        ("unexpected", [k for k in got if k not in want])):
        for k in keys[:2]:
            print(f"  {label}: {k[0]} {k[1][:160]}")
    ok = unexpected == 0 and (allow_missing or missing == 0)
    sys.exit(0 if ok else 1)


main()
