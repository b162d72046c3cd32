#!/bin/bash
# bench/connections.sh N WORKERS - hold N idle listed connections on
# breakwater with WORKERS workers and report its memory per connection and
# the kernel's beside it, and how long a scrape of /metrics takes while
# they are held (200 scrapes, timed at the client: an upper bound of the
# time the answering worker's loop spends on it). Needs build/breakwater,
# build/bench/wave, rbldnsd.
# Bounded: the generator holds for 40 s at most; everything is stopped.
set -u
N=${1:-100000}
WORKERS=${2:-6}
PROCS=$(( (N + 17999) / 18000 ))          # wave: < 20,000 open files each
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); chmod 755 "$tmp"
trap 'kill $WAVE $BW $RBL 2>/dev/null; wait 2>/dev/null; rm -rf "$tmp"' EXIT
printf '127.66.0.0/16\n127.0.0.2\n' > "$tmp/bl.zone"; chmod 644 "$tmp/bl.zone"
rbldnsd -n -u rbldns -w "$tmp" -b 127.0.0.1/15399 bl.test:ip4set:bl.zone & RBL=$!
sleep 0.5
"$top/build/breakwater" serve -o listen=127.0.0.1:12725 -o backend=127.0.0.1:9 \
    -o dnsbl_sites=bl.test -o resolver=127.0.0.1:15399 -o dnsbl_health_interval=0 \
    -o workers="$WORKERS" -o max_connections=$((N + 10000)) -o max_connections_per_ip=1000 \
    -o command_timeout=120s -o reject_session_timeout=120s -o log_level=warning \
    -o state_dir="$tmp/state" -o control_socket="$tmp/control" -o user=nobody -o ban_backend=none -o metrics_listen=127.0.0.1:19625 \
    2> "$tmp/bw.log" & BW=$!
sleep 1
pids() { pgrep -P $BW | tr '\n' ' '; echo $BW; }
mem() { # RSS and PSS of the daemon's processes, KiB
    local rss=0 pss=0
    for p in $(pids); do
        rss=$((rss + $(awk '/VmRSS/{print $2}' /proc/$p/status)))
        pss=$((pss + $(awk '/^Pss:/{s+=$2} END{print s}' /proc/$p/smaps_rollup)))
    done
    echo "$rss $pss"
}
slab() { awk '{s+=$3*$4} END{print int(s/1024)}' <(tail -n +3 /proc/slabinfo); }
read rss0 pss0 < <(mem); slab0=$(slab)
"$top/build/bench/wave" -t 127.0.0.1:12725 -d 60 -c "$N" --mix idle=100 --idle-net listed \
    --pool 60000 --procs "$PROCS" --hold 40 --json > "$tmp/wave.json" & WAVE=$!
for _ in $(seq 50); do   # wait until every connection is held (bounded)
    sleep 1
    held=$(ss -tnH state established "( sport = :12725 )" | wc -l)
    [ "$held" -ge "$N" ] && break
done
sleep 2
read rss1 pss1 < <(mem); slab1=$(slab)
# ss counts the accept queue too (established, not yet accepted): the
# per-connection figures divide by what the daemon itself holds, its
# breakwater_connections gauge summed over the workers
sockets=$(ss -tnH state established "( sport = :12725 )" | wc -l)
held=$(python3 -c 'import re, urllib.request; t = urllib.request.urlopen("http://127.0.0.1:19625/metrics", timeout=5).read().decode(); print(int(sum(float(v) for v in re.findall(r"^breakwater_connections\{[^}]*\} (\S+)$", t, re.M))))')
echo "workers=$WORKERS connections held=$held of $N (daemon's gauge; established sockets on the port: $sockets)"
echo "daemon RSS growth $((rss1 - rss0)) KiB = $(( (rss1 - rss0) * 1024 / held )) B per connection"
echo "daemon PSS growth $((pss1 - pss0)) KiB = $(( (pss1 - pss0) * 1024 / held )) B per connection"
echo "kernel slab growth $((slab1 - slab0)) KiB = $(( (slab1 - slab0) * 1024 / held )) B per connection (both ends of each loopback connection)"
grep '^TCP:' /proc/net/sockstat
python3 - <<PY
import time, urllib.request
ts = []
for _ in range(200):
    t = time.monotonic(); urllib.request.urlopen("http://127.0.0.1:19625/metrics", timeout=5).read(); ts.append(time.monotonic() - t)
ts.sort()
print("scrape of /metrics while held: p50 %.2f ms p99 %.2f ms max %.2f ms (200 scrapes, wall time at the client)" % (ts[100]*1e3, ts[197]*1e3, ts[-1]*1e3))
PY
echo "daemon warnings and errors:"; sed "s/^/  /" "$tmp/bw.log"
