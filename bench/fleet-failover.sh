#!/bin/bash
# bench/fleet-failover.sh [HOSTS] [RATE] [SECONDS] [KILL_AT] - a fleet of
# HOSTS breakwater instances (default 3) following a Redis Sentinel
# failover while they ban: RATE bans/s in all (default 1000, split evenly)
# for SECONDS (default 20); the master is SIGKILLed KILL_AT seconds in
# (default 5).
#
# A hub namespace holds the master redis-server (10.80.0.1:6379), its
# replica (10.80.0.2:6379, replicaof the master) and three sentinels
# (10.80.0.1:26379, :26380, :26381; quorum 2, down-after-milliseconds
# 1000, failover-timeout 10000, requirepass), joined by a bridge to the
# hosts. Each host runs in a network namespace of its own with its own
# nft ruleset (ban_backend = nft), listening on 127.0.0.1:2525 there, with
#   fleet_redis = redis-sentinel://bw:PASS@10.80.0.1:26379,...:26380,...:26381/mx
# (the documented ACL, +role); its own build/bench/wave sends it
# denylisted bots from fresh loopback addresses of its own net
# (127.(64+i).0.0/16), so each host bans RATE/HOSTS addresses a second and
# publishes each ban; every other host receives it and puts it in its set.
# A sampler in the hub reads every host's metrics every 100 ms, kills the
# master at KILL_AT and, after the generators stop, waits (at most 60 s)
# for every host's backlog to drain and every ban to arrive.
#
# Reports, as plain text lines: bans/s made, published and arrived at the
# other hosts in 1 s buckets across the kill; the gap at each receiving
# host (the longest stretch without a peer ban applied, across the kill);
# the failover Sentinel made (its own log: +sdown, +odown, +switch-master);
# when each host lost the master and was on the new one; whether anything
# was lost (every address each host banned itself is looked for in every
# other host's nft set); the hosts' warnings and errors, timed from the kill.
#
# Needs BREAKWATER (default build/breakwater) and WAVE (default
# build/bench/wave), both relative to the repository's top unless
# absolute; redis-server, redis-cli, nftables, iproute2, python3; run as
# root. KEEP=DIR copies the logs, samples and sets there before cleanup.
# Exit status 0 when nothing was lost, 1 when something was, 2 when the
# set-up failed.
set -u
HOSTS=${1:-3}
RATE=${2:-1000}
SECS=${3:-20}
KILL_AT=${4:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
abs() { case $1 in /*) echo "$1" ;; *) echo "$top/$1" ;; esac; }
BW=$(abs "${BREAKWATER:-build/breakwater}")
WAVE=$(abs "${WAVE:-build/bench/wave}")
usage() {
    echo "usage: [BREAKWATER=PATH] [WAVE=PATH] [KEEP=DIR] $0 [HOSTS] [RATE] [SECONDS] [KILL_AT]" >&2
    echo "  HOSTS 2..50 (3), RATE bans/s in all (1000), SECONDS 4..120 (20)," \
         "KILL_AT seconds in, 1..SECONDS-2 (5)" >&2
    exit 2
}
isnum() { [[ $1 =~ ^[0-9]+$ ]]; }
isnum "$HOSTS" && isnum "$RATE" && isnum "$SECS" && isnum "$KILL_AT" || usage
[ "$HOSTS" -ge 2 ] && [ "$HOSTS" -le 50 ] && [ "$SECS" -ge 4 ] && [ "$SECS" -le 120 ] &&
    [ "$KILL_AT" -ge 1 ] && [ "$KILL_AT" -le $((SECS - 2)) ] && [ "$RATE" -ge "$HOSTS" ] || usage
# every host's nft set holds every ban of the run: keep well under its
# 65,536 elements (and each host's /16 of fresh addresses, 65,024)
[ $((RATE * SECS)) -le 60000 ] || { echo "RATE x SECONDS must be at most 60000 (every" \
    "host's nft set holds every ban of the run)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 2; }
for x in "$BW" "$WAVE"; do [ -x "$x" ] || { echo "$x missing (make, make bench)" >&2; exit 2; }; done
for c in redis-server redis-cli nft ip python3; do
    command -v "$c" > /dev/null || { echo "$c missing" >&2; exit 2; }
done

PASS=fleet-failover-secret
SPASS=sentinel-failover-secret
NET=10.80.0
MASTER=mx
SENTINELS=(26379 26380 26381)
tag=$$
tmp=$(mktemp -d /tmp/bw-failover.XXXXXX); chmod 755 "$tmp"
hub=bwff-h$tag
pids=()        # every long-lived process started here (killed at the end)
REDIS=""
created=()     # namespaces made here

# stop - TERM, then KILL after 5 s, each pid of ours; bounded
stop() {
    local p left
    for p in "$@"; do kill "$p" 2> /dev/null; done
    for _ in $(seq 50); do
        left=0
        for p in "$@"; do kill -0 "$p" 2> /dev/null && left=1; done
        [ $left = 0 ] && break
        sleep 0.1
    done
    for p in "$@"; do kill -9 "$p" 2> /dev/null; done
}
cleanup() {
    trap '' INT TERM
    [ ${#pids[@]} -gt 0 ] && stop "${pids[@]}"
    local ns left
    for ns in "${created[@]}"; do   # anything still running in our namespaces
        left=$(ip netns pids "$ns" 2> /dev/null)
        [ -n "$left" ] && stop $left
        ip netns del "$ns" 2> /dev/null
    done
    if [ -n "${KEEP:-}" ]; then mkdir -p "$KEEP" && cp -r "$tmp"/. "$KEEP"/; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'echo "interrupted" >&2; exit 130' INT TERM
fail() { echo "$*" >&2; exit 2; }
# stamp - each line of stdin with the time it came (for the hosts' logs)
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
# until_true TENTHS CMD... - CMD every 0.1 s until it succeeds, at most TENTHS times
until_true() {
    local n=$1; shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
    return 1
}
hubcli() { ip netns exec "$hub" redis-cli --no-auth-warning "$@" 2> /dev/null; }
rcli() { hubcli -h "$1" -p 6379 --user admin --pass "$PASS" "${@:2}"; }
scli() { hubcli -h $NET.1 -p "$1" --pass "$SPASS" "${@:2}"; }

# -- the hub: master, replica, sentinels
ip netns add "$hub" || fail "cannot make namespace $hub"
created+=("$hub")
ip -n "$hub" link add br0 type bridge
ip -n "$hub" addr add $NET.1/24 dev br0
ip -n "$hub" addr add $NET.2/24 dev br0
ip -n "$hub" link set br0 up
ip -n "$hub" link set lo up
ACL="~breakwater:* &breakwater:* +get +set +eval +publish +subscribe +scan +ping +select"
ACL="$ACL +auth +role"   # the documented rights, and ROLE for redis-sentinel://
redis_conf() {   # ADDR [EXTRA]
    mkdir -p "$tmp/redis-$1"
    cat > "$tmp/redis-$1/redis.conf" <<CONF
bind $1
port 6379
save ""
appendonly no
dir $tmp/redis-$1
user default off
user admin on >$PASS ~* &* +@all
user bw on >$PASS $ACL
masteruser admin
masterauth $PASS
replica-announce-ip $1
${2:-}
CONF
}
redis_conf $NET.1
redis_conf $NET.2 "replicaof $NET.1 6379"
ip netns exec "$hub" redis-server "$tmp/redis-$NET.1/redis.conf" \
    > "$tmp/redis-$NET.1/redis.log" 2>&1 & REDIS=$!
pids+=("$REDIS")
disown "$REDIS"   # its SIGKILL is the point: no "Killed" from bash
master_up() { [ "$(rcli $NET.1 PING)" = PONG ]; }
until_true 100 master_up || fail "the master does not answer"
ip netns exec "$hub" redis-server "$tmp/redis-$NET.2/redis.conf" \
    > "$tmp/redis-$NET.2/redis.log" 2>&1 & pids+=($!)
replica_up() { rcli $NET.2 INFO replication | grep -q "master_link_status:up"; }
until_true 150 replica_up || fail "the replica does not sync"
for port in "${SENTINELS[@]}"; do
    d=$tmp/sentinel-$port; mkdir -p "$d"
    cat > "$d/sentinel.conf" <<CONF
port $port
bind $NET.1
dir $d
sentinel monitor $MASTER $NET.1 6379 2
sentinel down-after-milliseconds $MASTER 1000
sentinel failover-timeout $MASTER 10000
sentinel auth-user $MASTER admin
sentinel auth-pass $MASTER $PASS
requirepass $SPASS
sentinel sentinel-pass $SPASS
CONF
    ip netns exec "$hub" redis-server "$d/sentinel.conf" --sentinel > "$d/sentinel.log" 2>&1 &
    pids+=($!)
done
for port in "${SENTINELS[@]}"; do   # each knows the two others: a failover can be voted
    quorum_ok() { scli "$port" SENTINEL ckquorum $MASTER | grep -q "^OK 3 "; }
    until_true 300 quorum_ok || fail "sentinel :$port does not see the two others"
done

# -- the hosts
url="redis-sentinel://bw:$PASS@$NET.1:26379,$NET.1:26380,$NET.1:26381/$MASTER"
per=$(awk -v r="$RATE" -v h="$HOSTS" 'BEGIN { printf "%g", r / h }')
for i in $(seq "$HOSTS"); do
    ns=bwff$i-$tag
    ip netns add "$ns" || fail "cannot make namespace $ns"
    created+=("$ns")
    ip -n "$hub" link add "v$i" type veth peer name eth0 netns "$ns"
    ip -n "$hub" link set "v$i" master br0
    ip -n "$hub" link set "v$i" up
    ip -n "$ns" addr add "$NET.$((10 + i))/24" dev eth0
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
metrics_listen = $NET.$((10 + i)):9625
fleet_redis = $url
fleet_sentinel_password = $SPASS
fleet_host_id = host$i
CONF
    ip netns exec "$ns" sh -c "'$BW' rules -c '$tmp/bw$i.conf' | nft -f -" ||
        fail "host$i: the nft ruleset does not load"
    ip netns exec "$ns" "$BW" serve -c "$tmp/bw$i.conf" 2> >(stamp > "$tmp/bw$i.log") &
    pids+=($!)
done
subscribed() { [ "$(rcli $NET.1 PUBSUB NUMSUB breakwater:bans | tail -1)" = "$HOSTS" ]; }
if ! until_true 300 subscribed; then   # bounded: 30 s
    for i in $(seq "$HOSTS"); do echo "host$i:"; cut -d' ' -f2- "$tmp/bw$i.log"; done >&2
    fail "not every host listens on the channel"
fi
for i in $(seq "$HOSTS"); do
    if grep -q "error" "$tmp/bw$i.log"; then cut -d' ' -f2- "$tmp/bw$i.log" >&2
        fail "host$i logged an error at start"; fi
done

# -- the sampler: every host's metrics every 100 ms; kills the master at
# KILL_AT; after the generators stop, waits for the backlog to drain
cat > "$tmp/sampler.py" <<'PY'
import json, os, re, signal, sys, time, urllib.request
tmp, hosts, t0, kill_at, secs, pid = (sys.argv[1], int(sys.argv[2]), float(sys.argv[3]),
                                      float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6]))
net = sys.argv[7]
LINE = re.compile(r'^(breakwater_fleet_\w+|breakwater_bans_total)(\{[^}]*\})? (\S+)$', re.M)
def scrape(i):
    try:
        text = urllib.request.urlopen("http://%s.%d:9625/metrics" % (net, 10 + i),
                                      timeout=0.5).read().decode()
    except Exception as e:
        return None
    m = {}
    for name, labels, value in LINE.findall(text):
        if name == "breakwater_fleet_master_info":
            m["master"] = re.search(r'address="([^"]*)"', labels).group(1)
            continue
        if "_bucket" in name or name.endswith("_sum") or name.endswith("_count"):
            continue
        m[name + labels] = float(value)
    return m
def made(m):   # bans this host made itself: its firewall requests less the peers' applied
    return (m.get('breakwater_bans_total{backend="nft",result="requested"}', 0)
            - m.get('breakwater_fleet_bans_total{result="applied"}', 0))
SENT = 'breakwater_fleet_bans_total{result="sent"}'
APPLIED = 'breakwater_fleet_bans_total{result="applied"}'
out = open(tmp + "/samples.jsonl", "w")
killed, done_at, last_change, last_key, why = None, None, time.time(), None, "deadline"
deadline = t0 + secs + 15 + 60 + 10       # the generators, their wait, the drain, slack
latest = {}
while time.time() < deadline:
    now = time.time()
    if killed is None and now >= t0 + kill_at:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            sys.exit("the master was gone before its kill")
        killed = time.time()
        open(tmp + "/kill.txt", "w").write("%.6f\n" % killed)
    for i in range(1, hosts + 1):
        a = time.time()
        m = scrape(i)
        b = time.time()
        if m is not None:
            latest[i] = m
            out.write(json.dumps({"t": (a + b) / 2, "h": i, "m": m}) + "\n")
    out.flush()
    key = json.dumps(latest, sort_keys=True)
    if key != last_key:
        last_key, last_change = key, time.time()
    if done_at is None and os.path.exists(tmp + "/waves-done"):
        done_at = time.time()
    if done_at is not None and len(latest) == hosts:
        mades = {i: made(latest[i]) for i in latest}
        sent_all = all(latest[i].get(SENT, 0) >= mades[i] for i in latest)
        applied_all = all(latest[j].get(APPLIED, 0) >= sum(mades[i] for i in latest if i != j)
                          for j in latest)
        if sent_all and applied_all and time.time() - done_at >= 1:
            why = "drained"
            break
        if time.time() - last_change >= 10:
            why = "nothing changed for 10 s"
            break
        if time.time() - done_at >= 60:
            why = "60 s after the generators stopped"
            break
    time.sleep(max(0.0, 0.1 - (time.time() - now)))
open(tmp + "/drain.txt", "w").write("%s %.3f\n" % (why, time.time() - (done_at or time.time())))
PY
t0=$EPOCHREALTIME
ip netns exec "$hub" python3 "$tmp/sampler.py" "$tmp" "$HOSTS" "$t0" "$KILL_AT" "$SECS" \
    "$REDIS" "$NET" 2> "$tmp/sampler.err" & SAMPLER=$!
pids+=("$SAMPLER")
waves=()
for i in $(seq "$HOSTS"); do
    ip netns exec "bwff$i-$tag" "$WAVE" -t 127.0.0.1:2525 -d "$SECS" -r "$per" --mix listed=100 \
        --fresh-addresses --listed-net "127.$((64 + i)).0.0/16" > "$tmp/wave$i.txt" 2>&1 &
    waves+=($!); pids+=($!)
done
for _ in $(seq $(((SECS + 15) * 10))); do   # -d is a hard end: 15 s of slack at most
    left=0; for p in "${waves[@]}"; do kill -0 "$p" 2> /dev/null && left=1; done
    [ $left = 0 ] && break
    sleep 0.1
done
stop "${waves[@]}"
echo "$EPOCHREALTIME" > "$tmp/waves-done"
for _ in $(seq 1000); do kill -0 "$SAMPLER" 2> /dev/null || break; sleep 0.1; done  # <= 100 s
stop "$SAMPLER"
[ -f "$tmp/kill.txt" ] || { cat "$tmp/sampler.err" >&2; fail "the sampler did not kill the master"; }

# -- what is in each host's set now
for i in $(seq "$HOSTS"); do
    ip netns exec "bwff$i-$tag" nft -j list set inet breakwater banned4 > "$tmp/set$i.json"
    ip netns exec "bwff$i-$tag" "$BW" ctl -c "$tmp/bw$i.conf" stats > "$tmp/stats$i.txt" 2>&1
done
rcli $NET.2 ROLE | head -1 > "$tmp/replica-role.txt"

cat > "$tmp/report.py" <<'PY'
import datetime, json, math, re, sys
tmp, hosts, rate, secs, kill_at, per, net = (sys.argv[1], int(sys.argv[2]), int(sys.argv[3]),
                                             int(sys.argv[4]), int(sys.argv[5]), sys.argv[6],
                                             sys.argv[7])
t0 = float(sys.argv[8])
kill = float(open(tmp + "/kill.txt").read())
waves_done = float(open(tmp + "/waves-done").read())
drain_why, drain_s = open(tmp + "/drain.txt").read().rsplit(" ", 1)
SENT = 'breakwater_fleet_bans_total{result="sent"}'
RECEIVED = 'breakwater_fleet_bans_total{result="received"}'
APPLIED = 'breakwater_fleet_bans_total{result="applied"}'
REQUESTED = 'breakwater_bans_total{backend="nft",result="requested"}'
CONNECTED = 'breakwater_fleet_connected'
samples = {i: [] for i in range(1, hosts + 1)}
for line in open(tmp + "/samples.jsonl"):
    s = json.loads(line)
    samples[s["h"]].append((s["t"], s["m"]))
def made(m): return m.get(REQUESTED, 0) - m.get(APPLIED, 0)
def at(i, t):
    """host i's last sample at or before t (its first if none)"""
    last = samples[i][0][1] if samples[i] else {}
    for ts, m in samples[i]:
        if ts > t:
            break
        last = m
    return last
import bisect
times = {i: [t for t, m in samples[i]] for i in samples}
def val(i, t, f):
    """f of host i's counters at t, interpolated between the samples around it"""
    k = bisect.bisect_right(times[i], t)
    if k == 0 or k == len(times[i]):
        return f(samples[i][min(k, len(times[i]) - 1)][1]) if times[i] else 0
    (ta, ma), (tb, mb) = samples[i][k - 1], samples[i][k]
    return f(ma) + (f(mb) - f(ma)) * (t - ta) / (tb - ta)
def rel(t): return "%+.2f s" % (t - kill)
out = []
say = out.append

say("fleet failover: %d hosts through Redis Sentinel (3 sentinels, quorum 2, down-after "
    "1000 ms, failover-timeout 10000 ms; master %s.1:6379, replica %s.2:6379); %d bans/s "
    "asked in all (%s/s per host) for %d s; the master SIGKILLed at +%.2f s"
    % (hosts, net, net, rate, per, secs, kill - t0))

# -- Sentinel, from its logs
EV = re.compile(r"^\d+:X (\d+ \w+ \d+ [\d:.]+) . (\+\S+|-\S+) (.*)$")
events = {}
for port in (26379, 26380, 26381):
    for line in open("%s/sentinel-%d/sentinel.log" % (tmp, port), errors="replace"):
        m = EV.match(line.strip())
        if not m:
            continue
        t = datetime.datetime.strptime(m.group(1), "%d %b %Y %H:%M:%S.%f").timestamp()
        if t < kill - 0.5:
            continue
        ev = m.group(2)
        if ev not in events or t < events[ev][0]:
            events[ev] = (t, port, m.group(3))
def ev(name):
    e = events.get(name)
    return "%s (:%d)" % (rel(e[0]), e[1]) if e else "never"
sw = events.get("+switch-master")
say("sentinel: +sdown %s, +odown %s, +elected-leader %s, +promoted-slave %s, "
    "+switch-master %s%s" % (ev("+sdown"), ev("+odown"), ev("+elected-leader"),
                             ev("+promoted-slave"), ev("+switch-master"),
                             " -> " + " ".join(sw[2].split()[3:5]) if sw else ""))
say("failover time (the kill to Sentinel's +switch-master): %s"
    % ("%.2f s" % (sw[0] - kill) if sw else "no failover in the sentinels' logs"))

# -- each host's link, from its samples
for i in range(1, hosts + 1):
    lost = back = None
    before = at(i, kill).get("master", "?")
    for t, m in samples[i]:
        if t < kill:
            continue
        if lost is None and m.get(CONNECTED, 1) == 0:
            lost = t
        if m.get("master", before) != before and m.get(CONNECTED, 0) >= 1:
            back = (t, m.get("master"), int(m.get("breakwater_fleet_failovers_total", 0)))
            break
    say("host%d: on %s before the kill; %s; %s" % (
        i, before, "seen disconnected at %s" % rel(lost) if lost else
        "not seen disconnected (100 ms samples)",
        "on %s at %s (fleet_failovers_total %d)" % (back[1], rel(back[0]), back[2]) if back
        else "never on another master"))

# -- 1 s buckets across the kill
first = -min(3, int(kill_at))
end_k = int(math.ceil(waves_done - kill)) + 2
last = min(end_k, first + 40)
say("")
say("| second from the kill | bans made/s (all hosts) | published/s (sent) | "
    "arrived/s at the other hosts (applied, mean per host) | received/s (mean per host) | "
    "hosts connected (fewest) |")
say("|---:|---:|---:|---:|---:|---:|")
def total(t, f):
    return sum(val(i, t, f) for i in range(1, hosts + 1))
for k in range(first, last):
    a, b = kill + k, kill + k + 1
    mk = total(b, made) - total(a, made)
    sn = total(b, lambda m: m.get(SENT, 0)) - total(a, lambda m: m.get(SENT, 0))
    ap = (total(b, lambda m: m.get(APPLIED, 0)) - total(a, lambda m: m.get(APPLIED, 0))) / (hosts - 1)
    rc = (total(b, lambda m: m.get(RECEIVED, 0)) - total(a, lambda m: m.get(RECEIVED, 0))) / hosts
    conn = []
    for i in range(1, hosts + 1):
        pts = [m for t, m in samples[i] if a <= t < b]
        conn.append(min([m.get(CONNECTED, 0) for m in pts]) if pts else at(i, a).get(CONNECTED, 0))
    say("| %s%d..%s%d | %.0f | %.0f | %.0f | %.0f | %d of %d |" % (
        "+" if k >= 0 else "", k, "+" if k + 1 >= 0 else "", k + 1, mk, sn, ap, rc,
        sum(1 for c in conn if c >= 1), hosts))
say("(the generators stopped at %s; k..k+1 is the second from k to k+1 s after the kill; "
    "counters sampled every 100 ms, interpolated; received counts also the live bans a host "
    "reads again (SCAN) once subscribed to the new master, applied only the new ones)"
    % rel(waves_done))

# -- the gap at each receiving host
say("")
gaps = []
for j in range(1, hosts + 1):
    ups, prev = [], None
    for t, m in samples[j]:
        v = m.get(APPLIED, 0)
        if prev is not None and v > prev:
            ups.append(t)
        prev = v
    best = None
    for x, y in zip(ups, ups[1:]):
        if y > kill and x < kill + 10 and (best is None or y - x > best[1] - best[0]):
            best = (x, y)
    if best:
        gaps.append(best[1] - best[0])
        say("gap at host%d: last peer ban applied at %s, next at %s: %.1f s without one"
            % (j, rel(best[0]), rel(best[1]), best[1] - best[0]))
    else:
        say("gap at host%d: no peer ban applied after the kill" % j)
if gaps:
    say("gap (the longest stretch without a peer ban applied, across the kill; 100 ms samples "
        "of applied): %.1f s to %.1f s" % (min(gaps), max(gaps)))

# -- lost?
say("")
def elems(i):
    doc = json.load(open("%s/set%d.json" % (tmp, i)))
    out = set()
    for o in doc.get("nftables", []):
        for e in o.get("set", {}).get("elem", []) or []:
            v = e["elem"]["val"] if isinstance(e, dict) and "elem" in e else e
            if isinstance(v, str):
                out.add(v)
    return out
sets = {i: elems(i) for i in range(1, hosts + 1)}
def own(i, s): return {a for a in s if a.startswith("127.%d." % (64 + i))}
ends = {i: samples[i][-1][1] for i in samples if samples[i]}
lost_any, made_all = 0, 0
rows = []
for i in range(1, hosts + 1):
    m = ends.get(i, {})
    mine = own(i, sets[i])
    made_all += len(mine)
    drops = {k.split('"')[1]: int(v) for k, v in m.items()
             if k.startswith("breakwater_fleet_bans_dropped_total") and v}
    missing = {j: len(mine - sets[j]) for j in range(1, hosts + 1) if j != i}
    lost_any += sum(missing.values())
    w = open("%s/wave%d.txt" % (tmp, i)).read()
    comp = re.search(r"^all .*completed (\d+) \(([0-9.]+)/s\)", w, re.M)
    rows.append("| host%d | %s | %d | %d | %d | %d | %s | %s |" % (
        i, "%s (%s/s)" % comp.groups() if comp else "?", made(m), len(mine),
        m.get(SENT, 0), made(m) - m.get(SENT, 0),
        ", ".join("%s %d" % kv for kv in sorted(drops.items())) or "0",
        ", ".join("host%d %d" % kv for kv in sorted(missing.items()))))
say("| host | bots refused (wave) | bans made (metrics) | own bans in its nft set | published "
    "(sent) | still waiting | dropped | of its bans missing from the other sets |")
say("|---|---:|---:|---:|---:|---:|---|---|")
out.extend(rows)
expect = sum(len(own(i, sets[i])) for i in sets)
say("nft sets at the end: %s (each should hold all %d bans of the run)"
    % (", ".join("host%d %d" % (i, len(sets[i])) for i in sets), expect))
say("end: %s, %.1f s after the generators stopped" % (drain_why, float(drain_s)))
for i in range(1, hosts + 1):
    st = dict(l.split(" ", 1) for l in open("%s/stats%d.txt" % (tmp, i)).read().splitlines()
              if " " in l)
    say("host%d ctl stats: %s" % (i, ", ".join("%s %s" % (k, st.get(k, "?")) for k in (
        "fleet_connected", "fleet_redis", "fleet_sentinel", "fleet_failovers_total"))))
say("lost: %s" % ("nothing -- every ban made on any host is in every other host's nft set"
                  if lost_any == 0 else "%d (ban, host) pairs missing" % lost_any))

# -- the hosts' warnings and errors, timed from the kill
say("")
say("host warnings and errors (time from the kill, first 12 per host):")
for i in range(1, hosts + 1):
    n = 0
    for line in open("%s/bw%d.log" % (tmp, i), errors="replace"):
        t, _, text = line.rstrip("\n").partition(" ")
        if not re.search(r"error|warning", text) or re.search(
                r"open-file limit|proxy_protocol|no dnsbl_sites", text):
            continue
        n += 1
        if n <= 12:
            say("  host%d %s %s" % (i, rel(float(t)), text))
    if n > 12:
        say("  host%d ... %d more" % (i, n - 12))
    if n == 0:
        say("  host%d none" % i)
print("\n".join(out))
sys.exit(1 if lost_any else 0)
PY
python3 "$tmp/report.py" "$tmp" "$HOSTS" "$RATE" "$SECS" "$KILL_AT" "$per" "$NET" "$t0"
status=$?
echo "the replica's role now: $(cat "$tmp/replica-role.txt")"
exit $status
