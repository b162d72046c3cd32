"""Integration-test harness for breakwater: real processes on loopback.

Python 3 standard library only. Every wait is bounded.

Pieces (all usable from any test module, including the Postfix tests):

  BINARY, SANITIZED          set by run.py (or $BREAKWATER_BINARY,
                             $BREAKWATER_SANITIZED when run another way)
  free_port(host)            a TCP port that was free a moment ago, below
                             the kernel's ephemeral range (no outgoing
                             connection of another process takes it)
  free_udp_port(host)
  daemon_sockets(pid)        (TCP ports, unix paths) that pid or its
                             descendants listen on, in pid's namespace
  shared_rbldnsd()           one rbldnsd for the whole run serving the test
                             zones (see ZONES); .port, .resolver ("127.0.0.1:P")
  Rbldnsd(tmpdir, zones)     a private one; .start(), .stop()
  BlackholeDNS()             a UDP socket that takes queries and never
                             answers (a DNS server that is down but not
                             refusing); .port, .resolver, .close()
  SmtpSink(tmpdir)           Postfix smtp-sink with -d; .port, .messages()
  RecordingBackend(greeting) TCP server recording every byte per connection
  Daemon(tmpdir, conf, opts) breakwater serve; .start(), .stop(), .log(),
                             .sessions(), .wait_session(...)
  SMTPClient(host, port, source=...)  binds its source address first
  run_breakwater(args)       breakwater with other subcommands (check, ...)
  BreakwaterTestCase         unittest.TestCase with per-test temp dir and
                             helpers that clean up and check the daemon's
                             exit status and sanitizer output.

Client addresses used by the tests (zones under zones/):
  127.66.x.y   listed in bl.test (127.66.1.0/24 also in bl2.test,
               127.66.2.0/24 also in the allow list wl.test)
  127.67.x.y   bl.test answers 127.255.255.254 (list refusing service)
  127.68.x.y   listed in the allow list wl.test only
  127.1.x.y    clean everywhere except dead.test
  ::1          listed in bl6.test
"""

import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ZONE_DIR = os.path.join(HERE, "zones")

BINARY = os.environ.get("BREAKWATER_BINARY")
SANITIZED = os.environ.get("BREAKWATER_SANITIZED") == "1"

# A sanitized build is slower; scale the generous waits (not the ones a
# test measures against a configured timeout).
SLOW = 2.0 if SANITIZED else 1.0

SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer")

# zone name -> list of (rbldnsd dataset type, file under zones/)
ZONES = {
    "bl.test": [("ip4set", "bl.zone"), ("ip6trie", "testpoint6.zone")],
    "bl2.test": [("ip4set", "bl2.zone"), ("ip6trie", "testpoint6.zone")],
    "wl.test": [("ip4set", "wl.zone"), ("ip6trie", "testpoint6.zone")],
    "bl6.test": [("ip6trie", "bl6.zone"), ("ip4set", "testpoint4.zone")],
    "dead.test": [("ip4set", "dead.zone"), ("ip6trie", "dead6.zone")],
}

HOSTNAME = "bw.test"


def configure(binary=None, sanitized=None):
    """Called by run.py before the tests are loaded."""
    global BINARY, SANITIZED, SLOW
    if binary is not None:
        BINARY = os.path.abspath(binary)
        os.environ["BREAKWATER_BINARY"] = BINARY
    if sanitized is not None:
        SANITIZED = bool(sanitized)
        SLOW = 2.0 if SANITIZED else 1.0
        os.environ["BREAKWATER_SANITIZED"] = "1" if SANITIZED else "0"
        if SANITIZED:
            os.environ["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=0"
            os.environ["UBSAN_OPTIONS"] = "print_stacktrace=1:halt_on_error=1"


def sanitizer_lines(text):
    return [l for l in text.splitlines() if any(m in l for m in SANITIZER_MARKERS)]


# --------------------------------------------------------------------------
# Ports and waiting

def _family(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


# Ports handed out by free_port(): below the ephemeral range (32768 and
# up by default, /proc/sys/net/ipv4/ip_local_port_range), where the kernel
# picks the source port of every outgoing connection on the machine, so a
# port picked here and bound by a daemon a moment later cannot be taken in
# between by some connect(); a block per test process, in turn.
_PORT_FIRST, _PORT_LAST = 20000, 32000
_port_next = [_PORT_FIRST + (os.getpid() * 97) % (_PORT_LAST - _PORT_FIRST)]


def free_port(host="127.0.0.1"):
    for _ in range(_PORT_LAST - _PORT_FIRST):
        port = _port_next[0]
        _port_next[0] = port + 1 if port + 1 < _PORT_LAST else _PORT_FIRST
        s = socket.socket(_family(host), socket.SOCK_STREAM)
        try:
            s.bind((host, port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free TCP port in %d-%d" % (_PORT_FIRST, _PORT_LAST))


def free_udp_port(host="127.0.0.1"):
    s = socket.socket(_family(host), socket.SOCK_DGRAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def wait_until(pred, timeout, interval=0.02, what="condition"):
    """Polls pred() until it returns a true value; returns it, or raises
    AssertionError after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def _socket_inodes(pid):
    """Inodes of the sockets open in pid and its descendants (whose fds
    this process may read: root, or the same user)."""
    inodes, todo, seen = set(), [pid], set()
    while todo:
        p = todo.pop()
        if p in seen:
            continue
        seen.add(p)
        try:
            for fd in os.listdir("/proc/%d/fd" % p):
                try:
                    link = os.readlink("/proc/%d/fd/%s" % (p, fd))
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
            for task in os.listdir("/proc/%d/task" % p):
                with open("/proc/%d/task/%s/children" % (p, task)) as f:
                    todo.extend(int(x) for x in f.read().split())
        except OSError:
            pass
    return inodes


def daemon_sockets(pid):
    """(TCP ports, unix socket paths) in LISTEN state that belong to pid or
    its descendants, in pid's network namespace: a port some other process
    listens on does not count."""
    inodes = _socket_inodes(pid)
    ports, paths = set(), set()
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) > 9 and parts[3] == "0A" and int(parts[9]) in inodes:
                ports.add(int(parts[1].rsplit(":", 1)[1], 16))
    try:
        with open("/proc/%d/net/unix" % pid) as f:
            lines = f.read().splitlines()[1:]
    except OSError:
        lines = []
    for line in lines:   # Num RefCount Protocol Flags Type St Inode Path
        parts = line.split()
        if len(parts) >= 8 and int(parts[3], 16) & 0x10000 and int(parts[6]) in inodes:
            paths.add(parts[7])
    return ports, paths


def listening_ports():
    """Set of TCP ports in LISTEN state on this host (from /proc)."""
    ports = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A":
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def hostport(text):
    """'127.0.0.1:25' or '[::1]:25' -> (host, port)."""
    if text.startswith("["):
        host, _, port = text[1:].partition("]:")
    else:
        host, _, port = text.rpartition(":")
    return host, int(port)


def fmt_hostport(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def new_tmpdir(prefix="bw-"):
    d = tempfile.mkdtemp(prefix=prefix)
    os.chmod(d, 0o755)
    return d


# --------------------------------------------------------------------------
# rbldnsd

def stop_process(proc):
    """SIGTERM, then SIGKILL if it has not gone within 5 s."""
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def dig(port, name, qtype="A", server="127.0.0.1"):
    """Answers (list of strings) from dig +short, or None when dig failed."""
    try:
        p = subprocess.run(["dig", "@" + server, "-p", str(port), name, qtype,
                            "+short", "+time=1", "+tries=1"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=5)
    except subprocess.TimeoutExpired:
        return None
    if p.returncode != 0:
        return None
    return [l.strip() for l in p.stdout.decode(errors="replace").splitlines() if l.strip()]


class Rbldnsd:
    def __init__(self, tmpdir, zones=None):
        self.dir = os.path.join(tmpdir, "rbldnsd")
        self.zones = zones or ZONES
        self.port = None
        self.proc = None
        self.errpath = os.path.join(tmpdir, "rbldnsd.err")

    @property
    def resolver(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        args = []
        for zone, sets in self.zones.items():
            for typ, fname in sets:
                dst = os.path.join(self.dir, fname)
                if not os.path.exists(dst):
                    shutil.copyfile(os.path.join(ZONE_DIR, fname), dst)
                    os.chmod(dst, 0o644)
                args.append("%s:%s:%s" % (zone, typ, fname))
        for attempt in range(5):
            self.port = free_udp_port()
            err = open(self.errpath, "wb")
            self.proc = subprocess.Popen(
                ["rbldnsd", "-n", "-u", "rbldns", "-w", self.dir,
                 "-b", "127.0.0.1/%d" % self.port] + args,
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            err.close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                if dig(self.port, "2.0.0.127.bl.test" if "bl.test" in self.zones
                       else "2.0.0.127." + next(iter(self.zones))) == ["127.0.0.2"]:
                    return self
                time.sleep(0.05)
            self.stop()
        raise RuntimeError("rbldnsd did not start: " + open(self.errpath).read())

    def stop(self):
        stop_process(self.proc)
        self.proc = None


_shared = {}
_shared_lock = threading.Lock()


def shared_rbldnsd():
    """One rbldnsd serving ZONES for the whole run (started on first use)."""
    with _shared_lock:
        r = _shared.get("rbldnsd")
        if r is None or r.proc is None or r.proc.poll() is not None:
            d = _shared.get("dir") or new_tmpdir("bw-shared-")
            _shared["dir"] = d
            r = Rbldnsd(d).start()
            _shared["rbldnsd"] = r
        return r


def shutdown_shared():
    with _shared_lock:
        r = _shared.pop("rbldnsd", None)
        if r:
            r.stop()
        d = _shared.pop("dir", None)
        if d:
            shutil.rmtree(d, ignore_errors=True)


class BlackholeDNS:
    """A UDP port that receives DNS queries and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]

    @property
    def resolver(self):
        return "127.0.0.1:%d" % self.port

    def queries(self):
        """Drains and counts the queries received so far."""
        n = 0
        self.sock.setblocking(False)
        try:
            while True:
                self.sock.recv(4096)
                n += 1
        except (BlockingIOError, OSError):
            pass
        return n

    def close(self):
        self.sock.close()


class DelayDNS:
    """A UDP DNS proxy in front of an upstream server (rbldnsd) that holds
    each query for a delay chosen by the name's zone suffix before passing
    it on: a slow list. delays: {"bl2.test": 2.5, ...}; names matching no
    suffix are passed on at once. .queries lists (name, qtype) received."""

    def __init__(self, upstream_port, delays=None):
        self.upstream = ("127.0.0.1", upstream_port)
        self.delays = dict(delays or {})
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.queries = []
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = threading.Thread(target=self._loop, daemon=True)
        self.thread.start()

    @property
    def resolver(self):
        return "127.0.0.1:%d" % self.port

    @staticmethod
    def parse_question(pkt):
        labels, i = [], 12
        while i < len(pkt) and pkt[i] != 0:
            n = pkt[i]
            labels.append(pkt[i + 1:i + 1 + n].decode("ascii", "replace"))
            i += 1 + n
        qtype = struct.unpack("!H", pkt[i + 1:i + 3])[0] if i + 3 <= len(pkt) else 0
        return ".".join(labels).lower(), qtype

    def _loop(self):
        while not self.stopping:
            try:
                r, _, _ = select.select([self.sock], [], [], 0.1)
                if not r:
                    continue
                pkt, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            name, qtype = self.parse_question(pkt)
            with self.lock:
                self.queries.append((name, qtype))
            delay = 0.0
            for suffix, d in self.delays.items():
                if name == suffix or name.endswith("." + suffix):
                    delay = d
            threading.Thread(target=self._forward, args=(pkt, peer, delay), daemon=True).start()

    def _forward(self, pkt, peer, delay):
        time.sleep(delay)
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.settimeout(2)
            u.sendto(pkt, self.upstream)
            answer = self.rewrite(u.recv(4096))
            if not self.stopping:
                self.sock.sendto(answer, peer)
        except OSError:
            pass
        finally:
            u.close()

    def rewrite(self, answer):
        """The answer passed on; a subclass may change it (a spoofer)."""
        return answer

    def close(self):
        self.stopping = True
        self.thread.join(1)
        self.sock.close()


# --------------------------------------------------------------------------
# smtp-sink

class SmtpSink:
    """Postfix smtp-sink as the backend MTA; every transaction is dumped to
    a file under .dumpdir (smtp-sink writes LF line ends and undoes dot
    stuffing in the dump)."""

    GREETING = "220 smtp-sink ESMTP"

    def __init__(self, tmpdir, host="127.0.0.1", extra_args=()):
        self.host = host
        self.dumpdir = os.path.join(tmpdir, "sink")
        self.errpath = os.path.join(tmpdir, "smtp-sink.err")
        self.extra_args = list(extra_args)
        self.port = None
        self.proc = None

    @property
    def address(self):
        return fmt_hostport(self.host, self.port)

    def start(self):
        os.makedirs(self.dumpdir, exist_ok=True)
        os.chmod(self.dumpdir, 0o777)
        for attempt in range(5):
            self.port = free_port(self.host)
            err = open(self.errpath, "wb")
            self.proc = subprocess.Popen(
                ["smtp-sink", "-u", "nobody", "-d", self.dumpdir + "/msg."]
                + self.extra_args + [self.address, "1000"],
                stdin=subprocess.DEVNULL, stdout=err, stderr=err)
            err.close()
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and self.proc.poll() is None:
                if self.port in listening_ports():
                    return self
                time.sleep(0.02)
            self.stop()
        raise RuntimeError("smtp-sink did not start: " + open(self.errpath).read())

    def messages(self):
        """Contents (bytes) of the dumped messages, oldest first."""
        out = []
        try:
            names = os.listdir(self.dumpdir)
        except OSError:
            return out
        paths = [os.path.join(self.dumpdir, n) for n in names]
        paths.sort(key=lambda p: os.stat(p).st_mtime)
        for p in paths:
            with open(p, "rb") as f:
                out.append(f.read())
        return out

    def wait_message(self, needle, timeout=5):
        """Waits for a dumped message containing needle (bytes); returns it."""
        def find():
            for m in self.messages():
                if needle in m:
                    return m
            return None
        return wait_until(find, timeout, what="message %r in smtp-sink's dump" % needle[:40])

    def stop(self):
        stop_process(self.proc)
        self.proc = None


# --------------------------------------------------------------------------
# Recording backend

class RecordedConnection:
    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.data = bytearray()
        self.eof = False          # the other side closed (FIN or reset)
        self.reset = False        # ... with a reset
        self.cond = threading.Condition()

    def bytes(self):
        with self.cond:
            return bytes(self.data)

    def wait_bytes(self, n, timeout=5):
        """Waits until at least n bytes arrived; returns all of them."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.data) < n and not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.cond.wait(left)
            return bytes(self.data)

    def wait_eof(self, timeout=5):
        deadline = time.monotonic() + timeout
        with self.cond:
            while not self.eof:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.cond.wait(left)
            return True

    def send(self, data):
        self.sock.sendall(data)


class RecordingBackend:
    """A TCP server that sends a greeting to each connection and records
    every byte it receives. When a connection's peer closes its sending
    side, it sends on_eof (if any) and closes."""

    def __init__(self, host="127.0.0.1", greeting=b"220 recorder.test ESMTP recorder\r\n",
                 on_eof=b"", greeting_delay=0.0):
        self.host = host
        self.greeting = greeting
        self.greeting_delay = greeting_delay
        self.on_eof = on_eof
        self.lsock = socket.socket(_family(host), socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, 0))
        self.lsock.listen(128)
        self.port = self.lsock.getsockname()[1]
        self.connections = []
        self.cond = threading.Condition()
        self.stopping = False
        self.thread = threading.Thread(target=self._accept_loop, daemon=True)
        self.thread.start()

    @property
    def address(self):
        return fmt_hostport(self.host, self.port)

    def _accept_loop(self):
        while not self.stopping:
            try:
                r, _, _ = select.select([self.lsock], [], [], 0.1)
                if not r:
                    continue
                sock, peer = self.lsock.accept()
            except OSError:
                return
            c = RecordedConnection(sock, peer)
            with self.cond:
                self.connections.append(c)
                self.cond.notify_all()
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            if self.greeting_delay:
                time.sleep(self.greeting_delay)
            if self.greeting:
                c.sock.sendall(self.greeting)
            while not self.stopping:
                r, _, _ = select.select([c.sock], [], [], 0.1)
                if not r:
                    continue
                try:
                    data = c.sock.recv(65536)
                except ConnectionResetError:
                    with c.cond:
                        c.reset = True
                    data = b""
                with c.cond:
                    if data:
                        c.data += data
                    else:
                        c.eof = True
                    c.cond.notify_all()
                if not data:
                    if self.on_eof and not c.reset:
                        try:
                            c.sock.sendall(self.on_eof)
                        except OSError:
                            pass
                    break
        except OSError:
            with c.cond:
                c.eof = True
                c.cond.notify_all()
        finally:
            try:
                c.sock.close()
            except OSError:
                pass

    def count(self):
        with self.cond:
            return len(self.connections)

    def wait_connections(self, n, timeout=5):
        deadline = time.monotonic() + timeout
        with self.cond:
            while len(self.connections) < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("recording backend: %d connection(s), expected %d"
                                         % (len(self.connections), n))
                self.cond.wait(left)
            return list(self.connections)

    def stop(self):
        self.stopping = True
        try:
            self.lsock.close()
        except OSError:
            pass
        self.thread.join(2)


# --------------------------------------------------------------------------
# SMTP client

class Reply:
    def __init__(self, lines):
        self.lines = lines                       # text of each line, no CRLF
        self.code = int(lines[-1][:3])
        self.text = "\n".join(lines)

    def __repr__(self):
        return "Reply(%r)" % self.text

    def __str__(self):
        return self.text


class Closed(Exception):
    """The server closed the connection while a reply was expected."""


class SMTPClient:
    def __init__(self, host, port, source=None, timeout=5.0, connect=True, rcvbuf=None):
        self.host = host
        self.port = port
        self.timeout = timeout
        self.buf = b""
        self.sock = socket.socket(_family(host), socket.SOCK_STREAM)
        if rcvbuf:
            # before connect(): shrinking it on an established connection
            # can stall loopback TCP in the kernel (window scaling)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        if source:
            self.sock.bind((source, 0))
        self.sock.settimeout(timeout)
        if connect:
            self.sock.connect((host, port))
        self.local = self.sock.getsockname()[:2]
        self.source, self.sport = self.local
        self.received = bytearray()  # everything read so far, for messages

    # -- sending
    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    # -- receiving
    def _fill(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise socket.timeout("timed out; got so far %r" % bytes(self.received[-300:]))
        self.sock.settimeout(left)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        except socket.timeout:
            raise socket.timeout("timed out; got so far %r" % bytes(self.received[-300:]))
        if not data:
            raise Closed("connection closed; got so far %r" % bytes(self.received[-300:]))
        self.received += data
        self.buf += data

    def read_line(self, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        while b"\n" not in self.buf:
            self._fill(deadline)
        line, _, self.buf = self.buf.partition(b"\n")
        return line + b"\n"

    def read_reply(self, timeout=None):
        """Reads one (possibly multi-line) reply; raises Closed at EOF and
        socket.timeout after the timeout."""
        deadline = time.monotonic() + (timeout or self.timeout)
        lines = []
        while True:
            left = max(0.001, deadline - time.monotonic())
            raw = self.read_line(left)
            text = raw.rstrip(b"\r\n").decode("latin-1")
            if len(text) < 3 or not text[:3].isdigit():
                raise AssertionError("malformed reply line %r" % raw)
            lines.append(text)
            if len(text) == 3 or text[3] == " ":
                return Reply(lines)
            if text[3] != "-":
                raise AssertionError("malformed reply line %r" % raw)

    def cmd(self, line, timeout=None):
        if isinstance(line, str):
            line = line.encode()
        self.send(line + b"\r\n")
        return self.read_reply(timeout)

    def read_until_eof(self, timeout=None):
        """Reads until the server closes; returns the bytes read after the
        buffer (including what was buffered). Raises socket.timeout if the
        connection stays open."""
        deadline = time.monotonic() + (timeout or self.timeout)
        out = self.buf
        self.buf = b""
        while True:
            try:
                self._fill(deadline)
            except Closed:
                out += self.buf
                self.buf = b""
                return out
            out += self.buf
            self.buf = b""

    def is_closed(self, timeout=0.2):
        """True if the server closed (nothing more to read); False if the
        connection is still open after timeout (data read is buffered)."""
        try:
            r, _, _ = select.select([self.sock], [], [], timeout)
        except (OSError, ValueError):
            return True
        if not r:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except OSError:
            return True
        if not data:
            return True
        self.received += data
        self.buf += data
        return False

    def reset(self):
        """Closes with SO_LINGER 0: the peer gets a TCP reset."""
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.sock.close()
        except OSError:
            pass

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


# --------------------------------------------------------------------------
# breakwater

SESSION_RE = re.compile(r"\bsession\b.*\bclient=")
KV_RE = re.compile(r"(\w+)=(\"[^\"]*\"|\S*)")


def parse_session(line):
    """A session log line -> dict of its key=value fields, plus 'addr' and
    'port' split out of client=[ADDR]:PORT; None if not a session line."""
    if not SESSION_RE.search(line):
        return None
    d = {}
    for k, v in KV_RE.findall(line):
        d[k] = v.strip('"')
    c = d.get("client", "")
    m = re.match(r"^\[([^\]]*)\]:(\d+)$", c) or re.match(r"^([^\[\]]*):(\d+)$", c)
    if m:
        d["addr"], d["port"] = m.group(1), int(m.group(2))
    d["line"] = line
    return d


def list_names(field):
    """'bl.test,bl2.test*2' -> ['bl.test', 'bl2.test'] ('-' -> [])."""
    if not field or field == "-":
        return []
    return [re.split(r"[=*]", x, 1)[0] for x in field.split(",") if x]


class Daemon:
    """breakwater serve with a config file written here plus -o overrides."""

    def __init__(self, tmpdir, conf, opts=(), name="bw"):
        self.tmpdir = tmpdir
        self.conf = dict(conf)
        self.opts = list(opts)
        self.confpath = os.path.join(tmpdir, name + ".conf")
        self.errpath = os.path.join(tmpdir, name + ".stderr")
        self.outpath = os.path.join(tmpdir, name + ".stdout")
        self.proc = None
        self.returncode = None
        self.stopped = False

    def listen_addresses(self):
        """All listen endpoints, -o overrides included, as (host, port)."""
        value = self.conf.get("listen", "")
        for k, v in self.opts:
            if k == "listen":
                value = v
        return [hostport(x) for x in re.split(r"[,\s]+", value) if x]

    @property
    def host(self):
        return self.listen_addresses()[0][0]

    @property
    def port(self):
        return self.listen_addresses()[0][1]

    def argv(self):
        a = [BINARY, "serve", "-c", self.confpath]
        for k, v in self.opts:
            a += ["-o", "%s=%s" % (k, v)]
        return a

    def write_conf(self):
        with open(self.confpath, "w") as f:
            f.write("# written by tests/integration/harness.py\n")
            for k, v in self.conf.items():
                f.write("%s = %s\n" % (k, v))

    def start(self, wait=True, preexec_fn=None):
        self.write_conf()
        err = open(self.errpath, "wb")
        out = open(self.outpath, "wb")
        self.proc = subprocess.Popen(self.argv(), stdin=subprocess.DEVNULL,
                                     stdout=out, stderr=err, preexec_fn=preexec_fn)
        err.close()
        out.close()
        if wait:
            self.wait_listening()
        return self

    def setting(self, key, default=None):
        """A configuration value as serve sees it: -o overrides the file."""
        value = self.conf.get(key, default)
        for k, v in self.opts:
            if k == key:
                value = v
        return value

    def sockets(self):
        """(TCP ports, unix paths) serve opens for clients and tests: its
        listeners, metrics_listen and control_socket."""
        ports = {p for _, p in self.listen_addresses()}
        metrics = self.setting("metrics_listen", "127.0.0.1:9625")
        if metrics:
            ports.add(hostport(metrics)[1])
        return ports, {self.setting("control_socket", "/run/breakwater/control")}

    def listening(self):
        """(every socket of sockets() is listening and is serve's own, in its
        process tree and network namespace; what it has). The listen ports
        alone would not do: serve binds them before it checks state_dir,
        and makes the control socket and the metrics port after."""
        ports, paths = self.sockets()
        have_ports, have_paths = daemon_sockets(self.proc.pid)
        # serve binds the control socket by its name in its directory
        have_names = {os.path.basename(p) for p in have_paths}
        up = ports <= have_ports and all(p in have_paths or os.path.basename(p) in have_names
                                         for p in paths)
        return up, sorted(have_ports) + sorted(have_paths)

    def wait_listening(self, timeout=None):
        """Until listening(): a start is then over, whatever a test uses
        first."""
        ports, paths = self.sockets()
        limit = timeout or 5 * SLOW
        deadline = time.monotonic() + limit
        while True:
            if self.proc.poll() is not None:
                raise AssertionError("breakwater exited with %s at start; stderr:\n%s"
                                     % (self.proc.returncode, self.log()))
            up, have = self.listening()
            if up:
                return
            if time.monotonic() > deadline:
                raise AssertionError("breakwater does not listen on %s after %.0fs (its own: "
                                     "%s); stderr:\n%s"
                                     % (sorted(ports) + sorted(paths), limit, have, self.log()))
            time.sleep(0.02)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stdout(self):
        try:
            with open(self.outpath, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def sessions(self):
        out = []
        for line in self.log().splitlines():
            s = parse_session(line)
            if s:
                out.append(s)
        return out

    def wait_session(self, client=None, timeout=None):
        """The session log line of the client (an SMTPClient, or a
        (addr, port) pair), waiting for it; without client, the first."""
        if isinstance(client, SMTPClient):
            key = client.local
        else:
            key = client

        def find():
            for s in self.sessions():
                if key is None or (s.get("addr") == key[0] and s.get("port") == key[1]):
                    return s
            return None
        try:
            return wait_until(find, timeout or 3 * SLOW, what="session log line")
        except AssertionError:
            raise AssertionError("no session log line for client %s; stderr:\n%s"
                                 % (key, self.log()[-3000:]))

    def wait_log(self, pattern, timeout=None, flags=re.I):
        rx = re.compile(pattern, flags)

        def find():
            for line in self.log().splitlines():
                if rx.search(line):
                    return line
            return None
        try:
            return wait_until(find, timeout or 3 * SLOW, what="log line /%s/" % pattern)
        except AssertionError:
            raise AssertionError("no log line matching /%s/; stderr:\n%s"
                                 % (pattern, self.log()[-3000:]))

    def stop(self, timeout=None):
        """SIGTERM; returns the exit status (kill -9 after the bound, then
        the status is 'killed')."""
        if self.proc is None or self.stopped:
            return self.returncode
        self.stopped = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout or 5 * SLOW)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                self.returncode = "killed"
                return self.returncode
        self.returncode = self.proc.returncode
        return self.returncode


def run_breakwater(args, timeout=None, env=None):
    """Runs BINARY with args; returns CompletedProcess (text stdout/stderr)."""
    return subprocess.run([BINARY] + list(args), stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout or 15 * SLOW, env=env,
                          errors="replace", universal_newlines=True)


# --------------------------------------------------------------------------
# TestCase base

class BreakwaterTestCase(unittest.TestCase):
    """Per test: a temp dir; daemons, sinks and backends started through
    the helpers below are stopped afterwards, and the test fails if a
    daemon did not exit 0 on SIGTERM or (sanitized build) its stderr has
    sanitizer reports."""

    maxDiff = 4000

    def setUp(self):
        if not BINARY:
            self.skipTest("no breakwater binary given (run.py --binary PATH)")
        self.tmp = new_tmpdir()
        self._daemons = []
        self._cleanups_extra = []
        self.addCleanup(self._cleanup)

    def _cleanup(self):
        problems = []
        for d in self._daemons:
            was_alive = d.alive() or d.stopped
            rc = d.stop()
            log = d.log()
            if was_alive and rc != 0 and not getattr(d, "expect_exit", False):
                problems.append("breakwater did not exit 0 on SIGTERM (status %r); stderr tail:\n%s"
                                % (rc, log[-2500:]))
            if not was_alive and not getattr(d, "expect_exit", False):
                problems.append("breakwater died during the test (status %r); stderr tail:\n%s"
                                % (d.proc.returncode if d.proc else None, log[-2500:]))
            bad = sanitizer_lines(log)
            if bad:
                problems.append("sanitizer report in breakwater's stderr:\n" + log[-6000:])
        for f in reversed(self._cleanups_extra):
            try:
                f()
            except Exception:
                pass
        if not problems:
            shutil.rmtree(self.tmp, ignore_errors=True)
        else:
            problems.append("(files kept in %s)" % self.tmp)
        if problems:
            raise AssertionError("\n".join(problems))

    # -- peers
    def rbldnsd(self):
        return shared_rbldnsd()

    def smtp_sink(self, host="127.0.0.1"):
        s = SmtpSink(self.tmp, host).start()
        self._cleanups_extra.append(s.stop)
        return s

    def recording_backend(self, **kw):
        b = RecordingBackend(**kw)
        self._cleanups_extra.append(b.stop)
        return b

    def blackhole_dns(self):
        b = BlackholeDNS()
        self._cleanups_extra.append(b.close)
        return b

    def syn_dropping_backend(self):
        """'ADDR:PORT' of a listener whose accept queue is full, so the
        kernel drops further SYNs and a connect to it hangs; skips the test
        when this kernel does not behave so."""
        ls = socket.socket()
        ls.bind(("127.0.0.1", 0))
        ls.listen(0)
        self._cleanups_extra.append(ls.close)
        for _ in range(3):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(ls.getsockname())
            self._cleanups_extra.append(f.close)
        time.sleep(0.1)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(ls.getsockname())
            connected = True
        except (socket.timeout, OSError):
            connected = False
        probe.close()
        if connected:
            self.skipTest("kernel lacks a full accept queue that drops SYNs here")
        return "127.0.0.1:%d" % ls.getsockname()[1]

    def delay_dns(self, delays):
        """A slow resolver in front of the shared rbldnsd (see DelayDNS)."""
        p = DelayDNS(self.rbldnsd().port, delays)
        self._cleanups_extra.append(p.close)
        return p

    def dead_backend_address(self):
        """An address where nothing listens (connections are refused)."""
        return "127.0.0.1:%d" % free_port()

    # -- breakwater
    def base_conf(self, backend, listen=None, resolver=None):
        state = os.path.join(self.tmp, "state")
        os.makedirs(state, exist_ok=True)
        return {
            "listen": listen or "127.0.0.1:%d" % free_port(),
            "backend": backend,
            "hostname": HOSTNAME,
            "resolver": resolver or self.rbldnsd().resolver,
            "dnsbl_sites": "bl.test",
            "dnsbl_timeout": "3s",
            "log_level": "info",
            "state_dir": state,
            # serve started as root drops to this user (privsep); firewall
            # tests set ban_backend themselves, in a network namespace
            "user": "nobody",
            "ban_backend": "none",
            "control_socket": os.path.join(self.tmp, "control"),
            # one metrics port per daemon: parallel daemons must not clash
            # on the default 127.0.0.1:9625
            "metrics_listen": "127.0.0.1:%d" % free_port(),
            # a relay a test leaves open must not hold the stop for 30 s
            "shutdown_timeout": "2s",
        }

    def start_daemon(self, backend=None, opts=None, listen=None, resolver=None,
                     conf_extra=None, wait=True, preexec_fn=None):
        """Starts breakwater serve. backend: 'ADDR:PORT' or an object with
        .address; opts: dict or list of (key, value) given as -o."""
        if backend is None:
            backend = self.dead_backend_address()
        if hasattr(backend, "address"):
            backend = backend.address
        conf = self.base_conf(backend, listen=listen, resolver=resolver)
        # one control socket per daemon: a second daemon on the same path
        # is refused while the first answers
        conf["control_socket"] = os.path.join(self.tmp, "control%d" % len(self._daemons))
        if conf_extra:
            conf.update(conf_extra)
        if isinstance(opts, dict):
            opts = list(opts.items())
        d = Daemon(self.tmp, conf, opts or (), name="bw%d" % len(self._daemons))
        self._daemons.append(d)
        try:
            d.start(wait=wait, preexec_fn=preexec_fn)
        except AssertionError:
            d.expect_exit = True   # reported once, here
            raise
        return d

    def client(self, daemon, source, timeout=5.0, host=None, port=None, rcvbuf=None):
        c = SMTPClient(host or daemon.host, port or daemon.port, source=source,
                       timeout=timeout * SLOW, rcvbuf=rcvbuf)
        self._cleanups_extra.append(c.close)
        return c

    def run_bw(self, args, timeout=None):
        """breakwater with another subcommand; fails the test on sanitizer
        reports in its stderr."""
        p = run_breakwater(args, timeout=timeout)
        bad = sanitizer_lines(p.stderr)
        if bad:
            self.fail("sanitizer report from %s:\n%s" % (args, p.stderr[-6000:]))
        return p

    # -- assertions
    def assertReply(self, reply, code, *needles):
        self.assertEqual(reply.code, code, "expected %d, got %r" % (code, reply.text))
        for n in needles:
            self.assertIn(n, reply.text, "reply %r lacks %r" % (reply.text, n))

    def assertClosed(self, c, timeout=3.0):
        try:
            rest = c.read_until_eof(timeout * SLOW)
        except socket.timeout:
            self.fail("server did not close the connection within %.0fs" % (timeout * SLOW))
        c.close()   # the server may wait for our FIN before it ends the session
        return rest

    def quit(self, c):
        """QUIT -> 221, then the server closes (and so do we)."""
        self.assertReply(c.cmd("QUIT"), 221)
        return self.assertClosed(c)

    def assertSession(self, daemon, client, verdict, lists=None, timeout=None):
        s = daemon.wait_session(client, timeout)
        self.assertEqual(s.get("verdict"), verdict, "session line: %s" % s["line"])
        if lists is not None:
            self.assertEqual(sorted(list_names(s.get("lists"))), sorted(lists),
                             "session line: %s" % s["line"])
        return s


# --------------------------------------------------------------------------
# Dialogues shared by several test modules

def engine_greeting(test, c, timeout=None):
    """Reads the greeting and asserts it is breakwater's own (reject engine):
    '220 <hostname> ESMTP'."""
    r = c.read_reply(timeout)
    test.assertEqual(r.code, 220, "greeting: %r" % r.text)
    test.assertTrue(r.lines[0].startswith("220 %s ESMTP" % HOSTNAME),
                    "not the reject engine's greeting: %r" % r.text)
    return r


def backend_greeting(test, c, expected=SmtpSink.GREETING, timeout=None):
    """Reads the greeting and asserts it is the backend's (relayed)."""
    r = c.read_reply(timeout)
    test.assertEqual(r.lines[0], expected, "not the backend's greeting (not relayed?)")
    return r


def rejected_dialogue(test, c, addr, lists=(), helo="client.test"):
    """After the engine greeting: EHLO, MAIL 250, RCPT 550 naming 5.7.1,
    the address and each list; DATA 554; QUIT 221 and close."""
    r = c.cmd("EHLO " + helo)
    test.assertEqual(r.code, 250, r.text)
    test.assertGreaterEqual(len(r.lines), 2, "EHLO reply not multiline: %r" % r.text)
    test.assertReply(c.cmd("MAIL FROM:<sender@spam.example>"), 250)
    r = c.cmd("RCPT TO:<victim@example.org>")
    test.assertReply(r, 550, "5.7.1", addr, *lists)
    test.assertReply(c.cmd("DATA"), 554)
    test.assertReply(c.cmd("QUIT"), 221)
    test.assertClosed(c)


def send_message(test, c, body_lines, sender="a@clean.example", rcpt="b@example.org"):
    """EHLO..QUIT through smtp-sink; body_lines are bytes without line ends
    (dot-stuffed here)."""
    r = c.cmd("EHLO clean.test")
    test.assertReply(r, 250)
    test.assertEqual(r.lines[0], "250-smtp-sink", "EHLO answered by someone else: %r" % r.text)
    test.assertReply(c.cmd("MAIL FROM:<%s>" % sender), 250)
    test.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250)
    test.assertReply(c.cmd("DATA"), 354)
    wire = b"".join((b"." + l if l.startswith(b".") else l) + b"\r\n" for l in body_lines)
    c.send(wire + b".\r\n")
    test.assertReply(c.read_reply(10 * SLOW), 250)
    test.assertReply(c.cmd("QUIT"), 221)
    test.assertClosed(c)
