"""SIGTERM: breakwater stops accepting, tells the clients it has not
relayed `421 4.3.2 Shutting down`, lets open relays finish (up to
shutdown_timeout), keeps its state and exits 0; a second signal stops it
at once."""

import socket
import time

import harness
from harness import SLOW, BreakwaterTestCase, backend_greeting, send_message


class ShutdownTest(BreakwaterTestCase):

    def test_relay_finishes_others_get_421(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"shutdown_timeout": "20s"})
        relayed = self.client(d, "127.1.0.1")
        backend_greeting(self, relayed)
        self.assertReply(relayed.cmd("EHLO client.test"), 250)
        listed = self.client(d, "127.66.0.1")
        self.assertReply(listed.read_reply(), 220)
        self.assertReply(listed.cmd("EHLO bot.test"), 250)

        t0 = time.monotonic()
        d.expect_exit = True
        d.proc.send_signal(15)
        # the listed client is told to come back later and closed
        self.assertReply(listed.read_reply(timeout=3 * SLOW), 421, "4.3.2", "Shutting down")
        self.assertClosed(listed)
        # no new connections
        harness.wait_until(lambda: not self.connects(d), 3 * SLOW,
                           what="the listener closed after SIGTERM")
        # the relay still works: a whole message, then QUIT
        self.assertTrue(d.alive(), "breakwater did not wait for the open relay")
        send_message(self, relayed, [b"Subject: during shutdown", b"", b"still flowing"])
        relayed.close()
        d.proc.wait(5 * SLOW)
        self.assertEqual(d.proc.returncode, 0, d.log()[-2000:])
        self.assertLess(time.monotonic() - t0, 10 * SLOW, "it waited for the timeout")
        self.assertIn("signal 15: shutting down", d.log())
        s = [x for x in d.sessions() if x.get("addr") == "127.66.0.1"]
        self.assertTrue(s and s[0].get("reason") == "shutdown", "session lines: %r" % s)
        # its state kept: the listed verdict made before the signal is in
        # the store the next start reads
        d2 = self.start_daemon(sink)
        again = self.client(d2, "127.66.0.1")
        self.assertReply(again.read_reply(), 220)
        again.close()
        s2 = d2.wait_session(again)
        self.assertEqual(s2.get("cache"), "hit", s2["line"])

    def test_timeout_and_second_signal(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"shutdown_timeout": "1s"})
        relayed = self.client(d, "127.1.0.2")
        backend_greeting(self, relayed)   # and then it sits there
        t0 = time.monotonic()
        d.expect_exit = True
        d.proc.send_signal(15)
        d.proc.wait(5 * SLOW)
        elapsed = time.monotonic() - t0
        self.assertEqual(d.proc.returncode, 0, d.log()[-2000:])
        self.assertGreaterEqual(elapsed, 0.9, "it did not wait for the relay at all")
        self.assertIn("shutdown_timeout: closing 1 sessions", d.log())

        d2 = self.start_daemon(sink, opts={"shutdown_timeout": "30s"})
        relayed = self.client(d2, "127.1.0.3")
        backend_greeting(self, relayed)
        t0 = time.monotonic()
        d2.expect_exit = True
        d2.proc.send_signal(15)
        d2.wait_log("signal 15: shutting down")
        d2.proc.send_signal(2)
        d2.proc.wait(5 * SLOW)
        self.assertEqual(d2.proc.returncode, 0, d2.log()[-2000:])
        self.assertLess(time.monotonic() - t0, 3 * SLOW, "a second signal did not stop it")
        self.assertIn("signal 2 again: stopping now", d2.log())

    def connects(self, d):
        try:
            socket.create_connection((d.host, d.port), timeout=1).close()
            return True
        except OSError:
            return False
