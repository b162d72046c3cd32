#!/usr/bin/env python3
"""bench/idlemem.py - figure e (memory per idle connection) for several
breakwater builds or settings, taking turns in one run.

Each step is figure e's, by bench.py's own code (Bench.hold): breakwater
started afresh (empty state store) with bench.py's configuration, N idle
holders from the listed net (wave -c N --mix idle=100 --idle-net listed
--fresh-addresses --procs 2 --hold 60), the daemon's RSS and PSS
(/proc/PID/smaps_rollup, all its processes) before and while they are
held, growth / connections `ss` shows established on its port; the PSS
growth is also split by kind of mapping (/proc/PID/smaps): the heap
(sessions, clients, tables), other anonymous maps (large allocations such
as libev's watcher arrays and hash tables past malloc's mmap threshold), the state store's shared
file mapping (its pages come in when the store's batched writes land, so
that part depends on when the reading falls), the binary and libraries.

    python3 bench/idlemem.py --wave build/bench/wave \\
        --variant head=build/breakwater \\
        --variant old=/tmp/old/breakwater \\
        --variant rate=build/breakwater,max_connection_rate_per_ip=1000 \\
        [--steps 1000,10000,18000] [--rounds 2] [--json out.json]

A variant is NAME=BINARY[,key=value,...]: the keys go to the daemon as
-o options after bench.py's configuration. For every N the variants take
turns (in the given order in odd rounds, reversed in even ones), so that a
disturbance on the machine hits them alike. Needs root (a private network
+ mount namespace, as bench.py: loopback only, rbldnsd on 127.0.0.1:53);
bounded: every hold ends within 60 s, everything is stopped at the end.
"""

import argparse
import json
import os
import shutil
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bench  # noqa: E402  (Bench.hold is figure e's method)


def mem_by_kind(pids):
    """RSS and PSS (KiB) of the processes by kind of mapping: heap (brk),
    anon (other anonymous maps: large mallocs, libev's arrays, stack), store (the LMDB files of state_dir, mapped
    shared: its pages come in as verdicts are written and read, whenever the
    store's batched writes land), files (the binary and its libraries)."""
    out = {k: [0, 0] for k in ("heap", "anon", "store", "files")}
    for pid in pids:
        try:
            with open("/proc/%d/smaps" % pid) as f:
                kind = "anon"
                for line in f:
                    first = line.split(None, 1)[0]
                    if "-" in first and not first.endswith(":"):
                        path = line.split()[5] if len(line.split()) > 5 else ""
                        kind = ("store" if ".mdb" in path else
                                "heap" if path == "[heap]" else
                                "anon" if not path.startswith("/") or path.startswith("/dev/zero")
                                else "files")
                    elif first == "Rss:":
                        out[kind][0] += int(line.split()[1])
                    elif first == "Pss:":
                        out[kind][1] += int(line.split()[1])
        except OSError:
            pass
    return out


def variant(text):
    name, _, rest = text.partition("=")
    parts = rest.split(",")
    if not name or not parts[0]:
        raise argparse.ArgumentTypeError("expected NAME=BINARY[,key=value,...]: " + text)
    return {"name": name, "binary": os.path.abspath(parts[0]), "options": parts[1:]}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wave", default=bench.WAVE)
    ap.add_argument("--variant", type=variant, action="append", required=True)
    ap.add_argument("--steps", type=lambda s: [int(x) for x in s.split(",")],
                    default=[1000, 10000, 18000])
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--json", help="write every step's results here")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("idlemem: needs root (namespaces, rbldnsd on port 53)")
    a.wave = os.path.abspath(a.wave)
    resolv = bench.enter_namespace(os.path.abspath(__file__))
    bench.WAVE = a.wave
    b = bench.Bench(argparse.Namespace(keep=False))

    def on_signal(sig, frame):
        raise SystemExit("idlemem: signal %d" % sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    out = {"started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
           "argv": sys.argv, "steps": []}
    try:
        b.start_rbldnsd()
        b.start_sink()
        for rnd in range(a.rounds):
            for n in a.steps:
                order = a.variant if rnd % 2 == 0 else a.variant[::-1]
                for v in order:
                    bench.BW = v["binary"]
                    if b.bw is not None:
                        b.bw.stop()
                    b.bw = b.start_bw(extra=v["options"])
                    kinds = []

                    def pids():   # Bench.hold asks for them just before each reading
                        p = b.bw.pids()
                        kinds.append(mem_by_kind(p))
                        return p
                    r = b.hold(n, bench.BW_PORT, pids, v["name"])
                    d = max(r["held"], 1)
                    r["by_kind_kib"] = kinds
                    for k in ("heap", "anon", "store", "files"):
                        r[k + "_pss_b_per_conn"] = (kinds[-1][k][1] - kinds[0][k][1]) * 1024 / d
                    r.update({"variant": v["name"], "binary": v["binary"],
                              "options": v["options"], "round": rnd + 1,
                              "rss_b_per_conn": (r["rss_kib"][1] - r["rss_kib"][0]) * 1024 / d,
                              "pss_b_per_conn": (r["pss_kib"][1] - r["pss_kib"][0]) * 1024 / d,
                              "slab_b_per_conn": (r["kernel"][1]["Slab"]
                                                  - r["kernel"][0]["Slab"]) * 1024 / d})
                    out["steps"].append(r)
                    if a.json:
                        with open(a.json, "w") as f:
                            json.dump(out, f, indent=1)
    finally:
        b.stop_all()
        shutil.rmtree(b.tmp, ignore_errors=True)
        os.unlink(resolv)
    print("variant      N  round   held  RSS B/conn  PSS B/conn  (heap  anon  store  files)"
          "  slab B/conn  wave %core")
    for r in out["steps"]:
        print("%-9s %6d %5d %7d %10.0f %11.0f %6.0f %5.0f %6.0f %6.0f %12.0f %8.0f"
              % (r["variant"], r["n"], r["round"], r["held"], r["rss_b_per_conn"],
                 r["pss_b_per_conn"], r["heap_pss_b_per_conn"], r["anon_pss_b_per_conn"], r["store_pss_b_per_conn"],
                 r["files_pss_b_per_conn"], r["slab_b_per_conn"],
                 (r["wave_cpu"] or {}).get("percent_of_one_core", -1)))


if __name__ == "__main__":
    main()
