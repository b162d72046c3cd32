#!/usr/bin/env python3
"""bench/soak.py - the issue's `bench/soak.sh DURATION`, written in Python as
bench/kill9.py is (not part of `make test`): breakwater, the ASan build by
default, under a steady wave for DURATION seconds with the disruptions of a
long life, sampled every 10 s; it must stay flat and lose nothing.

    python3 bench/soak.py [--duration 3600] [--rate N] [--binary build/asan/breakwater]
                          [--reload-every 300] [--kill-every 600] [--no-redis-restart]
                          [--ban-time S] [--calibrate 10] [--mix listed=95,polite=5]
                          [--log-level warning] [--out /tmp/soak.tsv] [--plot /tmp/soak.png]
                          [--keep]

The one-hour soak of the issue is `python3 bench/soak.py` (the defaults).

What runs, in a private network + mount namespace (bench.enter_namespace):
rbldnsd on 127.0.0.1:53 listing 127.64.0.0/10 ($TTL 120), smtp-sink on
:2526 as the MTA (`-c`: its running counter of messages received), a
redis-server on :6390 for the fleet (ACL user `soak`; breakwater is its
only member: it publishes its bans and its verdicts there), the nft ruleset
of `breakwater rules`, and `breakwater serve` on :2525 with workers = 2,
ban_backend = nft, ban_time = ban_time_max = --ban-time (default
min(60, DURATION/12) s, at least 10: no escalation), metrics on :9625, and
log_level = warning to a file (info writes a line per session: hundreds of
MB an hour at this rate; --log-level info when looking for a cause).

The rate: --rate, or half of the listed capacity measured first, as the
issue says: a calibration wave of --calibrate seconds (default 10) of
listed bots from fresh addresses, 200 at once from two generator
processes, as BENCHMARKS.md figure a measures the cold capacity (~6,900
sessions/s for the normal build on this machine), but against this very
daemon (ASan, bans on, 2 workers), so the ASan slowdown and the machine's
other load at that moment are in the figure (2,681/s here on 2026-12-03,
hence ~1,340/s). breakwater is then restarted on an empty store, the set
flushed and Redis emptied.

The load: one build/bench/wave for the whole duration (its -d), at the
rate, `--mix listed=95,polite=5`, at most 4,000 sessions open. The bots
come round-robin from the first `--pool` addresses of 127.64.0.0/12,
the pool sized so that a bot comes back max(3 x ban_time, 180) s later:
its ban has ended (a banned bot's SYN is dropped: wave would count a
timeout) and so has its verdict (120 s), so every bot session is cold (a
DNS query, a verdict written, a ban), as in the calibration. Polite MTAs
come from the same pool size in 127.1.0.0/16.

The disruptions: every --reload-every s a reload, alternately SIGHUP to the
supervisor and `breakwater ctl reload`, each with a new reject_message
naming it; done when four listed probes from new addresses (127.127.x.y)
in a row get the new text. Every --kill-every s SIGKILL to a worker (the
supervisor's children are the ban helper, which keeps CAP_NET_ADMIN, and
the workers, CapEff 0: src/startup.c, src/workers.c), taking turns; it is
stopped first (SIGSTOP) to count the client connections it holds
(/proc/PID/fd against `ss -e`): the sessions the kill ends; done
when the supervisor has a new worker and a clean client is greeted. Once,
at half time, redis-server gets SIGTERM, stays down 3 s and is started
again on the same port (empty); done when breakwater is back on its
channel (PUBSUB NUMSUB).

Every 10 s a row of the TSV (--out; gnuplot-ready: comments, then a line
of column names): t_s; rss_kib, fds and procs summed over the daemon's
processes (supervisor, ban helper, workers; /proc), the RSS of each role
(rss_supervisor_kib, rss_helper_kib, rss_workers_kib), and fds_min, the
least of five reads 0.1 s apart (the sessions' sockets come and go with
the machine's load; what stays is where a leak would show); lmdb_kib (the size of
state_dir/breakwater.mdb), verdicts (/metrics
breakwater_verdict_cache_entries) and store_bans (`ctl bans` lines);
set_banned4, the nft set's elements; sessions_per_s, bans_per_s (applied)
and open_conns from /metrics; fleet_up (breakwater_fleet_connected, one
per Redis link), redis_keys (DBSIZE); set_dump_s and set_dump_intr (the
set count's cost, and whether the kernel flagged it as interrupted);
cpu_pct of the daemon; disturbed (1: within 10 s after a kill or the
Redis restart). The set is counted by one netlink dump
(NFT_MSG_GETSETELEM), not `nft -j list set`: every ban transaction
restarts nft's listing, which took 3 to 30 s at 1,300 bans/s (docs/operations.md,
Bans); the two are compared once the wave is over. libev timers are not
sampled: libev has no call that counts active watchers and breakwater
exports no such figure, so they cannot be seen from outside without
changing the daemon; a timer leak would show as memory (and CPU).

At the end (the wave over; breakwater stopped by SIGTERM with up to 60 s
for the sanitizers' exit checks; then everything else), the report.
Flatness: the mean of each column over the last third of the run after a
10% warm-up against its middle third (thirds of the span after the
warm-up, leaving out the disturbed samples: the new worker takes the
connections that queued for it, a burst of fds); RSS (the means) and
fds_min (the medians: the fds are mostly sessions in flight, and a backlog
of a few seconds moves a mean) pass within 10%; fds, set, LMDB, verdicts, ban records, Redis keys, sessions/s and CPU are
described. (ASan's quarantine, 256 MB a process, makes a worker's RSS
climb for its first minute or so; a killed worker starts that again.)
Polite messages: started, acknowledged (250 to the final dot), received
by smtp-sink; it passes when smtp-sink has every acknowledged one and
every one not acknowledged is a session a killed worker held; and every
session wave counts as failed must be one a killed worker held. Sanitizer
reports ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer") in
the daemon's log fail it. So does every warning or error line of the log
the disruptions do not explain; the explained ones: "worker N (pid P)
ended (signal 9): starting it again" for a pid this script killed (as
many as the kills), "fleet_redis ...: connection lost / cannot connect /
no connection within / replies overdue" between the Redis stop and 15 s
after breakwater is back, and the start's "backend_proxy_protocol = none"
(smtp-sink speaks no PROXY). Exit status 0 when all passes, 1 otherwise.
With gnuplot installed, a PNG of RSS, fds and the set over time goes to
--plot (its script next to the TSV, .gp, either way); a markdown table of
the figures is printed for BENCHMARKS.md. The temporary directory
(/tmp/soak-*: logs, configuration, store) is removed after a pass, kept
after a failure or with --keep.

Needs root, build/bench/wave (make bench), the binary (make
build/asan/breakwater), rbldnsd, smtp-sink, redis-server, nft, ss, dig.
Bounded: the wave ends at DURATION (killed at DURATION + 120 s), every
wait has a timeout, and everything is stopped in a finally clause.
"""

import argparse
import json
import math
import os
import re
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

ROOT = bench.ROOT
BW_PORT, SINK_PORT, REDIS_PORT, METRICS_PORT = 2525, 2526, 6390, 9625
LISTED_ZONE = "127.64.0.0/10"          # what rbldnsd lists
BOT_NET = "127.64.0.0/12"              # the soak's bots (pool taken from its start)
BOT_NET_USABLE = 16 * 256 * 254        # wave skips .0 and .255 of each /24
CALIBRATION_NET = "127.96.0.0/12"      # the calibration's fresh addresses
PROBE_NET = (127, 127)                 # probes after a reload: 127.127.x.y
CLEAN_PROBE_NET = (127, 3)             # greeting checks after a kill
POLITE_NET = "127.1.0.0/16"            # wave's default clean net
DNS_TTL = 120
SAMPLE_EVERY = 10.0
REDIS_USER, REDIS_PASS = "soak", "soak-secret"
ASAN_OPTIONS = "detect_leaks=1:abort_on_error=0"
UBSAN_OPTIONS = "print_stacktrace=1:halt_on_error=1"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")
T0 = time.monotonic()

COLUMNS = ["t_s", "rss_kib", "rss_supervisor_kib", "rss_helper_kib", "rss_workers_kib",
           "fds", "fds_min", "procs", "lmdb_kib", "verdicts", "store_bans",
           "set_banned4", "sessions_per_s", "bans_per_s", "open_conns", "fleet_up",
           "redis_keys", "set_dump_s", "set_dump_intr", "cpu_pct", "disturbed"]
DISTURBED_FOR = 10.0    # s after a kill or a Redis restart: samples left out of the means


def log(msg):
    sys.stderr.write("[soak %6.0fs] %s\n" % (time.monotonic() - T0, msg))
    sys.stderr.flush()


# --- small helpers ------------------------------------------------------------

def run(argv, timeout=30, env=None, input=None):
    """subprocess.run, bounded; a CompletedProcess (rc 124 on timeout)."""
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=env, input=input)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, e.stdout or "", e.stderr or "timeout")


def proc_status(pid):
    out = {}
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                k, _, v = line.partition(":")
                out[k] = v.strip()
    except OSError:
        pass
    return out


def children(pid):
    return [p for p, f in bench.live_procs() if int(f[1]) == pid]


def metric_sum(text, name, labels=None):
    """Sum of every sample of `name` (whose labels contain `labels`)."""
    tot, seen = 0.0, False
    for m in re.finditer(r"^%s(\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M):
        if labels and labels not in (m.group(1) or ""):
            continue
        tot += float(m.group(2))
        seen = True
    return tot if seen else None


def fmt(v):
    if v is None:
        return "NaN"
    if isinstance(v, float):
        return "%.2f" % v
    return str(v)


def median(xs):
    xs = sorted(x for x in xs if x is not None)
    if not xs:
        return None
    n = len(xs)
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


NETLINK_NETFILTER = 12
NFT_MSG_GETSETELEM = (10 << 8) | 13     # NFNL_SUBSYS_NFTABLES, NFT_MSG_GETSETELEM
NLM_F_REQUEST, NLM_F_DUMP, NLM_F_DUMP_INTR = 0x1, 0x300, 0x10
NLMSG_ERROR, NLMSG_DONE = 2, 3
NFPROTO_INET = 1


def _nla(kind, payload):
    n = 4 + len(payload)
    return struct.pack("=HH", n, kind) + payload + b"\0" * ((4 - n % 4) % 4)


def netlink_set_count(table, name, timeout=10):
    """(elements of the inet set table/name, whether the kernel marked the
    dump as interrupted): one NFT_MSG_GETSETELEM dump, counted."""
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
    try:
        s.settimeout(timeout)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        body = struct.pack("=BBH", NFPROTO_INET, 0, 0) + \
            _nla(1, table.encode() + b"\0") + _nla(2, name.encode() + b"\0")
        s.send(struct.pack("=IHHII", 16 + len(body), NFT_MSG_GETSETELEM,
                           NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body)
        count, intr = 0, False
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            data = s.recv(1 << 20)
            off = 0
            while off + 16 <= len(data):
                ln, typ, flags, _, _ = struct.unpack_from("=IHHII", data, off)
                if ln < 16:
                    raise OSError("netlink: a bad message")
                if typ == NLMSG_DONE:
                    return count, intr
                if typ == NLMSG_ERROR:
                    err = struct.unpack_from("=i", data, off + 16)[0]
                    if err:
                        raise OSError(-err, "netlink: " + os.strerror(-err))
                elif typ >> 8 == 10:                     # NFT_MSG_NEWSETELEM replies
                    intr = intr or bool(flags & NLM_F_DUMP_INTR)
                    p, stop = off + 20, off + ln      # after nlmsghdr and nfgenmsg
                    while p + 4 <= stop:
                        alen, atype = struct.unpack_from("=HH", data, p)
                        if alen < 4:
                            break
                        if atype & 0x3fff == 3:          # NFTA_SET_ELEM_LIST_ELEMENTS
                            q, qend = p + 4, p + alen
                            while q + 4 <= qend:
                                elen, etype = struct.unpack_from("=HH", data, q)
                                if elen < 4:
                                    break
                                count += etype & 0x3fff == 1      # NFTA_LIST_ELEM
                                q += (elen + 3) & ~3
                        p += (alen + 3) & ~3
                off += (ln + 3) & ~3
        raise OSError("netlink: no end of the dump in %d s" % timeout)
    finally:
        s.close()


def fd_targets(pid):
    """{fd: readlink target} of a process ({} when it is gone)."""
    out = {}
    try:
        fds = os.listdir("/proc/%d/fd" % pid)
    except OSError:
        return out
    for fd in fds:
        try:
            out[fd] = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            pass
    return out


def session_sockets():
    """{"socket:[inode]": peer address} of the sessions' TCP sockets in the
    namespace: clients' connections to BW_PORT and relays to SINK_PORT,
    in any state but listening. From `ss` (netlink sock_diag, filtered in
    the kernel): /proc/net/tcp lists every TIME_WAIT too and took up to
    26 s at 400 sessions/s."""
    r = run(["ss", "-Htne", "state", "connected",
             "( sport = :%d or dport = :%d )" % (BW_PORT, SINK_PORT)], timeout=20)
    out = {}
    for m in re.finditer(r"(\S+):(\d+)\s+(\S+):(\d+)\s.*?\bino:(\d+)", r.stdout):
        if m.group(5) != "0":
            out["socket:[%s]" % m.group(5)] = m.group(3)
    return out


def smtp_reply(f):
    lines = []
    while True:
        line = f.readline()
        if not line:
            raise OSError("connection closed after %r" % b"".join(lines))
        lines.append(line)
        if len(line) < 4 or line[3:4] != b"-":
            return b"".join(lines).decode("ascii", "replace").strip()


# --- the soak -----------------------------------------------------------------

class Soak:
    def __init__(self, a):
        self.a = a
        self.bin = os.path.abspath(a.binary)
        self.tmp = tempfile.mkdtemp(prefix="soak-", dir="/tmp")
        os.chmod(self.tmp, 0o755)
        self.conf = os.path.join(self.tmp, "bw.conf")
        self.state = os.path.join(self.tmp, "state")
        self.control = os.path.join(self.tmp, "control")
        self.bwlog = os.path.join(self.tmp, "bw.log")
        self.rbl = self.sink = self.redis = self.bw = self.wave = None
        self.config_no = 0
        self.probe_no = 0
        self.clean_no = 0
        self.events = []        # (t, kind, detail)
        self.kills = []         # dicts
        self.reloads = []
        self.redis_restart = None
        self.failures = []
        self.samples = []
        self.log_marks = []     # (t, size of bw.log) at each sample
        self.prev_counters = None
        self.disturbed_until = 0.0
        self.ctl_env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0",
                            UBSAN_OPTIONS=UBSAN_OPTIONS)
        self.tool_reports = []  # sanitizer lines from our own ctl/rules runs

    # -- peers
    def start_rbldnsd(self):
        d = os.path.join(self.tmp, "rbldnsd")
        os.makedirs(d)
        os.chmod(d, 0o755)
        with open(os.path.join(d, "bl.zone"), "w") as f:
            f.write("$TTL %d\n:127.0.0.2:listed by the soak\n%s\n127.0.0.2\n"
                    % (DNS_TTL, LISTED_ZONE))
        os.chmod(os.path.join(d, "bl.zone"), 0o644)
        self.rbl = bench.Proc("rbldnsd", ["rbldnsd", "-n", "-u", "rbldns", "-w", d, "-b",
                                          "127.0.0.1/53", "bl.test:ip4set:bl.zone"],
                              os.path.join(self.tmp, "rbldnsd.log"))

        def ok():
            r = run(["dig", "+short", "+time=1", "+tries=1", "@127.0.0.1",
                     "1.0.64.127.bl.test", "A"], timeout=5)
            return r.stdout.strip() == "127.0.0.2"
        bench.wait_for(ok, 15, "rbldnsd")

    def start_sink(self):
        self.sinklog = os.path.join(self.tmp, "smtp-sink.log")
        self.sink = bench.Proc("smtp-sink", ["smtp-sink", "-c", "-u", "nobody", "-m", "20000",
                                             "127.0.0.1:%d" % SINK_PORT, "4096"], self.sinklog)
        bench.wait_for(lambda: bench.listening(SINK_PORT), 10, "smtp-sink")

    def sink_messages(self):
        """smtp-sink's running counter: the last 'mesg=N' it wrote."""
        try:
            with open(self.sinklog, "rb") as f:
                f.seek(max(0, os.path.getsize(self.sinklog) - 4096))
                tail = f.read().decode("ascii", "replace")
        except OSError:
            return None
        m = re.findall(r"mesg=(\d+)", tail)
        return int(m[-1]) if m else 0

    def start_redis(self):
        rconf = os.path.join(self.tmp, "redis.conf")
        if not os.path.exists(rconf):
            with open(rconf, "w") as f:
                f.write("bind 127.0.0.1\nport %d\nsave \"\"\nappendonly no\n"
                        "protected-mode no\ndir %s\n" % (REDIS_PORT, self.tmp))
                f.write("user default on nopass ~* &* +@all\n")
                f.write("user %s on >%s ~breakwater:* &breakwater:* +get +set +del +publish "
                        "+subscribe +scan +ping +select +auth\n" % (REDIS_USER, REDIS_PASS))
        self.redis = bench.Proc("redis-server", ["redis-server", rconf],
                                os.path.join(self.tmp, "redis.log"))
        bench.wait_for(lambda: self.redis_cmd("PING") == "PONG" or not self.redis.alive(),
                       20, "redis-server")
        if not self.redis.alive():
            raise RuntimeError("redis-server exited: " + open(self.redis.logpath).read()[-1500:])

    def redis_cmd(self, *args):
        r = run(["redis-cli", "-h", "127.0.0.1", "-p", str(REDIS_PORT)] + list(args), timeout=10)
        return r.stdout.strip() if r.returncode == 0 else None

    def fleet_listeners(self):
        out = self.redis_cmd("PUBSUB", "NUMSUB", "breakwater:bans")
        try:
            return int(out.split()[-1])
        except (AttributeError, ValueError, IndexError):
            return -1

    # -- breakwater
    def write_conf(self):
        self.config_no += 1
        body = "\n".join([
            "listen = 127.0.0.1:%d" % BW_PORT,
            "backend = 127.0.0.1:%d" % SINK_PORT,
            "resolver = 127.0.0.1:53",
            "dnsbl_sites = bl.test",
            "hostname = mx.soak.test",
            "max_connections = 20000",
            "max_connections_per_ip = 1000",
            "backend_max_connections = 2000",
            "workers = 2",
            "ban_backend = nft",
            "ban_time = %ds" % self.ban_time,
            "ban_time_max = %ds" % self.ban_time,
            "shutdown_timeout = 5s",
            "state_dir = %s" % self.state,
            "control_socket = %s" % self.control,
            "user = nobody",
            "metrics_listen = 127.0.0.1:%d" % METRICS_PORT,
            "log_level = %s" % self.a.log_level,
            "fleet_redis = redis://%s:%s@127.0.0.1:%d" % (REDIS_USER, REDIS_PASS, REDIS_PORT),
            "fleet_host_id = soak1",
            "reject_message = 5.7.1 Service unavailable; client [%%a] blocked using %%l "
            "(soak config %d)" % self.config_no,
        ]) + "\n"
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(body)
        os.chmod(tmp, 0o644)
        os.rename(tmp, self.conf)
        return "soak config %d" % self.config_no

    def load_rules(self):
        r = run([self.bin, "rules", "-c", self.conf], env=self.ctl_env)
        self.note_tool(r)
        if r.returncode != 0:
            raise RuntimeError("breakwater rules: " + r.stderr[-1000:])
        n = run(["nft", "-f", "-"], input=r.stdout)
        if n.returncode != 0:
            raise RuntimeError("nft -f: " + n.stderr[-1000:])

    def note_tool(self, r):
        for line in (r.stderr or "").splitlines():
            if any(m in line for m in SANITIZER_MARKERS):
                self.tool_reports.append(line)

    def start_bw(self, logpath):
        env_before = (os.environ.get("ASAN_OPTIONS"), os.environ.get("UBSAN_OPTIONS"))
        os.environ["ASAN_OPTIONS"] = ASAN_OPTIONS
        os.environ["UBSAN_OPTIONS"] = UBSAN_OPTIONS
        try:
            self.bw = bench.Proc("breakwater", [self.bin, "serve", "-c", self.conf], logpath)
        finally:
            for k, v in zip(("ASAN_OPTIONS", "UBSAN_OPTIONS"), env_before):
                if v is None:
                    os.environ.pop(k, None)
                else:
                    os.environ[k] = v
        bench.wait_for(lambda: (bench.listening(BW_PORT) and len(self.workers()) == 2)
                       or not self.bw.alive(), 60, "breakwater listening with 2 workers")
        if not self.bw.alive():
            raise RuntimeError("breakwater exited: " + open(logpath).read()[-3000:])
        bench.wait_for(lambda: self.fleet_listeners() == 1, 30,
                       "breakwater on the fleet channel")
        bench.wait_for(lambda: self.metrics() is not None, 30, "/metrics")

    def stop_bw(self, timeout=60):
        """SIGTERM, then up to `timeout` s for every process of its session
        (the sanitizers' exit checks take a while); SIGKILL after. Returns
        (exit status or None, clean)."""
        if self.bw is None:
            return None, True
        p, self.bw = self.bw, None
        clean = True
        if p.alive():
            p.p.terminate()
            try:
                p.p.wait(timeout)
            except subprocess.TimeoutExpired:
                clean = False
        end = time.monotonic() + 10
        while bench.session_pids(p.pid) and time.monotonic() < end:
            time.sleep(0.2)
        if p.alive() or bench.session_pids(p.pid):
            clean = False
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                p.p.wait(10)
            except subprocess.TimeoutExpired:
                pass
            p.stop()
        return p.p.returncode, clean

    def helper_and_workers(self):
        """(ban helper pids, worker pids): the supervisor's children; the
        helper keeps CAP_NET_ADMIN, a worker has no capability at all."""
        helpers, workers = [], []
        if self.bw is None:
            return helpers, workers
        for pid in children(self.bw.pid):
            cap = proc_status(pid).get("CapEff")
            if cap is None:
                continue
            (workers if int(cap, 16) == 0 else helpers).append(pid)
        return helpers, sorted(workers)

    def workers(self):
        return self.helper_and_workers()[1]

    def metrics(self):
        import urllib.request
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % METRICS_PORT,
                                        timeout=10) as r:
                return r.read().decode("utf-8", "replace")
        except Exception:
            return None

    def ctl(self, *args, timeout=30):
        r = run([self.bin, "ctl", "-c", self.conf] + list(args), timeout=timeout,
                env=self.ctl_env)
        self.note_tool(r)
        return r

    # -- probes
    def next_probe_addr(self, net, counter):
        n = getattr(self, counter)
        setattr(self, counter, n + 1)
        return "%d.%d.%d.%d" % (net[0], net[1], n // 250 % 256, n % 250 + 1)

    def listed_probe(self, timeout=20):
        """A listed client's RCPT reply (the reject_message in force), or
        an 'error: ...' text."""
        src = self.next_probe_addr(PROBE_NET, "probe_no")
        try:
            with socket.create_connection(("127.0.0.1", BW_PORT), timeout=timeout,
                                          source_address=(src, 0)) as s:
                s.settimeout(timeout)
                f = s.makefile("rb")
                smtp_reply(f)
                for cmd in (b"EHLO probe.soak.test", b"MAIL FROM:<p@soak.test>"):
                    s.sendall(cmd + b"\r\n")
                    smtp_reply(f)
                s.sendall(b"RCPT TO:<u@soak.test>\r\n")
                r = smtp_reply(f)
                s.sendall(b"QUIT\r\n")
                return r
        except OSError as e:
            return "error: %s from %s" % (e, src)

    def greets(self, timeout=20):
        """A clean client is greeted by the MTA through breakwater."""
        src = self.next_probe_addr(CLEAN_PROBE_NET, "clean_no")
        try:
            with socket.create_connection(("127.0.0.1", BW_PORT), timeout=timeout,
                                          source_address=(src, 0)) as s:
                s.settimeout(timeout)
                f = s.makefile("rb")
                ok = smtp_reply(f).startswith("220")
                s.sendall(b"QUIT\r\n")
                return ok
        except OSError:
            return False

    # -- calibration
    def calibrate(self):
        secs = self.a.calibrate
        argv = [bench.WAVE, "-t", "127.0.0.1:%d" % BW_PORT, "-d", str(secs), "--json",
                "-c", "200", "--procs", "2", "--fresh-addresses", "-n", "10000000",
                "--mix", "listed=100", "--listed-net", CALIBRATION_NET]
        log("calibration: wave %s" % " ".join(argv[1:]))
        r = run(argv, timeout=secs + 90)
        if r.returncode != 0:
            raise RuntimeError("calibration wave failed (%d): %s"
                               % (r.returncode, r.stderr[-1000:]))
        j = json.loads(r.stdout)
        cap = j["all"]["sessions_per_s"]
        log("calibration: %.0f listed sessions/s (errors %d): the soak runs at half, %d/s"
            % (cap, j["all"]["errors"]["total"], int(cap / 2)))
        self.calibration = {"sessions_per_s": cap, "errors": j["all"]["errors"]["total"],
                            "command": "wave " + " ".join(argv[1:])}
        return max(10, int(cap / 2))

    def restart_clean(self):
        """After the calibration: an empty store, set and Redis."""
        status, clean = self.stop_bw()
        if not clean or status != 0:
            self.failures.append("breakwater after the calibration: exit status %s%s"
                                 % (status, "" if clean else ", had to be killed"))
        run(["nft", "flush", "set", "inet", "breakwater", "banned4"])
        shutil.rmtree(self.state, ignore_errors=True)
        self.redis_cmd("FLUSHALL")
        self.start_bw(self.bwlog)

    # -- disruptions
    def event(self, kind, detail):
        t = time.monotonic() - self.t0
        self.events.append((t, kind, detail))
        log("%s: %s" % (kind, detail))

    def do_reload(self, k):
        tag = self.write_conf()
        how = "SIGHUP" if k % 2 == 1 else "ctl reload"
        t = time.monotonic()
        out = ""
        if how == "SIGHUP":
            os.kill(self.bw.pid, signal.SIGHUP)
        else:
            r = self.ctl("reload")
            out = (r.stdout + r.stderr).strip()
            if r.returncode != 0:
                self.failures.append("reload %d (ctl): %s" % (k, out))
        # four probes in a row from new addresses must all carry the new tag
        good, tries, last = 0, 0, ""
        end = time.monotonic() + 30
        time.sleep(0.3)
        while good < 4 and time.monotonic() < end:
            last = self.listed_probe()
            tries += 1
            if tag in last:
                good += 1
            else:
                good = 0
                time.sleep(0.5)
        ok = good >= 4
        rec = {"k": k, "how": how, "ok": ok, "took_s": round(time.monotonic() - t, 2),
               "probes": tries, "ctl": out}
        self.reloads.append(rec)
        self.event("reload", "%d by %s: %s after %.1f s (%d probes)%s"
                   % (k, how, "in force" if ok else "NOT SEEN", rec["took_s"], tries,
                      "" if ok else "; last reply: " + last[:200]))
        if not ok:
            self.failures.append("reload %d (%s): the new reject_message was not seen in 30 s "
                                 "(last reply %r)" % (k, how, last[:200]))

    def worker_sessions(self, pid):
        """(polite, all) client connections the worker pid holds: its
        sockets that `ss` shows with local port BW_PORT (the peer is a
        client: not 127.0.0.1, the relays' side); polite ones come from
        POLITE_NET."""
        table = session_sockets()
        polite = total = 0
        prefix = POLITE_NET.split(".0.0/")[0] + "."
        for target in fd_targets(pid).values():
            peer = table.get(target)
            if peer is not None and peer != "127.0.0.1":     # not a relay to the MTA
                total += 1
                polite += peer.startswith(prefix)
        return polite, total

    def do_kill(self, k):
        workers = self.workers()
        if not workers:
            self.failures.append("kill %d: no worker found" % k)
            return
        victim = workers[k % len(workers)]
        # stopped first, so that the sessions it holds can be counted: the
        # ones the kill ends (those waiting in the accept queue are not
        # its: the supervisor keeps the listening socket, the new worker
        # takes them)
        t = time.monotonic()
        os.kill(victim, signal.SIGSTOP)
        try:
            polite, allc = self.worker_sessions(victim)
        finally:
            os.kill(victim, signal.SIGKILL)
        new = []
        end = time.monotonic() + 30
        while time.monotonic() < end:
            now = self.workers()
            new = [p for p in now if p not in workers]
            if len(now) == 2 and new:
                break
            time.sleep(0.1)
        restarted = round(time.monotonic() - t, 2) if new else None
        greets = self.greets()
        self.disturbed_until = time.monotonic() + DISTURBED_FOR
        rec = {"k": k, "pid": victim, "polite_open": polite, "open": allc,
               "restarted_s": restarted, "new_pid": new[0] if new else None, "greets": greets}
        self.kills.append(rec)
        self.event("kill", "%d: SIGKILL to worker pid %d (it held %d sessions, %d of them polite): "
                   "%s; a clean client greeted: %s"
                   % (k, victim, allc, polite,
                      "new worker pid %d after %.1f s" % (new[0], restarted) if new
                      else "NO NEW WORKER in 30 s", greets))
        if not new:
            self.failures.append("kill %d: no new worker within 30 s" % k)
        if not greets:
            self.failures.append("kill %d: a clean client was not greeted after the restart" % k)

    def do_redis_restart(self):
        t = time.monotonic()
        size0 = os.path.getsize(self.bwlog)
        self.redis.stop()
        self.event("redis", "redis-server stopped (SIGTERM); down for 3 s")
        time.sleep(3)
        self.start_redis()
        back = None
        end = time.monotonic() + 60
        while time.monotonic() < end:
            if self.fleet_listeners() == 1:
                back = round(time.monotonic() - t, 2)
                break
            time.sleep(0.2)
        self.disturbed_until = time.monotonic() + DISTURBED_FOR
        self.redis_restart = {"t": round(t - self.t0, 1), "back_s": back, "log_from": size0}
        self.event("redis", "started again; breakwater back on the channel %s"
                   % ("%.1f s after the stop" % back if back else "NOT within 60 s"))
        if back is None:
            self.failures.append("redis restart: breakwater did not subscribe again in 60 s")

    # -- sampling
    def set_count(self):
        """Elements of the set banned4 and how long counting took. `nft
        list set` cannot be used during the wave: every ban transaction
        interrupts the kernel's dump and nft starts it over, so at 1,300
        bans/s it took 3 to 30 s on this machine (docs/operations.md, Bans). The set is
        dumped here once, straight from netlink (NFT_MSG_GETSETELEM), and
        its elements counted even when the kernel marks the dump as
        interrupted (NLM_F_DUMP_INTR): it is then off by the few bans made
        or ended during the dump, milliseconds."""
        t = time.monotonic()
        try:
            n, intr = netlink_set_count("breakwater", "banned4")
        except OSError as e:
            log("set count: %s" % e)
            return None, None, time.monotonic() - t
        return n, intr, time.monotonic() - t

    def sample(self):
        t = time.monotonic()
        pids = self.bw.pids() if self.bw else []
        helpers, workers = self.helper_and_workers()

        def rss_of(these):
            tot = 0
            for pid in these:
                v = proc_status(pid).get("VmRSS")
                if v:
                    tot += int(v.split()[0])
            return tot
        rss = rss_of(pids)
        # the fds: now, and the least of five reads 0.1 s apart (sessions
        # come and go: the least is what stays, where a leak would show)
        reads = []
        for i in range(5):
            if i:
                time.sleep(0.1)
            n = 0
            for pid in pids:
                try:
                    n += len(os.listdir("/proc/%d/fd" % pid))
                except OSError:
                    pass
            reads.append(n)
        fds, fds_min = reads[0], min(reads)
        try:
            lmdb = os.path.getsize(os.path.join(self.state, "breakwater.mdb")) // 1024
        except OSError:
            lmdb = None
        m = self.metrics()
        mt = time.monotonic()
        verdicts = sessions = bans = open_conns = fleet_up = None
        if m is not None:
            verdicts = metric_sum(m, "breakwater_verdict_cache_entries")
            sessions = metric_sum(m, "breakwater_sessions_total")
            bans = metric_sum(m, "breakwater_bans_total", 'result="applied"')
            open_conns = metric_sum(m, "breakwater_connections")
            fleet_up = metric_sum(m, "breakwater_fleet_connected")
        sps = bps = None
        if self.prev_counters and sessions is not None and self.prev_counters[1] is not None:
            dt = mt - self.prev_counters[0]
            sps = (sessions - self.prev_counters[1]) / dt
            if bans is not None and self.prev_counters[2] is not None:
                bps = (bans - self.prev_counters[2]) / dt
        cpu = bench.cpu_of_session(self.bw.pid) if self.bw else None
        cpu_pct = None
        if self.prev_counters and cpu is not None and self.prev_counters[3] is not None:
            cpu_pct = 100 * (cpu - self.prev_counters[3]) / (mt - self.prev_counters[0])
        self.prev_counters = (mt, sessions, bans, cpu)
        r = self.ctl("bans", timeout=30)
        store_bans = (sum(1 for l in r.stdout.splitlines() if l.startswith("address="))
                      if r.returncode == 0 else None)
        setn, intr, nft_s = self.set_count()
        keys = self.redis_cmd("DBSIZE")
        try:
            keys = int(keys)
        except (TypeError, ValueError):
            keys = None
        row = {"t_s": round(t - self.t0, 1), "rss_kib": rss,
               "rss_supervisor_kib": rss_of([self.bw.pid]) if self.bw else None,
               "rss_helper_kib": rss_of(helpers), "rss_workers_kib": rss_of(workers),
               "fds": fds, "fds_min": fds_min,
               "procs": len(pids),
               "lmdb_kib": lmdb, "verdicts": None if verdicts is None else int(verdicts),
               "store_bans": store_bans, "set_banned4": setn,
               "sessions_per_s": sps, "bans_per_s": bps,
               "open_conns": None if open_conns is None else int(open_conns),
               "fleet_up": None if fleet_up is None else int(fleet_up),
               "redis_keys": keys, "set_dump_s": round(nft_s, 3),
               "set_dump_intr": None if intr is None else int(intr), "cpu_pct": cpu_pct,
               "disturbed": int(t < self.disturbed_until)}
        self.samples.append(row)
        self.log_marks.append((row["t_s"], os.path.getsize(self.bwlog)))
        row["_took"] = time.monotonic() - t
        self.tsv.write("\t".join(fmt(row[c]) for c in COLUMNS) + "\n")
        self.tsv.flush()
        log("t=%(t_s)s rss=%(rss_kib)s KiB fds=%(fds)s (least %(fds_min)s) procs=%(procs)s "
            "lmdb=%(lmdb_kib)s KiB "
            "verdicts=%(verdicts)s store_bans=%(store_bans)s set=%(set_banned4)s "
            "sessions/s=%(sessions_per_s)s cpu=%(cpu_pct)s%% "
            "redis_keys=%(redis_keys)s (sampled in %(_took)ss)"
            % {k: fmt(v) for k, v in row.items()})

    # -- the run
    def run(self):
        a = self.a
        self.ban_time = a.ban_time or int(min(60, max(10, a.duration // 12)))
        self.mix = a.mix
        self.start_rbldnsd()
        self.start_sink()
        self.start_redis()
        self.write_conf()
        self.load_rules()
        self.calibration = None
        if a.rate:
            rate = a.rate
            self.start_bw(self.bwlog)
        else:
            self.start_bw(os.path.join(self.tmp, "bw-calibration.log"))
            rate = self.calibrate()
            self.restart_clean()
        self.rate = rate
        shares = dict((k, float(v)) for k, v in (x.split("=") for x in self.mix.split(",")))
        bots = rate * shares.get("listed", 0) / sum(shares.values())
        # a bot comes back after three ban lengths (never banned then) and
        # after its verdict has expired (every bot session is cold: a DNS
        # query, a verdict written, a ban; a return period close to the
        # verdict's TTL would make the store's count beat with it)
        period = max(3 * self.ban_time, 1.5 * DNS_TTL)
        pool = int(math.ceil(bots * period))
        if pool > BOT_NET_USABLE:
            log("warning: %d bots/s x %d s needs %d addresses, %s has %d: bots may come "
                "back while banned" % (bots, period, pool, BOT_NET, BOT_NET_USABLE))
            pool = BOT_NET_USABLE
        pool = max(pool, 1024)
        bots = max(bots, 1)
        self.pool = pool
        d = a.duration
        procs = 1 if rate <= 2000 else 2
        self.wave_cmd = [bench.WAVE, "-t", "127.0.0.1:%d" % BW_PORT, "-d", str(d), "--json",
                         "-r", str(rate), "-c", "4000", "-n", str(int(rate * d * 1.2) + 1000),
                         "--procs", str(procs), "--mix", self.mix, "--pool", str(pool),
                         "--listed-net", BOT_NET]
        log("soak: %d s at %d sessions/s (%s), ban_time %d s, bot pool %d (a bot comes back "
            "every %.0f s), reload every %d s, kill every %d s, %s"
            % (d, rate, self.mix, self.ban_time, pool, pool / bots, a.reload_every, a.kill_every,
               "no redis restart" if a.no_redis_restart else "redis restart at %d s" % (d // 2)))
        self.tsv = open(a.out, "w")
        self.tsv.write("# breakwater soak: %s, %d s at %d sessions/s (%s), ban_time %d s, "
                       "pool %d, workers 2\n# %s\n"
                       % (os.path.relpath(self.bin, ROOT), d, rate, self.mix, self.ban_time, pool,
                          "wave " + " ".join(self.wave_cmd[1:])))
        self.tsv.write("\t".join(COLUMNS) + "\n")
        self.wave_out = os.path.join(self.tmp, "wave.json")
        self.wave_err = os.path.join(self.tmp, "wave.err")
        with open(self.wave_out, "w") as so, open(self.wave_err, "w") as se:
            self.wave = subprocess.Popen(self.wave_cmd, stdin=subprocess.DEVNULL, stdout=so,
                                         stderr=se, start_new_session=True)
        self.t0 = time.monotonic()
        plan = []
        if a.reload_every > 0:
            plan += [(k * a.reload_every, "reload", k)
                     for k in range(1, int((d - 5) // a.reload_every) + 1)]
        if a.kill_every > 0:
            plan += [(k * a.kill_every, "kill", k)
                     for k in range(1, int((d - 5) // a.kill_every) + 1)]
        if not a.no_redis_restart:
            plan.append((d / 2.0, "redis", 0))
        plan.sort()
        next_sample = 0.0
        while True:
            now = time.monotonic() - self.t0
            if self.wave.poll() is not None and (now >= d or self.wave.returncode != 0):
                break
            if now > d + 120:
                log("the wave did not end at %d s: killing it" % d)
                self.failures.append("the wave did not end by itself")
                os.killpg(self.wave.pid, signal.SIGKILL)
                self.wave.wait(10)
                break
            if self.bw is None or not self.bw.alive():
                self.failures.append("breakwater's supervisor died")
                break
            while plan and plan[0][0] <= now:
                _, kind, k = plan.pop(0)
                if kind == "reload":
                    self.do_reload(k)
                elif kind == "kill":
                    self.do_kill(k)
                else:
                    self.do_redis_restart()
            now = time.monotonic() - self.t0
            if now >= next_sample:
                self.sample()
                next_sample += SAMPLE_EVERY
                while next_sample < time.monotonic() - self.t0 - SAMPLE_EVERY:
                    next_sample += SAMPLE_EVERY     # a long disruption: no burst
            wake = min([next_sample] + [p[0] for p in plan[:1]] + [d])
            time.sleep(min(1.0, max(0.05, wake - (time.monotonic() - self.t0))))
        self.wave_rc = self.wave.returncode
        time.sleep(3)
        # smtp-sink's counter settles
        last, end = self.sink_messages(), time.monotonic() + 15
        while time.monotonic() < end:
            time.sleep(1)
            n = self.sink_messages()
            if n == last:
                break
            last = n
        self.sink_count = last
        # the set counter against nft's own listing, now that no ban comes
        n, intr, _ = self.set_count()
        r = run(["nft", "-j", "list", "set", "inet", "breakwater", "banned4"], timeout=30)
        try:
            listed = sum(len((i.get("set") or {}).get("elem", []) or [])
                         for i in json.loads(r.stdout).get("nftables", []))
        except ValueError:
            listed = None
        self.set_check = (n, listed)
        self.bw_status, self.bw_clean = self.stop_bw()
        self.tsv.close()
        return self.report()

    def stop_all(self):
        try:
            if self.wave is not None and self.wave.poll() is None:
                os.killpg(self.wave.pid, signal.SIGKILL)
                self.wave.wait(10)
        except Exception as e:
            log("stop wave: %s" % e)
        try:
            self.stop_bw(timeout=30)
        except Exception as e:
            log("stop breakwater: %s" % e)
        for p in (self.redis, self.sink, self.rbl):
            if p is not None:
                try:
                    p.stop()
                except Exception as e:
                    log("stop %s: %s" % (p.name, e))

    # -- the report
    def classify_log(self):
        """(sanitizer lines, explained {what: count}, unexplained lines,
        other output lines)"""
        killed = {k["pid"] for k in self.kills}
        rr = self.redis_restart
        redis_from = rr["log_from"] if rr else None
        redis_to = None
        if rr:
            after = [size for t, size in self.log_marks
                     if t >= rr["t"] + (rr["back_s"] or 60) + 15]
            redis_to = after[0] if after else None
        san, unexplained, other = [], [], []
        explained = {}
        offset = 0
        with open(self.bwlog, "rb") as f:
            raw = f.read()
        for bline in raw.splitlines(True):
            line = bline.decode("utf-8", "replace").rstrip("\n")
            at = offset
            offset += len(bline)
            if any(m in line for m in SANITIZER_MARKERS):
                san.append(line)
                continue
            if " error" not in line.lower() and "warning" not in line.lower():
                if line.strip() and not line.startswith("breakwater: info:"):
                    other.append(line)
                continue
            m = re.search(r"warning: worker \d+ \(pid (\d+)\) ended \(signal 9\): "
                          r"starting it again", line)
            if m and int(m.group(1)) in killed:
                explained["a killed worker restarted"] = \
                    explained.get("a killed worker restarted", 0) + 1
                continue
            if (redis_from is not None and at >= redis_from
                    and (redis_to is None or at < redis_to)
                    and re.search(r"warning: fleet_redis \S+: (connection lost|cannot connect|"
                                  r"no connection within|\d+ replies overdue)", line)):
                explained["Redis away (restart)"] = explained.get("Redis away (restart)", 0) + 1
                continue
            if "warning: backend_proxy_protocol = none" in line:
                explained["start: backend_proxy_protocol = none"] = \
                    explained.get("start: backend_proxy_protocol = none", 0) + 1
                continue
            unexplained.append(line)
        return san, explained, unexplained, other

    def thirds(self):
        d = self.a.duration
        warm = 0.1 * d
        a = warm + (d - warm) / 3
        b = warm + 2 * (d - warm) / 3
        # not the samples just after a kill or a Redis restart (the new
        # worker takes the connections that waited for it: a burst of fds),
        # nor the wave's last seconds
        mid = [s for s in self.samples if a <= s["t_s"] < b and not s["disturbed"]]
        last = [s for s in self.samples
                if b <= s["t_s"] < d - SAMPLE_EVERY / 2 and not s["disturbed"]]
        return warm, a, b, mid, last

    def report(self):
        ok = True
        out = []
        p = out.append
        d = self.a.duration
        p("soak: %s, %d s at %d sessions/s (%s)%s, workers 2, bans nft (ban_time %d s, bot pool "
          "%d), %d reloads, %d worker kills, Redis restarted %s"
          % (os.path.relpath(self.bin, ROOT), d, self.rate, self.mix,
             " = half the calibrated %.0f/s" % self.calibration["sessions_per_s"]
             if self.calibration else "", self.ban_time, self.pool, len(self.reloads),
             len(self.kills), "once" if self.redis_restart else "never"))
        # the wave
        wj = None
        try:
            with open(self.wave_out) as f:
                wj = json.load(f)
        except (OSError, ValueError):
            self.failures.append("the wave wrote no report (exit %s): %s"
                                 % (self.wave_rc, open(self.wave_err).read()[-500:]))
        if wj:
            al = wj["all"]
            p("wave: %d sessions started, %d completed (%.0f/s), errors %s"
              % (al["started"], al["completed"], al["sessions_per_s"],
                 {k: v for k, v in al["errors"].items() if v}))
            bots = wj["kinds"].get("listed", {})
            if bots:
                p("  bots: %d started, %d completed, errors %s (a timeout would be a bot "
                  "dropped while still banned)" % (bots["started"], bots["completed"],
                                                   {k: v for k, v in bots["errors"].items() if v}))
            held = sum(k["open"] for k in self.kills)
            if al["errors"]["total"] > held:
                self.failures.append("%d sessions failed (wave errors %s), the kills explain "
                                     "at most %d (the sessions the killed workers held)"
                                     % (al["errors"]["total"], al["errors"], held))
            else:
                p("  failed sessions: %d, the killed workers held %d"
                  % (al["errors"]["total"], held))
        # flatness
        warm, ta, tb, mid, last = self.thirds()
        p("flatness: warm-up %.0f s; middle third %.0f-%.0f s (%d samples), last third "
          "%.0f-%d s (%d samples), leaving out %d samples taken within %.0f s of a kill or the "
          "Redis restart; ratio = mean(last) / mean(middle), for fds the medians"
          % (warm, ta, tb, len(mid), tb, d, len(last),
             sum(s["disturbed"] for s in self.samples if s["t_s"] >= ta), DISTURBED_FOR))
        flat = {}
        for col, what, strict in (("rss_kib", "RSS KiB", True),
                                  ("rss_supervisor_kib", "RSS KiB, supervisor", False),
                                  ("rss_helper_kib", "RSS KiB, ban helper", False),
                                  ("rss_workers_kib", "RSS KiB, workers", False),
                                  ("fds_min", "open fds, least of 5", True),
                                  ("fds", "open fds, all", False),
                                  ("procs", "processes", False),
                                  ("set_banned4", "nft set banned4", False),
                                  ("lmdb_kib", "LMDB file KiB", False),
                                  ("verdicts", "verdicts in the store", False),
                                  ("store_bans", "ban records", False),
                                  ("redis_keys", "Redis keys", False),
                                  ("sessions_per_s", "sessions/s", False),
                                  ("cpu_pct", "daemon CPU % of a core", False)):
            # the fds are mostly the sessions in flight: a backlog of a few
            # seconds (the machine busy elsewhere) puts hundreds in one
            # sample (951 in the hour of 2026-12-03, open_conns 863), which
            # moves a mean but not the median, where a leak would show
            stat = median if col.startswith("fds") else mean
            m1, m2 = stat(s[col] for s in mid), stat(s[col] for s in last)
            if m1 is None or m2 is None or m1 == 0:
                p("  %-22s not enough samples" % what)
                if strict:
                    ok = False
                    self.failures.append("%s: not enough samples" % what)
                continue
            ratio = m2 / m1
            within = abs(ratio - 1) <= 0.10
            flat[col] = (m1, m2, ratio)
            vals = [s[col] for s in self.samples if s["t_s"] >= warm and s[col] is not None]
            p("  %-22s middle %12.1f  last %12.1f  ratio %.3f  %s  (after warm-up: min %s, "
              "max %s)" % (what, m1, m2, ratio,
                           ("flat" if within else "NOT FLAT") if strict else
                           ("within 10%" if within else "moved by more than 10%"),
                           fmt(min(vals)), fmt(max(vals))))
            if strict and not within:
                ok = False
                self.failures.append("%s not flat: last/middle = %.3f" % (what, ratio))
        lm = [s["lmdb_kib"] for s in self.samples
              if s["t_s"] >= warm and s["lmdb_kib"] is not None]
        if lm:
            p("  LMDB file: %s KiB at the end of the warm-up, %s KiB at the end (%s in the last "
              "third: %s -> %s KiB)" % (lm[0], lm[-1],
                                       "grew" if last and last[-1]["lmdb_kib"] and
                                       last[0]["lmdb_kib"] and last[-1]["lmdb_kib"] >
                                       last[0]["lmdb_kib"] else "no growth",
                                       last[0]["lmdb_kib"] if last else "?",
                                       last[-1]["lmdb_kib"] if last else "?"))
        # disruptions
        bad_reloads = [r for r in self.reloads if not r["ok"]]
        p("reloads: %d (%s), %d not seen in force"
          % (len(self.reloads), ", ".join("%s %.1fs" % (r["how"], r["took_s"])
                                           for r in self.reloads), len(bad_reloads)))
        p("worker kills: %d; new worker after %s s; sessions the killed workers held %s, "
          "polite %s"
          % (len(self.kills), [k["restarted_s"] for k in self.kills],
             [k["open"] for k in self.kills], [k["polite_open"] for k in self.kills]))
        if self.redis_restart:
            p("redis restart at %.0f s: breakwater back on the channel after %s s"
              % (self.redis_restart["t"], self.redis_restart["back_s"]))
        # polite messages
        if wj:
            pol = wj["kinds"].get("polite", {})
            started = pol.get("started", 0)
            acked = pol.get("data_replies", {}).get("2xx", 0)
            unfinished = pol.get("unfinished", 0)
            lost = started - acked - unfinished
            bound = sum(k["polite_open"] for k in self.kills)
            sink = self.sink_count
            p("polite: %d started, %d acknowledged (250 to the dot), %d unfinished at the end "
              "of the wave, %d not acknowledged (the kills explain at most %d: the polite "
              "sessions the killed workers held); smtp-sink received %s; errors %s"
              % (started, acked, unfinished, lost, bound, sink,
                 {k: v for k, v in pol.get("errors", {}).items() if v}))
            if sink is None or sink < acked:
                ok = False
                self.failures.append("smtp-sink received %s messages, %d were acknowledged"
                                     % (sink, acked))
            if lost > bound:
                ok = False
                self.failures.append("%d polite messages not acknowledged, the kills explain "
                                     "at most %d" % (lost, bound))
            if sink is not None and sink - acked > bound + unfinished:
                ok = False
                self.failures.append("smtp-sink received %d more messages than were "
                                     "acknowledged (kills explain %d)" % (sink - acked, bound))
            if started == 0:
                ok = False
                self.failures.append("no polite session was started")
        # the log
        san, explained, unexplained, other = self.classify_log()
        san += self.tool_reports
        calib_log = os.path.join(self.tmp, "bw-calibration.log")
        if os.path.exists(calib_log):
            for line in open(calib_log, errors="replace"):
                if any(m in line for m in SANITIZER_MARKERS):
                    san.append("(calibration) " + line.rstrip())
        p("sanitizer reports: %d line(s)" % len(san))
        for line in san[:30]:
            p("  " + line)
        if san:
            ok = False
            self.failures.append("sanitizer report in the log (%s)" % self.bwlog)
        p("log lines explained by the disruptions: %s"
          % (", ".join("%s: %d" % kv for kv in sorted(explained.items())) or "none"))
        nkill = explained.get("a killed worker restarted", 0)
        if nkill != len(self.kills):
            ok = False
            self.failures.append("%d worker-restart lines for %d kills" % (nkill, len(self.kills)))
        p("unexplained warning/error lines: %d" % len(unexplained))
        for line in unexplained[:50]:
            p("  " + line)
        if unexplained:
            ok = False
            self.failures.append("%d unexplained warning/error lines" % len(unexplained))
        if other:
            p("other output in the log (not warnings or errors): %d line(s)" % len(other))
            for line in other[:10]:
                p("  " + line)
        p("set banned4 after the wave: %s elements counted by netlink, %s by `nft -j list set` "
          "(a few may end between the two)" % self.set_check)
        p("breakwater stopped with exit status %s%s"
          % (self.bw_status, "" if self.bw_clean else " (had to be killed)"))
        if self.bw_status != 0 or not self.bw_clean:
            ok = False
            self.failures.append("breakwater's exit: status %s%s"
                                 % (self.bw_status, "" if self.bw_clean else ", killed"))
        # the plot
        self.plot(out)
        # markdown for BENCHMARKS.md
        p("")
        p("markdown (for BENCHMARKS.md):")
        p("")
        p("| Quantity | Middle third | Last third | Last / middle |")
        p("|---|---:|---:|---:|")
        for col, what in (("rss_kib", "RSS, all processes (KiB)"),
                          ("fds_min", "open fds, least of 5 reads"), ("fds", "open fds"),
                          ("set_banned4", "nft set banned4"), ("lmdb_kib", "LMDB file (KiB)"),
                          ("verdicts", "verdicts cached"), ("store_bans", "ban records"),
                          ("sessions_per_s", "sessions/s")):
            if col in flat:
                m1, m2, r = flat[col]
                p("| %s | %s | %s | %.3f |"
                  % (what, "{:,.0f}".format(m1), "{:,.0f}".format(m2), r))
        p("")
        failures = self.failures
        p("RESULT: %s" % ("PASS" if ok and not failures else "FAIL"))
        for f_ in failures:
            p("  failed: " + f_)
        print("\n".join(out))
        sys.stdout.flush()
        return 0 if ok and not failures else 1

    def plot(self, out):
        gp = os.path.splitext(self.a.out)[0] + ".gp"
        col = {c: i + 1 for i, c in enumerate(COLUMNS)}
        arrows = []
        for t, kind, _ in self.events:
            if kind in ("kill", "redis", "reload"):
                color = {"kill": "red", "redis": "blue", "reload": "gray"}[kind]
                arrows.append("set arrow from %.2f, graph 0 to %.2f, graph 1 nohead lc rgb '%s' "
                              "dt 2" % (t / 60, t / 60, color))
        script = "\n".join([
            "# breakwater soak: gnuplot %s  (red: worker killed, blue: Redis restart, "
            "gray: reload)" % gp,
            "set terminal pngcairo size 1200,1000",
            "set output '%s'" % self.a.plot,
            "set datafile separator '\\t'",
            "set datafile missing 'NaN'",
            "set multiplot layout 3,1 title 'breakwater soak: %s, %d sessions/s, %d s'"
            % (os.path.basename(self.bin), self.rate, self.a.duration),
            "set grid",
            "set key left top",
            "set key autotitle columnheader",
        ] + arrows + [
            "set ylabel 'RSS (MiB)'",
            "plot '%s' using ($%d/60):($%d/1024) with lines title 'RSS, all processes'"
            % (self.a.out, col["t_s"], col["rss_kib"]),
            "set ylabel 'open fds'",
            "plot '%s' using ($%d/60):%d with lines title 'open fds, all processes', "
            "'' using ($%d/60):%d with lines title 'least of 5 reads 0.1 s apart'"
            % (self.a.out, col["t_s"], col["fds"], col["t_s"], col["fds_min"]),
            "set ylabel 'entries'",
            "set xlabel 'minutes'",
            "plot '%s' using ($%d/60):%d with lines title 'nft set banned4', "
            "'' using ($%d/60):%d with lines title 'ban records (store)', "
            "'' using ($%d/60):%d with lines title 'verdicts (store)'"
            % (self.a.out, col["t_s"], col["set_banned4"], col["t_s"], col["store_bans"],
               col["t_s"], col["verdicts"]),
            "unset multiplot",
        ]) + "\n"
        with open(gp, "w") as f:
            f.write(script)
        if shutil.which("gnuplot"):
            r = run(["gnuplot", gp], timeout=60)
            out.append("plot: %s (%s)" % (self.a.plot, "ok" if r.returncode == 0
                                          else "gnuplot failed: " + r.stderr[-300:]))
        else:
            out.append("plot: gnuplot is not installed: no PNG; the TSV is %s and its gnuplot "
                       "script %s" % (self.a.out, gp))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=int, default=3600, help="seconds (60 to 3600)")
    ap.add_argument("--rate", type=int, default=0,
                    help="sessions/s; default half of the capacity measured first")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "asan", "breakwater"))
    ap.add_argument("--reload-every", type=int, default=300, help="seconds; 0: never")
    ap.add_argument("--kill-every", type=int, default=600, help="seconds; 0: never")
    ap.add_argument("--no-redis-restart", action="store_true")
    ap.add_argument("--ban-time", type=int, default=0,
                    help="ban_time = ban_time_max, s (default min(60, duration/12), at least 10)")
    ap.add_argument("--calibrate", type=int, default=10,
                    help="seconds of the calibration wave (without --rate)")
    ap.add_argument("--mix", default="listed=95,polite=5",
                    help="wave's --mix: listed bots and polite MTAs only")
    ap.add_argument("--log-level", default="warning", choices=("warning", "info", "debug"),
                    help="breakwater's (info: a line per session)")
    ap.add_argument("--out", default="/tmp/soak.tsv")
    ap.add_argument("--plot", default="/tmp/soak.png")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (logs)")
    a = ap.parse_args()
    try:
        kinds = dict((k, int(v)) for k, v in (x.split("=") for x in a.mix.split(",")))
    except ValueError:
        kinds = {"?": 0}
    if not set(kinds) <= {"listed", "polite"} or sum(kinds.values()) <= 0:
        ap.error("--mix: listed=N,polite=M")
    if not 60 <= a.duration <= 3600:
        ap.error("--duration: 60 to 3600 s (wave's -d stops at 3600)")
    if os.geteuid() != 0:
        print("soak: needs root (a private network namespace, nft)", file=sys.stderr)
        return 2
    for f in (a.binary, bench.WAVE):
        if not os.access(f, os.X_OK):
            print("soak: %s missing: make build/asan/breakwater build/bench/wave" % f,
                  file=sys.stderr)
            return 2
    a.out = os.path.abspath(a.out)
    a.plot = os.path.abspath(a.plot)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    resolv = bench.enter_namespace(os.path.abspath(__file__))

    def on_signal(sig, frame):
        raise SystemExit("soak: signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    s = Soak(a)
    status = 1
    try:
        status = s.run()
    finally:
        s.stop_all()
        try:
            os.unlink(resolv)
        except OSError:
            pass
        if a.keep or status != 0:
            log("logs kept in %s" % s.tmp)
        else:
            shutil.rmtree(s.tmp, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
