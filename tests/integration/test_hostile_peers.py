"""The control socket and the metrics port against hostile peers: a
thousand that connect and say nothing, one that sends 1 MiB without a
newline. Each endpoint keeps at most its bound of connections (16 per
worker; the rest are told and closed at once), the long line is refused,
the daemon's memory stays flat, and mail is served throughout: a clean
client relayed, a listed one refused with 550."""

import os
import socket
import time

from harness import SLOW, BreakwaterTestCase, backend_greeting, send_message
from test_relay import rss_kib

PEERS = 1000
BOUND = 16                  # CONTROL_CONNECTIONS_MAX, HTTPD_CONNECTIONS_MAX
MIB = 1 << 20


def recv_all(s, timeout):
    """What s receives until its peer closes, or None when it stays open."""
    s.settimeout(timeout)
    data = b""
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return data
            data += chunk
    except socket.timeout:
        return None
    except ConnectionResetError:
        return data


class HostilePeersTest(BreakwaterTestCase):

    def connect_many(self, make):
        socks = []
        for _ in range(PEERS):
            s = make()
            self._cleanups_extra.append(s.close)
            socks.append(s)
        return socks

    def unix(self, path):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(path)
        return s

    def tcp(self, port):
        return socket.create_connection(("127.0.0.1", port), timeout=5 * SLOW)

    def test_control_and_metrics_flooded(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        control = d.setting("control_socket")
        metrics_port = int(d.setting("metrics_listen").rsplit(":", 1)[1])
        rss0 = rss_kib(d.proc.pid)

        # 1 MiB without a newline, first (within the bounds)
        long_control, long_metrics = self.unix(control), self.tcp(metrics_port)
        self._cleanups_extra += [long_control.close, long_metrics.close]
        for s, what in ((long_control, b"error: line too long"), (long_metrics, b"HTTP/1.0 431")):
            s.settimeout(5 * SLOW)
            try:
                s.sendall(b"x" * MIB)
            except (BrokenPipeError, ConnectionResetError, socket.timeout):
                pass    # refused and closed before it all went
            end = recv_all(s, 3 * SLOW)
            self.assertIsNotNone(end, "a 1 MiB line held its connection open")
            self.assertTrue(end.startswith(what), end[:200])

        silent = {"control": self.connect_many(lambda: self.unix(control)),
                  "metrics": self.connect_many(lambda: self.tcp(metrics_port))}

        # mail flows meanwhile
        c = self.client(d, "127.1.0.90")
        backend_greeting(self, c)
        send_message(self, c, [b"Subject: under siege", b"", b"still flowing"])
        sink.wait_message(b"under siege", timeout=5 * SLOW)
        bot = self.client(d, "127.66.0.90")
        self.assertReply(bot.read_reply(), 220)
        self.assertReply(bot.cmd("EHLO bot.test"), 250)
        self.assertReply(bot.cmd("MAIL FROM:<bot@spam.example>"), 250)
        self.assertReply(bot.cmd("RCPT TO:<victim@example.org>"), 550)

        for name, socks in silent.items():
            with self.subTest(endpoint=name):
                ends = [recv_all(s, 0.01) for s in socks[-(PEERS - BOUND):]]
                # those beyond the bound were closed at once (those within
                # it are held until their 10 s timeout)
                turned_away = [e for e in ends if e is not None]
                self.assertGreaterEqual(len(turned_away), PEERS - 2 * BOUND,
                                        "%s: %d of the last %d connections closed"
                                        % (name, len(turned_away), PEERS - BOUND))
                if name == "control":
                    self.assertTrue(all(e in (b"", b"error: busy (too many control "
                                              b"connections)\n") for e in turned_away),
                                    set(turned_away))

        rss1 = rss_kib(d.proc.pid)
        self.assertLess(rss1 - rss0, 8 * 1024,
                        "the daemon grew by %d KiB under the flood" % (rss1 - rss0))
        # and answers its own ctl again once the silent ones are gone
        for socks in silent.values():
            for s in socks:
                s.close()
        time.sleep(0.2)
        p = self.run_bw(["ctl", "-c", d.confpath, "stats"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(d.alive())
        self.assertTrue(os.path.exists(control))
