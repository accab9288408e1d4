#!/usr/bin/python3
"""Drives and measures bench/e2e.sh once it has started the system (see there).

  e2e.py --conf DEMO_CONF --mqtt URL --sim SENSOR_SIM --step S --out FILE --logs DIR
         --command TEXT NAME=PID...

NAME=PID are the processes whose CPU and memory are reported; a PostgreSQL server's backends
(the children of its postmaster) count with it. Exit status 1 when a step lost or duplicated
anything, 2 on bad arguments.
"""

import argparse
import importlib.machinery
import importlib.util
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def load_demo_status():
    """tools/demo-status (a script without .py) as a module: its config, metrics and psql
    helpers are the ones the demo uses."""
    path = os.path.join(ROOT, "tools", "demo-status")
    sys.dont_write_bytecode = True  # no __pycache__ in the source tree
    loader = importlib.machinery.SourceFileLoader("demo_status", path)
    spec = importlib.util.spec_from_loader("demo_status", loader)
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


ds = load_demo_status()
TICK = os.sysconf("SC_CLK_TCK")
START_RATE, RATE_STEP, CHECK_RATE = 1000, 1000, 10000
WARMUP_RATE, WARMUP_S = 500, 5
STEADY_SHARE = 0.97  # of the asked rate sensor-sim must keep
STEADY_P99_MS = 2000  # p99 of a step's last third, publish -> central row
# One reading a message, 1000 series; event times in ms, taken when sensor-sim makes the message.
# E2E_INFLIGHT: sensor-sim's window of unacknowledged QoS 1 publishes (its default: 100).
SIM_ARGS = ["--format", "factory", "--sites", "20", "--devices", "25", "--sensors", "2",
            "--no-control", "--invalid", "0", "--inflight", os.environ.get("E2E_INFLIGHT", "100")]


def wait_rusage(proc, timeout):
    """Waits for a child; (exit status, CPU seconds, peak RSS kB). Killed after timeout s."""
    deadline = time.monotonic() + timeout
    while True:
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            proc.returncode = os.waitstatus_to_exitcode(status)
            return proc.returncode, ru.ru_utime + ru.ru_stime, ru.ru_maxrss
        if time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.05)


def proc_table():
    """{pid: (ppid, cpu ticks, rss kB)} of every process."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                st = f.read().rsplit(")", 1)[1].split()
            with open("/proc/%s/statm" % d) as f:
                rss_pages = int(f.read().split()[1])
        except (OSError, IndexError, ValueError):
            continue
        out[int(d)] = (int(st[1]), int(st[11]) + int(st[12]),
                       rss_pages * os.sysconf("SC_PAGE_SIZE") // 1024)
    return out


def pss_kb(pid):
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def proc_sample(procs):
    """{name: (cpu ticks, memory kB)} of each process with its descendants. Memory is the
    resident set of a single process, and the proportional set size (PSS) summed over a tree
    (a PostgreSQL server and its backends share their buffers: resident sets would count them
    once per backend)."""
    table = proc_table()
    children = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    res = {}
    for name, pid in procs.items():
        tree, todo = [], [pid]
        while todo:
            p = todo.pop()
            if p in table:
                tree.append(p)
                todo += children.get(p, [])
        ticks = sum(table[p][1] for p in tree)
        mem = table[pid][2] if len(tree) == 1 else sum(pss_kb(p) for p in tree)
        res[name] = (ticks, mem)
    return res, time.monotonic()


def usage(a, b):
    """{name: (cpu %, rss MiB at the end)} between two samples."""
    (sa, ta), (sb, tb) = a, b
    dt = max(tb - ta, 1e-6)
    return {n: (100.0 * (sb[n][0] - sa[n][0]) / TICK / dt, sb[n][1] / 1024.0) for n in sb}


LAT_SQL = """SELECT json_build_object('n', n, 'p50', q[1], 'p99', q[2], 'max', mx) FROM (
  SELECT percentile_cont(ARRAY[0.5, 0.99]) WITHIN GROUP (ORDER BY ms) AS q, max(ms) AS mx,
         count(*) AS n FROM (%s) d) x"""


def readings_latency(lo_ms, hi_ms):
    """Publish -> row of the readings whose event time is in [lo_ms, hi_ms)."""
    return LAT_SQL % ("SELECT extract(epoch FROM saved_at - ts) * 1000 AS ms FROM readings "
                      "WHERE ts >= to_timestamp(%.3f) AND ts < to_timestamp(%.3f)"
                      % (lo_ms / 1000.0, hi_ms / 1000.0))


def raw_latency(lo_ms, hi_ms):
    """Publish -> row of the raw messages of factory readings with ts in [lo_ms, hi_ms)."""
    ts = "(convert_from(payload, 'UTF8')::json->>'ts')::bigint"
    return LAT_SQL % (
        "SELECT saved_at_ms - t AS ms FROM (SELECT extract(epoch FROM saved_at) * 1000 AS "
        "saved_at_ms, %s AS t FROM raw_messages WHERE topic LIKE 'factory/%%' AND "
        "received_at >= to_timestamp(%.3f)) r WHERE t >= %d AND t < %d"
        % (ts, lo_ms / 1000.0 - 1, lo_ms, hi_ms))


def step_ids(t0_ms):
    """The messages saved since t0_ms, and their distinct reading identities."""
    return ("SELECT json_build_object('n', count(*), 'ids', count(DISTINCT ("
            "j->'metadata'->>'siteId', j->'metadata'->>'deviceId', j->'metadata'->>'sensorId', "
            "j->>'ts'))) FROM (SELECT convert_from(payload, 'UTF8')::json AS j FROM raw_messages "
            "WHERE received_at >= to_timestamp(%.3f)) r" % (t0_ms / 1000.0))


COUNT_SQL = ("SELECT json_build_object('raw', (SELECT count(*) FROM raw_messages), "
             "'readings', (SELECT count(*) FROM readings))")


class Bench:
    def __init__(self, args, procs):
        self.args = args
        self.procs = procs
        self.conf = ds.load_conf(args.conf)
        self.sites = {s.name: s for s in ds.open_sites(self.conf)}
        self.steps = []
        self.failures = []

    def metric(self, svc, name, **labels):
        try:
            m = ds.parse_metrics(ds.fetch(self.conf["services"][svc], "/metrics"))
        except (OSError, ValueError):
            return None
        return sum(v for lab, v in m.get(name, []) if all(lab.get(k) == w
                                                            for k, w in labels.items()))

    def counts(self):
        e, c = self.sites["edge"].query(COUNT_SQL), self.sites["central"].query(COUNT_SQL)
        if not e or not c:
            raise RuntimeError("cannot count rows (psql logs in %s)" % self.args.logs)
        return {"edge_raw": e["raw"], "edge_readings": e["readings"],
                "central_readings": c["readings"]}

    def step(self, rate, secs=None, report=True):
        secs = secs or self.args.step
        summary_path = os.path.join(self.args.logs, "sim-%d.json" % rate)
        log = open(os.path.join(self.args.logs, "sim-%d.log" % rate), "w")
        rows0 = self.counts()
        dup0 = {k: self.metric(svc, "iotpipe_db_rows_duplicate_total", table=t) for k, svc, t in
                (("edge_raw", "saver-raw", "raw_messages"),
                 ("edge_readings", "saver-clean", "readings"),
                 ("central_readings", "saver-central", "readings"))}
        t0_ms = int(time.time() * 1000)
        p0 = proc_sample(self.procs)
        sim = subprocess.Popen(
            [self.args.sim, "--mqtt", self.args.mqtt, "--client-id", "bench-%d" % rate,
             "--rate", str(rate), "--duration", "%ds" % secs, "--summary", summary_path]
            + SIM_ARGS, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log)
        log.close()
        sim_rc, sim_cpu, sim_rss = wait_rusage(sim, secs + 120)
        p1 = proc_sample(self.procs)
        t1_ms = int(time.time() * 1000)
        try:
            with open(summary_path) as f:
                summ = json.load(f)
        except (OSError, ValueError):
            summ = {}
        sent = summ.get("confirmed", 0)
        # Drained: raw_messages has a row for each message the broker confirmed, and both
        # readings tables one for each distinct reading identity among them, or, after two
        # minutes, what is missing is lost.
        t_drain = time.monotonic()
        want = {"edge_raw": sent, "edge_readings": None, "central_readings": None}
        ids = None
        while True:
            rows1 = self.counts()
            if ids is None and rows1["edge_raw"] - rows0["edge_raw"] >= sent:
                ids = self.sites["edge"].query(step_ids(t0_ms)) or {}
                want["edge_readings"] = want["central_readings"] = ids.get("ids")
            if ids is not None and all(want[k] is not None and rows1[k] - rows0[k] >= want[k]
                                       for k in rows1):
                time.sleep(1)  # anything more arriving now would be a duplicate
                rows1 = self.counts()
                break
            if time.monotonic() - t_drain > 120:
                break
            time.sleep(0.5)
        drain_s = time.monotonic() - t_drain
        added = {k: rows1[k] - rows0[k] for k in rows1}
        # sensor-sim stamps a reading with the millisecond it makes the message. Descheduled
        # for a moment on a busy machine, it then catches up on its schedule in a burst, and
        # can make one sensor's next message within the same millisecond: two messages, one
        # reading identity, one row. Those are counted here, not as loss.
        repeats = sent - (ids or {}).get("ids", sent)
        dup = {k: (self.metric(svc, "iotpipe_db_rows_duplicate_total", table=t) or 0)
               - (dup0[k] or 0) for k, svc, t in
               (("edge_raw", "saver-raw", "raw_messages"),
                ("edge_readings", "saver-clean", "readings"),
                ("central_readings", "saver-central", "readings"))}
        last_third = t1_ms - (t1_ms - t0_ms) // 3
        lat = {
            "edge_raw": self.sites["edge"].query(raw_latency(t0_ms, t1_ms)),
            "edge_readings": self.sites["edge"].query(readings_latency(t0_ms, t1_ms)),
            "central_readings": self.sites["central"].query(readings_latency(t0_ms, t1_ms)),
            "central_last_third": self.sites["central"].query(
                readings_latency(last_third, t1_ms)),
        }
        achieved = summ.get("rate", 0.0)
        lt = lat["central_last_third"] or {}
        steady = (sim_rc == 0 and achieved >= STEADY_SHARE * rate
                  and lt.get("p99") is not None and lt["p99"] <= STEADY_P99_MS)
        lost = {k: want[k] - v if want[k] is not None else "?" for k, v in added.items()
                if v != want[k]}
        st = {"rate": rate, "achieved": achieved, "sent": sent, "sim_rc": sim_rc,
              "repeats": repeats,
              "added": added, "redelivered": dup, "latency": lat, "steady": steady,
              "drain_s": drain_s, "usage": usage(p0, p1), "lost": lost,
              "sim": (100.0 * sim_cpu / max((p1[1] - p0[1]), 1e-6), sim_rss / 1024.0)}
        st["usage"]["sensor-sim"] = st["sim"]
        if sim_rc != 0 or summ.get("failed") or summ.get("unconfirmed"):
            self.failures.append("%d msg/s: sensor-sim exit %d, failed %s, unconfirmed %s" % (
                rate, sim_rc, summ.get("failed"), summ.get("unconfirmed")))
        for k, v in added.items():
            if v != want[k]:
                self.failures.append("%d msg/s: %s rows added %d, expected %s (%s)" % (
                    rate, k, v, want[k], "lost" if want[k] is None or v < want[k]
                    else "duplicated"))
        st["limit"] = ("publisher" if achieved < STEADY_SHARE * rate else
                       "backlog" if not steady else "")
        if report:
            self.steps.append(st)
        c = lat["central_readings"] or {}
        print("# %5d msg/s%s: sent %d at %.0f/s, central p50 %s p99 %s max %s, %s%s" % (
            rate, "" if report else " (warm-up)", sent, achieved, ds.fmt_ms(c.get("p50")), ds.fmt_ms(c.get("p99")),
            ds.fmt_ms(c.get("max")), "steady" if steady else "NOT steady",
            "" if not lost else ", rows missing or extra: %s" % lost), flush=True)
        return st

    def steady(self, rate):
        """A step at rate, and a second one when the first was not steady: on a machine shared
        with other work one stall of the publisher should not end the search."""
        for _ in range(2):
            st = self.step(rate)
            if st["lost"]:
                return False
            if st["steady"]:
                return True
        return False

    def run(self):
        time.sleep(2)
        i0 = proc_sample(self.procs)
        time.sleep(10)
        self.idle = usage(i0, proc_sample(self.procs))
        # The first seconds of load pay for connections, first fetches and the databases'
        # first writes: a short warm-up, checked for loss like every step, not reported.
        self.step(WARMUP_RATE, WARMUP_S, report=False)
        best, worst = None, None
        rate = START_RATE
        while rate <= CHECK_RATE:
            if not self.steady(rate):
                worst = rate
                break
            best = rate
            rate += RATE_STEP
        # Between the last steady rate and the first that was not, once.
        if best and worst and worst - best > RATE_STEP // 4:
            mid = (best + worst) // 2 // 250 * 250
            if self.steady(mid):
                best = mid
        if not any(s["rate"] == CHECK_RATE for s in self.steps):
            self.step(CHECK_RATE)
        self.best = best

    def report(self):
        L = []
        load = os.getloadavg()
        cpu = "?"
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
        except (OSError, StopIteration):
            pass
        L.append("end to end: MQTT publish -> row in the central readings table")
        L.append("command: %s   (release build, %ss per step; sensor-sim %s)" % (
            self.args.command, self.args.step, " ".join(SIM_ARGS)))
        L.append("machine: %d cores (%s), %s, load average at the end %.1f %.1f %.1f; "
                 "everything on it" % (os.cpu_count(), cpu, platform.platform(), *load))
        L.append("date: %s" % time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        L.append("")
        L.append("%8s %9s %8s | %-24s | %-24s | %-24s | %6s | %s" % (
            "rate", "achieved", "messages", "edge raw_messages", "edge readings",
            "central readings", "drain", "steady, loss"))
        L.append("%8s %9s %8s | %-24s | %-24s | %-24s | %6s |" % (
            "msg/s", "msg/s", "", "p50 / p99 / max ms", "p50 / p99 / max ms",
            "p50 / p99 / max ms", "s"))

        def lat(d):
            d = d or {}
            if not d.get("n"):
                return "-"
            return "%.0f / %.0f / %.0f" % (d["p50"], d["p99"], d["max"])
        for s in self.steps:
            L.append("%8d %9.0f %8d | %-24s | %-24s | %-24s | %6.1f | %s, %s" % (
                s["rate"], s["achieved"], s["sent"], lat(s["latency"]["edge_raw"]),
                lat(s["latency"]["edge_readings"]), lat(s["latency"]["central_readings"]),
                s["drain_s"], "steady" if s["steady"] else "not steady (%s)" % s["limit"],
                "none lost or duplicated" if not s["lost"] else "ROWS %s" % s["lost"]))
        L.append("steady: sensor-sim kept %d%% of the rate (else: publisher) and 99%% of the "
                 "readings of the step's last third reached the central table within %d ms "
                 "(else: backlog)" % (STEADY_SHARE * 100, STEADY_P99_MS))
        rep = sum(s["repeats"] for s in self.steps)
        if rep:
            L.append("%d message(s) repeated another's reading identity (same sensor, same "
                     "millisecond: sensor-sim catching up after being descheduled); each such "
                     "pair is one row" % rep)
        L.append("")
        L.append("highest steady rate with zero loss: %s" % (
            "%d msg/s" % self.best if self.best else "none of the rates tried"))
        red = {k: sum(s["redelivered"][k] for s in self.steps) for k in self.steps[0]["redelivered"]}
        L.append("rows already present when written (a record delivered again, or a repeated "
                 "identity; the tables are idempotent): %s" % (
                     ", ".join("%s %d" % kv for kv in red.items())))
        L.append("")
        cols = [("idle", self.idle)] + [("%d msg/s" % s["rate"], s["usage"]) for s in self.steps
                                        if s["rate"] in (START_RATE, CHECK_RATE)]
        if self.best and self.best not in (START_RATE, CHECK_RATE):
            cols.append(("%d msg/s" % self.best,
                         next(s["usage"] for s in self.steps if s["rate"] == self.best)))
        L.append("CPU (% of one core) and memory (MiB: resident set; PostgreSQL: PSS of the "
                 "server and its backends) per process:")
        L.append("%-18s" % "process" + "".join(" | %-16s" % c[0] for c in cols))
        for name in list(self.procs) + ["sensor-sim"]:
            L.append("%-18s" % name + "".join(
                " | %5.1f%% %6.1f MiB" % u[name] if name in u else " | %-16s" % "-"
                for _, u in cols))
        L.append("%-18s" % "all together" + "".join(
            " | %5.0f%% %6.0f MiB" % (sum(v[0] for v in u.values()),
                                       sum(v[1] for v in u.values())) for _, u in cols))
        L.append("(sensor-sim is the load generator; its memory is its peak. Idle: before any "
                 "load; a rate: while sensor-sim published)")
        if self.failures:
            L.append("")
            L.append("FAILED: the pipeline lost or duplicated data:")
            L += ["  " + f for f in self.failures]
        text = "\n".join(L)
        print(text)
        with open(self.args.out, "w") as f:
            f.write(text + "\n")
        print("# written to %s" % self.args.out)

    def close(self):
        for s in self.sites.values():
            s.close()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--conf", required=True)
    p.add_argument("--mqtt", required=True)
    p.add_argument("--sim", required=True)
    p.add_argument("--step", type=int, default=20)
    p.add_argument("--out", required=True)
    p.add_argument("--logs", required=True)
    p.add_argument("--command", default="bench/e2e.sh")
    p.add_argument("procs", nargs="+", metavar="NAME=PID")
    args = p.parse_args()
    procs = {}
    for item in args.procs:
        name, _, pid = item.partition("=")
        if not pid.isdigit():
            print("e2e.py: %r is not NAME=PID" % item, file=sys.stderr)
            return 2
        procs[name] = int(pid)
    b = Bench(args, procs)
    try:
        b.run()
        b.report()
    finally:
        b.close()
    return 1 if b.failures else 0


if __name__ == "__main__":
    sys.exit(main())
