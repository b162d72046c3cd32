"""Listed clients and the reject engine: 550 at RCPT, nothing reaches the
backend, and hostile input (overlong lines, NUL, bare LF, pipelining
floods, slow and resetting clients) never desynchronises or stops it."""

import random
import socket
import threading
import time
import unittest

from harness import (SLOW, BreakwaterTestCase, Closed, engine_greeting,
                     rejected_dialogue)


class RejectTest(BreakwaterTestCase):
    def listed_daemon(self, **opts):
        self.backend = self.recording_backend()
        return self.start_daemon(self.backend, opts=opts)

    def assertBackendUntouched(self):
        time.sleep(0.1)
        self.assertEqual(self.backend.count(), 0,
                         "a listed client's connection reached the backend")

    def test_listed_client_rejected_at_rcpt(self):
        d = self.listed_daemon()
        c = self.client(d, "127.66.1.1")
        engine_greeting(self, c)
        r = c.cmd("EHLO client.test")
        self.assertReply(r, 250)
        self.assertGreaterEqual(len(r.lines), 2, "EHLO reply not multiline: %r" % r.text)
        self.assertIn("bw.test", r.lines[0])
        self.assertReply(c.cmd("MAIL FROM:<sender@spam.example>"), 250)
        r = c.cmd("RCPT TO:<victim@example.org>")
        self.assertReply(r, 550, "5.7.1", "127.66.1.1", "bl.test")
        # every recipient is refused, not only the first
        self.assertReply(c.cmd("RCPT TO:<other@example.org>"), 550, "bl.test")
        self.assertReply(c.cmd("DATA"), 554)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertClosed(c)
        self.assertBackendUntouched()
        s = self.assertSession(d, c, "listed", ["bl.test"])
        self.assertEqual(s.get("score"), "1", s["line"])

    def test_listed_other_verbs(self):
        d = self.listed_daemon()
        c = self.client(d, "127.66.1.2")
        engine_greeting(self, c)
        self.assertReply(c.cmd("HELO client.test"), 250)
        self.assertReply(c.cmd("DATA"), 503)          # no MAIL yet
        self.assertReply(c.cmd("MAIL FROM:<a@spam.example>"), 250)
        self.assertReply(c.cmd("DATA"), 503)          # no RCPT yet
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertReply(c.cmd("noop"), 250)          # verbs are case-insensitive
        self.assertReply(c.cmd("VRFY postmaster"), 252)
        self.assertReply(c.cmd("XYZZY plugh"), 502)
        self.assertReply(c.cmd("MAIL FROM:<a@spam.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.org>"), 550, "5.7.1")
        # BDAT after a refused RCPT: 554, and the chunk's bytes are skipped
        # (the next command is still understood).
        c.send(b"BDAT 12 LAST\r\nNOOP\r\nNOOP\r\n")
        self.assertReply(c.read_reply(), 554)
        self.assertReply(c.cmd("NOOP"), 250)
        self.assertFalse(c.buf, "unexpected extra reply: %r" % c.buf)
        self.assertFalse(c.is_closed(0.2))
        self.assertFalse(c.buf, "unexpected extra reply: %r" % c.buf)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertClosed(c)
        self.assertBackendUntouched()

    def test_reject_message_and_duration(self):
        d = self.listed_daemon(reject_message="5.7.1 Go away [%a] (%l) 100%% sure")
        t0 = time.monotonic()
        c = self.client(d, "127.66.1.20")
        engine_greeting(self, c)
        self.assertReply(c.cmd("MAIL FROM:<a@spam.example>"), 250)
        r = c.cmd("RCPT TO:<b@example.org>")
        self.assertEqual(r.text, "550 5.7.1 Go away [127.66.1.20] (bl.test) 100% sure")
        time.sleep(0.5)
        self.quit(c)
        elapsed = time.monotonic() - t0
        s = self.assertSession(d, c, "listed", ["bl.test"])
        self.assertGreaterEqual(float(s.get("duration", "-1")), 0.5, s["line"])
        self.assertLessEqual(float(s.get("duration", "1e9")), elapsed + 0.2, s["line"])

    def test_too_many_errors_421(self):
        d = self.listed_daemon()
        c = self.client(d, "127.66.1.3")
        engine_greeting(self, c)
        c.send(b"XYZZY\r\n" * 30)
        codes = []
        try:
            while True:
                codes.append(c.read_reply().code)
                if codes[-1] == 421:
                    break
        except Closed:
            self.fail("closed without 421 after %d replies %s" % (len(codes), codes))
        self.assertLessEqual(len(codes), 12, "421 only after %d errors: %s" % (len(codes), codes))
        self.assertGreaterEqual(len(codes), 5, "421 after only %d errors: %s" % (len(codes), codes))
        self.assertTrue(all(x >= 500 for x in codes[:-1]), codes)
        self.assertClosed(c)

    # -- hostile input

    def test_overlong_line_500_and_continues(self):
        d = self.listed_daemon()
        c = self.client(d, "127.66.1.4")
        engine_greeting(self, c)
        c.send(b"NOOP " + b"a" * 2000 + b"\r\nNOOP\r\n")
        self.assertReply(c.read_reply(), 500)
        self.assertReply(c.read_reply(), 250)
        # an overlong line arriving in pieces is still one error
        c.send(b"MAIL FROM:<" + b"b" * 1500)
        time.sleep(0.1)
        c.send(b"c" * 1500)
        time.sleep(0.1)
        c.send(b"@example.com>\r\n")
        self.assertReply(c.read_reply(), 500)
        self.assertFalse(c.is_closed(0.3))
        self.assertEqual(c.buf, b"", "more than one reply to one overlong line")
        rejected_dialogue(self, c, "127.66.1.4", ["bl.test"])

    def test_nul_bytes(self):
        d = self.listed_daemon()
        c = self.client(d, "127.66.1.5")
        engine_greeting(self, c)
        for junk in (b"NO\x00OP", b"\x00\x00\x00", b"EHLO nul\x00.test",
                     b"MAIL FROM:<a\x00b@spam.example>"):
            r = c.cmd(junk)
            self.assertIn(r.code // 100, (2, 5), "reply to %r: %r" % (junk, r.text))
        self.assertReply(c.cmd("RSET"), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@spam.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<b@example.org>"), 550, "5.7.1", "127.66.1.5")
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertClosed(c)

    def test_bare_lf(self):
        d = self.listed_daemon()
        c = self.client(d, "127.66.1.6")
        engine_greeting(self, c)
        c.send(b"EHLO lf.test\n")
        r = c.read_reply()
        self.assertReply(r, 250)
        self.assertGreaterEqual(len(r.lines), 2)
        # bare LF and CRLF mixed in one pipelined send
        c.send(b"MAIL FROM:<a@spam.example>\nRCPT TO:<b@example.org>\r\nRCPT TO:<c@example.org>\nNOOP\n")
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.read_reply(), 550, "5.7.1", "127.66.1.6")
        self.assertReply(c.read_reply(), 550)
        self.assertReply(c.read_reply(), 250)
        c.send(b"QUIT\n")
        self.assertReply(c.read_reply(), 221)
        self.assertClosed(c)

    def test_pipelining_flood_answered_in_order(self):
        d = self.listed_daemon()
        # a small receive buffer so the daemon's replies back up
        c = self.client(d, "127.66.1.7", timeout=10, rcvbuf=4096)
        engine_greeting(self, c)
        n = 5000
        flood = b"".join(b"NOOP\r\n" if i % 2 == 0 else b"VRFY x%d\r\n" % i for i in range(n))
        flood += b"QUIT\r\n"
        errors = []

        def sender():
            try:
                c.sock.sendall(flood)
            except OSError as e:
                errors.append(e)
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        codes = []
        try:
            # read slowly at first, then normally
            for i in range(30):
                time.sleep(0.01)
                r = c.read_reply()
                codes.append(r.code)
            while len(codes) < n + 1:
                codes.append(c.read_reply().code)
        except (Closed, socket.timeout) as e:
            self.fail("after %d replies: %s" % (len(codes), e))
        t.join(5)
        self.assertFalse(errors, errors)
        expected = [250 if i % 2 == 0 else 252 for i in range(n)] + [221]
        if codes != expected:
            bad = next(i for i, (a, b) in enumerate(zip(codes, expected)) if a != b)
            self.fail("reply %d is %d, expected %d (replies out of order or lost)"
                      % (bad, codes[bad], expected[bad]))
        self.assertClosed(c)

    def test_command_timeout_421(self):
        d = self.listed_daemon(command_timeout="1s")
        c = self.client(d, "127.66.1.8")
        engine_greeting(self, c)
        t0 = time.monotonic()
        try:
            r = c.read_reply(5 * SLOW)
        except Closed:
            self.fail("closed without a 421 after command_timeout")
        elapsed = time.monotonic() - t0
        self.assertReply(r, 421)
        self.assertClosed(c)
        self.assertGreater(elapsed, 0.7, "timed out too early")
        self.assertLess(elapsed, 1.0 + 1.5 * SLOW, "command_timeout=1s took %.1fs" % elapsed)
        # a command resets the idle timer: a client speaking every 0.5 s
        # lasts longer than 1 s
        c2 = self.client(d, "127.66.1.9")
        engine_greeting(self, c2)
        for _ in range(4):
            time.sleep(0.5)
            self.assertReply(c2.cmd("NOOP"), 250)

    def test_reject_session_timeout(self):
        d = self.listed_daemon(command_timeout="10s", reject_session_timeout="2s")
        c = self.client(d, "127.66.1.10")
        t0 = time.monotonic()
        engine_greeting(self, c)
        closed_at = None
        while time.monotonic() - t0 < 2 + 3 * SLOW:
            try:
                r = c.cmd("NOOP")
            except Closed:
                closed_at = time.monotonic()
                break
            if r.code == 421:
                self.assertClosed(c)
                closed_at = time.monotonic()
                break
            self.assertReply(r, 250)
            time.sleep(0.3)
        self.assertIsNotNone(closed_at, "a busy listed client was kept past reject_session_timeout")
        self.assertGreater(closed_at - t0, 1.5, "closed too early")

    def test_reject_delay(self):
        """reject_delay = 0.5s: the greeting at once, every later reply to
        a listed client half a second after its command, the whole session
        still bounded by reject_session_timeout; a clean client's dialogue
        (the MTA's) is not delayed."""
        d = self.listed_daemon(reject_delay="0.5s", reject_session_timeout="2.2s",
                               dnsbl_sites="bl.test")
        c = self.client(d, "127.66.1.11")
        t0 = time.monotonic()
        engine_greeting(self, c)
        self.assertLess(time.monotonic() - t0, 0.4 * SLOW, "the greeting was held back")
        waits = []
        for line in ("EHLO client.test", "MAIL FROM:<bot@spam.example>",
                     "RCPT TO:<victim@example.org>"):
            t = time.monotonic()
            r = c.cmd(line)
            waits.append(time.monotonic() - t)
            self.assertIn(r.code, (250, 550), str(r))
        self.assertEqual(r.code, 550)
        for w in waits:
            self.assertGreaterEqual(w, 0.45, "a reply came before reject_delay: %r" % waits)
        # reject_session_timeout still ends it: 2.2 s in all
        closed = None
        while closed is None and time.monotonic() - t0 < 2.2 + 3 * SLOW:
            try:
                if c.cmd("NOOP").code == 421:
                    closed = time.monotonic()
            except Closed:
                closed = time.monotonic()
        self.assertIsNotNone(closed, "kept past reject_session_timeout")
        self.assertLess(closed - t0, 2.2 + 1.0 * SLOW)
        # a clean client talks to the MTA at its pace
        clean = self.client(d, "127.1.9.9")
        t = time.monotonic()
        r = clean.read_reply()
        self.assertEqual(r.lines[0], "220 recorder.test ESMTP recorder")
        self.assertLess(time.monotonic() - t, 0.4 * SLOW)

    def test_reject_delay_shorter_than_command_timeout(self):
        p = self.run_bw(["check", "-c", "/dev/null", "-o", "reject_delay=30s",
                         "-o", "command_timeout=30s", "127.0.0.1"])
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("reject_delay: 30s is not shorter than command_timeout", p.stderr)

    def test_binary_junk_then_still_serving(self):
        d = self.listed_daemon()
        c = self.client(d, "127.66.1.11")
        engine_greeting(self, c)
        rnd = random.Random(5321)
        junk = bytes(rnd.getrandbits(8) for _ in range(65536))
        try:
            c.sock.sendall(junk)
        except OSError:
            pass  # the daemon may hang up on a client sending garbage
        try:
            c.read_until_eof(5 * SLOW)
        except socket.timeout:
            pass  # or keep answering it
        self.assertTrue(d.alive())
        c2 = self.client(d, "127.66.1.12")
        engine_greeting(self, c2)
        rejected_dialogue(self, c2, "127.66.1.12", ["bl.test"])

    def test_reset_mid_reject(self):
        d = self.listed_daemon()
        other = self.client(d, "127.66.1.13")
        engine_greeting(self, other)
        self.assertReply(other.cmd("EHLO other.test"), 250)
        c = self.client(d, "127.66.1.14", rcvbuf=4096)
        engine_greeting(self, c)
        c.send(b"NOOP\r\n" * 3000)   # replies the client never reads
        time.sleep(0.2)
        c.reset()
        # a reset right after connecting, before the verdict
        c3 = self.client(d, "127.66.1.15")
        c3.reset()
        time.sleep(0.2)
        self.assertTrue(d.alive(), "daemon died after a client reset")
        self.assertReply(other.cmd("MAIL FROM:<a@spam.example>"), 250)
        self.assertReply(other.cmd("RCPT TO:<b@example.org>"), 550, "127.66.1.13")
        self.assertReply(other.cmd("QUIT"), 221)
        self.assertClosed(other)
        c4 = self.client(d, "127.66.1.16")
        engine_greeting(self, c4)
        rejected_dialogue(self, c4, "127.66.1.16", ["bl.test"])
        self.assertSession(d, c, "listed")
        self.assertBackendUntouched()


if __name__ == "__main__":
    unittest.main()
