#!/bin/bash
# bench/relay-cost.sh [SECONDS] [CONCURRENCY] - where the CPU of a relayed
# message goes. Polite MTAs (build/bench/wave --mix polite=100) send to
# smtp-sink directly, then through breakwater (allowlisted clients, so no
# DNS: only the relay is measured), in turns, twice. For each run: messages
# per second, and CPU per message split into user and kernel time for
# breakwater, smtp-sink, and the whole machine (/proc/stat). Ends with the
# arithmetic of the 0.9x target: how much extra machine CPU per relayed
# message the target allows, against what breakwater's kernel side alone
# costs. Runs in a network namespace of its own; bounded by SECONDS per
# run (default 8). Needs build/breakwater, build/bench/wave, smtp-sink,
# iproute2; run as root.
set -u
SECS=${1:-8}
CONC=${2:-200}
top=$(cd "$(dirname "$0")/.." && pwd)
ns=bwrelay$$
tmp=$(mktemp -d); chmod 755 "$tmp"
ip netns add "$ns"
trap 'kill $BW $SINK 2>/dev/null; wait 2>/dev/null; ip netns del "$ns"; rm -rf "$tmp"' EXIT
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
cat > "$tmp/bw.conf" <<CONF
listen = 127.0.0.1:12525
backend = 127.0.0.1:12526
allowlist = 127.0.0.0/8
max_connections = 20000
max_connections_per_ip = 20000
backend_max_connections = 5000
state_dir = $tmp/state
control_socket = $tmp/control
user = nobody
ban_backend = none
log_level = warning
metrics_listen =
CONF
ip netns exec "$ns" smtp-sink -u nobody -m 20000 127.0.0.1:12526 4096 & SINK=$!
ip netns exec "$ns" "$top/build/breakwater" serve -c "$tmp/bw.conf" 2> "$tmp/bw.log" & BW=$!
sleep 1
for pid in $SINK $BW; do
    kill -0 "$pid" 2>/dev/null || { echo "relay-cost: a server did not start:"; cat "$tmp/bw.log"; exit 1; }
done

ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }              # utime stime
machine() { awk '/^cpu /{print $2+$3+$7+$8, $4}' /proc/stat; }  # user+nice+irq+softirq, system

run=0
for port in 12526 12525 12526 12525; do
    run=$((run + 1))
    b0=$(ticks $BW); s0=$(ticks $SINK); m0=$(machine)
    in_ns "$top/build/bench/wave" -t 127.0.0.1:$port -d "$SECS" -c "$CONC" --procs 2 \
        --mix polite=100 --json > "$tmp/wave-$run.json" 2> /dev/null
    b1=$(ticks $BW); s1=$(ticks $SINK); m1=$(machine)
    echo "$port|$b0|$b1|$s0|$s1|$m0|$m1|$tmp/wave-$run.json"
done | python3 -c '
import json, os, sys
hz = os.sysconf("SC_CLK_TCK")
runs = {"direct": [], "relayed": []}
for line in sys.stdin:
    port, b0, b1, s0, s1, m0, m1, wave = line.strip().split("|")
    j = json.load(open(wave))
    n = j["all"]["completed"]
    d = lambda a, b: [(int(y) - int(x)) * 1000.0 / hz / max(n, 1) for x, y in zip(a.split(), b.split())]
    name = "direct" if port == "12526" else "relayed"
    r = {"per_s": j["all"]["sessions_per_s"], "n": n, "errors": j["all"].get("errors"),
         "bw": d(b0, b1), "sink": d(s0, s1), "machine": d(m0, m1)}
    runs[name].append(r)
    print("%-8s %7.0f msgs/s  (%d)  ms of CPU per message, user/kernel:  breakwater %.3f/%.3f"
          "  smtp-sink %.3f/%.3f  machine %.3f/%.3f"
          % (name, r["per_s"], n, r["bw"][0], r["bw"][1], r["sink"][0], r["sink"][1],
             r["machine"][0], r["machine"][1]))
best = {k: max(v, key=lambda r: r["per_s"]) for k, v in runs.items()}
dm, rm = (sum(best[k]["machine"]) for k in ("direct", "relayed"))
print("best: relayed/direct = %.2fx" % (best["relayed"]["per_s"] / best["direct"]["per_s"]))
print("machine CPU per message: direct %.3f ms, relayed %.3f ms (+%.3f)" % (dm, rm, rm - dm))
print("0.9x on a CPU-bound machine allows at most +%.3f ms per relayed message;" % (dm / 0.9 - dm))
print("breakwater alone spends %.3f ms in the kernel per relayed message (user %.3f ms)"
      % (best["relayed"]["bw"][1], best["relayed"]["bw"][0]))
'
