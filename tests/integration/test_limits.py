"""Backend outages and caps, per-IP and global connection limits, fd
exhaustion."""

import os
import resource
import time
import unittest

from harness import (SLOW, BreakwaterTestCase, Closed, backend_greeting,
                     engine_greeting, rejected_dialogue)


class LimitsTest(BreakwaterTestCase):
    def assert421(self, c, status=None):
        try:
            r = c.read_reply()
        except Closed as e:
            self.fail("closed without a 421: %s" % e)
        self.assertReply(r, 421)
        if status:
            self.assertIn(status, r.text)
        self.assertClosed(c)
        return r

    def relayed_eventually(self, d, source, timeout):
        """A clean client from source is relayed (retrying while the daemon
        frees a slot); returns the client."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.client(d, source)
            r = c.read_reply()
            if r.code == 220:
                self.assertEqual(r.lines[0], "220 smtp-sink ESMTP")
                return c
            self.assertEqual(r.code, 421, r.text)
            c.close()
            if time.monotonic() > deadline:
                self.fail("no slot freed within %.0fs" % timeout)
            time.sleep(0.1)

    def test_backend_down_421(self):
        d = self.start_daemon(self.dead_backend_address())
        c = self.client(d, "127.1.0.1")
        self.assert421(c)
        self.assertSession(d, c, "backend-down")
        # a listed client is still refused properly
        c = self.client(d, "127.66.1.1")
        engine_greeting(self, c)
        rejected_dialogue(self, c, "127.66.1.1", ["bl.test"])

    def test_backend_connect_timeout_421(self):
        d = self.start_daemon(self.syn_dropping_backend(),
                              opts={"backend_connect_timeout": "1s"})
        t0 = time.monotonic()
        c = self.client(d, "127.1.0.2")
        self.assert421(c)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.7)
        self.assertLess(elapsed, 1.0 + 1.5 * SLOW,
                        "backend_connect_timeout=1s took %.1fs" % elapsed)
        self.assertSession(d, c, "backend-down")

    def test_backend_cap(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"backend_max_connections": "2"})
        a = self.client(d, "127.1.1.1")
        backend_greeting(self, a)
        b = self.client(d, "127.1.1.2")
        backend_greeting(self, b)
        c = self.client(d, "127.1.1.3")
        self.assert421(c, "4.3.2")
        s = d.wait_session(c)
        self.assertIn(s.get("verdict"), ("limit", "backend-down"), s["line"])
        # the two relayed sessions still work
        self.assertReply(a.cmd("NOOP"), 250)
        self.assertReply(b.cmd("NOOP"), 250)
        # a slot frees when a session ends
        self.assertReply(a.cmd("QUIT"), 221)
        self.assertClosed(a)
        self.relayed_eventually(d, "127.1.1.4", 3 * SLOW)
        # listed clients never count against the backend cap
        e = self.client(d, "127.66.1.1")
        engine_greeting(self, e)

    def test_per_ip_cap(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"max_connections_per_ip": "3"})
        held = []
        for _ in range(3):
            c = self.client(d, "127.1.2.7")
            backend_greeting(self, c)
            held.append(c)
        c = self.client(d, "127.1.2.7")
        self.assert421(c, "4.7.0")
        self.assertSession(d, c, "limit")
        other = self.client(d, "127.1.2.8")
        backend_greeting(self, other)
        held[0].close()
        self.relayed_eventually(d, "127.1.2.7", 3 * SLOW)

    def test_per_ip_cap_listed(self):
        backend = self.recording_backend()
        d = self.start_daemon(backend, opts={"max_connections_per_ip": "2"})
        held = []
        for _ in range(2):
            c = self.client(d, "127.66.5.5")
            engine_greeting(self, c)
            held.append(c)
        c = self.client(d, "127.66.5.5")
        self.assert421(c, "4.7.0")
        self.assertSession(d, c, "limit")

    def test_global_cap(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"max_connections": "3",
                                          "backend_max_connections": "3",
                                          "max_connections_per_ip": "3"})
        held = []
        for i in range(3):
            c = self.client(d, "127.1.3.%d" % (i + 1))
            backend_greeting(self, c)
            held.append(c)
        c = self.client(d, "127.1.3.9")
        self.assert421(c, "4.7.0")
        self.assertSession(d, c, "limit")
        held[1].close()
        self.relayed_eventually(d, "127.1.3.10", 3 * SLOW)

    def test_fd_exhaustion(self):
        backend = self.recording_backend()

        def low_nofile():
            resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
        d = self.start_daemon(backend, preexec_fn=low_nofile)
        clients = []
        for i in range(70):
            c = self.client(d, "127.66.6.%d" % (i + 1))
            clients.append(c)
        time.sleep(0.5 * SLOW)
        self.assertTrue(d.alive(), "daemon died on fd exhaustion")
        cpu0 = cpu_seconds(d.proc.pid)
        time.sleep(1.0)
        cpu = cpu_seconds(d.proc.pid) - cpu0
        self.assertLess(cpu, 0.3 * SLOW, "daemon used %.2fs CPU in 1s at EMFILE (spinning?)" % cpu)
        # the early ones are served
        engine_greeting(self, clients[0])
        # room comes: the last one, which waited in the kernel's backlog all
        # along, is accepted and served
        for c in clients[:60]:
            c.close()
        last = clients[-1]
        engine_greeting(self, last, timeout=8 * SLOW)
        rejected_dialogue(self, last, "127.66.6.70", ["bl.test"])


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


if __name__ == "__main__":
    unittest.main()
