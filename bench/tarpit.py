#!/usr/bin/env python3
"""bench/tarpit.py - reject_delay (the tarpit) against the same bots without it.

N listed bots held at once (wave -c N --mix listed=100 --procs 2, a pool of
N addresses, so each address holds about one connection), breakwater as in
bench.py (rbldnsd serving bl.test, the same configuration, workers = 1),
in three modes that take turns, ROUNDS times each, breakwater restarted
before every step:

    flood    reject_delay = 0, the bots as fast as the machine allows
    botwait  reject_delay = 0, the bots pause DELAY before every command
             (--think): the same N connections held as long, the wait
             at the bot's end
    tarpit   reject_delay = DELAY, the bots as fast as they are answered

botwait and tarpit start their sessions at -r N / (4 x DELAY) x 1.05 (with
-c N): the N connections are reached in about 4 x DELAY and their phases
stay spread, instead of all ending together every 4 x DELAY.

Measured in a window of the run (from WINDOW_START to WINDOW_END seconds
after wave starts, after the ramp and with the verdict cache warm):

    - the daemon's RSS/PSS growth (all its processes, /proc/PID/smaps_rollup)
      from the empty daemon to the end of the window, over the connections
      `ss` shows established on its port then;
    - its CPU (utime+stime, bench.py's cpu_of_session) over the sessions it
      ended in the window (breakwater_sessions_total{verdict="listed"},
      scraped from /metrics), per 1,000; rbldnsd's beside it;
    - the bots' wall time per refused session: the connections held (mean
      of `ss` every 2 s) over the sessions ended per second (Little's law:
      connect to the server's close after QUIT, think pauses included), and
      the daemon's own duration= of every whole dialogue it logged in the
      run (accept to close);
    - wave's own report (errors, RCPT latency, its CPU) for the whole run.

    python3 bench/tarpit.py --binary build/breakwater --wave build/bench/wave \\
        [-c 10000] [--delay 1] [--rounds 2] [--duration 40] [--window 12,32] \\
        [--modes flood,botwait,tarpit] [--json out.json]

Needs root (a private network + mount namespace, as bench.py: loopback
only, rbldnsd on 127.0.0.1:53); bounded: every wave run ends at
--duration, everything is stopped at the end, on error too.
"""

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (helpers: processes, memory, ss, the peers)

METRICS = "127.0.0.1:19625"


def log(msg):
    sys.stderr.write("[tarpit %5.0fs] %s\n" % (time.monotonic() - bench.T0, msg))
    sys.stderr.flush()


def listed_sessions():
    """breakwater_sessions_total{verdict="listed"} from /metrics."""
    with urllib.request.urlopen("http://%s/metrics" % METRICS, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith('breakwater_sessions_total{verdict="listed"}'):
                return int(float(line.split()[-1]))
    raise RuntimeError("no breakwater_sessions_total{verdict=\"listed\"} in /metrics")


def session_durations(path, offset):
    """duration= of the whole refused dialogues (commands=4: EHLO, MAIL,
    RCPT, QUIT) the daemon logged after offset, sorted."""
    out = []
    with open(path, "rb") as f:
        f.seek(offset)
        for line in f:
            if b" session " in line and b"verdict=listed" in line and b" commands=4" in line:
                for w in line.split():
                    if w.startswith(b"duration="):
                        out.append(float(w[9:]))
    return sorted(out)


def quantile(xs, q):
    return xs[min(len(xs) - 1, int(q * len(xs)))] if xs else None


def step(b, a, mode):
    delay = a.delay if mode == "tarpit" else 0
    think = a.delay if mode == "botwait" else 0
    b.bw.stop()
    b.bw = b.start_bw(extra=("reject_delay=%gs" % delay, "metrics_listen=" + METRICS))
    time.sleep(1)
    m0 = bench.mem_of(b.bw.pids())
    # held sessions last about 4 x DELAY: start them at a rate a little above
    # N over that, so their phases spread out (started all at once, they
    # would end in lockstep bursts every 4 x DELAY)
    start_rate = ["-r", "%d" % (a.c / (4 * a.delay) * 1.05)] if delay or think else []
    argv = [a.wave, "-t", "127.0.0.1:%d" % bench.BW_PORT, "-d", str(a.duration), "--json",
            "-c", str(a.c)] + start_rate + ["--mix", "listed=100", "--procs", str(a.procs),
            "--pool", str(a.c)] + (["--think", "%g" % think] if think else [])
    cmd = "wave " + " ".join(argv[1:])
    log("%s (reject_delay %gs): %s" % (mode, delay, cmd))
    logpos = os.path.getsize(b.bw.logpath)
    t0 = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        w0, w1 = a.window
        time.sleep(max(0, t0 + w0 - time.monotonic()))
        c0, r0, s0, tw0 = b.bw.cpu(), b.rbl.cpu(), listed_sessions(), time.monotonic()
        held = []
        while time.monotonic() < t0 + w1 - 2:
            held.append(bench.established(bench.BW_PORT))
            time.sleep(max(0, min(2, t0 + w1 - time.monotonic())))
        time.sleep(max(0, t0 + w1 - time.monotonic()))
        c1, r1, s1, tw1 = b.bw.cpu(), b.rbl.cpu(), listed_sessions(), time.monotonic()
        m1 = bench.mem_of(b.bw.pids())
        est = bench.established(bench.BW_PORT)
        so, se = p.communicate(timeout=a.duration + 60)
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            p.communicate(timeout=30)
    wj = json.loads(so) if p.returncode == 0 else {"error": se[-2000:]}
    durations = session_durations(b.bw.logpath, logpos)
    secs = tw1 - tw0
    n = s1 - s0
    mean_held = sum(held) / len(held) if held else float("nan")
    rate = n / secs if secs > 0 else 0
    r = {
        "mode": mode, "reject_delay": delay, "think": think, "cmd": cmd,
        "window_s": secs, "sessions": n, "sessions_per_s": rate,
        "held_mean": mean_held, "held_samples": held, "established_at_mem": est,
        "rss_kib": [m0[0], m1[0]], "pss_kib": [m0[1], m1[1]],
        "rss_b_per_conn": (m1[0] - m0[0]) * 1024 / max(est, 1),
        "pss_b_per_conn": (m1[1] - m0[1]) * 1024 / max(est, 1),
        "daemon_cpu_s": c1 - c0, "rbldnsd_cpu_s": r1 - r0,
        "daemon_ms_per_1000": (c1 - c0) * 1e6 / max(n, 1),
        "rbldnsd_ms_per_1000": (r1 - r0) * 1e6 / max(n, 1),
        "daemon_percent_of_core": 100 * (c1 - c0) / secs,
        "bot_s_per_session": mean_held / rate if rate else float("nan"),
        "logged_sessions": len(durations),
        "duration_s": {"mean": sum(durations) / len(durations) if durations else None,
                       "p50": quantile(durations, 0.5), "p99": quantile(durations, 0.99),
                       "max": durations[-1] if durations else None},
        "wave": {k: wj.get(k) for k in ("elapsed_s", "all", "max_open", "cpu", "error")},
        "rcpt_ms": wj.get("kinds", {}).get("listed", {}).get("latency_ms", {}).get("rcpt"),
    }
    log("  -> held %.0f, %.0f sessions/s, %.2f s per session (logged: %s), RSS +%.0f / PSS +%.0f B/conn, "
        "daemon %.0f ms per 1,000 (%.0f%% of a core), rbldnsd %.1f ms, wave errors %s"
        % (mean_held, rate, r["bot_s_per_session"], r["duration_s"], r["rss_b_per_conn"],
           r["pss_b_per_conn"],
           r["daemon_ms_per_1000"], r["daemon_percent_of_core"], r["rbldnsd_ms_per_1000"],
           (wj.get("all") or {}).get("errors")))
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=bench.BW)
    ap.add_argument("--wave", default=bench.WAVE)
    ap.add_argument("-c", type=int, default=10000, help="bots held at once")
    ap.add_argument("--delay", type=float, default=1.0, help="reject_delay and --think, s")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--duration", type=int, default=40)
    ap.add_argument("--window", type=lambda s: [float(x) for x in s.split(",")],
                    default=[12, 32])
    ap.add_argument("--procs", type=int, default=2)
    ap.add_argument("--modes", default="flood,botwait,tarpit")
    ap.add_argument("--json", help="write every step's results here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("tarpit: needs root (namespaces, rbldnsd on port 53)")
    if a.window[1] > a.duration - 2 or a.window[0] >= a.window[1]:
        sys.exit("tarpit: --window must lie inside --duration")
    a.binary, a.wave = os.path.abspath(a.binary), os.path.abspath(a.wave)
    resolv = bench.enter_namespace(os.path.abspath(__file__))
    bench.BW, bench.WAVE = a.binary, a.wave
    b = bench.Bench(argparse.Namespace(keep=False))

    def on_signal(sig, frame):
        raise SystemExit("tarpit: signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    out = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "binary": a.binary, "args": {k: v for k, v in vars(a).items()}, "steps": []}
    try:
        b.start_rbldnsd()
        b.bw = b.start_bw()
        for rnd in range(a.rounds):
            for mode in a.modes.split(","):
                r = step(b, a, mode)
                r["round"] = rnd + 1
                out["steps"].append(r)
                if a.json:
                    with open(a.json, "w") as f:
                        json.dump(out, f, indent=1)
    finally:
        b.stop_all()
        shutil.rmtree(b.tmp, ignore_errors=True)
        os.unlink(resolv)
    print("mode     round held   sess/s  s/session  RSS B/conn PSS B/conn  "
          "daemon ms/1000 (%core)  rbldnsd ms/1000  wave errors")
    for r in out["steps"]:
        print("%-8s %5d %6.0f %7.0f %9.2f %10.0f %10.0f %10.0f (%3.0f%%) %12.1f   %s"
              % (r["mode"], r["round"], r["held_mean"], r["sessions_per_s"],
                 r["bot_s_per_session"], r["rss_b_per_conn"], r["pss_b_per_conn"],
                 r["daemon_ms_per_1000"], r["daemon_percent_of_core"],
                 r["rbldnsd_ms_per_1000"], (r["wave"]["all"] or {}).get("errors")))


if __name__ == "__main__":
    main()
