"""The test peers themselves (no breakwater needed): the zones answer what
the other tests assume, smtp-sink keeps messages, the recording backend
records. When these fail, the other tests' failures say nothing about
breakwater."""

import shutil
import socket
import unittest

import harness
from harness import SMTPClient, dig


def rev4(a):
    return ".".join(reversed(a.split(".")))


def nib6(a):
    packed = socket.inet_pton(socket.AF_INET6, a)
    return ".".join(reversed("".join("%02x" % b for b in packed)))


class PeersTest(unittest.TestCase):
    def setUp(self):
        self.tmp = harness.new_tmpdir("bw-peers-")
        self.addCleanup(shutil.rmtree, self.tmp, True)

    def test_rbldnsd_zones(self):
        port = harness.shared_rbldnsd().port
        a = lambda name: sorted(dig(port, name) or [])
        self.assertEqual(a(rev4("127.66.1.1") + ".bl.test"), ["127.0.0.2"])
        self.assertEqual(dig(port, rev4("127.66.1.1") + ".bl.test", "TXT"),
                         ['"Listed, see http://example.invalid/127.66.1.1"'])
        self.assertEqual(a(rev4("127.67.0.1") + ".bl.test"), ["127.255.255.254"])
        self.assertEqual(a(rev4("127.1.0.1") + ".bl.test"), [])
        self.assertEqual(a(rev4("127.66.1.5") + ".bl2.test"), ["127.0.0.2", "127.0.0.3"])
        self.assertEqual(a(rev4("127.66.0.5") + ".bl2.test"), [])
        self.assertEqual(a(rev4("127.68.0.1") + ".wl.test"), ["127.0.2.1"])
        self.assertEqual(a(rev4("127.66.2.2") + ".wl.test"), ["127.0.2.1"])
        self.assertEqual(a(nib6("::1") + ".bl6.test"), ["127.0.0.2"])
        self.assertEqual(a(nib6("2001:db8:66::1") + ".bl6.test"), ["127.0.0.2"])
        self.assertEqual(a(rev4("127.1.0.1") + ".dead.test"), ["127.0.0.2"])
        self.assertEqual(a(nib6("2001:db8::1") + ".dead.test"), ["127.0.0.2"])
        # RFC 5782 test points, in both forms, on every healthy zone.
        for z in ("bl.test", "bl2.test", "wl.test", "bl6.test"):
            self.assertTrue(a("2.0.0.127." + z), z)
            self.assertEqual(a("1.0.0.127." + z), [], z)
            self.assertTrue(a(nib6("::ffff:7f00:2") + "." + z), z)
            self.assertEqual(a(nib6("::ffff:7f00:1") + "." + z), [], z)
        self.assertTrue(a("1.0.0.127.dead.test"))

    def test_smtp_sink_keeps_messages(self):
        sink = harness.SmtpSink(self.tmp).start()
        try:
            with SMTPClient("127.0.0.1", sink.port, source="127.1.9.9") as c:
                self.assertEqual(c.read_reply().lines[0], sink.GREETING)
                self.assertEqual(c.cmd("EHLO peers.test").code, 250)
                self.assertEqual(c.cmd("MAIL FROM:<a@peers.test>").code, 250)
                self.assertEqual(c.cmd("RCPT TO:<b@peers.test>").code, 250)
                self.assertEqual(c.cmd("DATA").code, 354)
                self.assertEqual(c.cmd(b"Subject: peer \xe9\r\n\r\n..dot\r\nend\r\n.").code, 250)
                self.assertEqual(c.cmd("QUIT").code, 221)
            m = sink.wait_message(b"Subject: peer \xe9")
            self.assertIn(b"Subject: peer \xe9\n\n.dot\nend\n", m)
            self.assertIn(b"X-Client-Addr: 127.1.9.9", m)
        finally:
            sink.stop()

    def test_recording_backend(self):
        b = harness.RecordingBackend(on_eof=b"bye\r\n")
        try:
            with SMTPClient("127.0.0.1", b.port, source="127.1.9.8") as c:
                self.assertEqual(c.read_reply().code, 220)
                c.send(b"hello\x00\xff")
                conn = b.wait_connections(1)[0]
                self.assertEqual(conn.wait_bytes(7), b"hello\x00\xff")
                c.shutdown_write()
                self.assertTrue(conn.wait_eof())
                self.assertEqual(c.read_until_eof(), b"bye\r\n")
        finally:
            b.stop()


if __name__ == "__main__":
    unittest.main()
