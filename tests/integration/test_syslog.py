"""log_target = syslog: breakwater's lines go to /dev/log with facility
mail, tag breakwater[PID] and the level's priority. Nothing listens on
/dev/log here, so the daemon runs in a private mount namespace in which
/dev is a directory of the test's own: its /dev/log is a datagram socket
the test reads (and null, zero, random, urandom are the real ones)."""

import os
import re
import socket

import harness
from harness import SLOW, BreakwaterTestCase

DEVICES = ("null", "zero", "random", "urandom")
MAIL = 2          # syslog facility
INFO, WARNING = 6, 4


class SyslogDaemon(harness.Daemon):
    """breakwater serve with its own /dev (see the module's comment)."""

    def __init__(self, tmpdir, conf, dev):
        super().__init__(tmpdir, conf, (), name="bw-syslog")
        self.dev = dev

    def argv(self):
        binds = "".join("mount --bind /dev/%s %s/%s && " % (d, self.dev, d) for d in DEVICES)
        script = binds + "mount --bind %s /dev && exec \"$@\"" % self.dev
        return (["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh"]
                + super().argv())


class SyslogTest(BreakwaterTestCase):

    def test_lines_go_to_syslog(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (mount namespace)")
        dev = os.path.join(self.tmp, "dev")
        os.makedirs(dev)
        for d in DEVICES:
            open(os.path.join(dev, d), "w").close()
        log = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._cleanups_extra.append(log.close)
        log.bind(os.path.join(dev, "log"))
        os.chmod(os.path.join(dev, "log"), 0o666)
        log.settimeout(5 * SLOW)

        conf = self.base_conf(self.dead_backend_address())
        conf["log_target"] = "syslog"
        d = SyslogDaemon(self.tmp, conf, dev)
        d.start(wait=False)
        self._daemons.append(d)
        messages = []

        def receive(pattern):
            while True:
                m = log.recv(4096).decode("utf-8", "replace")
                messages.append(m)
                if re.search(pattern, m):
                    return m
        first = receive(r"listening on")
        d.wait_listening()
        c = self.client(d, "127.66.0.7")
        self.assertReply(c.read_reply(), 220)
        c.close()
        session = receive(r"session client=\[127\.66\.0\.7\]")
        for m in (first, session):
            rx = re.match(r"<(\d+)>.*breakwater\[(\d+)\]: info: ", m)
            self.assertIsNotNone(rx, "not a syslog line of breakwater at info: %r" % m)
            self.assertEqual(int(rx.group(1)), MAIL * 8 + INFO, m)
        self.assertIn("verdict=listed", session)
        warnings = [m for m in messages if ": warning: " in m]
        self.assertTrue(warnings, "no warning line among %r" % messages)
        self.assertTrue(all(m.startswith("<%d>" % (MAIL * 8 + WARNING)) for m in warnings),
                        warnings)
        self.assertEqual(d.log(), "", "with log_target = syslog nothing goes to stderr")
