#!/usr/bin/env python3
"""bench/courier.py - the story breakwater was made for, replayed with a real
Courier: a spam wave against Courier alone, then against Courier behind
breakwater; and clean mail into Courier directly and through breakwater.

Courier is Debian 12's courier-mta 1.0.16 (or --release trixie: 1.4.1),
run by tests/integration/courier.py (NsCourier) from its cached chroot
(/var/cache/breakwater-tests/courier-RELEASE, built once if missing, 75-90 s)
in its own PID + mount namespace. Every figure step gets a fresh network
namespace made here (netns.NetNS, loopback only, deleted at the end, on
failure too) holding: rbldnsd on 127.0.0.1:53 serving bl.test from
tests/integration/zones/bl.zone (127.66.0.0/16 and the RFC 5782 test point
127.0.0.2 listed; Courier's resolv.conf takes no port, so port 53), a fresh
Courier, breakwater where the step needs it, and the client.

Courier's configuration (/etc/courier/esmtpd, through NsCourier):
MAXDAEMONS=--maxdaemons (300, the story's cap), MAXPERIP = MAXPERC =
--maxper (1000: the cap, not a per-address limit, is what binds),
BLACKLISTS="-block=bl.test,BLOCK,*" (Courier's own DNSBL check: 511 at
RCPT), TARPIT=0, BOFHCHECKDNS=0, couriertcpd -nodnslookup (no reverse
lookups; --courier-dnslookup turns them on: rbldnsd refuses the PTR
queries). Local domain example.org, user `rcpt`: wave's polite clients
always send to <rcpt@example.org> (fixed in bench/wave_worker.c), so that
is the Courier user whose Maildir is counted.

Figure 1, the wave replay (two runs, A then B, on the same machine):
  build/bench/wave --profile wave-1.tsv --scale --scale (4) --time-scale
  --time-scale (0.3) --bot-linger --bot-linger (30) --bot-quit-share 100
  --mix listed=95,polite=5 --pool --pool (20000) --procs --procs (2),
  the profile followed by a calm (the target drops to 0 one profile-second
  after its end and stays there for --calm seconds of real time, linger
  + 15 by default) so that the sessions under way can end and every polite
  message is counted. A listed bot (greeting, EHLO, MAIL, RCPT -> 5xx,
  QUIT) holds its connection --bot-linger seconds after its 5xx, then
  sends QUIT, as the bots of the story held theirs; a polite
  client sends one message of 512 bytes.
  (A) Courier alone on 127.0.0.1:25, the wave's target.
  (B) breakwater (build/breakwater serve, its configuration file written
      here) on 127.0.0.1:25 in front of a fresh Courier on 127.0.0.1:2525:
      backend_source = 127.0.0.2, dnsbl_sites = bl.test, resolver =
      127.0.0.1:53, ban_backend = none, backend_max_connections =
      --bw-backend-max (250, below MAXDAEMONS as the Courier section of docs/deployment.md
      asks), everything else default; Courier's smtpaccess gets
      "127.0.0.2<TAB>--b-access" (default `allow,BLOCK`, as docs/deployment.md
      says; see below).
  Once a second during each run: Courier's processes (every process of its
  PID namespace except the fixture's PID 1, a Python) by name, their total
  RSS and PSS (/proc/PID/smaps_rollup), whether Courier is at its cap
  (courieresmtpd processes >= MAXDAEMONS), the new "N maximum active
  connections." lines in Courier's log (couriertcpd's ALERT, written once
  each time it reaches the cap, not while it stays there), Courier's
  accept queue (the
  rx_queue of its listening socket: clients connected but not yet
  accepted, so without a greeting), breakwater's RSS and PSS
  (all its processes), the load average. At the end: the wave's JSON report
  (sessions by kind, greetings received, reply classes, errors: refused,
  timeout, ...), and the polite messages in rcpt's Maildir, waited for up
  to --settle seconds.
  Why allow,BLOCK: Courier's BLACKLISTS sees every relayed client as
  127.0.0.2, which bl.test lists as its test point (as real lists such as
  zen.spamhaus.org do). With a bare `allow` Courier answers 511 to every
  relayed RCPT. `allow,BLOCK` (smtpaccess/default's own example for
  exempting an address from a blocklist) sets BLOCK empty, so the check
  keeps its hands off 127.0.0.2. `--b-access allow` shows the failure.

Figure 2, clean throughput: Postfix's smtp-source -s --source-sessions (20)
  -l --source-size (512) -m --source-messages (1000) -f sender@wave.test
  -t rcpt@example.org, into Courier directly (127.0.0.1:2525) and through
  breakwater (127.0.0.1:25 -> 127.0.0.1:2525, from 127.0.0.2), one fresh
  Courier and breakwater configured as in B (plus max_connections_per_ip =
  1000: every session comes from one address, and at the default 20 a new
  session can meet the one it replaces still counted and get 421),
  --source-rounds (3) rounds,
  the order alternating (direct first in odd rounds). smtp-source cannot
  bind a source address, so the namespace's local route to 127.0.0.1 gets
  `src 127.1.0.1`: clients come from 127.1.0.1 (the wave's clean net, not
  listed, no smtpaccess entry). Messages/s = messages / smtp-source's wall
  time; after each run the Maildir is waited for (up to --settle s) until
  every message arrived, so one run's deliveries do not load the next.
  The best round of each path is kept; all are recorded.

Results: --json FILE (default build/bench/courier.json), with the samples
and the wave reports; the series for the plot beside it (FILE-A.dat,
FILE-B.dat); the plot --plot (default bench/courier-wave.png) by
bench/courier.gp (gnuplot); a Markdown section for BENCHMARKS.md to --md
(default: stdout) with the command, the date and the load. Logs and
Courier's maillog of every step: --workdir (default /tmp/courier-bench),
in a folder per run, removed at the end unless --keep.

    python3 bench/courier.py [--figures 12] [--scale 4] [--time-scale 0.3]
        [--bot-linger 30] [--calm SECONDS] [--polite-share 5] [--pool 20000]
        [--procs 2] [--maxdaemons 300] [--maxper 1000] [--bw-backend-max 250]
        [--b-access allow,BLOCK] [--release bookworm] [--source-messages 1000]
        [--source-sessions 20] [--source-size 512] [--source-rounds 3]
        [--settle 60] [--json FILE] [--md FILE] [--plot FILE] [--keep]

About 8-9 minutes with the defaults on this 2-core machine. Needs root,
build/breakwater and build/bench/wave (make build/breakwater
build/bench/wave), rbldnsd, smtp-source, gnuplot. Bounded: every wait has
a count and a time limit; the wave ends with its profile (-d as a hard
bound), smtp-source runs are killed after --source-timeout seconds.
"""

import argparse
import importlib.util
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import threading
import time

sys.dont_write_bytecode = True      # nothing written into the checkout but the results

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, ".."))
INTEG = os.path.join(ROOT, "tests", "integration")
sys.path.insert(0, HERE)
import bench  # noqa: E402  (log, Proc, mem_of, machine, paths)
from report import _f  # noqa: E402
sys.path.insert(1, INTEG)
import netns  # noqa: E402

# tests/integration/courier.py shares this script's name: load it by path
_spec = importlib.util.spec_from_file_location("courier_fixture", os.path.join(INTEG, "courier.py"))
cfx = importlib.util.module_from_spec(_spec)
sys.modules["courier_fixture"] = cfx
_spec.loader.exec_module(cfx)

log = bench.log
ZONE = os.path.join(INTEG, "zones", "bl.zone")
DOMAIN, USER = "example.org", "rcpt"         # wave's polite RCPT TO:<rcpt@example.org>
SENDER = "sender@wave.test"
FRONT_PORT, COURIER_BEHIND_PORT = 25, 2525
CLEAN_SRC = "127.1.0.1"                       # figure 2's client address
ALERT = "maximum active connections"


def loadavg():
    with open("/proc/loadavg") as f:
        return [float(x) for x in f.read().split()[:3]]


def uptime():
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "load average: %s" % loadavg()


def maildir_count(mta):
    n = 0
    for sub in ("new", "cur"):
        try:
            n += len(os.listdir(os.path.join(mta.home(), "Maildir", sub)))
        except OSError:
            pass
    return n


def newest_received(mta):
    """The first Received: line of the newest message (where Courier saw
    it come from)."""
    d = os.path.join(mta.home(), "Maildir", "new")
    try:
        newest = max((os.path.join(d, n) for n in os.listdir(d)), key=os.path.getmtime)
        with open(newest, "rb") as f:
            head = f.read(4096).decode(errors="replace")
    except (OSError, ValueError):
        return ""
    lines = head.splitlines()
    for i, l in enumerate(lines):
        if l.startswith("Received:"):
            return " ".join(x.strip() for x in lines[i:i + 2])
    return ""


def wait_maildir(mta, want, settle):
    """Messages in the Maildir once it holds `want`, or once it has not
    grown for 5 s, or after `settle` seconds: (count, seconds waited)."""
    t0 = time.monotonic()
    last, since = -1, t0
    while True:
        n = maildir_count(mta)
        now = time.monotonic()
        if n != last:
            last, since = n, now
        if n >= want or now - since >= 5 or now - t0 >= settle:
            return n, now - t0
        time.sleep(0.2)


class Stage:
    """One step's network namespace, rbldnsd, Courier and (if asked)
    breakwater in front of it; down() stops them and deletes the namespace."""

    def __init__(self, tag, run_dir, a):
        self.a = a
        self.tag = tag
        self.dir = os.path.join(run_dir, tag)
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o755)
        self.ns = netns.NetNS("cbench-%d-%s" % (os.getpid(), tag))
        self.rbl = self.mta = self.bw = None

    def dig(self, name, rtype="A"):
        r = subprocess.run(self.ns.argv(["dig", "@127.0.0.1", "+short", "+time=1", "+tries=1",
                                         name, rtype]),
                           capture_output=True, text=True, timeout=10)
        return r.stdout.split()

    def up(self, courier_port, smtpaccess=(), breakwater=False, client_src=None, bw_extra=()):
        a = self.a
        self.ns.create()
        if client_src:
            # smtp-source binds no address: what it gets for 127.0.0.1
            subprocess.run(["ip", "-n", self.ns.name, "route", "replace", "local", "127.0.0.1",
                            "dev", "lo", "table", "local", "proto", "kernel", "scope", "host",
                            "src", client_src], check=True, timeout=10)
        d = os.path.join(self.dir, "rbldnsd")
        os.makedirs(d)
        os.chmod(d, 0o755)
        shutil.copyfile(ZONE, os.path.join(d, "bl.zone"))
        os.chmod(os.path.join(d, "bl.zone"), 0o644)
        self.rbl = bench.Proc("rbldnsd", self.ns.argv(
            ["rbldnsd", "-n", "-u", "rbldns", "-w", d, "-b", "127.0.0.1/53",
             "bl.test:ip4set:bl.zone"]), os.path.join(self.dir, "rbldnsd.log"))
        for _ in range(100):            # 10 s at most
            if self.dig("1.0.66.127.bl.test") == ["127.0.0.2"]:
                break
            if not self.rbl.alive():
                raise RuntimeError("rbldnsd exited: " + open(self.rbl.logpath).read()[-1000:])
            time.sleep(0.1)
        else:
            raise RuntimeError("rbldnsd does not answer in " + self.ns.name)
        self.mta = cfx.NsCourier(
            self.ns, a.release, self.dir, address="127.0.0.1", port=courier_port,
            maxdaemons=a.maxdaemons, maxperip=a.maxper, maxperc=a.maxper,
            blacklists="-block=bl.test,BLOCK,*", tarpit=0, resolver="127.0.0.1",
            dnslookup=a.courier_dnslookup, smtpaccess=list(smtpaccess),
            domain=DOMAIN, user=USER)
        t = time.monotonic()
        self.mta.start()
        log("%s: Courier %s up on 127.0.0.1:%d in %.1fs (netns %s)"
            % (self.tag, a.release, courier_port, time.monotonic() - t, self.ns.name))
        if breakwater:
            self.bw = self.start_bw(courier_port, bw_extra)

    def start_bw(self, courier_port, extra=()):
        conf = os.path.join(self.dir, "breakwater.conf")
        state = os.path.join(self.dir, "state")
        with open(conf, "w") as f:
            f.write("listen = 127.0.0.1:%d\n" % FRONT_PORT)
            f.write("backend = 127.0.0.1:%d\n" % courier_port)
            f.write("backend_source = 127.0.0.2\n")
            f.write("backend_max_connections = %d\n" % self.a.bw_backend_max)
            f.write("dnsbl_sites = bl.test\n")
            f.write("resolver = 127.0.0.1:53\n")
            f.write("hostname = mx.bench.test\n")
            f.write("ban_backend = none\n")
            f.write("state_dir = %s\n" % state)
            f.write("control_socket = %s\n" % os.path.join(self.dir, "control"))
            f.write("user = nobody\n")
            f.write("metrics_listen =\n")
            for line in extra:
                f.write(line + "\n")
        p = bench.Proc("breakwater", self.ns.argv([bench.BW, "serve", "-c", conf]),
                       os.path.join(self.dir, "breakwater.log"))
        for _ in range(100):            # 10 s at most
            if netns.ns_listening(p.pid, FRONT_PORT) or not p.alive():
                break
            time.sleep(0.1)
        if not p.alive() or not netns.ns_listening(p.pid, FRONT_PORT):
            raise RuntimeError("breakwater did not start: " + open(p.logpath).read()[-2000:])
        log("%s: breakwater up on 127.0.0.1:%d -> 127.0.0.1:%d" % (self.tag, FRONT_PORT, courier_port))
        return p

    def courier_pids(self):
        """{pid: comm} of Courier's processes (the fixture's PID 1 left out)."""
        procs = self.mta.processes()
        procs.pop(self.mta.init_pid, None)
        return procs

    def down(self):
        for name, fn in (("breakwater", lambda: self.bw and self.bw.stop()),
                         ("courier", self._stop_courier),
                         ("rbldnsd", lambda: self.rbl and self.rbl.stop()),
                         ("netns", self.ns.delete)):
            try:
                fn()
            except Exception as e:      # keep stopping the others
                log("%s: stop %s: %r" % (self.tag, name, e))

    def _stop_courier(self):
        if self.mta is None:
            return
        for name in ("maillog", "init.log"):    # NsCourier.stop removes its folder
            try:
                shutil.copyfile(os.path.join(self.mta.dir, name),
                                os.path.join(self.dir, "courier-" + name))
            except (OSError, TypeError):
                pass
        self.mta.stop()


class Sampler(threading.Thread):
    """Once a second until stopped (or `limit` seconds): Courier's
    processes and memory, its cap, its ALERT lines, breakwater's memory."""

    def __init__(self, stage, limit):
        super().__init__(daemon=True)
        self.st = stage
        self.limit = limit
        self.stop_ev = threading.Event()
        self.samples = []
        self.log_off = 0
        self.t0 = time.monotonic()

    def listen_queue(self):
        """Connections waiting in Courier's accept queue (rx_queue of its
        listening socket in /proc/net/tcp*, read in its namespace): clients
        connected but not yet accepted, so without a greeting."""
        n = 0
        for name in ("tcp", "tcp6"):
            try:
                with open("/proc/%d/net/%s" % (self.st.mta.init_pid, name)) as f:
                    next(f)
                    for line in f:
                        p = line.split()
                        if p[3] == "0A" and int(p[1].rsplit(":", 1)[1], 16) == self.st.mta.port:
                            n += int(p[4].split(":")[1], 16)
            except (OSError, StopIteration, ValueError, IndexError, TypeError):
                pass
        return n

    def new_alerts(self):
        try:
            with open(self.st.mta.log_path, "rb") as f:
                f.seek(self.log_off)
                data = f.read()
        except (OSError, TypeError):
            return 0
        cut = data.rfind(b"\n") + 1
        self.log_off += cut
        return data[:cut].count(ALERT.encode())

    def run(self):
        cap = self.st.a.maxdaemons
        while not self.stop_ev.is_set() and time.monotonic() - self.t0 < self.limit:
            t = time.monotonic() - self.t0
            procs = self.st.courier_pids()
            names = {}
            for comm in procs.values():
                names[comm] = names.get(comm, 0) + 1
            rss, pss = bench.mem_of(list(procs))
            esmtpd = names.get("courieresmtpd", 0)
            s = {"t": round(t, 2), "procs": len(procs), "esmtpd": esmtpd,
                 "submit": names.get("submit", 0), "tcpd": names.get("couriertcpd", 0),
                 "rss_kib": rss, "pss_kib": pss, "at_cap": esmtpd >= cap,
                 "alerts": self.new_alerts(), "load1": loadavg()[0],
                 "listen_queue": self.listen_queue()}
            if self.st.bw is not None:
                s["bw_rss_kib"], s["bw_pss_kib"] = bench.mem_of(self.st.bw.pids())
            self.samples.append(s)
            self.stop_ev.wait(max(0.0, 1.0 - (time.monotonic() - self.t0 - t)))

    def finish(self):
        self.stop_ev.set()
        self.join(15)
        self.new_alerts()
        return self.samples


def profile_with_calm(a, path):
    points = [l.split() for l in open(bench.PROFILE) if l.strip() and not l.startswith("#")]
    end = float(points[-1][0])
    with open(path, "w") as f:
        f.writelines("%s\t%s\n" % (t, n) for t, n in points)
        f.write("%g\t0\n%g\t0\n" % (end + 1, end + 1 + a.calm / a.time_scale))
    return (end + 1) * a.time_scale + a.calm      # the run's length in seconds


def wave_fig(a, run_dir, system):
    """Figure 1, one run: system 'A' (Courier alone) or 'B' (behind breakwater)."""
    st = Stage("wave-" + system, run_dir, a)
    res = {"system": system, "load_before": uptime()}
    try:
        if system == "A":
            st.up(FRONT_PORT)
        else:
            st.up(COURIER_BEHIND_PORT, smtpaccess=["127.0.0.2\t" + a.b_access], breakwater=True)
        res["courier_base"] = dict(zip(("rss_kib", "pss_kib"), bench.mem_of(list(st.courier_pids()))))
        res["courier_base"]["procs"] = len(st.courier_pids())
        if st.bw:
            res["bw_base"] = dict(zip(("rss_kib", "pss_kib"), bench.mem_of(st.bw.pids())))
        prof = os.path.join(st.dir, "profile.tsv")
        length = profile_with_calm(a, prof)
        secs = int(length) + 10
        argv = [bench.WAVE, "-t", "127.0.0.1:%d" % FRONT_PORT, "-d", str(secs), "--json",
                "--profile", prof, "--scale", "%g" % a.scale, "--time-scale", "%g" % a.time_scale,
                "--bot-linger", "%g" % a.bot_linger, "--bot-quit-share", "100",
                "--mix", "listed=%g,polite=%g" % (100 - a.polite_share, a.polite_share),
                "--pool", str(a.pool), "--procs", str(a.procs),
                "--series", os.path.join(st.dir, "wave-series.tsv")]
        res["wave_cmd"] = "wave " + " ".join(shlex.quote(x) for x in argv[1:])
        log("%s: %s" % (st.tag, res["wave_cmd"]))
        sampler = Sampler(st, secs + 120)
        sampler.start()
        p = subprocess.Popen(st.ns.argv(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True, start_new_session=True)
        try:
            out, err = p.communicate(timeout=secs + 90)
        except BaseException:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.communicate()
            sampler.finish()
            raise
        wave_end = time.monotonic() - sampler.t0
        if p.returncode != 0:
            sampler.finish()
            raise RuntimeError("wave failed (%d): %s" % (p.returncode, err[-2000:]))
        w = json.loads(out)
        sent = w["kinds"].get("polite", {}).get("data_replies", {}).get("2xx", 0)
        delivered, waited = wait_maildir(st.mta, sent, a.settle)
        samples = sampler.finish()
        res.update(summarize(a, w, samples, wave_end))
        res["wave"] = w
        res["samples"] = samples
        res["polite_delivered"] = delivered
        res["settle_s"] = round(waited, 1)
        text = st.mta.log_text()
        res["courier_log"] = {"511": text.count(": 511 "), "alert_lines": text.count(ALERT)}
        res["load_after"] = uptime()
        log("%s: Courier peak %d processes (%d courieresmtpd), PSS %.0f MiB, at its cap %d s; "
            "polite %d sent, %d in the Maildir; no greeting %d of %d"
            % (st.tag, res["courier_peak_procs"], res["courier_peak_esmtpd"],
               res["courier_peak_pss_kib"] / 1024, res["seconds_at_cap"], sent, delivered,
               res["no_greeting"], w["all"]["started"]))
    finally:
        st.down()
    return res


def summarize(a, w, samples, wave_end):
    during = [s for s in samples if s["t"] <= wave_end]
    out = {"courier_peak_procs": max((s["procs"] for s in samples), default=0),
           "courier_peak_esmtpd": max((s["esmtpd"] for s in samples), default=0),
           "courier_peak_pss_kib": max((s["pss_kib"] for s in samples), default=0),
           "courier_peak_rss_kib": max((s["rss_kib"] for s in samples), default=0),
           "courier_peak_listen_queue": max((s["listen_queue"] for s in samples), default=0),
           "seconds_at_cap": sum(1 for s in during if s["at_cap"]),
           "seconds_with_alerts": sum(1 for s in during if s["alerts"]),
           "seconds_with_queue": sum(1 for s in during if s["listen_queue"] > 0),
           "seconds_sampled": len(during),
           "load1_mean": round(sum(s["load1"] for s in during) / max(1, len(during)), 2)}
    if any("bw_pss_kib" in s for s in samples):
        out["bw_peak_rss_kib"] = max(s.get("bw_rss_kib", 0) for s in samples)
        out["bw_peak_pss_kib"] = max(s.get("bw_pss_kib", 0) for s in samples)
    started = w["all"]["started"]
    greeted = sum(k.get("latency_ms", {}).get("greeting", {}).get("count", 0)
                  for k in w["kinds"].values())
    out["greeted"] = greeted
    out["no_greeting"] = started - greeted
    return out


def source_fig(a, run_dir):
    """Figure 2: smtp-source into Courier directly and through breakwater."""
    st = Stage("source", run_dir, a)
    res = {"load_before": uptime(), "rounds": []}
    try:
        # all of smtp-source's sessions come from one address: past the
        # default max_connections_per_ip (20) a new session can meet the
        # one it replaces still counted, and gets 421
        st.up(COURIER_BEHIND_PORT, smtpaccess=["127.0.0.2\t" + a.b_access], breakwater=True,
              client_src=CLEAN_SRC, bw_extra=["max_connections_per_ip = 1000"])
        paths = [("direct", COURIER_BEHIND_PORT), ("breakwater", FRONT_PORT)]
        for rnd in range(a.source_rounds):
            for name, port in (paths if rnd % 2 == 0 else paths[::-1]):
                n0 = maildir_count(st.mta)
                argv = ["smtp-source", "-s", str(a.source_sessions), "-l", str(a.source_size),
                        "-m", str(a.source_messages), "-f", SENDER, "-t", "%s@%s" % (USER, DOMAIN),
                        "127.0.0.1:%d" % port]
                t = time.monotonic()
                try:
                    r = subprocess.run(st.ns.argv(argv), capture_output=True, text=True,
                                       timeout=a.source_timeout)
                    rc, err = r.returncode, (r.stdout + r.stderr)[-1000:]
                except subprocess.TimeoutExpired:
                    rc, err = "timeout", "killed after %ds" % a.source_timeout
                wall = time.monotonic() - t
                got, waited = wait_maildir(st.mta, n0 + a.source_messages, a.settle)
                received = newest_received(st.mta)
                row = {"round": rnd + 1, "path": name, "cmd": " ".join(argv), "rc": rc,
                       "wall_s": round(wall, 3), "msgs_per_s": round(a.source_messages / wall, 2)
                       if rc == 0 else None, "delivered": got - n0, "delivery_wait_s": round(waited, 1),
                       "load1": loadavg()[0], "output": err if rc != 0 else "",
                       "newest_received": received}
                res["rounds"].append(row)
                log("source round %d %s: %s msgs/s (rc %s), %d of %d in the Maildir"
                    % (rnd + 1, name, row["msgs_per_s"], rc, got - n0, a.source_messages))
        res["load_after"] = uptime()
    finally:
        st.down()
    for name in ("direct", "breakwater"):
        ok = [r["msgs_per_s"] for r in res["rounds"] if r["path"] == name and r["msgs_per_s"]]
        res[name] = max(ok) if ok else None
    if res.get("direct") and res.get("breakwater"):
        res["ratio"] = round(res["breakwater"] / res["direct"], 3)
    return res


# --- output -------------------------------------------------------------

def write_dat(res, base):
    """FILE-A.dat, FILE-B.dat: second, wave open connections, Courier
    processes, courieresmtpd, Courier PSS (KiB), at cap (0/1), breakwater
    PSS (KiB), Courier's accept queue."""
    files = []
    for sysname in ("A", "B"):
        r = res.get("wave", {}).get(sysname)
        if not r or "samples" not in r:
            continue
        series = r["wave"].get("series", [])
        path = "%s-%s.dat" % (base, sysname)
        with open(path, "w") as f:
            f.write("# t\twave_open\tcourier_procs\tcourieresmtpd\tcourier_pss_kib\tat_cap"
                    "\tbw_pss_kib\taccept_queue\n")
            for s in r["samples"]:
                i = int(round(s["t"]))
                wo = series[i] if i < len(series) else "NaN"
                f.write("%.2f\t%s\t%d\t%d\t%d\t%d\t%s\t%d\n" % (
                    s["t"], wo, s["procs"], s["esmtpd"], s["pss_kib"], s["at_cap"],
                    s.get("bw_pss_kib", "NaN"), s["listen_queue"]))
        files.append((sysname, path))
    return files


def plot(files, out, cap):
    if not files:
        return "no series"
    if not shutil.which("gnuplot"):
        return "gnuplot missing"
    names = {"A": "A:_Courier_alone", "B": "B:_breakwater_in_front"}
    argv = ["gnuplot", "-e", "out='%s'" % out, "-e", "files='%s'" % " ".join(p for _, p in files),
            "-e", "names='%s'" % " ".join(names[s] for s, _ in files), "-e", "cap=%d" % cap,
            os.path.join(HERE, "courier.gp")]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    return "ok" if r.returncode == 0 else "gnuplot failed: " + r.stderr[-500:]


def mib(kib):
    return "%.1f MiB" % (kib / 1024.0) if kib is not None else "-"


def markdown(res, a):
    L = []
    m = res["machine"]
    L.append("## Courier: the wave replay and clean throughput\n")
    L.append("Run %s (took %.0f s). `python3 %s` on %s (%d cores, %s), %s, Courier %s "
             "(Debian %s chroot, tests/integration/courier.py), breakwater %s at %s.\n"
             % (res["started"], res.get("elapsed_s", 0), res["command"], m["cpu"], m["nproc"],
                m["memory"], m["kernel"], res["courier_version"], a.release,
                m["breakwater"].replace("breakwater ", ""), res.get("git", "?")))
    L.append("Machine load: at the start `%s`; at the end `%s`.\n" % (res["load_start"], res["load_end"]))
    W = res.get("wave", {})
    if W:
        L.append("### Figure 1: wave-1.tsv against Courier alone (A) and behind breakwater (B)\n")
        any_run = next(iter(W.values()))
        L.append("Both runs in a fresh network namespace each, with a fresh Courier: MAXDAEMONS=%d, "
                 "MAXPERIP = MAXPERC = %d, `BLACKLISTS=\"-block=bl.test,BLOCK,*\"` against rbldnsd "
                 "(127.66.0.0/16 and 127.0.0.2 listed), TARPIT=0, no reverse lookups. "
                 "B: breakwater on 127.0.0.1:25 (`backend_source = 127.0.0.2`, "
                 "`backend_max_connections = %d`, `dnsbl_sites = bl.test`, `ban_backend = none`, "
                 "defaults otherwise), Courier on 127.0.0.1:2525 with `127.0.0.2<TAB>%s` in "
                 "smtpaccess. The wave: `%s` (the profile with %g s of calm after it; %d%% listed "
                 "bots that hold their connection %g s after their 5xx, then QUIT, %d%% "
                 "polite MTAs sending one message to rcpt@example.org). Sampled once a second.\n"
                 % (a.maxdaemons, a.maxper, a.bw_backend_max, a.b_access,
                    any_run.get("wave_cmd", "").replace(res.get("tmp", "@@"), "DIR"), a.calm,
                    100 - a.polite_share, a.bot_linger, a.polite_share))
        L.append("| | A: Courier alone | B: breakwater in front |")
        L.append("|---|---:|---:|")

        def row(label, fn):
            cells = []
            for k in ("A", "B"):
                r = W.get(k)
                try:
                    cells.append(fn(r) if r and "wave" in r else ("failed" if r else "-"))
                except (KeyError, TypeError, ZeroDivisionError):
                    cells.append("-")
            L.append("| %s | %s |" % (label, " | ".join(cells)))

        def kind(r, k):
            return r["wave"]["kinds"].get(k, {})

        def errs(r, k=None):
            e = (kind(r, k) if k else r["wave"]["all"])["errors"]
            return ", ".join("%s %s" % (n, _f(v)) for n, v in e.items() if n != "total" and v) or "none"
        row("Wave: peak open connections", lambda r: _f(r["wave"]["max_open"]))
        row("Wave: sessions started (bots / polite)", lambda r: "%s (%s / %s)" % (
            _f(r["wave"]["all"]["started"]), _f(kind(r, "listed").get("started", 0)),
            _f(kind(r, "polite").get("started", 0))))
        row("Clients with no greeting (could not connect or timed out)", lambda r: "%s (%.1f%%)" % (
            _f(r["no_greeting"]), 100.0 * r["no_greeting"] / max(1, r["wave"]["all"]["started"])))
        row("Wave errors", lambda r: errs(r))
        row("Bots answered 5xx at RCPT", lambda r: _f(kind(r, "listed").get("rcpt_replies", {}).get("5xx", 0)))
        row("Bot greeting p50 / p99 (ms)", lambda r: "%s / %s" % (
            _f(kind(r, "listed")["latency_ms"]["greeting"]["p50"], 1),
            _f(kind(r, "listed")["latency_ms"]["greeting"]["p99"], 1)))
        row("Polite: messages accepted (250 after DATA) / started", lambda r: "%s / %s" % (
            _f(kind(r, "polite").get("data_replies", {}).get("2xx", 0)),
            _f(kind(r, "polite").get("started", 0))))
        row("Polite: messages in the Maildir", lambda r: _f(r["polite_delivered"]))
        row("Polite errors", lambda r: errs(r, "polite"))
        row("Courier: peak processes (courieresmtpd)", lambda r: "%s (%s)" % (
            _f(r["courier_peak_procs"]), _f(r["courier_peak_esmtpd"])))
        row("Courier: processes before the wave", lambda r: _f(r["courier_base"]["procs"]))
        row("Courier: peak PSS (RSS)", lambda r: "%s (%s)" % (
            mib(r["courier_peak_pss_kib"]), mib(r["courier_peak_rss_kib"])))
        row("Courier: PSS before the wave", lambda r: mib(r["courier_base"]["pss_kib"]))
        row("Courier: seconds at its cap (courieresmtpd >= %d) / sampled" % a.maxdaemons,
            lambda r: "%d / %d" % (r["seconds_at_cap"], r["seconds_sampled"]))
        row("Courier: peak accept queue (connected, not accepted: no greeting yet)",
            lambda r: _f(r["courier_peak_listen_queue"]))
        row("Courier: seconds with clients in its accept queue / sampled",
            lambda r: "%d / %d" % (r["seconds_with_queue"], r["seconds_sampled"]))
        row("Courier: log lines \"N maximum active connections.\" (seconds with one)",
            lambda r: "%s (%d)" % (_f(r["courier_log"]["alert_lines"]), r["seconds_with_alerts"]))
        row("Courier: 511 lines in its log", lambda r: _f(r["courier_log"]["511"]))
        row("breakwater: peak RSS / PSS (before the wave)", lambda r: "%s / %s (%s / %s)" % (
            mib(r["bw_peak_rss_kib"]), mib(r["bw_peak_pss_kib"]),
            mib(r["bw_base"]["rss_kib"]), mib(r["bw_base"]["pss_kib"])) if "bw_base" in r else "-")
        row("wave's CPU", lambda r: "%.0f%% of a core" % r["wave"]["cpu"]["percent_of_one_core"])
        row("Load average (1 min), mean over the run", lambda r: "%.2f" % r["load1_mean"])
        L.append("")
        if res.get("plot") == "ok":
            L.append("![Courier's processes during the wave, alone and behind breakwater](%s)\n"
                     % os.path.relpath(a.plot, ROOT))
        for k in ("A", "B"):
            if W.get(k, {}).get("error"):
                L.append("Run %s failed: `%s`\n" % (k, W[k]["error"][-500:]))
    S = res.get("source")
    if S:
        L.append("### Figure 2: clean mail, smtp-source into Courier directly and through breakwater\n")
        L.append("`smtp-source -s %d -l %d -m %d -f %s -t %s@%s 127.0.0.1:PORT` from 127.1.0.1 (clean), "
                 "into one fresh Courier configured as in B: directly (port %d) and through "
                 "breakwater (port %d, relaying from 127.0.0.2; `max_connections_per_ip = 1000`, "
                 "as every session comes from one address), %d rounds, the order alternating; "
                 "messages/s = messages / smtp-source's wall time; after each run the Maildir was "
                 "waited for until every message arrived.\n"
                 % (a.source_sessions, a.source_size, a.source_messages, SENDER, USER, DOMAIN,
                    COURIER_BEHIND_PORT, FRONT_PORT, a.source_rounds))
        L.append("| Path | Messages/s (best) | All rounds | In the Maildir / sent |")
        L.append("|---|---:|---|---|")
        for name, label in (("direct", "Courier directly"), ("breakwater", "through breakwater")):
            rows = [r for r in S.get("rounds", []) if r["path"] == name]
            L.append("| %s | %s | %s | %s |" % (
                label, _f(S.get(name), 1),
                ", ".join(_f(r["msgs_per_s"], 1) if r["msgs_per_s"] else "rc %s" % r["rc"] for r in rows),
                ", ".join("%d / %d" % (r["delivered"], a.source_messages) for r in rows)))
        L.append("")
        if S.get("ratio"):
            L.append("breakwater / direct: **%.2fx**.\n" % S["ratio"])
        if S.get("error"):
            L.append("Figure 2 failed: `%s`\n" % S["error"][-500:])
    return "\n".join(L) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--figures", default="12", help="1 = the wave replay (A and B), 2 = smtp-source")
    ap.add_argument("--systems", default="AB", help="figure 1's runs: A, B or AB")
    ap.add_argument("--scale", type=float, default=4, help="wave-1.tsv's connections times this")
    ap.add_argument("--time-scale", type=float, default=0.3, help="wave-1.tsv's seconds times this")
    ap.add_argument("--bot-linger", type=float, default=30,
                    help="seconds a listed bot holds its connection after the 5xx")
    ap.add_argument("--calm", type=float, default=None,
                    help="seconds without new clients after the profile (default linger + 15)")
    ap.add_argument("--polite-share", type=float, default=5, help="percent of polite clients")
    ap.add_argument("--pool", type=int, default=20000, help="wave --pool (addresses per net)")
    ap.add_argument("--procs", type=int, default=2, help="wave processes")
    ap.add_argument("--maxdaemons", type=int, default=300, help="Courier's MAXDAEMONS")
    ap.add_argument("--maxper", type=int, default=1000, help="Courier's MAXPERIP and MAXPERC")
    ap.add_argument("--bw-backend-max", type=int, default=250,
                    help="breakwater's backend_max_connections (below MAXDAEMONS)")
    ap.add_argument("--b-access", default="allow,BLOCK",
                    help="what Courier's smtpaccess gives 127.0.0.2 behind breakwater "
                         "(docs/deployment.md: allow)")
    ap.add_argument("--courier-dnslookup", action="store_true",
                    help="let couriertcpd look up each client's name (default -nodnslookup)")
    ap.add_argument("--release", default="bookworm", choices=cfx.RELEASES)
    ap.add_argument("--source-messages", type=int, default=1000)
    ap.add_argument("--source-sessions", type=int, default=20)
    ap.add_argument("--source-size", type=int, default=512)
    ap.add_argument("--source-rounds", type=int, default=3)
    ap.add_argument("--source-timeout", type=int, default=180, help="seconds per smtp-source run")
    ap.add_argument("--settle", type=float, default=60,
                    help="longest wait for the Maildir after a run (s)")
    ap.add_argument("--workdir", default="/tmp/courier-bench")
    ap.add_argument("--keep", action="store_true", help="keep the run's folder (logs, maillogs)")
    ap.add_argument("--json", default=os.path.join(ROOT, "build", "bench", "courier.json"))
    ap.add_argument("--md", default="-", help="the Markdown section: a file, or - for stdout")
    ap.add_argument("--plot", default=os.path.join(HERE, "courier-wave.png"))
    a = ap.parse_args()
    if a.calm is None:
        a.calm = a.bot_linger + 15
    if os.geteuid() != 0:
        sys.exit("courier.py: needs root (namespaces, Courier's chroot, rbldnsd on port 53)")
    for f in (bench.WAVE, bench.BW):
        if not os.access(f, os.X_OK):
            sys.exit("courier.py: %s missing: make build/breakwater build/bench/wave" % f)
    for tool in ("rbldnsd", "smtp-source", "dig"):
        if not shutil.which(tool):
            sys.exit("courier.py: %s missing" % tool)
    ok, why = cfx.courier_available(a.release)
    if not ok and "no Courier chroot" not in why:
        sys.exit("courier.py: " + why)
    cfx.ensure_chroot(a.release)

    os.makedirs(a.workdir, exist_ok=True)
    os.chmod(a.workdir, 0o755)
    run_dir = os.path.join(a.workdir, "run-%s-%d" % (time.strftime("%Y%m%d-%H%M%S"), os.getpid()))
    os.makedirs(run_dir)
    os.chmod(run_dir, 0o755)
    res = {"command": "bench/courier.py " + " ".join(shlex.quote(x) for x in sys.argv[1:]),
           "config": vars(a).copy(), "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "machine": bench.machine(), "load_start": uptime(), "tmp": run_dir,
           "courier_version": (cfx.chroot_info(a.release) or {}).get("courier", "?")}
    try:
        res["git"] = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                                    capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass

    def on_signal(sig, frame):
        raise SystemExit("courier.py: signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    failed = False
    try:
        for fig in a.figures:
            t = time.monotonic()
            try:
                if fig == "1":
                    for system in a.systems:
                        try:
                            res.setdefault("wave", {})[system] = wave_fig(a, run_dir, system)
                        except Exception as e:
                            failed = True
                            log("figure 1 %s failed: %r" % (system, e))
                            res.setdefault("wave", {})[system] = {"error": repr(e)[-3000:]}
                elif fig == "2":
                    res["source"] = source_fig(a, run_dir)
                else:
                    log("no figure %r" % fig)
            except Exception as e:
                failed = True
                log("figure %s failed: %r" % (fig, e))
                res["source" if fig == "2" else fig] = {"error": repr(e)[-3000:]}
            log("figure %s took %.0fs (%s)" % (fig, time.monotonic() - t, uptime()))
    finally:
        res["elapsed_s"] = round(time.monotonic() - bench.T0, 1)
        res["load_end"] = uptime()
        os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
        base = os.path.splitext(os.path.abspath(a.json))[0]
        res["plot"] = plot(write_dat(res, base), os.path.abspath(a.plot), a.maxdaemons) \
            if "1" in a.figures else "not asked"
        with open(a.json, "w") as f:
            json.dump(res, f, indent=1)
        md = markdown(res, a)
        if a.md == "-":
            sys.stdout.write(md)
        else:
            with open(a.md, "w") as f:
                f.write(md)
        if a.keep or failed:
            log("logs kept in %s" % run_dir)
        else:
            shutil.rmtree(run_dir, ignore_errors=True)
        log("done in %.0fs; results in %s, plot %s (%s)" % (res["elapsed_s"], a.json, a.plot,
                                                           res["plot"]))


if __name__ == "__main__":
    main()
