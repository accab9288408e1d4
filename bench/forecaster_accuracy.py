#!/usr/bin/env python3
"""Data and scoring for bench/forecaster_accuracy.sh.

  forecaster_accuracy.py household --homes N --days D --start MS --seed S   > readings.jsonl
  forecaster_accuracy.py feeder --days D --start MS --seed S                > readings.jsonl
  forecaster_accuracy.py score --aggregates A.jsonl --forecasts F.jsonl --skip-days D

The generators write Reading records (JSON lines), one every 10 s per meter, so the aggregator
makes the per-minute means the forecaster sees, as in the pipeline.

household: one home's electricity use in W. Standby and a fridge compressor cycling (~15 min on,
  ~28 min off) all day; lights that follow occupancy and daylight; kettle, cooking, TV, washing
  and dishwasher runs started at random with rates that depend on the time of day and on
  weekdays (the home is empty 08:30-17:20 on weekdays). Step changes dominate minute-to-minute,
  as in real smart-meter data at this resolution.
feeder: a feeder serving ~1000 homes in kW. The shape of a standard household load profile
  (night trough, morning rise, midday plateau, evening peak; weekends later and flatter), a slow
  weather factor, and autocorrelated noise.

score joins each forecast with the aggregate of the window it predicted and prints JSON: windows
scored, MAE, MAPE (windows whose actual is 0 left out), and interval coverage, over the windows
after the first skip-days days (all models are judged on the same windows)."""
import argparse
import json
import math
import random
import sys

DAY_S = 86400


def reading(site, device, sensor, metric, unit, value, ts):
    return json.dumps({"site": site, "device": device, "sensor": sensor, "metric": metric,
                       "unit": unit, "value": round(value, 3), "ts": ts, "received_at": ts,
                       "location": None, "device_type": None, "tags": {}},
                      separators=(",", ":"))


class Home:
    """One home's power draw, stepped through time in order."""

    def __init__(self, seed):
        self.r = random.Random(seed)
        self.fridge_on, self.fridge_left = False, self.r.uniform(0, 1800)
        self.events = []  # (end time in s, watts)
        self.lights = 0.0

    def watts(self, t, step_s):
        r = self.r
        day = t // DAY_S
        h = (t % DAY_S) / 3600
        weekend = (day % 7) >= 5
        wake, sleep = (7.6 if weekend else 6.4), 23.2
        awake = wake <= h < sleep
        home_now = awake and (weekend or not 8.5 <= h < 17.3)
        self.fridge_left -= step_s
        if self.fridge_left <= 0:
            self.fridge_on = not self.fridge_on
            self.fridge_left = r.gauss(900, 60) if self.fridge_on else r.gauss(1700, 120)
        p = 55 + (92 if self.fridge_on else 0)
        dark = h < 7.5 or h > 17.0
        target = (160 if dark else 30) if home_now else (15 if awake else 0)
        if r.random() < step_s / 900:
            self.lights = target + r.choice((-40, 0, 0, 40))
        p += max(0.0, self.lights)

        def starts(rate_per_hour):
            return r.random() < rate_per_hour * step_s / 3600

        ev = self.events
        if home_now:
            busy = wake <= h < wake + 1.5 or 15 <= h < 16 or 19 <= h < 21
            if starts(0.6 if busy else 0.15):
                ev.append((t + r.uniform(120, 240), 2000 + r.gauss(0, 50)))  # kettle
            if 17.5 <= h < 19.5 and starts(0.45):
                ev.append((t + r.uniform(1200, 3000), 1800 + r.gauss(0, 200)))  # cooking
            if 18 <= h < 23 and starts(0.25):
                ev.append((t + r.uniform(3600, 10800), 110))  # TV
            if starts(0.03):
                ev.append((t + r.uniform(900, 1200), 2100))  # washing machine heating
            if 20 <= h < 23 and starts(0.1):
                ev.append((t + r.uniform(1200, 1500), 1800))  # dishwasher heating
        self.events = [e for e in ev if e[0] > t]
        return p + sum(w for _, w in self.events) + r.gauss(0, 2.5)


def household(out, homes, days, start_ms, seed, step_s=10):
    hs = [Home(seed * 1000 + i) for i in range(homes)]
    for n in range(days * DAY_S // step_s):
        t = n * step_s
        for i, home in enumerate(hs):
            out.write(reading("home%d" % i, "meter", "main", "power", "W",
                              home.watts(t, step_s), start_ms + t * 1000) + "\n")


def profile_shape(h, weekend):
    def bump(mu, sd):
        return sum(math.exp(-0.5 * ((h - mu + k) / sd) ** 2) for k in (-24, 0, 24))
    if weekend:
        return 0.42 + 0.30 * bump(10.5, 2.2) + 0.38 * bump(12.8, 1.4) + 0.55 * bump(19.2, 2.0)
    return 0.40 + 0.28 * bump(7.3, 1.1) + 0.22 * bump(12.5, 1.6) + 0.60 * bump(19.0, 1.9)


def feeder(out, days, start_ms, seed, step_s=10, peak_kw=450.0):
    r = random.Random(seed)
    weather, noise = 0.0, 0.0
    # AR(1) per 10 s step with the same variance as an AR(1) of 0.7 per minute and sd 2 kW.
    phi = 0.7 ** (step_s / 60)
    sd = 2.8 * math.sqrt(1 - phi * phi)
    for n in range(days * DAY_S // step_s):
        t = n * step_s
        h = (t % DAY_S) / 3600
        weekend = ((t // DAY_S) % 7) >= 5
        weather = weather * 0.99992 + r.gauss(0, 0.0006)
        noise = phi * noise + r.gauss(0, sd)
        kw = peak_kw * profile_shape(h, weekend) * (1 + weather) + noise
        out.write(reading("feeder1", "substation", "f1", "load", "kW", kw,
                          start_ms + t * 1000) + "\n")


def key(rec):
    return (rec["site"], rec["device"], rec["sensor"], rec["metric"], rec["window_ms"],
            rec["window_start"])


def score(aggregates, forecasts, skip_days):
    actual, first = {}, {}
    with open(aggregates) as f:
        for line in f:
            a = json.loads(line)
            actual[key(a)] = a["mean"]
            s = key(a)[:5]
            first[s] = min(first.get(s, a["window_start"]), a["window_start"])
    n = pn = hits = 0
    abs_sum = pct_sum = 0.0
    with open(forecasts) as f:
        for line in f:
            fc = json.loads(line)
            k = key(fc)
            if k not in actual or fc["window_start"] < first[k[:5]] + skip_days * DAY_S * 1000:
                continue
            y, p = actual[k], fc["predicted"]
            n += 1
            abs_sum += abs(y - p)
            if y != 0:
                pn += 1
                pct_sum += abs(y - p) / abs(y)
            if fc["lower"] is not None and fc["lower"] <= y <= fc["upper"]:
                hits += 1
    print(json.dumps({"scored": n, "mae": abs_sum / n if n else None,
                      "mape": 100 * pct_sum / pn if pn else None,
                      "coverage": hits / n if n else None}))


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("household")
    h.add_argument("--homes", type=int, default=4)
    f = sub.add_parser("feeder")
    for p in (h, f):
        p.add_argument("--days", type=int, default=14)
        p.add_argument("--start", type=int, required=True, help="first event time, ms")
        p.add_argument("--seed", type=int, default=1)
    s = sub.add_parser("score")
    s.add_argument("--aggregates", required=True)
    s.add_argument("--forecasts", required=True)
    s.add_argument("--skip-days", type=float, default=1)
    a = ap.parse_args()
    out = sys.stdout
    if a.cmd == "household":
        household(out, a.homes, a.days, a.start, a.seed)
    elif a.cmd == "feeder":
        feeder(out, a.days, a.start, a.seed)
    else:
        score(a.aggregates, a.forecasts, a.skip_days)


if __name__ == "__main__":
    main()
