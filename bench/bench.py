#!/usr/bin/env python3
"""make bench: breakwater vs smtp-sink vs Postfix postscreen, side by side.

One run on this machine, same DNSBL (rbldnsd, zone bl.test listing
127.66.0.0/16 and 127.0.0.2), same backend (smtp-sink), same client
(build/bench/wave). Writes BENCHMARKS.md progressively (after every figure)
and the raw results to build/bench/results.json.

Everything runs in a private network + mount namespace that this script
creates (unshare --net --mount): loopback only, rbldnsd on 127.0.0.1:53,
and /etc/resolv.conf bind-mounted (inside that namespace only) to a file
naming 127.0.0.1, because Postfix's dnsblog uses the system resolver. The
machine's own /etc/postfix and /etc/resolv.conf are never touched.

    python3 bench/bench.py [--duration 10] [--concurrency 200] [--procs 2]
                           [--rounds 2] [--figures agcdefiwrm] [--no-postscreen-wave]
                           [--no-mta-wave] [--no-postscreen-mem] [--skip p]
                           [--out BENCHMARKS.md]

Figures: a = reject sessions/s (b = CPU per 1,000 comes with it, g =
workers 1 vs 2 takes its turns in it), c = relayed messages/s, d = latency
at half rate, e = memory per idle connection, f = the wave replay (plot in
bench/wave-replay.png), i = bans: time from the 5xx to the nft set at
10,000 bans/s, and restoring them (bench/bans.sh), w = breakwater watch
against fail2ban (bench/watch.sh), r = a fleet of ten hosts sharing bans
through one Redis at 10,000 and 3,000 bans/s, and receiving 10,000 bans/s
from a synthetic peer (bench/fleet.sh), m = Courier: the story's wave
against Courier alone and behind breakwater, clean mail into it directly
and through breakwater (bench/courier.py, plot in bench/courier-wave.png).
About 22 minutes in all.
"""

import argparse
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
sys.path.insert(0, HERE)

WAVE = os.path.join(ROOT, "build", "bench", "wave")
BW = os.path.join(ROOT, "build", "breakwater")
ZONE = os.path.join(ROOT, "tests", "integration", "zones", "bl.zone")
PROFILE = "/work/shared/data/wave-1.tsv"
if not os.path.exists(PROFILE):
    PROFILE = os.path.join(ROOT, "..", "shared", "data", "wave-1.tsv")

SINK_PORT, BW_PORT, PS_PORT, MTA_PORT, BW2_PORT = 2526, 2525, 2527, 2528, 2529
BACKEND_MAX = 2000
CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
T0 = time.monotonic()


def log(msg):
    sys.stderr.write("[bench %5.0fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


# --- processes --------------------------------------------------------------

def stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def live_procs():
    """(pid, /proc/PID/stat fields after the name) of every live process."""
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                f = stat_fields(int(d))
            except (OSError, IndexError):
                continue
            if f[0] not in "ZX":
                yield int(d), f


def session_pids(sid):
    return [pid for pid, f in live_procs() if int(f[3]) == sid]


def tree_pids(root):
    """root and all its live descendants (Postfix daemons call setsid(), so
    sessions do not group them; the parent links do)."""
    kids = {}
    for pid, f in live_procs():
        kids.setdefault(int(f[1]), []).append(pid)
    out, todo = [], [root]
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.append(p)
        todo.extend(kids.get(p, []))
    return [p for p in out if os.path.exists("/proc/%d" % p)]


def cpu_of_session(root):
    """utime+stime of root and every live descendant, plus their reaped
    children (cutime+cstime), in seconds."""
    tot = 0
    for pid in tree_pids(root):
        try:
            f = stat_fields(pid)
        except (OSError, IndexError):
            continue
        tot += int(f[11]) + int(f[12]) + int(f[13]) + int(f[14])
    return tot / CLK


def cpu_by_name(sid):
    out = {}
    for pid in tree_pids(sid):
        try:
            with open("/proc/%d/comm" % pid) as fh:
                name = fh.read().strip()
            f = stat_fields(pid)
        except (OSError, IndexError):
            continue
        out[name] = out.get(name, 0) + (int(f[11]) + int(f[12])) / CLK
    return out


def mem_of(pids):
    rss = pss = 0
    for pid in pids:
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss   # KiB


def kernel_mem():
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            k, v = line.split(":", 1)
            if k in ("Slab", "SUnreclaim"):
                out[k] = int(v.split()[0])
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                p = line.split()
                out["tcp_inuse"] = int(p[p.index("inuse") + 1])
                out["tcp_mem_kib"] = int(p[p.index("mem") + 1]) * PAGE // 1024
    return out


def listening(port):
    want = ":%04X" % port
    with open("/proc/net/tcp") as f:
        next(f)
        for line in f:
            p = line.split()
            if p[1].endswith(want) and p[3] == "0A":
                return True
    return False


def _sps(j):
    return j["all"]["sessions_per_s"]


def wait_for(pred, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError("timed out waiting for " + what)


def established(port, by_proc=False):
    """Established TCP connections whose local port is `port` (server side).
    by_proc: (count, count owned by an smtpd process)."""
    argv = ["ss", "-Htn"] + (["-p"] if by_proc else []) + \
        ["state", "established", "( sport = :%d )" % port]
    try:
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=10).stdout
    except subprocess.TimeoutExpired:
        return (-1, -1) if by_proc else -1
    lines = [l for l in out.splitlines() if l.strip()]
    if by_proc:
        return len(lines), sum('"smtpd"' in l for l in lines)
    return len(lines)


class Proc:
    """A child in its own session (its workers share the session id)."""

    def __init__(self, name, argv, logpath):
        self.name = name
        self.argv = argv
        self.logpath = logpath
        with open(logpath, "ab") as lf:
            self.p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                      stdout=lf, stderr=lf,
                                      start_new_session=True)
        self.pid = self.p.pid

    def alive(self):
        return self.p.poll() is None

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(8)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.p.wait(5)
        # workers left behind in the session (should be none)
        for pid in session_pids(self.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    def cpu(self):
        return cpu_of_session(self.pid)

    def pids(self):
        return tree_pids(self.pid)


# --- the bench --------------------------------------------------------------

class Bench:
    def __init__(self, args):
        self.a = args
        self.tmp = tempfile.mkdtemp(prefix="bwbench-")
        os.chmod(self.tmp, 0o755)
        self.procs = []
        self.rbl = self.sink = self.bw = self.ps = None
        self.res = {"config": vars(args).copy(), "started": time.strftime(
            "%Y-%m-%d %H:%M:%S UTC", time.gmtime())}
        self.resfile = os.path.join(ROOT, "build", "bench", "results.json")
        if args.keep and os.path.exists(self.resfile):   # re-run some figures only
            with open(self.resfile) as f:
                kept = json.load(f)
            kept.update({k: v for k, v in self.res.items() if k == "config"})
            self.res = kept

    # -- peers
    def start_rbldnsd(self):
        d = os.path.join(self.tmp, "rbldnsd")
        os.makedirs(d)
        os.chmod(d, 0o755)
        shutil.copyfile(ZONE, os.path.join(d, "bl.zone"))
        os.chmod(os.path.join(d, "bl.zone"), 0o644)
        self.rbl = Proc("rbldnsd", ["rbldnsd", "-n", "-u", "rbldns", "-w", d,
                                    "-b", "127.0.0.1/53", "bl.test:ip4set:bl.zone"],
                        os.path.join(self.tmp, "rbldnsd.log"))

        def ok():
            r = subprocess.run(["dig", "+short", "+time=1", "+tries=1",
                                "2.0.0.127.bl.test", "A"],
                               capture_output=True, text=True)
            return r.stdout.strip() == "127.0.0.2"
        wait_for(ok, 10, "rbldnsd (system resolver -> 127.0.0.1:53)")

    def start_sink(self):
        self.sink = Proc("smtp-sink", ["smtp-sink", "-u", "nobody", "-m", "20000",
                                       "127.0.0.1:%d" % SINK_PORT, "4096"],
                         os.path.join(self.tmp, "smtp-sink.log"))
        wait_for(lambda: listening(SINK_PORT), 10, "smtp-sink")

    def start_bw(self, port=BW_PORT, workers=1, extra=()):
        conf = os.path.join(self.tmp, "breakwater-%d.conf" % port)
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:%d\n" % port)
            f.write("backend = 127.0.0.1:%d\n" % SINK_PORT)
            f.write("resolver = 127.0.0.1:53\n")
            f.write("dnsbl_sites = bl.test\n")
            f.write("dnsbl_threshold = 1\n")
            f.write("hostname = mx.bench.test\n")
            f.write("max_connections = 100000\n")
            f.write("max_connections_per_ip = 1000\n")
            f.write("backend_max_connections = %d\n" % BACKEND_MAX)
            f.write("command_timeout = 10m\n")
            f.write("reject_session_timeout = 10m\n")
            f.write("workers = %d\n" % workers)
            # a fresh store: a restarted breakwater starts with a cold cache
            state = os.path.join(self.tmp, "state-%d" % port)
            shutil.rmtree(state, ignore_errors=True)
            f.write("state_dir = %s\n" % state)
            f.write("control_socket = %s\n" % os.path.join(self.tmp, "control-%d" % port))
            f.write("user = nobody\n")
            f.write("ban_backend = none\n")
            f.write("metrics_listen =\n")   # two instances run side by side
        argv = [BW, "serve", "-c", conf]
        for kv in extra:
            argv += ["-o", kv]
        p = Proc("breakwater", argv, os.path.join(self.tmp, "breakwater-%d.log" % port))
        wait_for(lambda: listening(port) or not p.alive(), 10, "breakwater")
        if not p.alive():
            raise RuntimeError("breakwater exited: " + open(p.logpath).read()[-2000:])
        time.sleep(0.3)
        return p

    def start_postscreen(self):
        from postscreen import PrivatePostscreen
        self.ps = PrivatePostscreen(PS_PORT, MTA_PORT, base_dir=self.tmp)
        self.ps.start()
        self.ps_sid = self.ps.master_pid()
        log("postscreen up: master pid %s, dir %s" % (self.ps_sid, self.ps.dir))

    def stop_all(self):
        for p in [self.bw] + self.procs + [self.sink, self.rbl]:
            if p is not None:
                try:
                    p.stop()
                except Exception as e:   # keep stopping the others
                    log("stop %s: %s" % (p.name, e))
        if self.ps is not None:
            try:
                self.ps.stop()
            except Exception as e:
                log("stop postfix: %s" % e)

    # -- wave
    def wave(self, port, secs, opts, name, cpu_of=(), sampler=None):
        argv = [WAVE, "-t", "127.0.0.1:%d" % port, "-d", str(secs), "--json"] + opts
        log("%s: %s" % (name, " ".join(argv[1:])))
        before = {k: f() for k, f in cpu_of}
        t = time.monotonic()
        r = subprocess.run(argv, capture_output=True, text=True, timeout=secs + 90)
        wall = time.monotonic() - t
        after = {k: f() for k, f in cpu_of}
        if r.returncode != 0:
            raise RuntimeError("wave failed (%d): %s" % (r.returncode, r.stderr[-2000:]))
        j = json.loads(r.stdout)
        j["_cmd"] = "wave " + " ".join(argv[1:])
        j["_cpu"] = {k: after[k] - before[k] for k in before}
        j["_wall"] = wall
        a = j["all"]
        log("  -> %.0f sessions/s, errors %s, wave cpu %.0f%%, server cpu %s"
            % (a["sessions_per_s"], a["errors"]["total"],
               j["cpu"]["percent_of_one_core"],
               {k: round(v, 2) for k, v in j["_cpu"].items()}))
        return j

    def cpu_fns(self, front):
        fns = [("rbldnsd", self.rbl.cpu), ("smtp-sink", self.sink.cpu)]
        if front == "bw":
            fns.append(("breakwater", self.bw.cpu))
        elif front in ("ps", "mta"):
            fns.append(("postfix", lambda: cpu_of_session(self.ps_sid)))
        return fns

    def save(self):
        os.makedirs(os.path.dirname(self.resfile), exist_ok=True)
        with open(self.resfile, "w") as f:
            json.dump(self.res, f, indent=1)
        try:
            from report import write_markdown
            write_markdown(self.res, os.path.join(ROOT, self.a.out))
        except Exception as e:      # never lose the measurements to a report bug
            import traceback
            log("report failed: %r\n%s" % (e, traceback.format_exc()))

    # -- figures
    def fig_a(self):
        """Figures a, b and g: the systems take turns, `rounds` times each,
        so that a disturbance (another load on the machine) hits them
        alike; the best round of each system is kept, every round is
        recorded."""
        a = self.a
        base = ["-c", str(a.concurrency), "--procs", str(a.procs)]
        out = {}
        self.res["a"] = out
        bw2 = None
        if "g" in a.figures:
            bw2 = self.start_bw(port=BW2_PORT, workers=2)
            self.procs.append(bw2)
        try:
            for cache, copt in (("cold", ["--fresh-addresses", "-n", "60000"]),
                                ("warm", ["--pool", "1024"])):
                row = out[cache] = {"_rounds": {}}
                systems = [("sink", SINK_PORT, "sink"), ("breakwater", BW_PORT, "listed")]
                if bw2:
                    systems.append(("breakwater-2", BW2_PORT, "listed"))
                if self.ps:
                    systems.append(("postscreen", PS_PORT, "listed"))
                for rnd in range(a.rounds):
                    for name, port, kind in systems:
                        if name == "breakwater" and cache == "cold":
                            self.bw.stop()      # an empty verdict cache
                            self.bw = self.start_bw()
                        if name == "breakwater-2" and cache == "cold":
                            bw2.stop()
                            self.procs.remove(bw2)
                            bw2 = self.start_bw(port=BW2_PORT, workers=2)
                            self.procs.append(bw2)
                        if name == "sink":
                            fns = self.cpu_fns("sink")
                        elif name == "breakwater":
                            fns = self.cpu_fns("bw")
                        elif name == "breakwater-2":
                            fns = [("rbldnsd", self.rbl.cpu), ("breakwater", bw2.cpu)]
                        else:
                            fns = self.cpu_fns("ps")
                            n0 = cpu_by_name(self.ps_sid)
                        j = self.wave(port, a.duration, base + copt + ["--mix", "%s=100" % kind],
                                      "a/%s round %d %s" % (cache, rnd + 1, name), fns)
                        if name == "postscreen":
                            n1 = cpu_by_name(self.ps_sid)
                            j["_cpu_by_name"] = {k: n1.get(k, 0) - n0.get(k, 0) for k in n1}
                        row["_rounds"].setdefault(name, []).append(
                            round(j["all"]["sessions_per_s"], 1))
                        if name not in row or _sps(j) > _sps(row[name]):
                            row[name] = j
                        self.save()
                if bw2:
                    self.res.setdefault("g", {})[cache] = row.get("breakwater-2")
        finally:
            if bw2:
                bw2.stop()
                self.procs.remove(bw2)

    def fig_g(self):
        pass    # measured with figure a (a second instance with workers = 2)

    def script_figure(self, fig, cmd, timeout):
        """A figure made by one of the bench scripts: its output, kept whole."""
        log("%s: %s" % (fig, " ".join(cmd)))
        p = subprocess.run([os.path.join(ROOT, cmd[0])] + cmd[1:], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=timeout, cwd=ROOT)
        self.res[fig] = {"command": " ".join(cmd), "output": p.stdout, "status": p.returncode}
        self.save()

    def fig_i(self):
        self.script_figure("i", ["bench/bans.sh", "10000", "6"], 180)

    def fig_w(self):
        self.script_figure("w", ["bench/watch.sh"], 400)

    def fig_m(self):
        """Courier: the story's wave against Courier alone and behind
        breakwater, and clean mail into it directly and through breakwater
        (bench/courier.py, its own network namespaces inside this one)"""
        out = os.path.join(ROOT, "build", "bench")
        md, js = os.path.join(out, "courier.md"), os.path.join(out, "courier.json")
        for f in (md, js):
            if os.path.exists(f):
                os.unlink(f)
        self.script_figure("m", ["bench/courier.py", "--md", md, "--json", js], 2400)
        with open(md) as f:
            self.res["m"]["md"] = f.read()
        with open(js) as f:
            j = json.load(f)
        self.res["m"]["summary"] = {
            k: dict({f: r.get(f) for f in ("seconds_at_cap", "seconds_sampled", "no_greeting",
                                           "polite_delivered")},
                    polite_started=r["wave"]["kinds"].get("polite", {}).get("started", 0))
            for k, r in j.get("wave", {}).items() if "wave" in r}
        self.res["m"]["ratio"] = (j.get("source") or {}).get("ratio")
        self.save()

    def fig_r(self):
        """the fleet: ten hosts and one Redis, at 10,000 and at 3,000 bans/s
        made by the hosts, and 10,000 bans/s from a synthetic peer; then
        three hosts through Redis Sentinel while the master is killed"""
        self.script_figure("r", ["bench/fleet.sh", "10", "10000", "5"], 300)
        self.script_figure("r3", ["bench/fleet.sh", "10", "3000", "5"], 300)
        self.script_figure("rp", ["bench/fleet.sh", "10", "10000", "5", "peer"], 300)
        self.script_figure("rf", ["bench/fleet-failover.sh", "3", "1000", "20", "5"], 300)

    def fig_c(self):
        a = self.a
        base = ["-c", str(a.concurrency), "--procs", str(a.procs), "--mix", "polite=100"]
        out = {"_rounds": {}}
        self.res["c"] = out
        for rnd in range(a.rounds):
            for name, port, front, what in (("sink", SINK_PORT, "sink", "smtp-sink direct"),
                                            ("breakwater", BW_PORT, "bw", "breakwater -> smtp-sink")):
                j = self.wave(port, a.duration, base, "c round %d %s" % (rnd + 1, what),
                              self.cpu_fns(front))
                out["_rounds"].setdefault(name, []).append(round(_sps(j), 1))
                if name not in out or _sps(j) > _sps(out[name]):
                    out[name] = j
                self.save()

    def fig_d(self):
        a = self.a
        cold = self.res.get("a", {}).get("cold", {})
        out = {}
        for name, port, kind, front in (("sink", SINK_PORT, "sink", "sink"),
                                        ("breakwater", BW_PORT, "listed", "bw"),
                                        ("postscreen", PS_PORT, "listed", "ps")):
            if name not in cold or (name == "postscreen" and not self.ps):
                continue
            rate = max(10, int(cold[name]["all"]["sessions_per_s"] / 2))
            if name == "breakwater":    # an empty verdict cache again
                self.bw.stop()
                self.bw = self.start_bw()
            j = self.wave(port, a.duration, ["-r", str(rate), "-c", "5000", "--fresh-addresses",
                                             "-n", str(min(60000, rate * a.duration)),
                                             "--procs", str(a.procs), "--mix", "%s=100" % kind],
                          "d %s at %d/s" % (name, rate), self.cpu_fns(front))
            j["_rate"] = rate
            out[name] = j
        self.res["d"] = out
        self.save()

    def fig_e(self):
        out = {"breakwater": {}, "postscreen": {}}
        self.res["e"] = out
        for n in self.a.mem_steps:
            self.bw.stop()
            self.bw = self.start_bw()
            out["breakwater"][str(n)] = self.hold(n, BW_PORT, lambda: self.bw.pids(), "breakwater")
            self.save()
        if self.ps and not self.a.no_postscreen_mem:
            for n in self.a.ps_mem_steps:
                out["postscreen"][str(n)] = self.hold(
                    n, PS_PORT, lambda: [p for p in tree_pids(self.ps_sid)
                                         if open("/proc/%d/comm" % p).read().strip() == "postscreen"],
                    "postscreen")
                self.save()
        self.bw.stop()
        self.bw = self.start_bw()

    def hold(self, n, port, pids_fn, name):
        time.sleep(1)
        m0 = mem_of(pids_fn())
        k0 = kernel_mem()
        e0 = established(port)
        secs = 60
        argv = [WAVE, "-t", "127.0.0.1:%d" % port, "-d", str(secs), "--json", "-c", str(n),
                "--mix", "idle=100", "--idle-net", "listed", "--fresh-addresses",
                "--procs", "2", "--hold", str(secs)]
        log("e %s %d idle: wave %s" % (name, n, " ".join(argv[1:])))
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        t = time.monotonic()
        got = 0
        try:
            while time.monotonic() - t < 40:
                got = established(port)
                if got >= n + e0:
                    break
                time.sleep(0.5)
            time.sleep(2)
            got = established(port) - e0
            m1 = mem_of(pids_fn())
            k1 = kernel_mem()
        finally:
            p.send_signal(signal.SIGTERM)
            try:
                so, se = p.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                p.kill()
                so, se = p.communicate()
        try:
            wj = json.loads(so)
        except ValueError:
            wj = {"error": se[-1000:]}
        r = {"n": n, "held": got, "rss_kib": [m0[0], m1[0]], "pss_kib": [m0[1], m1[1]],
             "kernel": [k0, k1], "wave_cpu": wj.get("cpu"), "wave_max_open": wj.get("max_open"),
             "wave_errors": wj.get("all", {}).get("errors"), "_cmd": "wave " + " ".join(argv[1:])}
        d = max(got, 1)
        log("  -> held %d, RSS +%.0f B/conn, PSS +%.0f B/conn, slab +%.0f B/conn"
            % (got, (m1[0] - m0[0]) * 1024 / d, (m1[1] - m0[1]) * 1024 / d,
               (k1["Slab"] - k0["Slab"]) * 1024 / d))
        time.sleep(2)   # let the sockets go
        return r

    def fig_f(self, system):
        a = self.a
        peak = max(int(l.split()[1]) for l in open(PROFILE)
                   if l.strip() and not l.startswith("#"))
        scale = a.wave_peak / peak
        series = os.path.join(self.tmp, "wave-%s.tsv" % system)
        # The measured wave ends at its peak: add a calm after it (no new
        # clients) so that the sessions under way can finish and every
        # polite message can be counted as delivered or failed.
        profile = os.path.join(self.tmp, "wave-with-calm.tsv")
        points = [l.split() for l in open(PROFILE) if l.strip() and not l.startswith("#")]
        end = float(points[-1][0])
        calm = 40 / a.time_scale          # 40 s of real time, in profile seconds
        with open(profile, "w") as f:
            f.writelines("%s\t%s\n" % (t, n) for t, n in points)
            f.write("%g\t0\n%g\t0\n" % (end + 1, end + calm))
        opts = ["--profile", profile, "--scale", "%.3f" % scale, "--time-scale", str(a.time_scale),
                "--think", str(a.think), "--mix", "listed=95,polite=5", "--procs", "2",
                "--pool", "20000", "--series", series]
        port = {"breakwater": BW_PORT, "postscreen": PS_PORT, "mta": MTA_PORT}[system]
        samples = []
        stop = threading.Event()

        def sample():
            t0 = time.monotonic()
            while not stop.is_set():
                t = time.monotonic() - t0
                if system == "breakwater":
                    front = established(BW_PORT)
                    back = established(SINK_PORT)
                    rss, pss = mem_of(self.bw.pids())
                elif system == "mta":
                    front = back = established(MTA_PORT)
                    rss, pss = mem_of([p for p in tree_pids(self.ps_sid)
                                       if open("/proc/%d/comm" % p).read().strip() == "smtpd"])
                else:
                    front, back = established(PS_PORT, by_proc=True)
                    rss, pss = mem_of([p for p in tree_pids(self.ps_sid)
                                       if open("/proc/%d/comm" % p).read().strip() == "postscreen"])
                samples.append((round(t, 2), front, back, rss, pss))
                stop.wait(max(0, 1 - (time.monotonic() - t0 - t)))
        th = threading.Thread(target=sample, daemon=True)
        th.start()
        try:
            j = self.wave(port, int((end + calm) * a.time_scale) + 30, opts, "f wave replay %s" % system,
                          self.cpu_fns({"breakwater": "bw", "postscreen": "ps", "mta": "mta"}[system]))
        finally:
            stop.set()
            th.join(10)
        j["_samples"] = samples
        j["_series"] = [tuple(int(x) for x in l.split()) for l in open(series) if l.strip()]
        j["_scale"] = scale
        self.res.setdefault("f", {})[system] = j
        self.save()

    def run(self):
        a = self.a
        self.res["machine"] = machine()
        self.start_rbldnsd()
        self.start_sink()
        self.bw = self.start_bw()
        if "p" not in a.skip:
            try:
                self.start_postscreen()
            except Exception as e:
                log("postscreen failed: %s" % e)
                self.res["postscreen_error"] = str(e)[-3000:]
                self.ps = None
        self.save()
        for fig in a.figures:
            t = time.monotonic()
            try:
                if fig == "f":
                    self.fig_f("breakwater")
                    if self.ps and not a.no_postscreen_wave:
                        self.fig_f("postscreen")
                    if self.ps and not a.no_mta_wave:
                        self.fig_f("mta")
                else:
                    getattr(self, "fig_" + fig)()
            except Exception as e:
                log("figure %s failed: %r" % (fig, e))
                self.res.setdefault("failed", {})[fig] = repr(e)[-3000:]
                self.save()
            log("figure %s took %.0fs" % (fig, time.monotonic() - t))
            # when each figure was measured: --keep re-runs some and keeps the others
            self.res.setdefault("measured_at", {})[fig] = time.strftime(
                "%Y-%m-%d %H:%M:%S UTC", time.gmtime())
        if not a.keep:
            self.res["elapsed_s"] = time.monotonic() - T0
        self.save()


def machine():
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        mem = f.readline().split(":", 1)[1].strip()
    def ver(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True, timeout=5).stdout.strip()
        except Exception:
            return "?"
    return {"nproc": os.cpu_count(), "kernel": platform.release(), "cpu": model,
            "memory": mem,
            "postfix": ver(["postconf", "-dh", "mail_version"]),
            "breakwater": ver([BW, "--version"]),
            "nofile": ver(["sh", "-c", "ulimit -n"])}


def enter_namespace(script=None):
    """Re-exec script (bench.py by default) inside a private network +
    mount namespace, loopback up, /etc/resolv.conf bind-mounted to name
    127.0.0.1 (rbldnsd on port 53); in there, the bind-mounted file."""
    if os.environ.get("BW_BENCH_NS") == "1":
        subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
        rc = tempfile.NamedTemporaryFile("w", prefix="bwbench-resolv-", suffix=".conf",
                                         delete=False)
        rc.write("nameserver 127.0.0.1\noptions timeout:2 attempts:2\n")
        rc.close()
        os.chmod(rc.name, 0o644)
        subprocess.run(["mount", "--bind", rc.name, "/etc/resolv.conf"], check=True)
        return rc.name
    os.environ["BW_BENCH_NS"] = "1"
    os.execvp("unshare", ["unshare", "--net", "--mount", "--propagation", "private",
                          sys.executable, script or os.path.abspath(__file__)] + sys.argv[1:])


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=10, help="seconds per throughput run")
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=2,
                    help="figure a: each system this many times, taking turns; the best is kept")
    ap.add_argument("--procs", type=int, default=2, help="wave processes for figures a, c, d, g")
    ap.add_argument("--keep", action="store_true",
                    help="keep the other figures of the last run (build/bench/results.json)")
    ap.add_argument("--figures", default="agcdefiwrm", help="which figures, in order (b comes with a)")
    ap.add_argument("--mem-steps", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1000, 10000, 18000])
    ap.add_argument("--ps-mem-steps", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1000, 10000, 18000])
    ap.add_argument("--wave-peak", type=int, default=15000)
    ap.add_argument("--time-scale", type=float, default=0.2)
    ap.add_argument("--think", type=float, default=2)
    ap.add_argument("--no-postscreen-wave", action="store_true")
    ap.add_argument("--no-postscreen-mem", action="store_true")
    ap.add_argument("--no-mta-wave", action="store_true",
                    help="skip the wave replay against Postfix smtpd alone (1000 processes max)")
    ap.add_argument("--skip", default="", help="'p': no postscreen at all")
    ap.add_argument("--out", default="BENCHMARKS.md")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench: needs root (namespaces, rbldnsd on port 53, private Postfix)")
    for f in (WAVE, BW):
        if not os.access(f, os.X_OK):
            sys.exit("bench: %s missing: make build/breakwater build/bench/wave" % f)
    resolv = enter_namespace()
    b = Bench(a)

    def on_signal(sig, frame):
        raise SystemExit("bench: signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        b.run()
    finally:
        b.stop_all()
        shutil.rmtree(b.tmp, ignore_errors=True)
        try:
            os.unlink(resolv)
        except OSError:
            pass
    log("done in %.0fs; results in %s, report in %s" % (time.monotonic() - T0, b.resfile, a.out))


if __name__ == "__main__":
    main()
