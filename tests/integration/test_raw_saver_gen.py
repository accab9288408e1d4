#!/usr/bin/env python3
"""RawMessage JSON lines for the raw-saver tests and benchmark, with payloads that stress every
layer between Kafka and PostgreSQL: quotes, backslashes, tabs, CR/LF, NUL bytes, invalid UTF-8,
SQL and COPY metacharacters, empty payloads, and JSON. Every payload ends with its index, so all
payloads differ and a missing or doubled row shows in the comparison.

  test_raw_saver_gen.py --count N [--first I] [--seed S] [--md5 FILE] > raw.jsonl

--md5 FILE appends the MD5 of each payload (hex, one per line) for comparison with
SELECT md5(payload) FROM raw_messages."""
import argparse
import base64
import hashlib
import json
import random
import sys

TRICKY = [
    b"'; DROP TABLE raw_messages; --",
    b'"quoted" \\ back\\slash \\\\ \\N \\x41',
    b"tab\there\nnew\r\nline\r",
    b"\xff\xfe invalid \xc3\x28 utf8 \xe2\x82 \xed\xa0\x80",
    b"nul\x00inside\x00",
    b"$1 %s %n {} [] ? :name E'\\n' $$dollar$$",
    b"\\.\n",  # the end-of-data marker of text COPY
    b"",
]


def payload(i, rnd):
    k = i % 10
    if k < 3:
        body = TRICKY[i % len(TRICKY)]
    elif k < 5:
        body = bytes(rnd.getrandbits(8) for _ in range(rnd.randint(0, 80)))
    else:
        body = json.dumps({"ts": 1729312551000 + i, "metadata": {"siteId": 101, "deviceId": i % 97,
                          "sensorId": 10034, "unit": "BAR"}, "measurement": i % 500},
                          separators=(",", ":")).encode()
    return body + b" #" + str(i).encode()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--md5")
    ap.add_argument("--received-at", type=int, default=0,
                    help="received_at of the first record (ms); default: now")
    a = ap.parse_args()
    rnd = random.Random(a.seed * 1000003 + a.first)
    base = a.received_at or None
    if base is None:
        import time
        base = int(time.time() * 1000)
    md5 = open(a.md5, "a") if a.md5 else None
    out = sys.stdout
    for i in range(a.first, a.first + a.count):
        p = payload(i, rnd)
        try:
            text = p.decode("utf-8")
            value = text if "\x00" not in text else {"base64": base64.b64encode(p).decode()}
        except UnicodeDecodeError:
            value = {"base64": base64.b64encode(p).decode()}
        rec = {"source": "north", "topic": "factory/%d/%d/data" % (i % 7, i % 97), "payload": value,
               "qos": i % 3, "retained": i % 11 == 0, "received_at": base + i}
        out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        if md5:
            md5.write(hashlib.md5(p).hexdigest() + "\n")
    if md5:
        md5.close()


main()
