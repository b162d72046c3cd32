#!/usr/bin/env python3
"""A hostile peer that speaks just enough RESP to pass for a sentinel or a
Redis master, for the fleet's Sentinel tests (a real sentinel or Redis
cannot be made to misbehave on purpose).

  hostile_resp.py ADDRESS PORT MODE LOG [TARGET [ARG]]

Modes:
  sentinel      names TARGET (ADDRESS:PORT) as the master: a liar when
                TARGET is a replica
  switch-flood  names TARGET, then on SUBSCRIBE sends ARG +switch-master
                messages for "mx", alternating between TARGET and PORT+1
                of the same address, as fast as the socket takes them
  drip          answers the master query one byte a second, never ending
  readonly      a master by ROLE that refuses every write (READONLY)
  hangup        a master by ROLE that hangs up right after saying so
  bulk-bomb     answers the master query with a bulk string of ARG MiB,
                sent as fast as the socket takes it
  extra-reply   a master that answers AUTH twice (a reply to no command)
  short-message answers SUBSCRIBE, then sends a one-element message (as a
                master, or as a sentinel naming TARGET)
  scan-spin     a master that answers the first read of the live bans
                (EVAL with SCAN) ARG times with "go on at cursor 1",
                then reads no more: each answer makes the host queue the
                next read, unsent
  array-bomb    a master whose answer to ROLE is an array of ARG arrays
                of 1,000 integers each (4 bytes each on the wire, an
                object each in a client that builds the reply)

Every connection accepted is appended to LOG as "accept"; "listening"
once bound.
"""
import socket
import sys
import threading
import time

address, port, mode, log_path = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
target = sys.argv[5].rsplit(":", 1) if len(sys.argv) > 5 else None
arg = sys.argv[6] if len(sys.argv) > 6 else ""
log_lock = threading.Lock()


def log(word):
    with log_lock, open(log_path, "a") as f:
        f.write(word + "\n")


def bulk(text):
    data = text.encode()
    return b"$%d\r\n%s\r\n" % (len(data), data)


def array(*items):
    return b"*%d\r\n" % len(items) + b"".join(items)


MASTER_ROLE = array(bulk("master"), b":0\r\n", b"*0\r\n")


def read_command(f):
    line = f.readline()
    if not line.startswith(b"*"):
        return None
    args = []
    for _ in range(int(line[1:])):
        n = int(f.readline()[1:])
        args.append(f.read(n + 2)[:-2].decode("latin1"))
    return [args[0].upper()] + args[1:]


def answer(c, args):
    """One command; False to hang up."""
    cmd = args[0]
    if cmd == "SENTINEL" and mode == "drip":
        c.sendall(b"*2\r\n$1000000\r\n")
        while True:
            c.sendall(b"x")
            time.sleep(1)
    if cmd == "SENTINEL" and mode == "bulk-bomb":
        size = int(arg) << 20
        c.sendall(b"$%d\r\n" % size)
        chunk = b"x" * 65536
        for _ in range(size // len(chunk)):
            c.sendall(chunk)
        c.sendall(b"\r\n")
    elif cmd == "SENTINEL":
        c.sendall(array(bulk(target[0]), bulk(target[1])))
    elif cmd == "SUBSCRIBE":
        c.sendall(array(bulk("subscribe"), bulk(args[1]), b":1\r\n"))
        if mode == "short-message":
            c.sendall(b"*1\r\n$7\r\nmessage\r\n")
        if mode == "switch-flood":
            other = (target[0], str(int(target[1]) + 1))
            for i in range(int(arg)):
                new, old = (other, target) if i % 2 == 0 else (target, other)
                c.sendall(array(bulk("message"), bulk("+switch-master"),
                                bulk("mx %s %s %s %s" % (old[0], old[1], new[0], new[1]))))
    elif cmd == "ROLE" and mode == "array-bomb":
        inner = b"*1000\r\n" + b":1\r\n" * 1000
        c.sendall(b"*%d\r\n" % int(arg))
        for _ in range(int(arg)):
            c.sendall(inner)
    elif cmd == "ROLE":
        c.sendall(MASTER_ROLE)
        return mode != "hangup"
    elif cmd in ("EVAL", "SET") and mode == "readonly":
        c.sendall(b"-READONLY You can't write against a read only replica.\r\n")
    elif cmd == "EVAL" and "SCAN" in args[1] and mode == "scan-spin":
        go_on = array(bulk("1"), b"*0\r\n")
        c.sendall(go_on * int(arg))
        while True:
            time.sleep(1)
    elif cmd == "AUTH" and mode == "extra-reply":
        c.sendall(b"+OK\r\n+OK\r\n")
    elif cmd in ("AUTH", "SELECT", "SET"):
        c.sendall(b"+OK\r\n")
    elif cmd == "PING":
        c.sendall(b"+PONG\r\n")
    elif cmd == "SCAN":
        c.sendall(array(bulk("0"), b"*0\r\n"))
    elif cmd == "GET":
        c.sendall(b"$-1\r\n")
    else:
        c.sendall(b"-ERR unknown command\r\n")
    return True


def serve(c):
    f = c.makefile("rb")
    try:
        while True:
            args = read_command(f)
            if args is None or not answer(c, args):
                return
    except (OSError, ValueError):
        pass
    finally:
        c.close()


s = socket.socket(socket.AF_INET6 if ":" in address else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((address, port))
s.listen(128)
log("listening")
while True:
    conn, _ = s.accept()
    log("accept")
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
