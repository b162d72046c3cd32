#!/usr/bin/env python3
"""make demo: a spam wave against breakwater in front of an MTA, in under a
minute, on this machine only.

    python3 bench/demo.py --binary build/breakwater --wave build/bench/wave

Starts, under one temporary folder:
  - rbldnsd serving the zone bl.test: 127.66.0.0/16 listed (where the wave's
    bots come from) and the RFC 5782 test point 127.0.0.2;
  - Postfix's smtp-sink as the MTA (it dumps every message it takes, so the
    demo counts deliveries as files);
  - breakwater in front of it, listed at score >= 1 on bl.test, at most
    backend_max_connections=100 clean sessions relayed at once;
then replays the real spam wave measured on a Courier server (wave-1.tsv,
323 s up to 301 connections, where that server's limit cut it off) through
bench/wave: 4 times as many connections (a peak of about 1,200), 10 times
as fast, 95% listed bots and 5% polite MTAs, every client pausing 1 s
before each command (a bot holds its connection about 4 s, a polite MTA
about 6 s). After the profile the wave ebbs: no new clients for 8 s, the
open ones finish. At this scale the polite MTAs alone keep the MTA below
breakwater's backend_max_connections=100; with --scale 10 (a peak of about
3,000) they do not, and breakwater tells those beyond the 100 "421 try
again later" (counted in the summary).

Once a second it prints the open connections (ESTABLISHED sockets, from
ss or /proc/net/tcp) of the wave's clients, of breakwater's client side and of
the MTA, the bots refused and the messages delivered so far; at the end a
summary from the wave's own report.

Every process it started is stopped at the end, on an error and on Ctrl-C;
the temporary folder is removed; every wait is bounded. Traffic stays on
127.0.0.0/8. Python 3 standard library only; needs root (rbldnsd and
smtp-sink drop to the users rbldns and nobody).
Exit status: 0 when the wave went as it should (every bot refused at RCPT,
every polite message sent was delivered, no polite session failed other
than by a 421 at the limit), 1 when not or on an error, 130 on Ctrl-C.
"""

import argparse
import json
import os
import random
import resource
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# wave-1.tsv (../shared/data/wave-1.tsv): open SMTP connections on a Courier
# server during one spam wave, sampled every ~5 s (2009-07-27 19:12:17 CEST
# onwards; the server's limit was 300 connections, so the top is cut off).
# Kept here so that the demo runs from a bare clone.
WAVE_1 = """\
0 4 5 5 10 5 15 7 20 13 25 9 30 8 35 50 40 88 45 101 50 120 55 129 60 135
66 145 71 150 76 163 81 167 86 175 91 180 96 183 101 190 106 202 111 204
116 204 121 203 126 206 131 207 136 211 141 216 146 218 151 220 156 222
161 227 166 229 171 228 176 229 181 232 186 234 191 234 197 237 202 240
207 241 212 243 217 244 222 244 227 246 232 245 237 246 242 247 247 246
252 244 257 250 262 253 267 252 272 253 277 256 282 258 287 260 292 264
297 262 302 273 307 301 313 301 318 301 323 301
"""

ZONE = """\
# bl.test for the breakwater demo: the wave's bots (127.66.0.0/16) and the
# RFC 5782 test point 127.0.0.2 are listed.
:127.0.0.2:Listed by the breakwater demo, see https://example.invalid/$
127.66.0.0/16
127.0.0.2
"""

BACKEND_MAX = 100
EBB_SECONDS = 80          # profile seconds (x time-scale) with no new clients


class DemoError(Exception):
    pass


def log(msg):
    print("demo: " + msg, flush=True)


# --------------------------------------------------------------------------
# Ports, sockets, DNS

def free_port(kind):
    s = socket.socket(socket.AF_INET, kind)
    try:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
    finally:
        s.close()


def _port(addr):
    return int(addr.rsplit(":", 1)[1])


def tcp_sockets(state):
    """(local_port, remote_port) of the IPv4/IPv6 TCP sockets in state
    "established" or "listening". From ss, which asks the kernel for that
    state only: /proc/net/tcp lists the many TIME_WAIT sockets of a wave
    too and costs a tenth of a second per read."""
    if shutil.which("ss"):
        try:
            out = subprocess.run(["ss", "-tnH", "state", state], stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, timeout=5).stdout
            res = []
            for line in out.decode(errors="replace").splitlines():
                f = line.split()
                if len(f) >= 4:
                    res.append((_port(f[-2]), _port(f[-1]) if f[-1][-1] != "*" else 0))
            return res
        except (subprocess.TimeoutExpired, OSError, ValueError, IndexError):
            pass
    code = {"established": "01", "listening": "0A"}[state]
    res = []
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                f.readline()
                for line in f:
                    p = line.split(None, 4)
                    if len(p) >= 4 and p[3] == code:
                        res.append((int(p[1][-4:], 16), int(p[2][-4:], 16)))
        except OSError:
            pass
    return res


def listening(port):
    return any(l == port for l, _ in tcp_sockets("listening"))


def dns_a(port, name, timeout=0.5):
    """The A records for name from 127.0.0.1:port, or None (no answer)."""
    qid = random.randrange(65536)
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack("!HH", 1, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(q, ("127.0.0.1", port))
        pkt = s.recv(4096)
    except OSError:
        return None
    finally:
        s.close()
    if len(pkt) < 12 or struct.unpack("!H", pkt[:2])[0] != qid:
        return None
    ancount = struct.unpack("!H", pkt[6:8])[0]
    i = 12
    while i < len(pkt) and pkt[i] != 0:       # the question's name
        i += 1 + pkt[i]
    i += 5
    answers = []
    for _ in range(ancount):
        if i >= len(pkt):
            break
        if pkt[i] & 0xC0 == 0xC0:
            i += 2
        else:
            while i < len(pkt) and pkt[i] != 0:
                i += 1 + pkt[i]
            i += 1
        if i + 10 > len(pkt):
            break
        rtype, _, _, rdlen = struct.unpack("!HHIH", pkt[i:i + 10])
        i += 10
        if rtype == 1 and rdlen == 4:
            answers.append(socket.inet_ntoa(pkt[i:i + 4]))
        i += rdlen
    return answers


# --------------------------------------------------------------------------
# Processes

class Procs:
    """Every process the demo starts, stopped in reverse order."""

    def __init__(self):
        self.procs = []

    def start(self, name, argv, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        try:
            p = subprocess.Popen(argv, start_new_session=True, **kw)
        except OSError as e:
            raise DemoError("cannot start %s: %s" % (argv[0], e))
        self.procs.append((name, p))
        return p

    def stop(self, p, sig=signal.SIGTERM, timeout=5.0):
        if p.poll() is None:
            try:
                p.send_signal(sig)
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                try:
                    p.wait(2)
                except subprocess.TimeoutExpired:
                    pass
        self.procs = [(n, q) for n, q in self.procs if q is not p]

    def stop_all(self):
        for _, p in reversed(list(self.procs)):
            self.stop(p)


def wait_for(pred, timeout, proc=None, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            return False
        if pred():
            return True
        time.sleep(interval)
    return False


def delivered(dump, seen):
    """Messages smtp-sink has taken: its dump files are created empty at
    MAIL and written at the end of DATA (one aborted in between is
    removed). seen: the names already counted."""
    try:
        with os.scandir(dump) as it:
            for e in it:
                if e.name not in seen:
                    try:
                        if e.stat().st_size > 0:
                            seen.add(e.name)
                    except OSError:
                        pass
    except OSError:
        pass
    return len(seen)


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).rstrip()
    except OSError:
        return ""


def start_rbldnsd(procs, tmp):
    zdir = os.path.join(tmp, "zone")
    os.mkdir(zdir)
    os.chmod(zdir, 0o755)
    zfile = os.path.join(zdir, "bl.zone")
    with open(zfile, "w") as f:
        f.write(ZONE)
    os.chmod(zfile, 0o644)
    errpath = os.path.join(tmp, "rbldnsd.log")
    for _ in range(5):
        port = free_port(socket.SOCK_DGRAM)
        with open(errpath, "wb") as err:
            p = procs.start("rbldnsd", ["rbldnsd", "-n", "-u", "rbldns", "-w", zdir,
                                        "-b", "127.0.0.1/%d" % port, "bl.test:ip4set:bl.zone"],
                            stdout=err, stderr=err)
        if wait_for(lambda: dns_a(port, "2.0.0.127.bl.test", 0.2) == ["127.0.0.2"], 5, p):
            if dns_a(port, "1.0.66.127.bl.test") == ["127.0.0.2"] and \
                    dns_a(port, "1.0.1.127.bl.test") == []:
                return port
            raise DemoError("rbldnsd serves the wrong zone")
        procs.stop(p)
    raise DemoError("rbldnsd did not start:\n" + tail(errpath))


def start_sink(procs, tmp):
    dump = os.path.join(tmp, "sink")
    os.mkdir(dump)
    os.chmod(dump, 0o777)          # smtp-sink writes as nobody
    errpath = os.path.join(tmp, "smtp-sink.log")
    for _ in range(5):
        port = free_port(socket.SOCK_STREAM)
        with open(errpath, "wb") as err:
            p = procs.start("smtp-sink", ["smtp-sink", "-u", "nobody", "-m", "10000",
                                          "-d", dump + "/msg.",
                                          "127.0.0.1:%d" % port, "10000"],
                            stdout=err, stderr=err)
        if wait_for(lambda: listening(port), 5, p):
            return port, dump
        procs.stop(p)
    raise DemoError("smtp-sink did not start:\n" + tail(errpath))


class Breakwater:
    """breakwater serve at log_level=info; a thread reads its stderr and
    counts the session lines by verdict."""

    def __init__(self, procs, binary, sink_port, dns_port, tmp):
        self.verdicts = {}
        self.busy = 0             # clean clients told 421: the MTA was full
        self.other = []
        self.lock = threading.Lock()
        for _ in range(5):
            self.port = free_port(socket.SOCK_STREAM)
            self.proc = procs.start("breakwater", [
                binary, "serve", "-c", "/dev/null",
                "-o", "listen=127.0.0.1:%d" % self.port,
                "-o", "backend=127.0.0.1:%d" % sink_port,
                "-o", "dnsbl_sites=bl.test",
                "-o", "resolver=127.0.0.1:%d" % dns_port,
                "-o", "dnsbl_health_interval=0",
                "-o", "max_connections=20000",
                "-o", "max_connections_per_ip=1000",
                "-o", "backend_max_connections=%d" % BACKEND_MAX,
                "-o", "hostname=demo.test",
                "-o", "state_dir=%s" % os.path.join(tmp, "state"),
                "-o", "control_socket=%s" % os.path.join(tmp, "control"),
                "-o", "user=nobody",
                "-o", "ban_backend=none",
                "-o", "metrics_listen=",
                "-o", "log_level=info"],
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            self.thread = threading.Thread(target=self._read, daemon=True)
            self.thread.start()
            if wait_for(lambda: listening(self.port), 5, self.proc):
                return
            procs.stop(self.proc)
            self.thread.join(2)
        raise DemoError("breakwater did not start (exit status %s)\n%s"
                        % (self.proc.returncode, "\n".join(self.other[-8:])))

    def _read(self):
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip("\n")
            i = line.find(" verdict=")
            if i >= 0 and "session client=" in line:
                v = line[i + 9:].split(" ", 1)[0]
                with self.lock:
                    self.verdicts[v] = self.verdicts.get(v, 0) + 1
                    if 'reason="backend_max_connections"' in line:
                        self.busy += 1
            else:
                with self.lock:
                    self.other.append(line)
                    del self.other[:-50]

    def count(self, verdict):
        with self.lock:
            return self.verdicts.get(verdict, 0)


# --------------------------------------------------------------------------
# The run

def fmt(n):
    return "{:,}".format(n)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default="build/breakwater")
    ap.add_argument("--wave", default="build/bench/wave")
    ap.add_argument("--profile", help="seconds<TAB>open lines (default: wave-1.tsv, built in)")
    ap.add_argument("--scale", type=float, default=4)
    ap.add_argument("--time-scale", type=float, default=0.1)
    ap.add_argument("--think", type=float, default=1.0)
    args = ap.parse_args()

    for path in (args.binary, args.wave):
        if not os.access(path, os.X_OK):
            sys.exit("demo: %s: not built (make %s)" % (path, path))
    for tool in ("rbldnsd", "smtp-sink"):
        if shutil.which(tool) is None:
            sys.exit("demo: %s not installed (make test-deps)" % tool)
    if os.geteuid() != 0:
        sys.exit("demo: run as root (rbldnsd and smtp-sink drop privileges themselves)")

    # Ctrl-C, SIGTERM and SIGHUP end the demo through the cleanup (SIGINT
    # set explicitly: a shell starting us in the background ignores it).
    def on_signal(signum, frame):
        raise KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    procs = Procs()
    tmp = None
    status = 1
    try:
        tmp = tempfile.mkdtemp(prefix="breakwater-demo-")
        os.chmod(tmp, 0o755)       # rbldnsd and smtp-sink work below it as other users
        status = run(args, procs, tmp)
    except KeyboardInterrupt:
        print()
        log("interrupted; stopping everything")
        status = 130
    except DemoError as e:
        log("error: %s" % e)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)     # nothing may cut the cleanup short
        procs.stop_all()
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    return status


def run(args, procs, tmp):
    dns_port = start_rbldnsd(procs, tmp)
    sink_port, dump = start_sink(procs, tmp)
    bw = Breakwater(procs, os.path.abspath(args.binary), sink_port, dns_port, tmp)
    log("rbldnsd on 127.0.0.1:%d (bl.test: 127.66.0.0/16, 127.0.0.2), smtp-sink (the MTA) "
        "on 127.0.0.1:%d, breakwater on 127.0.0.1:%d relaying to it"
        % (dns_port, sink_port, bw.port))

    # The profile, with the ebb after it.
    if args.profile:
        with open(args.profile) as f:
            text = f.read()
        points = []
        for line in text.splitlines():
            line = line.split("#", 1)[0].split()
            if len(line) >= 2:
                points.append((float(line[0]), float(line[1])))
    else:
        v = WAVE_1.split()
        points = [(float(v[i]), float(v[i + 1])) for i in range(0, len(v), 2)]
    if not points:
        raise DemoError("empty profile")
    last_t = points[-1][0]
    points += [(last_t + 0.001, 0), (last_t + EBB_SECONDS, 0)]
    profile = os.path.join(tmp, "profile.tsv")
    with open(profile, "w") as f:
        for t, n in points:
            f.write("%g\t%g\n" % (t, n))
    run_s = (last_t + EBB_SECONDS) * args.time_scale
    peak = max(n for _, n in points) * args.scale

    report = os.path.join(tmp, "wave.json")
    wave_err = os.path.join(tmp, "wave.err")
    argv = [os.path.abspath(args.wave), "-t", "127.0.0.1:%d" % bw.port,
            "-d", "%g" % (run_s + 10), "--profile", profile,
            "--scale", "%g" % args.scale, "--time-scale", "%g" % args.time_scale,
            "--think", "%g" % args.think, "--mix", "listed=95,polite=5",
            "--json"]
    log("the wave: wave-1.tsv x%g connections, x%g time (peak %s, %.0f s), 95%% listed bots, "
        "5%% polite MTAs, %gs pauses before each command"
        % (args.scale, args.time_scale, fmt(int(peak)), run_s, args.think))
    print(flush=True)
    with open(report, "wb") as out, open(wave_err, "wb") as err:
        wave = procs.start("wave", argv, stdout=out, stderr=err)

    print("  time    wave  breakwater     MTA   bots refused   delivered", flush=True)
    started = time.monotonic()
    deadline = started + run_s + 25
    peaks = {"wave": 0, "bw": 0, "mta": 0}
    tick = 0                  # a sample every 0.25 s (for the peaks), a line every 4
    last_row = None
    seen = set()
    interrupted = False
    try:
        while True:
            now = time.monotonic()
            done = wave.poll() is not None
            wave_n = bw_n = mta_n = 0
            for lp, rp in tcp_sockets("established"):
                if rp == bw.port:
                    wave_n += 1
                elif lp == bw.port:
                    bw_n += 1
                elif rp == sink_port:      # breakwater's relay connections
                    mta_n += 1
            peaks["wave"] = max(peaks["wave"], wave_n)
            peaks["bw"] = max(peaks["bw"], bw_n)
            peaks["mta"] = max(peaks["mta"], mta_n)
            if (tick > 0 and tick % 4 == 0) or done:
                row = (wave_n, bw_n, mta_n, bw.count("listed"), delivered(dump, seen))
                if not (done and row == last_row):
                    print("%5.0fs  %6s  %10s  %6s  %13s  %10s"
                          % ((now - started,) + tuple(fmt(n) for n in row)), flush=True)
                last_row = row
            if done:
                break
            if bw.proc.poll() is not None:
                raise DemoError("breakwater exited (status %s):\n%s"
                                % (bw.proc.returncode, "\n".join(bw.other[-8:])))
            if now > deadline:
                raise DemoError("the wave did not end in time")
            tick += 1
            time.sleep(max(0.0, started + tick * 0.25 - time.monotonic()))
    except KeyboardInterrupt:
        # Stop the wave first: it still writes its report.
        interrupted = True
        print()
        log("interrupted: stopping the wave")
        procs.stop(wave, signal.SIGINT)

    if wave.returncode not in (0, None) and not interrupted:
        raise DemoError("wave exited with status %s:\n%s" % (wave.returncode, tail(wave_err)))
    try:
        with open(report) as f:
            r = json.load(f)
    except (OSError, ValueError):
        if interrupted:
            raise KeyboardInterrupt
        raise DemoError("no report from wave:\n" + tail(wave_err))

    # Let the last messages land and the last session lines arrive.
    wait_for(lambda: bw.count("listed") + bw.count("clean") >= r["all"]["started"], 3)
    ok = summary(r, bw, peaks, delivered(dump, seen), interrupted)
    if interrupted:
        raise KeyboardInterrupt
    return 0 if ok else 1


def summary(r, bw, peaks, delivered, interrupted=False):
    """Prints the summary; True when the wave went as it should."""
    kinds = r.get("kinds", {})
    bots = kinds.get("listed", {})
    polite = kinds.get("polite", {})
    refused = bots.get("rcpt_replies", {}).get("5xx", 0)
    bots_accepted = bots.get("rcpt_replies", {}).get("2xx", 0)
    sent = sum(polite.get("data_replies", {}).values())
    polite_err = polite.get("errors", {}).get("total", 0)
    wave_peak = r.get("max_open", 0) or peaks["wave"]

    def errors(k):
        return ", ".join("%s %d" % (e, n) for e, n in k.get("errors", {}).items()
                         if n and e != "total") or "none"

    print()
    print("Summary%s: %s sessions in %.1f s"
          % (" (interrupted)" if interrupted else "", fmt(r["all"]["started"]),
             r.get("elapsed_s", 0)))
    print("  bots refused at RCPT (550):  %s of %s listed bots%s"
          % (fmt(refused), fmt(bots.get("started", 0)),
             " (%s cut off by the end)" % fmt(bots["unfinished"]) if bots.get("unfinished") else ""))
    print("  polite messages delivered:   %s of %s sent (%s polite sessions)"
          % (fmt(delivered), fmt(sent), fmt(polite.get("started", 0))))
    if bw.busy:
        print("  polite clients told 421 (the MTA at its %d, try again later): %s"
              % (BACKEND_MAX, fmt(bw.busy)))
    print("  peak open connections:       the wave %s, breakwater %s, the MTA %s"
          % (fmt(wave_peak), fmt(peaks["bw"]), fmt(peaks["mta"])))
    print("  The MTA never saw the wave: at most %s connections while the wave held %s."
          % (fmt(peaks["mta"]), fmt(wave_peak)))
    problems = []
    if interrupted:
        return False
    if bots_accepted:
        problems.append("%d bots got 250 at RCPT" % bots_accepted)
    if refused != bots.get("started", 0):
        problems.append("%d bots not refused at RCPT (errors: %s)"
                        % (bots.get("started", 0) - refused, errors(bots)))
    if delivered != sent:
        problems.append("%d polite messages sent, %d delivered" % (sent, delivered))
    if polite_err != polite.get("errors", {}).get("unexpected", 0) or polite_err > bw.busy:
        problems.append("polite sessions failed (errors: %s)" % errors(polite))
    for p in problems:
        print("  NOT AS EXPECTED: " + p)
    return not problems


if __name__ == "__main__":
    sys.exit(main())
