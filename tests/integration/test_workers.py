"""workers = N: several processes on the same ports, each client address
steered to one of them (SO_REUSEPORT with a BPF program), supervised."""

import os
import signal
import time
import unittest

from harness import (SLOW, BreakwaterTestCase, backend_greeting, engine_greeting,
                     rejected_dialogue, wait_until)


def children(pid):
    """The pids of pid's child processes."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % name) as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(name))
    return sorted(out)


class WorkersTest(BreakwaterTestCase):
    def test_per_ip_cap_exact_across_workers(self):
        # Without steering each connection would land on a random worker
        # (per-worker tables): four from one address would pass a cap of 3
        # most of the time. With it, the fourth is refused every time.
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"workers": "2", "max_connections_per_ip": "3"})
        # the ports are open before the workers are forked: wait for them
        wait_until(lambda: len(children(d.proc.pid)) == 2, 5 * SLOW,
                   what="two worker processes")
        for a in range(1, 13):
            source = "127.1.40.%d" % a
            held = []
            for _ in range(3):
                c = self.client(d, source)
                backend_greeting(self, c)
                held.append(c)
            c = self.client(d, source)
            r = c.read_reply()
            self.assertEqual(r.code, 421, "fourth connection from %s: %r" % (source, r.text))
            self.assertIn("4.7.0", r.text)
            for h in held:
                h.close()

    def test_listed_and_clean_with_workers(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"workers": "2"})
        for a in range(1, 9):
            c = self.client(d, "127.66.41.%d" % a)
            engine_greeting(self, c)
            rejected_dialogue(self, c, "127.66.41.%d" % a)
            self.assertSession(d, c, "listed", ["bl.test"])
            c = self.client(d, "127.1.41.%d" % a)
            backend_greeting(self, c)
            self.quit(c)
            self.assertSession(d, c, "clean")

    def test_dead_worker_is_restarted(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"workers": "2"})
        # the ports are open before the workers are forked: wait for them
        wait_until(lambda: len(children(d.proc.pid)) == 2, 5 * SLOW,
                   what="two worker processes")
        before = children(d.proc.pid)
        os.kill(before[0], signal.SIGKILL)
        wait_until(lambda: len(children(d.proc.pid)) == 2 and children(d.proc.pid) != before,
                   5 * SLOW, what="a new worker")
        d.wait_log(r"worker \d+ \(pid %d\) ended" % before[0], timeout=3 * SLOW)
        # every address is served again, whichever worker it belongs to
        for a in range(1, 9):
            c = self.client(d, "127.1.42.%d" % a)
            backend_greeting(self, c, timeout=3 * SLOW)
            self.quit(c)


if __name__ == "__main__":
    unittest.main()
