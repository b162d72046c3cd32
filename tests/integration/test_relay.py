"""Clean clients are relayed to the backend untouched: the backend's own
greeting, messages byte-intact, half-close, back-pressure, PROXY v1/v2
headers byte-exact, resets; and a relay ends when the MTA has closed and
the client holds on or reads its last bytes slowly, or when no byte moves
for relay_idle_timeout."""

import fcntl
import hashlib
import random
import socket
import struct
import termios
import time
import unittest

import harness
from harness import (SLOW, BreakwaterTestCase, backend_greeting, free_port,
                     send_message, wait_until)

PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
RECORDER_GREETING = b"220 recorder.test ESMTP recorder\r\n"
LINGER = 5.0    # RELAY_LINGER_TIMEOUT in src/relay.h
RELAY_BUFFER = 16384    # RELAY_BUFFER_SIZE in src/relay.h


def proxy_v1(src, sport, dst, dport):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def proxy_v2(src, sport, dst, dport):
    if ":" in src:
        addrs = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst)
                 + struct.pack("!HH", sport, dport))
        fam = 0x21
    else:
        addrs = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
        fam = 0x11
    return PROXY_V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(addrs)) + addrs


class RelayTest(BreakwaterTestCase):
    def test_clean_message_arrives_intact(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink)     # dnsbl_timeout 3s
        t0 = time.monotonic()
        c = self.client(d, "127.1.0.1")
        backend_greeting(self, c)
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW,
                        "a clean client waited although every list had answered")
        rnd = random.Random(25)
        body = [
            b"Message-ID: <intact-1@clean.example>",
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= 8-bit test",
            b"Content-Type: text/plain; charset=iso-8859-1",
            b"Content-Transfer-Encoding: 8bit",
            b"",
            b"Gr\xfc\xdfe aus K\xf6ln, \xe0 bient\xf4t",
            b"UTF-8 too: \xc3\xa9\xc3\xa8 \xe2\x82\xac",
            b".a line starting with a dot",
            b"..two dots",
            b"\ttab\tseparated\t",
            b"L" + bytes(rnd.choice(b"abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(996)) + b"E",
            b"x" * 4000,                      # a very long line (beyond RFC 5321)
            b"high bytes \x80\x81\xfe\xff\x01\x7f end",
            b"last line",
        ]
        send_message(self, c, body)
        m = sink.wait_message(b"<intact-1@clean.example>")
        expected = b"\n".join(body) + b"\n"
        self.assertIn(expected, m, "message body changed on the way")
        s = self.assertSession(d, c, "clean", [])
        self.assertEqual(s.get("score"), "0", s["line"])

    def test_bytes_relayed_exactly(self):
        """Every byte a clean client sends after the greeting reaches the
        MTA as it was sent, compared byte for byte at a recording backend
        (smtp-sink, above, stores lines with LF: it shows the content, not
        the bytes): CRLF and bare LF and CR, NUL, 8-bit, dot-stuffing,
        pipelined commands, a 4,000-byte line, and the last byte value."""
        backend = self.recording_backend()
        d = self.start_daemon(backend)
        c = self.client(d, "127.1.0.6")
        self.assertEqual(c.read_line(), RECORDER_GREETING)
        sent = (b"EHLO exact.test\r\nMAIL FROM:<a@clean.example>\r\n"
                b"RCPT TO:<b@example.org>\r\nDATA\r\n"
                b"Subject: exact\r\n\r\nbare LF\nbare CR\r in a line\r\n"
                b"NUL \x00 here\r\n..dot-stuffed\r\n\x80\xfe\xff\r\n" + b"y" * 4000 +
                b"\r\n.\r\nQUIT\r\n" + bytes(range(256)))
        c.send(sent)
        conn = backend.wait_connections(1)[0]
        got = conn.wait_bytes(len(sent), 5 * SLOW)
        self.assertEqual(len(got), len(sent), "bytes lost or added on the way")
        self.assertEqual(got, sent, "bytes changed on the way")

    def test_large_message_both_directions(self):
        # 4 MiB up to smtp-sink ...
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        c = self.client(d, "127.1.0.2", timeout=20)
        backend_greeting(self, c)
        rnd = random.Random(4)
        alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
        blob = bytes(rnd.choice(alphabet) for _ in range(76 * 1024))
        lines = [b"Message-ID: <large-1@clean.example>", b""]
        lines += [blob[(i * 76) % len(blob):][:76] + b"%06d" % i for i in range(4 * 1024 * 1024 // 82)]
        send_message(self, c, lines)
        m = sink.wait_message(b"<large-1@clean.example>", timeout=10 * SLOW)
        expected = b"\n".join(lines) + b"\n"
        at = m.find(lines[0])
        got = m[at:at + len(expected)]
        if got != expected:
            bad = next((i for i, (x, y) in enumerate(zip(got, expected)) if x != y),
                       min(len(got), len(expected)))
            self.fail("large message changed on the way: first difference at byte %d "
                      "of %d: %r vs %r" % (bad, len(expected), got[bad:bad + 40],
                                          expected[bad:bad + 40]))

    def test_large_download_slow_reader(self):
        # ... and 8 MiB down to a client that does not read for a while:
        # nothing lost, and the daemon does not buffer it all (back-pressure).
        rnd = random.Random(8)
        blob = bytes(rnd.getrandbits(8) for _ in range(1 << 16)) * 128
        backend = self.recording_backend(greeting=RECORDER_GREETING + blob)
        d = self.start_daemon(backend)
        rss0 = rss_kib(d.proc.pid)
        c = self.client(d, "127.1.0.3", timeout=20, rcvbuf=16384)
        time.sleep(1.0)   # the daemon cannot pass it on: it must stop reading
        rss1 = rss_kib(d.proc.pid)
        want = len(RECORDER_GREETING) + len(blob)
        got = bytearray()
        deadline = time.monotonic() + 20 * SLOW
        while len(got) < want and time.monotonic() < deadline:
            c.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = c.sock.recv(1 << 20)
            except socket.timeout:
                import subprocess
                ss = subprocess.run(["ss", "-tni", "sport = :%d or dport = :%d or sport = :%d or dport = :%d"
                                     % (d.port, d.port, backend.port, backend.port)],
                                    stdout=subprocess.PIPE, universal_newlines=True).stdout
                self.fail("download stalled after %d of %d bytes; sockets:\n%s"
                          % (len(got), want, ss))
            if not data:
                break
            got += data
        self.assertEqual(len(got), want, "bytes lost or added on the way down")
        self.assertEqual(hashlib.sha256(got).digest(),
                         hashlib.sha256(RECORDER_GREETING + blob).digest())
        if not harness.SANITIZED:
            self.assertLess(rss1 - rss0, 4096,
                            "daemon grew by %d KiB while the client did not read "
                            "(unbounded buffering?)" % (rss1 - rss0))

    def test_half_close_passed_on(self):
        backend = self.recording_backend(on_eof=b"221 bye after your EOF\r\n")
        d = self.start_daemon(backend)
        c = self.client(d, "127.1.0.4")
        self.assertEqual(c.read_line(), RECORDER_GREETING)
        c.send(b"QUIT\r\n")
        c.shutdown_write()
        conn = backend.wait_connections(1)[0]
        self.assertTrue(conn.wait_eof(3 * SLOW), "the client's FIN did not reach the backend")
        self.assertEqual(conn.bytes(), b"QUIT\r\n")
        rest = self.assertClosed(c)
        self.assertEqual(rest, b"221 bye after your EOF\r\n",
                         "the backend's last words after the client's FIN were lost")

    def test_backend_closes_first(self):
        backend = self.recording_backend()
        d = self.start_daemon(backend)
        c = self.client(d, "127.1.0.5")
        self.assertEqual(c.read_line(), RECORDER_GREETING)
        conn = backend.wait_connections(1)[0]
        conn.send(b"421 backend going away\r\n")
        conn.sock.shutdown(socket.SHUT_RDWR)
        rest = self.assertClosed(c)
        self.assertEqual(rest, b"421 backend going away\r\n")
        self.assertTrue(d.alive())

    def test_reset_mid_relay(self):
        backend = self.recording_backend()
        d = self.start_daemon(backend)
        b = self.client(d, "127.1.3.2")
        self.assertEqual(b.read_line(), RECORDER_GREETING)
        a = self.client(d, "127.1.3.1")
        self.assertEqual(a.read_line(), RECORDER_GREETING)
        conns = backend.wait_connections(2)
        a.send(b"MAIL FROM:<a@clean.example>\r\nDATA\r\nhalf a mess")
        conn_a = next_conn_with(conns, b"MAIL FROM:<a@", 3 * SLOW)
        self.assertIsNotNone(conn_a, "client A's bytes did not reach the backend")
        a.reset()
        self.assertTrue(conn_a.wait_eof(3 * SLOW),
                        "backend connection of a reset client was not closed")
        conn_b = [x for x in conns if x is not conn_a][0]
        b.send(b"EHLO b.test\r\n")
        self.assertEqual(conn_b.wait_bytes(13, 3 * SLOW), b"EHLO b.test\r\n")
        conn_b.send(b"250 hello b\r\n")
        self.assertEqual(b.read_line(), b"250 hello b\r\n")
        # the backend resets one too
        conn_b.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn_b.sock.close()
        self.assertClosed(b)
        self.assertTrue(d.alive())
        c = self.client(d, "127.1.3.3")
        self.assertEqual(c.read_line(), RECORDER_GREETING)
        self.assertSession(d, a, "clean")

    # -- slots: a relay ends when the MTA is done with it, or when idle

    def test_quit_holders_give_their_slots_back(self):
        # Three clients hold every slot: each sends QUIT, reads the MTA's 221
        # and keeps its side open. The MTA has let them go; breakwater closes
        # them RELAY_LINGER_TIMEOUT (5 s) after passing the MTA's close on,
        # so a fourth clean client is relayed within seconds, not refused
        # with 421 4.3.2 for as long as the holders like.
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"backend_max_connections": "3"})
        holders = []
        for i in range(3):
            h = self.client(d, "127.1.5.%d" % (i + 1))
            backend_greeting(self, h)
            self.assertReply(h.cmd("QUIT"), 221)
            holders.append(h)
        t0 = time.monotonic()
        first = self.client(d, "127.1.5.9")
        r = first.read_reply()
        self.assertReply(r, 421, "4.3.2")   # the holders do hold the slots now
        first.close()
        c = relayed_within(self, d, "127.1.5.9", (LINGER + 3) * SLOW)
        waited = time.monotonic() - t0
        self.assertGreater(waited, LINGER - 1.5, "holders let go sooner than the linger time")
        self.assertReply(c.cmd("NOOP"), 250)
        for h in holders:
            self.assertClosed(h, 1)
            s = self.assertSession(d, h, "clean")
            self.assertEqual(s.get("reason"), "client did not close after the backend",
                             s["line"])
        self.quit(c)

    def test_idle_relay_closed(self):
        # relay_idle_timeout = 2s: a relay where no byte moves for 2 s ends,
        # at both ends; one where bytes keep moving, in either direction
        # alone, does not.
        backend = self.recording_backend()
        d = self.start_daemon(backend, opts={"relay_idle_timeout": "2s"})
        idle = self.client(d, "127.1.5.20")
        self.assertEqual(idle.read_line(), RECORDER_GREETING)
        idle_conn = backend.wait_connections(1)[0]
        busy = self.client(d, "127.1.5.21")
        self.assertEqual(busy.read_line(), RECORDER_GREETING)
        busy_conn = backend.wait_connections(2)[1]
        sent = b""
        for _ in range(6):                  # 3 s of client bytes only
            busy.send(b"NOOP\r\n")
            sent += b"NOOP\r\n"
            time.sleep(0.5)
        for _ in range(6):                  # 3 s of backend bytes only
            busy_conn.send(b"250 ok\r\n")
            self.assertEqual(busy.read_line(), b"250 ok\r\n")
            last_byte = time.monotonic()
            time.sleep(0.5)
        self.assertEqual(busy_conn.wait_bytes(len(sent), 3 * SLOW), sent)
        self.assertFalse(busy.is_closed(0.1), "a relay moving bytes every 0.5 s was closed")
        # the idle one ended after its 2 s, the backend's end too
        self.assertTrue(idle_conn.wait_eof(1), "the idle relay's backend connection is open")
        self.assertClosed(idle, 1)
        s = self.assertSession(d, idle, "clean")
        self.assertEqual(s.get("reason"), "relay_idle_timeout", s["line"])
        self.assertGreater(float(s["duration"]), 1.9, s["line"])
        self.assertLess(float(s["duration"]), 2 + 1.5 * SLOW, s["line"])
        # and the busy one 2 s after it fell silent
        self.assertClosed(busy, 2 + 2 * SLOW)
        self.assertGreater(time.monotonic() - last_byte, 1.9)
        self.assertTrue(busy_conn.wait_eof(2 * SLOW))
        s = self.assertSession(d, busy, "clean")
        self.assertEqual(s.get("reason"), "relay_idle_timeout", s["line"])
        self.assertEqual(s.get("bytes_in"), str(len(sent)), s["line"])

    def test_slow_reader_after_backend_close(self):
        # The MTA sends more than the client takes, then closes: breakwater
        # still holds some of its bytes. The client reads a byte every
        # 0.5 s. From the MTA's close it has RELAY_LINGER_TIMEOUT, which no
        # byte moved extends: then the one slot (backend_max_connections =
        # 1) is free for the next client, and this one, which has not taken
        # the MTA's last bytes, is reset (a close would leave the kernel
        # feeding it).
        backend = self.recording_backend()
        d = self.start_daemon(backend, opts={"backend_max_connections": "1"})
        c = self.small_window_client(d, "127.1.5.30")
        self.assertEqual(c.read_line(), RECORDER_GREETING)
        conn = backend.wait_connections(1)[0]
        fill_until_held(self, conn, c)
        conn.sock.shutdown(socket.SHUT_RDWR)
        closed = time.monotonic()
        deadline = closed + LINGER + 3 * SLOW
        taken = 0
        while tcp_state(c.sock) == TCP_ESTABLISHED and time.monotonic() < deadline:
            taken += len(c.sock.recv(1))
            time.sleep(0.5)
        held = time.monotonic() - closed
        n = self.client(d, "127.1.5.31")
        self.assertEqual(n.read_line(), RECORDER_GREETING,
                         "the slot is still taken %.1f s after the MTA closed" % held)
        self.assertNotEqual(tcp_state(c.sock), TCP_ESTABLISHED,
                            "the client still holds its connection %.1f s after the MTA "
                            "closed (it took %d bytes meanwhile)" % (held, taken))
        self.assertGreater(held, LINGER - 0.5, "cut off before the linger time")
        self.assertGreater(taken, 0)
        s = self.assertSession(d, c, "clean")
        self.assertEqual(s.get("reason"), "client did not close after the backend", s["line"])

    def small_window_client(self, d, source):
        """A client with a small receive buffer and small segments: breakwater's
        send queue to it stays about 100 KB (MBs with loopback's 64 KB MSS)."""
        c = harness.SMTPClient(d.host, d.port, source=source, timeout=5 * SLOW,
                               connect=False, rcvbuf=4096)
        self._cleanups_extra.append(c.close)
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
        c.sock.connect((d.host, d.port))
        return c

    # -- PROXY protocol

    def proxy_case(self, version, source, listen_host):
        backend = self.recording_backend()
        listen = harness.fmt_hostport(listen_host, free_port(listen_host))
        d = self.start_daemon(backend, listen=listen,
                              opts={"backend_proxy_protocol": version})
        c = self.client(d, source)
        self.assertEqual(c.read_line(), RECORDER_GREETING)
        c.send(b"EHLO proxy.test\r\n")
        make = proxy_v1 if version == "v1" else proxy_v2
        header = make(c.source, c.sport, d.host, d.port)
        want = header + b"EHLO proxy.test\r\n"
        conn = backend.wait_connections(1)[0]
        got = conn.wait_bytes(len(want), 3 * SLOW)
        self.assertEqual(got, want, "backend received %r, expected %r" % (got, want))
        c.send(b"QUIT\r\n")
        self.assertEqual(conn.wait_bytes(len(want) + 6, 3 * SLOW), want + b"QUIT\r\n")

    def test_proxy_v1_ipv4(self):
        self.proxy_case("v1", "127.1.4.1", "127.0.0.1")

    def test_proxy_v2_ipv4(self):
        self.proxy_case("v2", "127.1.4.2", "127.0.0.1")

    def test_proxy_v1_ipv6(self):
        self.proxy_case("v1", "::1", "::1")

    def test_proxy_v2_ipv6(self):
        self.proxy_case("v2", "::1", "::1")

    def test_proxy_none_sends_nothing_extra(self):
        backend = self.recording_backend()
        d = self.start_daemon(backend, opts={"backend_proxy_protocol": "none"})
        c = self.client(d, "127.1.4.3")
        self.assertEqual(c.read_line(), RECORDER_GREETING)
        c.send(b"EHLO plain.test\r\n")
        conn = backend.wait_connections(1)[0]
        self.assertEqual(conn.wait_bytes(17, 3 * SLOW), b"EHLO plain.test\r\n")


def relayed_within(test, d, source, timeout):
    """A clean client from source is relayed, retrying every 0.25 s while
    breakwater answers 421 (no slot free); returns the client."""
    deadline = time.monotonic() + timeout
    while True:
        c = test.client(d, source)
        r = c.read_reply()
        if r.code == 220:
            test.assertEqual(r.lines[0], harness.SmtpSink.GREETING)
            return c
        test.assertReply(r, 421, "4.3.2")
        c.close()
        if time.monotonic() > deadline:
            test.fail("no relay slot came free within %.0fs" % timeout)
        time.sleep(0.25)


TCP_ESTABLISHED = 1   # tcpi_state


def tcp_state(sock):
    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0]


def queued(fd, request):
    """FIONREAD (bytes to read) or TIOCOUTQ (SIOCOUTQ: bytes not yet acked)."""
    return struct.unpack("i", fcntl.ioctl(fd, request, b"\0" * 4))[0]


def tcp_queues(local, remote):
    """(send queue, receive queue) of this namespace's IPv4 TCP socket
    local -> remote, from /proc/net/tcp: also breakwater's sockets."""
    def key(host, port):
        return "%08X:%04X" % (struct.unpack("=I", socket.inet_aton(host))[0], port)
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if fields[1] == key(*local) and fields[2] == key(*remote):
                tx, rx = fields[4].split(":")
                return int(tx, 16), int(rx, 16)
    raise AssertionError("no TCP socket %r -> %r" % (local, remote))


def fill_until_held(test, conn, client, chunk=4096):
    """The backend (conn) sends to a client that does not read until
    breakwater's send queue to the client is full and its own buffer holds
    over 11 KiB, all the backend sent read: so it sees the backend's end
    of file at once, with more still to deliver than the client's kernel
    makes room for later (it compacts its receive queue)."""
    relay_backend = conn.sock.getpeername()[:2], conn.sock.getsockname()[:2]
    relay_client = client.sock.getpeername()[:2], client.sock.getsockname()[:2]
    sent = 0

    def read_all():
        return (queued(conn.sock.fileno(), termios.TIOCOUTQ) == 0
                and tcp_queues(*relay_backend)[1] == 0)

    def send(n):
        nonlocal sent
        conn.send(b"x" * n)
        sent += n
        wait_until(read_all, 3 * SLOW, what="breakwater reading the backend's %d bytes" % sent)

    def held():
        passed = queued(client.sock.fileno(), termios.FIONREAD) + tcp_queues(*relay_client)[0]
        return sent - passed

    def stays_held():
        if held() <= 0:
            return False
        time.sleep(0.2 * SLOW)   # not just on its way
        return held() > 0

    while not stays_held():
        if sent >= 8 << 20:
            test.fail("breakwater passed on all of %d bytes to a client that does not read"
                      % sent)
        send(chunk)
    # the buffer is not a ring: after the last chunk (its end at most
    # `chunk` in) it has room for this and then the end of file
    send(RELAY_BUFFER - chunk - 1024)


def next_conn_with(conns, needle, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for x in conns:
            if needle in x.bytes():
                return x
        time.sleep(0.02)
    return None


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


if __name__ == "__main__":
    unittest.main()
