"""Never an open relay: breakwater in front of a real Postfix smtpd.

One private, throwaway Postfix instance (tests/integration/postfix.py) for
the module, with two smtpd services on loopback:
  - pf.port:       smtpd_upstream_proxy_protocol = haproxy (the deployment
                   docs/deployment.md prescribes);
  - pf.plain_port: no upstream proxy protocol (the careless deployment).
mynetworks trusts 127.0.0.0/8 -- Debian's default, which covers the front
end's own 127.0.0.1 -- except 127.1.0.0/16, where the test clients live,
standing in for the internet.

PostfixAloneTest checks the instance itself (no breakwater): a PROXY v2
header's source address is what Postfix judges, and without the header a
loopback client is trusted. BreakwaterPostfixTest puts breakwater in front:
with backend_proxy_protocol = v2 Postfix logs the client's real address and
refuses its relay attempt (554 5.7.1 Relay access denied); with none, the
same client relays through Postfix as 127.0.0.1 -- the danger, shown so the
first test's refusal is known to hinge on the header.
"""

import os
import re
import socket
import unittest

import harness
from postfix import PrivatePostfix, postfix_available, proxy_v2_header

DOMAIN = "example.test"            # the instance's only local domain
OUTSIDE = "x@outside.example"      # a relay attempt (nothing is ever sent)
BANNER = "220 mx.%s ESMTP private-postfix" % DOMAIN

pf = None


def setUpModule():
    global pf
    ok, why = postfix_available()
    if not ok:
        raise unittest.SkipTest(why)
    pf = PrivatePostfix(proxy_protocol="haproxy", domain=DOMAIN,
                        plain_service=True).start()


def tearDownModule():
    global pf
    if pf is not None:
        pf.stop()
        pf = None


def log_since(offset):
    return pf.maillog()[offset:]


def wait_log_since(offset, pattern, timeout=5.0):
    """The first match of pattern in the maillog written after offset
    (postlogd writes asynchronously); fails with the log's tail."""
    rx = re.compile(pattern)
    try:
        return harness.wait_until(lambda: rx.search(log_since(offset)),
                                  timeout * harness.SLOW,
                                  what="maillog /%s/" % pattern)
    except AssertionError:
        raise AssertionError("Postfix maillog has no line matching /%s/; new lines:\n%s"
                             % (pattern, log_since(offset)[-4000:]))


def client_tag(addr, port):
    """How Postfix names a client with smtpd_client_port_logging = yes."""
    return re.escape("unknown[%s]:%d" % (addr, port))


class PostfixAloneTest(unittest.TestCase):
    """The private instance behaves as the breakwater tests assume."""

    def test_proxy_v2_source_is_judged_and_relay_refused(self):
        start = len(pf.maillog())
        with harness.SMTPClient("127.0.0.1", pf.port) as c:
            # Addresses in the header are just bytes; no traffic goes there.
            c.send(proxy_v2_header(("198.51.100.7", 4321), ("127.0.0.1", 25)))
            self.assertEqual(c.read_reply().text, BANNER)
            self.assertEqual(c.cmd("EHLO client.test").code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@sender.test>").code, 250)
            r = c.cmd("RCPT TO:<%s>" % OUTSIDE)
            self.assertEqual(r.code, 554, r.text)
            self.assertIn("5.7.1", r.text)
            self.assertIn("Relay access denied", r.text)
            r = c.cmd("RCPT TO:<someone@%s>" % DOMAIN)
            self.assertEqual(r.code, 250, r.text)
            self.assertEqual(c.cmd("QUIT").code, 221)
        tag = client_tag("198.51.100.7", 4321)
        wait_log_since(start, r"connect from %s" % tag)
        wait_log_since(start, r"reject: RCPT from %s: 554 5\.7\.1 <%s>: Relay access denied"
                       % (tag, re.escape(OUTSIDE)))
        wait_log_since(start, r"disconnect from %s" % tag)
        self.assertNotIn("[127.0.0.1]", log_since(start))

    def test_without_header_a_loopback_client_is_trusted(self):
        # The danger: the address a transparent front end connects from is
        # in mynetworks, so whoever it speaks for may relay.
        with harness.SMTPClient("127.0.0.1", pf.plain_port, source="127.0.0.1") as c:
            self.assertEqual(c.read_reply().text, BANNER)
            self.assertEqual(c.cmd("EHLO client.test").code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@sender.test>").code, 250)
            r = c.cmd("RCPT TO:<%s>" % OUTSIDE)
            self.assertEqual(r.code, 250, "127.0.0.1 should be trusted: %s" % r.text)
            self.assertEqual(c.cmd("QUIT").code, 221)
        # ... while the test clients' own addresses are not.
        with harness.SMTPClient("127.0.0.1", pf.plain_port, source="127.1.2.9") as c:
            self.assertEqual(c.read_reply().code, 220)
            self.assertEqual(c.cmd("EHLO client.test").code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<a@sender.test>").code, 250)
            r = c.cmd("RCPT TO:<%s>" % OUTSIDE)
            self.assertEqual(r.code, 554, r.text)
            self.assertIn("Relay access denied", r.text)
            self.assertEqual(c.cmd("QUIT").code, 221)


class BreakwaterPostfixTest(harness.BreakwaterTestCase):

    def start_bw(self, backend_port, proxy):
        # No DNS lists: every client is clean and relayed. The resolver is a
        # port nothing answers on; it must not be asked anyway.
        return self.start_daemon(
            backend="127.0.0.1:%d" % backend_port,
            resolver="127.0.0.1:%d" % harness.free_udp_port(),
            opts=[("dnsbl_sites", ""), ("backend_proxy_protocol", proxy)])

    def test_proxy_v2_postfix_sees_real_client_and_refuses_relay(self):
        d = self.start_bw(pf.port, "v2")
        start = len(pf.maillog())
        c = self.client(d, source="127.1.2.3")
        # Postfix's greeting, relayed: breakwater does not speak for it.
        self.assertEqual(c.read_reply().text, BANNER)
        r = c.cmd("EHLO client.test")
        self.assertReply(r, 250, "mx." + DOMAIN)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % OUTSIDE), 554, "5.7.1", "Relay access denied")
        self.assertReply(c.cmd("RCPT TO:<someone@%s>" % DOMAIN), 250)
        self.assertReply(c.cmd("DATA"), 354)
        r = c.cmd("From: a@sender.test\r\nTo: someone@%s\r\nSubject: via breakwater\r\n"
                  "\r\nhello\r\n." % DOMAIN)
        self.assertReply(r, 250, "queued as")
        qid = r.text.rsplit(" ", 1)[1]
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertEqual(c.read_until_eof(), b"")  # Postfix's close, passed on
        c.close()  # our half: the relayed session ends with both closed

        # Postfix logged the client's real address and source port, which
        # only the PROXY v2 header carried.
        tag = client_tag("127.1.2.3", c.sport)
        wait_log_since(start, r"connect from %s" % tag)
        wait_log_since(start, r"NOQUEUE: reject: RCPT from %s: 554 5\.7\.1 <%s>: "
                       r"Relay access denied" % (tag, re.escape(OUTSIDE)))
        wait_log_since(start, r"%s: client=%s" % (re.escape(qid), tag))
        wait_log_since(start, r"%s: to=<someone@%s>.*status=sent" % (re.escape(qid),
                                                                     re.escape(DOMAIN)))
        wait_log_since(start, r"disconnect from %s" % tag)
        self.assertNotIn("[127.0.0.1]", log_since(start),
                         "Postfix saw the front end's address")
        self.assertSession(d, c, "clean")

    def test_without_proxy_protocol_postfix_would_be_an_open_relay(self):
        # The careless deployment, for contrast: the same kind of client,
        # relayed without a PROXY header to an smtpd that expects none, is
        # seen as 127.0.0.1 and may relay. (This is what the test above
        # proves breakwater + haproxy prevents.)
        d = self.start_bw(pf.plain_port, "none")
        start = len(pf.maillog())
        c = self.client(d, source="127.1.2.4")
        self.assertEqual(c.read_reply().text, BANNER)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@sender.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % OUTSIDE), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        wait_log_since(start, r"connect from unknown\[127\.0\.0\.1\]")
        self.assertNotIn("127.1.2.4", log_since(start))


if __name__ == "__main__":
    unittest.main()
