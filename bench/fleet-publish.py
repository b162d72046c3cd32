#!/usr/bin/env python3
"""bench/fleet-publish.py HOST PORT RATE SECONDS [NAME] - a synthetic fleet
peer: publishes RATE well-formed ban messages a second for SECONDS on
NAME:bans (default breakwater), each for a new address in 10.200.0.0/16
(then 10.201...), with origin "bench-peer" and the current time as SENT_MS,
pipelined in 10 ms batches over one Redis connection (RESP written by
hand: the standard library only). Prints how many were published and how
many subscribers Redis says each reached. Bounded by SECONDS and by 2**20
messages."""

import socket
import sys
import time


def resp(*words):
    out = [b"*%d\r\n" % len(words)]
    for w in words:
        w = w.encode() if isinstance(w, str) else w
        out.append(b"$%d\r\n%s\r\n" % (len(w), w))
    return b"".join(out)


def main():
    host, port, rate, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    name = sys.argv[5] if len(sys.argv) > 5 else "breakwater"
    s = socket.create_connection((host, port), timeout=10)
    s.setblocking(False)
    sent = 0
    replies = b""
    reached = []
    start = time.monotonic()
    limit = min(int(rate * secs), 1 << 20)
    while sent < limit and time.monotonic() - start < secs + 5:
        due = min(limit, int((time.monotonic() - start) * rate))
        batch = []
        now_ms = int(time.time() * 1000)
        while sent < due:
            n = sent
            addr = "10.%d.%d.%d" % (200 + n // 65024, (n % 65024) // 254, n % 254 + 1)
            msg = "ban v1 bench-peer %s %d 1 dnsbl %d" % (addr, now_ms + 600000, now_ms)
            batch.append(resp("PUBLISH", name + ":bans", msg))
            sent += 1
        if batch:
            data = b"".join(batch)
            s.setblocking(True)
            s.sendall(data)
            s.setblocking(False)
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                replies += chunk
        except BlockingIOError:
            pass
        lines = replies.split(b"\r\n")
        replies = lines.pop()
        reached.extend(int(l[1:]) for l in lines if l.startswith(b":"))
        time.sleep(0.01)
    s.setblocking(True)
    s.settimeout(5)
    try:
        while len(reached) < sent:
            chunk = s.recv(65536)
            if not chunk:
                break
            replies += chunk
            lines = replies.split(b"\r\n")
            replies = lines.pop()
            reached.extend(int(l[1:]) for l in lines if l.startswith(b":"))
    except socket.timeout:
        pass
    elapsed = time.monotonic() - start
    print("published %d ban messages in %.1f s (%.0f/s); Redis delivered each to %s subscribers"
          % (sent, elapsed, sent / elapsed, sorted(set(reached)) or "?"))


if __name__ == "__main__":
    main()
