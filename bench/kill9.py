#!/usr/bin/env python3
"""bench/kill9.py - breakwater killed with SIGKILL at random moments while
it writes verdicts and bans at full speed, CYCLES times: each restart must
open the state store, serve, and put back every ban the firewall held a
second before the kill (measured against the set flushed before the
restart).

    python3 bench/kill9.py [--cycles 200] [--rate 3000] [--seed 1]

One cycle: a wave of listed bots from fresh addresses (each a DNSBL lookup,
so a verdict written, then a 550 and a ban) runs for a random 1-3 s; a
snapshot of the nft set is taken; one second later breakwater gets
SIGKILL; the set is flushed; breakwater starts again on the same state
store. The cycle passes when the daemon serves (a clean client gets the
MTA's greeting through it) and every address of the snapshot whose ban has
not ended is back in the set within 20 s. Cycle i's bots come from
127.(64 + i % 60).0.0/16 and bans last 2 minutes, so no bot is still
banned when its /16 comes round again.

Runs in a private network + mount namespace (bench.enter_namespace):
loopback only, rbldnsd on 127.0.0.1:53 listing 127.64.0.0/10, smtp-sink,
nft. Needs root, build/breakwater and build/bench/wave (make bench).
Bounded: every wave ends within 3 s, every wait within 20 s.
"""

import argparse
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402

BW_PORT, SINK_PORT = 2525, 2526
NETS = 60               # distinct /16s the cycles take turns on
BAN_TIME = 120          # seconds: shorter than NETS cycles take


def nft_set():
    """{address: expires in seconds} of banned4."""
    p = subprocess.run(["nft", "-j", "list", "set", "inet", "breakwater", "banned4"],
                       capture_output=True, text=True, timeout=30)
    out = {}
    if p.returncode != 0:
        return out
    for item in json.loads(p.stdout).get("nftables", []):
        for e in (item.get("set") or {}).get("elem", []):
            if isinstance(e, dict) and "elem" in e:
                out[e["elem"]["val"]] = e["elem"].get("expires", BAN_TIME)
            elif isinstance(e, str):
                out[e] = BAN_TIME
    return out


def serves(timeout=5.0):
    """A clean client gets smtp-sink's greeting through breakwater."""
    try:
        with socket.create_connection(("127.0.0.1", BW_PORT), timeout=timeout,
                                      source_address=("127.1.9.9", 0)) as s:
            s.settimeout(timeout)
            return s.recv(512).startswith(b"220")
    except OSError:
        return False


class Kill9:
    def __init__(self, args):
        self.a = args
        self.tmp = tempfile.mkdtemp(prefix="bwkill9-")
        os.chmod(self.tmp, 0o755)
        self.state = os.path.join(self.tmp, "state")
        self.conf = os.path.join(self.tmp, "bw.conf")
        with open(self.conf, "w") as f:
            f.write("listen = 127.0.0.1:%d\nbackend = 127.0.0.1:%d\n" % (BW_PORT, SINK_PORT))
            f.write("resolver = 127.0.0.1:53\ndnsbl_sites = bl.test\nhostname = mx.kill9.test\n")
            f.write("max_connections = 20000\nmax_connections_per_ip = 1000\n")
            f.write("ban_backend = nft\nban_time = %ds\n" % BAN_TIME)
            f.write("state_dir = %s\ncontrol_socket = %s\n"
                    % (self.state, os.path.join(self.tmp, "control")))
            f.write("user = nobody\nmetrics_listen =\nlog_level = warning\n")
        self.bw = None
        self.rbl = self.sink = None

    def start_peers(self):
        d = os.path.join(self.tmp, "rbldnsd")
        os.makedirs(d)
        os.chmod(d, 0o755)
        with open(os.path.join(d, "bl.zone"), "w") as f:
            f.write(":127.0.0.2:listed\n127.64.0.0/10\n127.0.0.2\n")
        os.chmod(os.path.join(d, "bl.zone"), 0o644)
        self.rbl = bench.Proc("rbldnsd", ["rbldnsd", "-n", "-u", "rbldns", "-w", d, "-b",
                                          "127.0.0.1/53", "bl.test:ip4set:bl.zone"],
                              os.path.join(self.tmp, "rbldnsd.log"))
        self.sink = bench.Proc("smtp-sink", ["smtp-sink", "-u", "nobody", "-m", "20000",
                                             "127.0.0.1:%d" % SINK_PORT, "4096"],
                               os.path.join(self.tmp, "sink.log"))
        bench.wait_for(lambda: bench.listening(SINK_PORT), 10, "smtp-sink")
        rules = subprocess.run([bench.BW, "rules", "-c", self.conf], capture_output=True,
                               text=True, check=True).stdout
        subprocess.run(["nft", "-f", "-"], input=rules, text=True, check=True)

    def start_bw(self):
        self.bw = bench.Proc("breakwater", [bench.BW, "serve", "-c", self.conf],
                             os.path.join(self.tmp, "bw.log"))
        bench.wait_for(lambda: bench.listening(BW_PORT) or not self.bw.alive(), 20,
                       "breakwater listening")
        if not self.bw.alive():
            raise RuntimeError("breakwater exited: " + open(self.bw.logpath).read()[-2000:])

    def cycle(self, i, rng):
        net = "127.%d.0.0/16" % (64 + i % NETS)
        length = rng.uniform(1.0, 3.0)
        wave = bench.Proc("wave", [bench.WAVE, "-t", "127.0.0.1:%d" % BW_PORT, "-d", "5",
                                   "-r", str(self.a.rate), "--mix", "listed=100",
                                   "--fresh-addresses", "--listed-net", net,
                                   "--session-timeout", "3"],
                          os.path.join(self.tmp, "wave.log"))
        time.sleep(length)
        snapshot = nft_set()
        taken = time.monotonic()
        time.sleep(1.0)
        os.kill(self.bw.pid, signal.SIGKILL)
        killed_after = time.monotonic() - taken + length
        self.bw.p.wait(10)
        wave.stop()
        self.bw.stop()           # its helper and workers, if any are left
        subprocess.run(["nft", "flush", "set", "inet", "breakwater", "banned4"], check=True)
        t0 = time.monotonic()
        self.start_bw()
        ok = serves()
        # every ban of the snapshot, until it ends (monotonic time): one that
        # ends while the restore is checked is not missing
        ends = {a: taken + left for a, left in snapshot.items()}
        want = {a for a, end in ends.items() if end > time.monotonic() + 2}
        missing = want
        while missing and time.monotonic() - t0 < 20:
            now_in = set(nft_set())
            missing = {a for a in missing if a not in now_in and ends[a] > time.monotonic() + 1}
            time.sleep(0.1)
        return {"cycle": i, "killed_at": round(killed_after, 2), "in_set": len(snapshot),
                "expected_back": len(want), "missing": len(missing), "serves": ok,
                "restored_in": round(time.monotonic() - t0, 2)}

    def run(self):
        rng = random.Random(self.a.seed)
        self.start_peers()
        self.start_bw()
        rows = []
        try:
            for i in range(self.a.cycles):
                r = self.cycle(i, rng)
                rows.append(r)
                bench.log("cycle %(cycle)d: killed %(killed_at)s s into the wave, "
                          "%(in_set)d bans in the set a second before, %(missing)d of "
                          "%(expected_back)d not back, serves %(serves)s, restored in "
                          "%(restored_in)s s" % r)
        finally:
            for p in (self.bw, self.sink, self.rbl):
                if p is not None:
                    p.stop()
        bad = [r for r in rows if r["missing"] or not r["serves"]]
        errors = [l for l in open(self.bw.logpath, errors="replace")
                  if "error" in l and "the ban helper is gone" not in l]
        print("kill9: %d cycles, %d failed; bans in the set before a kill: min %d, max %d; "
              "restore took at most %.2f s; error lines: %d"
              % (len(rows), len(bad), min(r["in_set"] for r in rows),
                 max(r["in_set"] for r in rows), max(r["restored_in"] for r in rows),
                 len(errors)))
        for r in bad:
            print("  failed: %r" % r)
        for l in errors[:20]:
            print("  log: " + l.rstrip())
        shutil.rmtree(self.tmp, ignore_errors=True)
        return 1 if bad else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cycles", type=int, default=200)
    ap.add_argument("--rate", type=int, default=3000, help="listed sessions a second")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("kill9: needs root (a private network namespace, nft)", file=sys.stderr)
        return 2
    bench.enter_namespace(os.path.abspath(__file__))
    return Kill9(args).run()


if __name__ == "__main__":
    sys.exit(main())
