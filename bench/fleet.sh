#!/bin/bash
# bench/fleet.sh [HOSTS] [RATE] [SECONDS] [hosts|peer] - a fleet of HOSTS breakwater
# instances (default 10) sharing one redis-server, RATE bans/s in all
# (default 10000, split evenly), for SECONDS (default 5, at most 6: each
# host's fresh addresses in 127.66.0.0/16 must not run out).
#
# Each host runs in a network namespace of its own with its own nft
# ruleset (ban_backend = nft), listening on 127.0.0.1:2525 there; its own
# build/bench/wave sends it denylisted bots from fresh loopback addresses,
# so each host bans RATE/HOSTS addresses a second and publishes each ban;
# every other host receives it through Redis and puts it in its own set.
# A hub namespace holds Redis (10.79.0.1:6379), joined to the hosts by a
# bridge. Reports per host: bans made, peer bans received and applied,
# the propagation histogram (publish on one host -> arrival on this one,
# breakwater_fleet_propagation_seconds), its p50/p99 over all hosts, the
# addresses in the host's nft set; and where the CPU went. With `peer` as
# the fourth argument, the hosts make no bans themselves: a synthetic peer
# (bench/fleet-publish.py, in the hub) publishes RATE bans/s, so each host
# only receives and applies -- the receiving side alone. Needs
# build/breakwater, build/bench/wave, redis-server, nftables, iproute2;
# run as root.
set -u
HOSTS=${1:-10}
RATE=${2:-10000}
SECS=${3:-5}
SOURCE=${4:-hosts}
top=$(cd "$(dirname "$0")/.." && pwd)
tag=$$
tmp=$(mktemp -d); chmod 755 "$tmp"
hub=bwfh$tag
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    for i in $(seq "$HOSTS"); do ip netns del "bwf$i-$tag" 2>/dev/null; done
    ip netns del "$hub" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
ip netns add "$hub"
ip -n "$hub" link add br0 type bridge
ip -n "$hub" addr add 10.79.0.1/24 dev br0
ip -n "$hub" link set br0 up
ip -n "$hub" link set lo up
cat > "$tmp/redis.conf" <<CONF
bind 10.79.0.1
port 6379
save ""
appendonly no
protected-mode no
dir $tmp
CONF
ip netns exec "$hub" redis-server "$tmp/redis.conf" > "$tmp/redis.log" 2>&1 & REDIS=$!
pids+=("$REDIS")
per=$((RATE / HOSTS))
for i in $(seq "$HOSTS"); do
    ns=bwf$i-$tag
    ip netns add "$ns"
    ip -n "$hub" link add "v$i" type veth peer name eth0 netns "$ns"
    ip -n "$hub" link set "v$i" master br0
    ip -n "$hub" link set "v$i" up
    ip -n "$ns" addr add "10.79.0.$((10 + i))/24" dev eth0
    ip -n "$ns" link set eth0 up
    ip -n "$ns" link set lo up
    cat > "$tmp/bw$i.conf" <<CONF
listen = 127.0.0.1:2525
backend = 127.0.0.1:9
denylist = 127.64.0.0/10
ban_backend = nft
ban_time = 10m
max_connections = 20000
max_connections_per_ip = 1000
state_dir = $tmp/state$i
control_socket = $tmp/control$i
user = nobody
log_level = warning
metrics_listen = 127.0.0.1:9625
fleet_redis = redis://10.79.0.1:6379
fleet_host_id = host$i
CONF
    ip netns exec "$ns" sh -c "'$top/build/breakwater' rules -c '$tmp/bw$i.conf' | nft -f -"
    ip netns exec "$ns" "$top/build/breakwater" serve -c "$tmp/bw$i.conf" \
        2> "$tmp/bw$i.log" & pids+=($!)
done
for _ in $(seq 300); do   # bounded: 30 s until every host listens on the channel
    subs=$(ip netns exec "$hub" redis-cli -h 10.79.0.1 PUBSUB NUMSUB breakwater:bans | tail -1)
    [ "$subs" = "$HOSTS" ] && break
    sleep 0.1
done
for i in $(seq "$HOSTS"); do
    grep -q "error" "$tmp/bw$i.log" && { echo "host$i:"; cat "$tmp/bw$i.log"; exit 1; }
done
[ "$subs" = "$HOSTS" ] || { echo "only $subs of $HOSTS hosts listen on the channel"; exit 1; }
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
# CPU seconds of the daemons and of their helpers, summed
cpu_of() { local t=0; for p in "$@"; do t=$(echo "$t + $(cpu "$p")" | bc); done; echo "$t"; }
daemons=("${pids[@]:1}")
helpers=($(for p in "${daemons[@]}"; do pgrep -P "$p"; done))
redis0=$(cpu "$REDIS"); bw0=$(cpu_of "${daemons[@]}"); helper0=$(cpu_of "${helpers[@]}")
t0=$(date +%s.%N)
waves=()
if [ "$SOURCE" = peer ]; then
    ip netns exec "$hub" python3 "$top/bench/fleet-publish.py" 10.79.0.1 6379 "$RATE" "$SECS" \
        > "$tmp/publisher.txt" 2>&1
    cat "$tmp/publisher.txt"
    for i in $(seq "$HOSTS"); do echo "wave CPU  user 0.00 s, sys 0.00 s" > "$tmp/wave$i.txt"; done
else
    for i in $(seq "$HOSTS"); do
        ip netns exec "bwf$i-$tag" "$top/build/bench/wave" -t 127.0.0.1:2525 -d "$SECS" \
            -r "$per" --mix listed=100 --fresh-addresses --listed-net "127.$((64 + i)).0.0/16" \
            > "$tmp/wave$i.txt" 2>&1 & waves+=($!)
    done
    wait "${waves[@]}"
fi
sleep 2   # the last bans travel
t1=$(date +%s.%N)
redis1=$(cpu "$REDIS"); bw1=$(cpu_of "${daemons[@]}"); helper1=$(cpu_of "${helpers[@]}")
if [ "$SOURCE" = peer ]; then
    echo "fleet: $HOSTS hosts, one redis-server; a synthetic peer publishes $RATE bans/s" \
         "for ${SECS}s"
else
    echo "fleet: $HOSTS hosts, one redis-server; each host $per new denylisted sessions/s" \
         "for ${SECS}s (all hosts: $RATE/s)"
fi
for i in $(seq "$HOSTS"); do
    ip netns exec "bwf$i-$tag" python3 -c "import urllib.request,sys;
sys.stdout.write(urllib.request.urlopen('http://127.0.0.1:9625/metrics',timeout=10).read().decode())" \
        > "$tmp/metrics$i.txt"
    echo "$(ip netns exec "bwf$i-$tag" nft list set inet breakwater banned4 | grep -o timeout | wc -l)" \
        > "$tmp/set$i.txt"
done
python3 - "$tmp" "$HOSTS" "$SECS" "$redis0" "$redis1" "$t0" "$t1" "$SOURCE" <<'PY'
import os, re, sys
tmp, hosts, secs = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
peer = sys.argv[8] == "peer"
redis_cpu = float(sys.argv[5]) - float(sys.argv[4])
elapsed = float(sys.argv[7]) - float(sys.argv[6])
buckets, made_all, recv_all, applied_all = {}, 0, 0, 0
print("| host | sessions/s (wave) | bans made (sent) | peer bans received | applied | in its nft set |")
print("|---|---:|---:|---:|---:|---:|")
for i in range(1, hosts + 1):
    m = open("%s/metrics%d.txt" % (tmp, i)).read()
    def val(name, labels=""):
        r = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), m, re.M)
        return float(r.group(1)) if r else 0.0
    sent = val("breakwater_fleet_bans_total", '{result="sent"}')
    recv = val("breakwater_fleet_bans_total", '{result="received"}')
    appl = val("breakwater_fleet_bans_total", '{result="applied"}')
    for le, n in re.findall(r'^breakwater_fleet_propagation_seconds_bucket\{le="([^"]+)"\} (\S+)$',
                            m, re.M):
        buckets[le] = buckets.get(le, 0) + float(n)
    w = open("%s/wave%d.txt" % (tmp, i)).read()
    sps = re.search(r"^all .*completed \d+ \(([0-9.]+)/s\)", w, re.M)
    inset = open("%s/set%d.txt" % (tmp, i)).read().strip()
    made_all += sent; recv_all += recv; applied_all += appl
    print("| host%d | %s | %d | %d | %d | %s |" % (i, sps.group(1) if sps else "?", sent, recv,
                                                 appl, inset))
order = sorted(buckets.items(), key=lambda kv: float("inf") if kv[0] == "+Inf" else float(kv[0]))
total = order[-1][1] if order else 0
def q(f):
    for le, n in order:
        if n >= f * total:
            return le
    return "?"
print()
if peer:
    published = int(re.search(r"published (\d+)", open(tmp + "/publisher.txt").read()).group(1))
    print("bans published by the synthetic peer: %d (%.0f/s over %.0f s); received by the "
          "hosts %d (expected %d x %d = %d), applied %d"
          % (published, published / secs, secs, recv_all, published, hosts, published * hosts,
             applied_all))
else:
    print("bans made in all: %d (%.0f/s over %.0f s); peer bans received %d (expected %d x %d "
          "= %d)" % (made_all, made_all / secs, secs, recv_all, made_all, hosts - 1,
                     made_all * (hosts - 1)))
print("propagation (publish -> arrival), all hosts, %d samples: p50 <= %s s, p99 <= %s s"
      % (total, q(0.5), q(0.99)))
print("cumulative buckets: " + ", ".join("le %s: %d" % (le, n) for le, n in order))
print("redis-server CPU: %.2f s over %.1f s (%.0f%% of a core)"
      % (redis_cpu, elapsed, 100 * redis_cpu / elapsed))
PY
waves_cpu=$(grep -h "^wave CPU" "$tmp"/wave*.txt | awk '{u += $4; s += $7} END {printf "%.2f", u + s}')
echo "CPU seconds during the run: breakwater daemons $(echo "$bw1 - $bw0" | bc)," \
     "their ban helpers $(echo "$helper1 - $helper0" | bc), the ten generators $waves_cpu," \
     "redis-server $(echo "$redis1 - $redis0" | bc) (the machine has 2 cores)"
echo "host errors and warnings:"; cat "$tmp"/bw*.log | grep -E "error|warning" | grep -vE "open-file limit|proxy_protocol|no dnsbl_sites" | sort | uniq -c | head -5 | sed "s/^/  /"
