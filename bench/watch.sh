#!/bin/bash
# bench/watch.sh - `breakwater watch` against fail2ban (Debian's 1.0.2), in
# a network namespace of its own.
#  1. Parsing: a log of LINES (default 1,000,000) Postfix lines shaped like
#     tests/data/logs/postfix-smtpd.log (connects, deliveries, non-DNSBL
#     rejects, reject_warning, anvil; varied IPv4/IPv6 addresses), 1% of
#     them DNSBL rejects each from a new address. `breakwater watch
#     --from-start` with ban_backend = none: wall time from its start until
#     it has read the whole file (/proc/PID/io rchar, polled every 5 ms),
#     its CPU seconds, and the line and reject counts of its exit summary.
#     Then `fail2ban-regex FILE 'postfix[mode=rbl]'` on the same file: wall
#     and CPU time, its match count.
#  2. Reaction: a listener on 127.0.0.1:25 holds one connection from each of
#     COUNT addresses (127.66.x.y); a writer appends one DNSBL reject line
#     per address at RATE lines/s to the followed log and times, on
#     CLOCK_MONOTONIC, each line's write to its connection's reset.
#     breakwater watch: ban_backend = nft, watch_kill = socket, user nobody,
#     watch_kill_delay = 0 (the machinery's own latency: the default waits
#     0.5 s on purpose, so that the MTA's reply is out first): the reset is
#     the SOCK_DESTROY after the ban, nothing else is needed.
#     fail2ban-server (private config dir, in-memory db, pyinotify backend,
#     jail postfix[mode=rbl], maxretry 1, action nftables-multiport with
#     blocktype `reject with tcp reset`): its rule answers packets only, so
#     each client whose line was written sends a byte every PROBE_MS (5) ms
#     and the reset comes with the first probe after the ban (0-5 ms added).
#     Rates: 10/s (30 lines), 100/s (200) for both; 1,000/s (2,000) for
#     breakwater only (fail2ban bans ~15-20 addresses/s here, see the 100/s
#     row: 2,000 would take minutes). breakwater once more at 1,000/s with
#     watch_kill = none, for the daemon's own queue-to-commit latency (the
#     exit summary's histogram) and the helper's CPU per ban without the
#     SOCK_DESTROY dumps.
# The machine's fail2ban service and /etc/fail2ban are not touched (its
# filter and action files are copied into the temporary directory).
# Needs build/breakwater (BW=path for another build), nftables, iproute2,
# python3, fail2ban; run as root. Bounded: every wait is a counted loop, a
# reaction run waits at most 20 s (fail2ban: 30 s) after its last line;
# about a minute in all. Everything is stopped, the namespace and the directory removed.
set -u
LINES=${LINES:-1000000}
PROBE_MS=${PROBE_MS:-5}
top=$(cd "$(dirname "$0")/.." && pwd)
BW=${BW:-$top/build/breakwater}
PY=${PY:-python3}
ns=bwwatch$$
tmp=$(mktemp -d); chmod 755 "$tmp"
WATCH=; F2B=
ip netns add "$ns"
trap '[ -n "$WATCH" ] && kill $WATCH 2>/dev/null; [ -n "$F2B" ] && kill $F2B 2>/dev/null
      wait 2>/dev/null; ip netns del "$ns"; rm -rf "$tmp"' EXIT
in_ns() { ip netns exec "$ns" "$@"; }
in_ns ip link set lo up
ulimit -n 8192 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cpu() { awk '{printf "%.2f", ($14 + $15) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
cpu_all() { awk '{printf "%.2f", ($14 + $15 + $16 + $17) / 100}' "/proc/$1/stat" 2>/dev/null || echo 0; }
waitfor() { # waitfor TENTHS FILE PATTERN - until PATTERN is in FILE (bounded)
    local i
    for ((i = 0; i < $1; i++)); do grep -q "$3" "$2" 2>/dev/null && return 0; sleep 0.1; done
    return 1
}
latency() { sed 's/1e+300s/>1s/g'; }   # the histogram's last bucket is +Inf

# ---- the log: awk, fixed seed --------------------------------------------
cat > "$tmp/gen.awk" <<'AWK'
function ts(   s) { s = t0 + n * 0.00093; return sprintf("2026-11-29T%02d:%02d:%09.6f+00:00", int(s / 3600) % 24, int(s / 60) % 60, s - 60 * int(s / 60)) }
function out(prog, pid, text) { print ts() " mx1 postfix/" prog "[" pid "]: " text; n++ }
function qid(   i, s) { s = ""; for (i = 0; i < 11; i++) s = s substr("0123456789ABCDEF", 1 + int(rand() * 16), 1); return s }
function clean() { if (rand() < 0.1) return sprintf("2001:db8:%x::%x", int(rand() * 65536), 1 + int(rand() * 65535))
    return sprintf("100.%d.%d.%d", 64 + int(rand() * 64), int(rand() * 256), 1 + int(rand() * 254)) }
function name() { return rand() < 0.5 ? "unknown" : sprintf("mail%d.example%d.net", int(rand() * 50), int(rand() * 900)) }
function listed(i) { return i % 10 == 9 ? sprintf("2001:db8:ffff::%x:%x", int(i / 65536), i % 65536) : sprintf("10.%d.%d.%d", int(i / 65536), int(i / 256) % 256, i % 256) }
BEGIN {
    srand(20261129); t0 = 12 * 3600; n = 0; rej = 0; pid = 11118
    while (n < total) {
        if (rand() < 0.02) pid = 11000 + int(rand() * 9000)
        c = name() "[" (a = clean()) "]"
        if (rej * 100 < n) {          # a DNSBL reject, each from a new address
            rej++; a = listed(rej); c = "unknown[" a "]"
            out("smtpd", pid, "connect from " c)
            out("smtpd", pid, "NOQUEUE: reject: RCPT from " c ": 554 5.7.1 Service unavailable; Client host [" a "] blocked using bl.test; Listed in bl.test, see http://bl.test/q?" a "; from=<sender@example.test> to=<alice@mx.test> proto=ESMTP helo=<client.example.test>")
            out("smtpd", pid, "disconnect from " c " ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4")
            continue
        }
        r = rand()
        out("smtpd", pid, "connect from " c)
        if (r < 0.80) {               # a delivered message (1 in 80 with a reject_warning)
            q = qid()
            if (r < 0.01) out("smtpd", pid, "NOQUEUE: reject_warning: RCPT from " c ": 554 5.7.1 Service unavailable; Client host [" a "] blocked using bl.test; Listed in bl.test, see http://bl.test/q?" a "; from=<sender@example.test> to=<alice@mx.test> proto=ESMTP helo=<client.example.test>")
            out("smtpd", pid, q ": client=" c)
            out("cleanup", pid + 44, q ": message-id=<2026112912" int(rand() * 1e6) "." pid "@" name() ">")
            out("qmgr", 11063, q ": from=<sender" int(rand() * 1e4) "@example.test>, size=" 400 + int(rand() * 90000) ", nrcpt=1 (queue active)")
            out("smtpd", pid, "disconnect from " c " ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5")
            out("local", pid + 46, q ": to=<alice@mx.test>, relay=local, delay=0.07, delays=0.02/0.04/0/0, dsn=2.0.0, status=sent (delivered to mailbox)")
            out("qmgr", 11063, q ": removed")
        } else {                      # refused for something other than a DNSBL
            k = int(rand() * 5)
            why = k == 0 ? "550 5.1.1 <nosuchuser@mx.test>: Recipient address rejected: User unknown in local recipient table" : \
                  k == 1 ? "454 4.7.1 <someone@elsewhere.test>: Relay access denied" : \
                  k == 2 ? "450 4.2.0 <alice+grey@mx.test>: Recipient address rejected: Greylisted, see http://postgrey.schweikert.ch/help/mx.test.html" : \
                  k == 3 ? "450 4.7.1 Client host rejected: cannot find your reverse hostname, [" a "]" : \
                           "554 5.7.1 <" c ">: Client host rejected: Access denied"
            out("smtpd", pid, "NOQUEUE: reject: RCPT from " c ": " why "; from=<sender@example.test> to=<alice@mx.test> proto=ESMTP helo=<client.example.test>")
            out("smtpd", pid, "disconnect from " c " ehlo=1 mail=1 rcpt=0/1 quit=1 commands=3/4")
        }
        if (rand() < 0.01) out("anvil", 11121, "statistics: max connection rate " int(1 + rand() * 9) "/60s for (smtp:" a ") at Nov 29 12:56:38")
    }
}
AWK

# ---- the reaction client: hold, write, time the resets --------------------
cat > "$tmp/react.py" <<'PY'
# react.py LOG COUNT RATE PROBE WAIT FIRST - see bench/watch.sh, part 2
import datetime, os, select, socket, sys, time
log, count, rate, probe, wait, first = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    float(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
interval = 1.0 / rate
addrs = ["127.66.%d.%d" % (10 + (first + i) // 250, 1 + (first + i) % 250) for i in range(count)]
lst = socket.socket(); lst.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
lst.bind(("127.0.0.1", 25)); lst.listen(4096)
clients, servers = [], []
for a in addrs:
    c = socket.socket(); c.settimeout(3); c.bind((a, 0)); c.connect(("127.0.0.1", 25))
    clients.append(c); servers.append(lst.accept()[0])
ep = select.epoll()
fdidx = {}
for i, c in enumerate(clients):
    c.setblocking(False); fdidx[c.fileno()] = i
    ep.register(c.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
written, reset, pending = [None] * count, [None] * count, set()
done = [False]
def gone(i, now):
    if reset[i] is None:
        reset[i] = now; pending.discard(i); ep.unregister(clients[i].fileno())
def poll(until):
    nextprobe = time.monotonic() + probe
    while True:
        now = time.monotonic()
        left = until - now
        if left <= 0 or (done[0] and not pending): return
        if probe > 0: left = min(left, max(0, nextprobe - now))
        for fd, ev in ep.poll(left):
            now = time.monotonic(); i = fdidx[fd]
            try: data = clients[i].recv(64)
            except OSError: data = b""
            if not data: gone(i, now)
        if probe > 0 and time.monotonic() >= nextprobe:
            nextprobe += probe
            for i in list(pending):
                try: clients[i].send(b"x")
                except OSError: gone(i, time.monotonic())
fd = os.open(log, os.O_WRONLY | os.O_APPEND)
start = time.monotonic() + 0.2
for i, a in enumerate(addrs):
    poll(start + i * interval)
    ts = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="microseconds")
    line = ("%s mx1 postfix/smtpd[%d]: NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 Service "
            "unavailable; Client host [%s] blocked using bl.test; Listed in bl.test, see "
            "http://bl.test/q?%s; from=<sender@example.test> to=<alice@mx.test> proto=ESMTP "
            "helo=<client.example.test>\n") % (ts, 20000 + i % 1000, a, a, a)
    t = time.monotonic()
    os.write(fd, line.encode())
    written[i] = t
    if reset[i] is None: pending.add(i)
last = time.monotonic()
done[0] = True
poll(last + wait)
early = sum(1 for i in range(count) if reset[i] is not None and reset[i] < written[i])
lat = sorted((reset[i] - written[i]) * 1000 for i in range(count) if reset[i] is not None)
def q(p): return "%.1f" % lat[min(len(lat) - 1, int(p * len(lat)))] if lat else "-"
span = max(r for r in reset if r is not None) - written[0] if lat else 0
cpu = os.times()
print("%d lines at %.0f/s; reset %d of %d (early %d) in %.2f s; write->reset ms p50 %s p90 %s "
      "p99 %s max %s; client CPU %.2f s" % (count, (count - 1) / max(last - written[0], 1e-9) if count > 1 else rate,
      len(lat), count, early, span, q(0.5), q(0.9), q(0.99), "%.1f" % lat[-1] if lat else "-", cpu.user + cpu.system))
PY

cat > "$tmp/watch.conf" <<CONF
ban_backend = nft
ban_ports = 25
watch_ports = 25
watch_kill = socket
watch_kill_delay = 0
state_dir = $tmp/state
user = nobody
log_level = info
CONF

# ---- 1. parsing ----------------------------------------------------------
awk -v total="$LINES" -f "$tmp/gen.awk" | head -n "$LINES" > "$tmp/big.log"
chmod 644 "$tmp/big.log"
size=$(stat -c %s "$tmp/big.log")
want=$(grep -c ' reject: RCPT .* blocked using ' "$tmp/big.log")
echo "1. parsing: $LINES lines, $size bytes, $want DNSBL reject lines (each from a new address)"
t0=$(date +%s.%N)
ip netns exec "$ns" "$BW" watch -c "$tmp/watch.conf" -o ban_backend=none --from-start \
    "$tmp/big.log" 2> "$tmp/parse.bw" & WATCH=$!   # exec: $! is the daemon
rchar=0
for ((i = 0; i < 12000; i++)); do   # bounded: 60 s
    read -r _ rchar < "/proc/$WATCH/io" 2>/dev/null || break
    [ "$rchar" -ge "$size" ] && break
    sleep 0.005
done
t1=$(date +%s.%N)
bwcpu=$(cpu $WATCH)
kill $WATCH; wait $WATCH; WATCH=
bwwall=$(echo "$t1 - $t0" | bc)
sum=$(grep 'watch: [0-9]* lines' "$tmp/parse.bw" | sed 's/.*watch: //')
bwlines=$(echo "$sum" | awk '{print $1}'); bwrej=$(echo "$sum" | awk '{print $3}')
bwrate=$(echo "$bwlines / $bwwall" | bc); bwcrate=$(echo "$bwlines / $bwcpu" | bc)
echo "  breakwater watch: read all in $bwwall s (rchar $rchar), CPU $bwcpu s; summary: $sum"
echo "  => $bwrate lines/s wall (start-up included), $bwcrate lines per CPU second"
TIMEFORMAT='%R %U %S'
{ time in_ns fail2ban-regex "$tmp/big.log" 'postfix[mode=rbl]' > "$tmp/regex.out" 2>&1; } 2> "$tmp/regex.time"
read -r f2wall f2u f2s < "$tmp/regex.time"
f2cpu=$(echo "$f2u + $f2s" | bc)
f2sum=$(grep '^Lines:' "$tmp/regex.out")
f2lines=$(echo "$f2sum" | awk '{print $2}'); f2match=$(echo "$f2sum" | awk '{print $6}')
echo "  fail2ban-regex postfix[mode=rbl]: $f2wall s wall, CPU $f2cpu s; $f2sum"
echo "  => $(echo "$f2lines / $f2wall" | bc) lines/s wall, $(echo "$f2lines / $f2cpu" | bc) lines per CPU second"

# ---- 2. reaction, breakwater ----------------------------------------------
in_ns sh -c "'$BW' rules -c '$tmp/watch.conf' | nft -f -"
next=0   # the next unused address index (127.66.10.1 on)
declare -A bwrow bwsum
bw_phase() { # bw_phase RATE COUNT [KILL] - a fresh watch (and store) each time
    local rate=$1 count=$2 kill=${3:-socket} log=$tmp/react-$1-${3:-socket}.log
    local out=$tmp/react-$1-${3:-socket}.bw wait=20 warm=$((rate % 200 + ${#kill}))
    : > "$log"; chmod 644 "$log"; rm -rf "$tmp/state"
    ip netns exec "$ns" "$BW" watch -c "$tmp/watch.conf" -o watch_kill="$kill" "$log" \
        2> "$out" & WATCH=$!
    waitfor 50 "$out" "watching $log" || echo "  (watch did not start)"
    printf '%s\n' "$(date -u +%FT%T.%6N+00:00) mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[127.66.9.$warm]: 554 5.7.1 Service unavailable; Client host [127.66.9.$warm] blocked using bl.test; from=<a@b.test> to=<c@d.test> proto=ESMTP helo=<x>" >> "$log"
    waitfor 50 "$out" "action=ban" || echo "  (warm-up ban not seen)"
    sleep 0.3
    local helper c0 h0 r c1 h1
    helper=$(pgrep -P $WATCH | head -1); c0=$(cpu $WATCH); h0=$(cpu "$helper")
    [ "$kill" = none ] && wait=1   # nothing is reset: only the daemon's figures count
    r=$(in_ns "$PY" "$tmp/react.py" "$log" "$count" "$rate" 0 $wait $next)
    next=$((next + count))
    [ "$kill" = none ] && sleep 3  # the last bans go in
    c1=$(cpu $WATCH); h1=$(cpu "$helper")
    kill $WATCH; wait $WATCH; WATCH=
    local sum; sum=$(grep 'watch: [0-9]* lines' "$out" | sed 's/.*watch: //' | latency)
    echo "  breakwater, watch_kill = $kill: $r"
    echo "    $sum (+1 warm-up line); CPU watch $(echo "$c1 - $c0" | bc) s," \
         "helper $(echo "$h1 - $h0" | bc) s = $(echo "($h1 - $h0) * 1000 / ($count + 1)" | bc -l | \
         xargs printf %.2f) ms per ban"
    bwrow[$rate$kill]=$r
    bwsum[$rate$kill]="$(echo "$sum" | sed -n 's/.*ban latency p50 \([^ ]*\) p99 \([^ ;]*\).*/p50 \1, p99 \2/p');\
 helper $(echo "($h1 - $h0) * 1000 / ($count + 1)" | bc -l | xargs printf %.2f) ms CPU per ban"
}
echo "2. reaction: line written -> the client's connection to port 25 reset"
bw_phase 10 30
bw_phase 100 200
bw_phase 1000 2000
bw_phase 1000 2000 none

# ---- 3. reaction, fail2ban -------------------------------------------------
f2b=$tmp/f2b; mkdir -p "$f2b/filter.d" "$f2b/action.d"
cp /etc/fail2ban/filter.d/common.conf /etc/fail2ban/filter.d/postfix.conf "$f2b/filter.d/"
cp /etc/fail2ban/action.d/nftables.conf /etc/fail2ban/action.d/nftables-multiport.conf "$f2b/action.d/"
cat > "$f2b/fail2ban.conf" <<CONF
[DEFAULT]
loglevel = INFO
logtarget = $f2b/fail2ban.log
syslogsocket = auto
allowipv6 = auto
socket = $f2b/sock
pidfile = $f2b/pid
dbfile = :memory:
dbpurgeage = 1d
[Definition]
[Thread]
CONF
f2log=$tmp/f2b-mail.log; : > "$f2log"; chmod 644 "$f2log"
cat > "$f2b/jail.conf" <<CONF
[DEFAULT]
ignoreself = false
ignoreip =
bantime = 1h
findtime = 10m
maxretry = 1
backend = pyinotify
[postfix-watch]
enabled = true
filter = postfix[mode=rbl]
logpath = $f2log
action = nftables-multiport[name=postfix-watch, port="25", protocol=tcp, blocktype="reject with tcp reset"]
CONF
declare -A f2row
ip netns exec "$ns" fail2ban-server -c "$f2b" -s "$f2b/sock" -p "$f2b/pid" -f -x \
    > "$f2b/server.out" 2>&1 & F2B=$!
if waitfor 100 "$f2b/fail2ban.log" "Jail 'postfix-watch' started"; then
    printf '%s\n' "$(date -u +%FT%T.%6N+00:00) mx1 postfix/smtpd[1]: NOQUEUE: reject: RCPT from unknown[127.66.9.251]: 554 5.7.1 Service unavailable; Client host [127.66.9.251] blocked using bl.test; from=<a@b.test> to=<c@d.test> proto=ESMTP helo=<x>" >> "$f2log"
    waitfor 100 "$f2b/fail2ban.log" "Ban 127.66.9.251" || echo "  (fail2ban warm-up ban not seen)"
    for ((i = 0; i < 50; i++)); do in_ns nft list set inet f2b-table addr-set-postfix-watch 2>/dev/null \
        | grep -q 127.66.9.251 && break; sleep 0.1; done
    for spec in "10 30" "100 200"; do
        set -- $spec
        c0=$(cpu_all $F2B)
        r=$(in_ns "$PY" "$tmp/react.py" "$f2log" "$2" "$1" "$(echo "$PROBE_MS / 1000" | bc -l)" 30 $next)
        next=$((next + $2))
        echo "  fail2ban $r"
        echo "    CPU fail2ban-server with its nft children $(echo "$(cpu_all $F2B) - $c0" | bc) s"
        f2row[$1]=$r
    done
    echo "  fail2ban: $(grep -c ' Found ' "$f2b/fail2ban.log") found, $(grep -c ' Ban ' "$f2b/fail2ban.log") banned (1 warm-up each)"
else
    echo "  fail2ban-server did not start:"; sed 's/^/    /' "$f2b/server.out" | tail -5
fi
kill $F2B; for ((i = 0; i < 100; i++)); do kill -0 $F2B 2>/dev/null || break; sleep 0.1; done
wait $F2B 2>/dev/null; F2B=

# ---- report ---------------------------------------------------------------
pct() { echo "$1" | sed -n "s/.*p50 \([^ ]*\) p90 [^ ]* p99 \([^ ]*\) max \([^ ;]*\).*/p50 \1, p99 \2, max \3 ms/p"; }
got() { echo "$1" | sed -n 's/.*reset \([0-9]*\) of \([0-9]*\).*/\1 of \2 reset/p'; }
echo
echo "| Figure | breakwater watch | fail2ban 1.0.2 |"
echo "|---|---|---|"
echo "| parse $LINES Postfix lines (1% DNSBL rejects), lines/s wall | $bwrate ($bwwall s, start-up included) | $(echo "$f2lines / $f2wall" | bc) (fail2ban-regex, $f2wall s) |"
echo "| ... lines per CPU second | $bwcrate ($bwcpu s) | $(echo "$f2lines / $f2cpu" | bc) ($f2cpu s) |"
echo "| ... DNSBL rejects found (of $want) | $bwrej (lines counted: $bwlines) | $f2match (lines: $f2lines) |"
for rate in 10 100 1000; do
    b=${bwrow[${rate}socket]:-}; f=${f2row[$rate]:-}
    [ -n "$f" ] && f="$(pct "$f"); $(got "$f") (probe every $PROBE_MS ms)" || f="not run"
    echo "| line written -> connection reset, $rate lines/s | $(pct "$b"); $(got "$b") | $f |"
done
for k in 10socket 100socket 1000socket 1000none; do
    echo "| ban queued -> nft commit (daemon), ${k%%[a-z]*} lines/s, watch_kill = ${k##*[0-9]} | ${bwsum[$k]} | - |"
done
