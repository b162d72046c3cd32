"""Clean clients are relayed to the backend untouched: the backend's own
greeting, messages byte-intact, half-close, back-pressure, PROXY v1/v2
headers byte-exact, resets; and a relay ends when the MTA has closed and
the client holds on, or when no byte moves for relay_idle_timeout."""

import hashlib
import random
import socket
import struct
import time
import unittest

import harness
from harness import (SLOW, BreakwaterTestCase, backend_greeting, free_port,
                     send_message)

PROXY_V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"
RECORDER_GREETING = b"220 recorder.test ESMTP recorder\r\n"
LINGER = 5.0    # RELAY_LINGER_TIMEOUT in src/relay.h


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
        self.assertLess(time.monotonic() - t0, 1.0,
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
