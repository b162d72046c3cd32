"""Type=notify: started with a NOTIFY_SOCKET (as systemd does), serve says
READY=1 once it listens, WATCHDOG=1 at half of WATCHDOG_USEC, and
STOPPING=1 at SIGTERM; the same with workers (the supervisor speaks)."""

import os
import socket
import struct
import time

from harness import SLOW, BreakwaterTestCase


SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)  # Linux; also its SCM_ type


def sent_at(s):
    """The next datagram's text and the time it was sent (SO_TIMESTAMPNS)."""
    data, ancillary, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(16))
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
            seconds, nanoseconds = struct.unpack("qq", value[:16])
            return data.decode(), seconds + nanoseconds / 1e9
    raise AssertionError("no SO_TIMESTAMPNS on a datagram")


class NotifyTest(BreakwaterTestCase):

    def notify_socket(self):
        path = os.path.join(self.tmp, "notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._cleanups_extra.append(s.close)
        s.bind(path)
        os.chmod(path, 0o666)
        # the kernel stamps each datagram as it is queued, that is when
        # serve sent it: the gaps are serve's, not this process's (which
        # reads several at once when the machine is busy)
        s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        s.settimeout(5 * SLOW)
        return s, path

    def start_notified(self, path, **opts):
        def env():
            os.environ["NOTIFY_SOCKET"] = path
            os.environ["WATCHDOG_USEC"] = "200000"   # 0.2 s: pings every 0.1 s
            os.environ.pop("WATCHDOG_PID", None)
        return self.start_daemon(self.smtp_sink(), opts=opts, preexec_fn=env)

    def messages_until(self, s, wanted, deadline):
        seen = []
        while time.monotonic() < deadline:
            m = s.recv(4096).decode()
            seen.append(m)
            if wanted in m:
                return seen
        self.fail("no %r among %r" % (wanted, seen))

    def check(self, workers):
        s, path = self.notify_socket()
        d = self.start_notified(path, workers=str(workers))
        deadline = time.monotonic() + 5 * SLOW
        self.messages_until(s, "READY=1", deadline)
        # WATCHDOG_USEC 0.2 s: systemd would kill a process silent that
        # long; a ping every 0.1 s (half of it) keeps well inside
        pings = []
        while len(pings) < 6:
            text, when = sent_at(s)
            if "WATCHDOG=1" in text:
                pings.append(when)
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        self.assertLess(max(gaps), 0.2 * SLOW, "a gap past WATCHDOG_USEC: %r" % gaps)
        mean = sum(gaps) / len(gaps)
        self.assertTrue(0.05 < mean < 0.1 + 0.05 * SLOW,
                        "pings not at half of WATCHDOG_USEC: %r" % gaps)
        d.expect_exit = True
        d.proc.send_signal(15)
        self.messages_until(s, "STOPPING=1", time.monotonic() + 5 * SLOW)
        d.proc.wait(5 * SLOW)
        self.assertEqual(d.proc.returncode, 0, d.log()[-2000:])

    def test_one_process(self):
        self.check(1)

    def test_workers(self):
        self.check(2)
