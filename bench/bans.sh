#!/bin/bash
# bench/bans.sh RATE SECONDS - listed (denylisted) bots at RATE new sessions
# a second, each from a new address, against breakwater with ban_backend =
# nft, in a network namespace of its own; reports the bans applied, the
# time from each 5xx to its address being in the nft set (the daemon's
# histogram, `breakwater ctl stats`), and the set's size. Then the restore:
# stop breakwater, flush the set, start it again, and time until every
# ban is back in the set. Needs
# build/breakwater, build/bench/wave, nftables, iproute2; run as root.
# LIST=1: halfway through the wave, time an `nft list set` (bounded to
# 10 s), as an admin would look at the bans during a wave.
# Bounded: the generator runs SECONDS (at most 6: 65,024 fresh addresses
# in 127.66.0.0/16 must not run out), everything is stopped after.
set -u
RATE=${1:-10000}
SECONDS_RUN=${2:-6}
BACKEND=${BACKEND:-nft}     # BACKEND=none: the same run without bans, to compare
top=$(cd "$(dirname "$0")/.." && pwd)
ns=bwbans$$
tmp=$(mktemp -d); chmod 755 "$tmp"
ip netns add "$ns"
trap 'kill $BW 2>/dev/null; wait 2>/dev/null; ip netns del "$ns"; rm -rf "$tmp"' EXIT
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
cat > "$tmp/bw.conf" <<CONF
listen = 127.0.0.1:12825
backend = 127.0.0.1:9
denylist = 127.66.0.0/16
ban_backend = $BACKEND
ban_time = 10m
max_connections = 20000
max_connections_per_ip = 1000
command_timeout = 30s
state_dir = $tmp/state
control_socket = $tmp/control
user = nobody
log_level = warning
metrics_listen =
CONF
[ "$BACKEND" = none ] || in_ns sh -c "'$top/build/breakwater' rules -c '$tmp/bw.conf' | nft -f -"
ip netns exec "$ns" "$top/build/breakwater" serve -c "$tmp/bw.conf" 2> "$tmp/bw.log" & BW=$!   # exec: $! is the daemon
sleep 1
in_ns "$top/build/bench/wave" -t 127.0.0.1:12825 -d "$SECONDS_RUN" -r "$RATE" \
    --mix listed=100 --fresh-addresses > "$tmp/wave.txt" & WAVE=$!
if [ "${LIST:-0}" = 1 ]; then   # an admin's `nft list set` while the bans go in
    sleep $(( SECONDS_RUN / 2 ))
    t0=$(date +%s.%N)
    if in_ns timeout 10 nft list set inet breakwater banned4 > "$tmp/list.txt" 2>&1; then
        echo "nft list set during the wave: done in $(echo "$(date +%s.%N) - $t0" | bc) s," \
             "$(grep -o timeout "$tmp/list.txt" | wc -l) lines with a timeout"
    else
        echo "nft list set during the wave: not done within 10 s"
    fi
fi
wait $WAVE
sleep 1   # the last bans go in
echo "wave: $RATE new listed sessions/s for ${SECONDS_RUN}s, each from a new address"
grep -E "sessions|rcpt|errors|cpu" "$tmp/wave.txt" | sed 's/^/  /'
echo "breakwater ctl stats:"
in_ns "$top/build/breakwater" ctl -c "$tmp/bw.conf" stats | grep ban | sed 's/^/  /'
[ "$BACKEND" = none ] || echo "addresses in the nft set banned4: $(in_ns nft list set \
    inet breakwater banned4 | grep -o 'timeout' | wc -l)"
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat"; }
echo "CPU seconds: serving process $(cpu $BW), ban helper $(cpu "$(pgrep -P $BW | head -1)")"
[ "$BACKEND" = none ] && exit 0
count() { in_ns nft list set inet breakwater banned4 | grep -o 'timeout' | wc -l; }
kill $BW; wait $BW
before=$(count); in_ns nft flush set inet breakwater banned4
t0=$(date +%s.%N)
ip netns exec "$ns" "$top/build/breakwater" serve -c "$tmp/bw.conf" -o log_level=info \
    2>> "$tmp/bw.log" & BW=$!
for _ in $(seq 200); do   # bounded: 20 s
    [ "$(count)" -ge "$before" ] && break
    sleep 0.1
done
t1=$(date +%s.%N)
echo "restore: $(count) of $before bans back in the flushed set" \
     "$(echo "$t1 - $t0" | bc) s after the start (polled every 0.1 s); the daemon says:"
grep "stored bans" "$tmp/bw.log" | tail -2 | sed 's/^/  /'
echo "daemon errors:"; grep -E "error" "$tmp/bw.log" | sed "s/^/  /"
