"""Courier, the MTA breakwater was made for, as a real peer.

A real Courier runs from the Debian chroots of tests/integration/courier.py
(bookworm: Courier 1.0.16; trixie: Courier 1.4.1), in the server
namespace S of a netns.Topology; the clients are in C. `make test` builds
the chroots first (cached under /var/cache/breakwater-tests).

CourierBehindBreakwaterTest: serve in front of Courier 1.0.16 with the
recipe of docs/deployment.md (Courier on 127.0.0.1:2525, breakwater relaying from
backend_source = 127.0.0.2, an smtpaccess entry that gives 127.0.0.2 no
relay rights and spares it Courier's own DNSBL check, which stays on): a
clean client's message reaches the Maildir intact; a
listed one gets breakwater's 550 and Courier never sees a connection; a
relay attempt is refused by Courier; past backend_max_connections (below
Courier's MAXDAEMONS) breakwater answers 421 4.3.2, not Courier.

WatchBesideCourierTest: an exposed Courier 1.0.16 with its own DNSBL check
(BLACKLISTS="-block=bl.test,BLOCK,*") and `breakwater watch` reading its
log: Courier's 511 bans the client in nft at once, reaches the client,
and its live courieresmtpd ends watch_kill_delay later (within a second
more; watch_kill = socket, then = process);
Courier's other refusals ban nothing.

CourierProxyTest: Courier 1.4.1 with `couriertcpd -haproxy=15` behind
breakwater with backend_proxy_protocol = v1: Courier logs the client's own
address, applies its smtpaccess rules to it and refuses its relay attempt.
"""

import os
import re
import shutil
import time
import unittest

import courier
import harness
import netns
from harness import BreakwaterTestCase, wait_until
from test_watch import Watch

SMTP_PORT = 25
COURIER_PORT = 2525
DOMAIN = "courier.test"            # Courier's local domain (courier.NsCourier)
USER = "alice"
OUTSIDE = "x@outside.example"      # a relay attempt: nothing is ever sent
SENDER = "a@sender.example"
KILL_DELAY = 0.5                   # watch_kill_delay's default


def slow():
    return harness.SLOW


def setUpModule():
    if not harness.BINARY:
        raise unittest.SkipTest("no breakwater binary given (run.py --binary PATH)")
    for release in courier.RELEASES:
        ok, why = courier.courier_available(release)
        if not ok and ("needs root" in why or "kernel lacks" in why):
            raise unittest.SkipTest(why)
        courier.ensure_chroot(release)  # (built by make test before the run)


class CourierTestCase(BreakwaterTestCase):
    """Per class: the namespaces, an rbldnsd on S's 127.0.0.1:53 (where
    Courier's resolver looks) listing topo.listed, one Courier."""

    RELEASE = "bookworm"

    @classmethod
    def courier_config(cls):
        """NsCourier's keyword arguments (cls.topo exists by then)."""
        return {}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.topo = netns.Topology()
        cls.topo.create()
        cls.addClassCleanup(cls.topo.delete)
        cls.class_tmp = harness.new_tmpdir("bw-courier-")
        cls.addClassCleanup(shutil.rmtree, cls.class_tmp, True)
        cls.dns = netns.NsRbldnsd(cls.topo.s, cls.class_tmp, [cls.topo.listed], port=53)
        cls.addClassCleanup(cls.dns.stop)
        cls.dns.start()
        cls.mta = courier.NsCourier(cls.topo.s, cls.RELEASE, cls.class_tmp,
                                    **cls.courier_config())
        cls.addClassCleanup(cls.mta.stop)
        cls.mta.start()

    def setUp(self):
        super().setUp()
        self.S, self.C = self.topo.s, self.topo.c

    BW_CONF = {}                   # breakwater's keys of the class, over the ones below

    def start_bw(self, backend="127.0.0.1:%d" % COURIER_PORT):
        """breakwater serve in S on the server's port 25, relaying to
        backend, checking bl.test at the rbldnsd; listening when it returns."""
        conf = self.base_conf(backend, listen="%s:%d" % (self.topo.server, SMTP_PORT),
                              resolver=self.dns.resolver)
        conf.update({"dnsbl_sites": "bl.test", "dnsbl_health_interval": "0",
                     "dnsbl_timeout": "2s"})
        conf.update(self.BW_CONF)
        d = harness.Daemon(self.tmp, conf, (), name="bw%d" % len(self._daemons))
        d.write_conf()
        self._daemons.append(d)
        try:
            d.start(wait=False, preexec_fn=self.S.preexec())
            d.wait_listening()
        except AssertionError:
            d.expect_exit = True
            raise
        return d

    def smtp(self, source, port=SMTP_PORT, timeout=5.0):
        c = netns.smtp_client(self.C, source, self.topo.server, port, timeout * slow())
        self._cleanups_extra.append(c.close)
        return c

    def log_since(self, offset):
        return self.mta.log_text()[offset:]

    def wait_log_since(self, offset, pattern, timeout=5.0):
        rx = re.compile(pattern)
        try:
            return wait_until(lambda: rx.search(self.log_since(offset)), timeout * slow(),
                              what="Courier log /%s/" % pattern)
        except AssertionError:
            raise AssertionError("Courier's log has no line /%s/; new lines:\n%s"
                                 % (pattern, self.log_since(offset)[-4000:]))


def courier_greeting(test, c):
    r = c.read_reply()
    test.assertEqual(r.code, 220, r.text)
    test.assertIn("ESMTP", r.text)
    test.assertNotIn("breakwater", r.text.lower())
    return r


class CourierBehindBreakwaterTest(CourierTestCase):

    MAXDAEMONS = 8
    BACKEND_MAX = 2
    BW_CONF = {"backend_source": "127.0.0.2", "backend_proxy_protocol": "none",
               "backend_max_connections": str(BACKEND_MAX)}

    @classmethod
    def courier_config(cls, access="allow,BLOCK", port=COURIER_PORT):
        # docs/deployment.md's Courier 1.0.16 recipe: loopback, per-address limits
        # above backend_max_connections, 127.0.0.2 without relay rights and
        # spared Courier's own DNSBL check, which a site keeps (127.0.0.2 is
        # the test point every list lists, RFC 5782)
        return dict(address="127.0.0.1", port=port, maxdaemons=cls.MAXDAEMONS,
                    maxperip=20, maxperc=20, smtpaccess=["127.0.0.2\t" + access],
                    blacklists="-block=bl.test,BLOCK,*", resolver="127.0.0.1",
                    dnslookup=False)

    def test_clean_message_lands_in_the_maildir_intact(self):
        d = self.start_bw()
        start = len(self.mta.log_text())
        c = self.smtp(self.topo.clean)
        courier_greeting(self, c)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s@%s>" % (USER, DOMAIN)), 250)
        self.assertReply(c.cmd("DATA"), 354)
        tag = "intact-%d" % os.getpid()
        # dot-stuffed lines, a long line, tabs and trailing spaces: what a
        # relay that rewrote bytes would change
        # (headers as Courier writes addresses: it rewrites "<a@b>" to "a@b")
        body = ("From: %s\r\nTo: %s@%s\r\nSubject: %s\r\n\r\n"
                "..a line that began with one dot\r\n"
                "\tindented,  trailing space \r\n%s\r\nlast line\r\n"
                % (SENDER, USER, DOMAIN, tag, "x" * 900))
        c.send(body.encode() + b".\r\n")
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.cmd("QUIT"), 221)
        c.close()
        stored = self.mta.wait_message(tag.encode(), timeout=10 * slow())
        # Maildir keeps LF line ends; the message is ours after the header
        # lines Courier put before it, byte for byte once unstuffed
        sent = body.replace("\r\n..", "\r\n.").replace("\r\n", "\n").encode()
        self.assertTrue(stored.endswith(sent), "stored message:\n%r" % stored[-1500:])
        added = stored[:-len(sent)]
        self.assertTrue(all(re.match(rb"[A-Za-z-]+: |[ \t]", line)
                            for line in added.splitlines()),
                        "Courier added more than header lines:\n%r" % added)
        # Courier saw the relay as the recipe says: from 127.0.0.2
        self.assertIn(b"127.0.0.2", added)
        self.wait_log_since(start, r"courieresmtpd: started,ip=\[::ffff:127\.0\.0\.2\]")
        self.assertSession(d, c, "clean")

    def test_listed_client_refused_and_never_reaches_courier(self):
        d = self.start_bw()
        start = len(self.mta.log_text())
        c = self.smtp(self.topo.listed)
        harness.engine_greeting(self, c)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<bot@spam.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<%s@%s>" % (USER, DOMAIN)), 550, "5.7.1",
                         self.topo.listed, "bl.test")
        self.assertReply(c.cmd("QUIT"), 221)
        c.close()
        d.wait_log(r"session client=\[%s\]:\d+ verdict=listed" % re.escape(self.topo.listed))
        # a clean client afterwards is the proof that Courier's log is read
        # up to now: its connection is the only one logged
        c2 = self.smtp(self.topo.clean)
        courier_greeting(self, c2)
        self.assertReply(c2.cmd("QUIT"), 221)
        self.wait_log_since(start, r"started,ip=\[::ffff:127\.0\.0\.2\]")
        self.assertEqual(len(re.findall(r"courieresmtpd: started,", self.log_since(start))), 1,
                         "Courier saw a connection for the listed client:\n%s"
                         % self.log_since(start))

    def test_relay_attempt_is_refused_by_courier(self):
        d = self.start_bw()
        start = len(self.mta.log_text())
        c = self.smtp(self.topo.clean)
        courier_greeting(self, c)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s>" % OUTSIDE), 513, "Relaying denied")
        self.assertReply(c.cmd("QUIT"), 221)
        c.close()
        self.wait_log_since(start, r"error,relay=::ffff:127\.0\.0\.2,.*to=<%s>: 513 Relaying "
                            r"denied" % re.escape(OUTSIDE))
        self.assertSession(d, c, "clean")

    def test_without_the_block_exemption_courier_refuses_relayed_mail(self):
        # Why the recipe says allow,BLOCK: with a bare allow, Courier asks
        # its list about 127.0.0.2, the test point, and refuses every
        # client breakwater relays
        plain = courier.NsCourier(self.S, self.RELEASE, self.tmp,
                                  **self.courier_config("allow", COURIER_PORT + 1))
        self._cleanups_extra.append(plain.stop)
        plain.start()
        d = self.start_bw(backend="127.0.0.1:%d" % (COURIER_PORT + 1))
        c = self.smtp(self.topo.clean)
        courier_greeting(self, c)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        self.assertReply(c.cmd("RCPT TO:<%s@%s>" % (USER, DOMAIN)), 511, "Listed")
        self.assertReply(c.cmd("QUIT"), 221)
        c.close()
        plain.wait_log(r"error,relay=::ffff:127\.0\.0\.2,.*: 511 ")
        self.assertSession(d, c, "clean")

    def test_beyond_backend_max_connections_breakwater_says_421(self):
        self.assertLess(self.BACKEND_MAX, self.MAXDAEMONS)
        d = self.start_bw()
        start = len(self.mta.log_text())
        held = []
        for _ in range(self.BACKEND_MAX):
            c = self.smtp(self.topo.clean)
            courier_greeting(self, c)
            held.append(c)
        wait_until(lambda: len(self.mta.smtpd_pids()) == self.BACKEND_MAX, 3 * slow(),
                   what="%d courieresmtpd" % self.BACKEND_MAX)
        c = self.smtp(self.topo.clean)
        r = c.read_reply()
        self.assertEqual(r.code, 421, r.text)
        self.assertEqual(r.text, "421 4.3.2 Service temporarily unavailable, try again later")
        self.assertClosed(c)
        self.assertEqual(len(self.mta.smtpd_pids()), self.BACKEND_MAX)
        for h in held:
            self.assertReply(h.cmd("QUIT"), 221)
            h.close()
        self.assertEqual(len(re.findall(r"courieresmtpd: started,", self.log_since(start))),
                         self.BACKEND_MAX, self.log_since(start))
        d.wait_log(r"verdict=limit .*reason=\"backend_max_connections\"")


class WatchBesideCourierTest(CourierTestCase):
    """Courier exposed on S's port 25 with its own DNSBL check."""

    NFT_TABLE = "inet breakwater"
    BAN_TIME = 30

    @classmethod
    def courier_config(cls):
        return dict(address=cls.topo.server, port=SMTP_PORT,
                    blacklists="-block=bl.test,BLOCK,*", resolver="127.0.0.1",
                    dnslookup=False)

    def start_watch(self, **extra):
        state = os.path.join(self.tmp, "state")
        os.makedirs(state, exist_ok=True)
        os.chmod(state, 0o755)
        conf = {"log_level": "info", "state_dir": state, "user": "nobody",
                "ban_backend": "nft", "ban_time": "%ds" % self.BAN_TIME,
                "ban_ports": str(SMTP_PORT), "watch_ports": str(SMTP_PORT)}
        conf.update(extra)
        w = Watch(self.tmp, conf, [self.mta.log_path], name="watch%d" % len(self._daemons))
        w.write_conf()
        self.S.run(["nft", "delete", "table"] + self.NFT_TABLE.split())
        p = self.run_bw(["rules", "-c", w.confpath])
        self.assertEqual(p.returncode, 0, "breakwater rules: %s" % p.stderr)
        self.S.check(["nft", "-f", "-"], input=p.stdout)
        self._daemons.append(w)
        try:
            w.start(preexec_fn=self.S.preexec())
        except AssertionError:
            w.expect_exit = True
            raise
        return w

    def nft4(self):
        return netns.nft_set(self.S, self.NFT_TABLE, "banned4") or {}

    def held_to_rcpt(self, source, rcpt):
        """A client of Courier's up to RCPT rcpt, sent; it holds the
        connection. Returns (client, its courieresmtpd pid, time the RCPT
        went)."""
        before = set(self.mta.smtpd_pids())
        c = self.smtp(source)
        courier_greeting(self, c)
        pids = wait_until(lambda: set(self.mta.smtpd_pids()) - before, 3 * slow(),
                          what="the courieresmtpd of %s" % source)
        self.assertEqual(len(pids), 1, pids)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        t0 = time.monotonic()
        c.send(("RCPT TO:<%s>\r\n" % rcpt).encode())
        return c, pids.pop(), t0

    def until_end(self, c, pid):
        """What the held client reads until its connection ends (EOF or
        reset), when its first byte came, and then its courieresmtpd exits."""
        c.sock.settimeout(2 * slow())
        got, first = b"", None
        try:
            while True:
                data = c.sock.recv(4096)
                if not data:
                    break
                first = first or time.monotonic()
                got += data
        except ConnectionResetError:
            pass
        wait_until(lambda: not netns.pid_alive(pid), 2 * slow(),
                   what="courieresmtpd %d to exit" % pid)
        return got, first

    def kill_test(self, kill):
        addr = self.topo.listed
        w = self.start_watch(watch_kill=kill)
        c, pid, t0 = self.held_to_rcpt(addr, "%s@%s" % (USER, DOMAIN))
        got, first = self.until_end(c, pid)
        took = time.monotonic() - t0
        # Courier logs its 511, then writes it: the ban goes in on the log
        # line, the kill watch_kill_delay later, so the reply is out first
        self.assertEqual(got[:4], b"511 ", got)
        print("\n  watch_kill = %s: 511 read %.3f s after the RCPT, connection and "
              "courieresmtpd ended %.3f s after it" % (kill, first - t0, took), end=" ")
        self.assertGreaterEqual(took, KILL_DELAY, "ended before watch_kill_delay")
        self.assertLess(took, KILL_DELAY + 1.0 * slow(), "ended %.2f s after the RCPT" % took)
        h = w.wait_hit(addr)
        self.assertEqual((h["rule"], h["action"]), ("courier", "ban"), h["line"])
        entry = wait_until(lambda: self.nft4().get(addr), 1.0 * slow(), interval=0.05,
                           what="%s in banned4" % addr)
        self.assertEqual(entry[0], self.BAN_TIME, entry)
        self.assertEqual(netns.connect_result(self.C, addr, self.topo.server, SMTP_PORT),
                         "timeout", "a new connection from the banned client got through")
        return w

    def test_511_bans_and_ends_the_connection_socket(self):
        self.kill_test("socket")

    def test_511_bans_and_ends_the_connection_process(self):
        self.kill_test("process")

    def test_other_refusals_ban_nothing(self):
        w = self.start_watch()
        clean = self.topo.clean
        c, _, _ = self.held_to_rcpt(clean, "no-such-user@%s" % DOMAIN)
        r = c.read_reply()
        self.assertEqual(r.code // 100, 5, r.text)       # unknown user
        self.assertNotEqual(r.code, 511, r.text)
        self.assertReply(c.cmd("RCPT TO:<%s>" % OUTSIDE), 513, "Relaying denied")
        self.assertReply(c.cmd("QUIT"), 221)
        c.close()
        # then a listed client: once its hit is in, the lines before it
        # have been read, and none of them was a hit
        self.held_to_rcpt(self.topo.listed, "%s@%s" % (USER, DOMAIN))
        w.wait_hit(self.topo.listed)
        self.assertEqual([h["addr"] for h in w.hits()], [self.topo.listed])
        self.assertNotIn(clean, self.nft4())
        self.assertEqual(netns.connect_result(self.C, clean, self.topo.server, SMTP_PORT),
                         "connected")


class CourierProxyTest(CourierTestCase):
    """Courier 1.4.1 (Debian 13) behind breakwater with PROXY v1."""

    RELEASE = "trixie"
    BW_CONF = {"backend_proxy_protocol": "v1"}

    @classmethod
    def courier_config(cls):
        # spare may relay by Courier's own per-address rule: Courier judges
        # the client's address, not breakwater's 127.0.0.1 (a relay client
        # in Debian's smtpaccess/default)
        return dict(address="127.0.0.1", port=COURIER_PORT, haproxy=True,
                    smtpaccess=["%s\tallow,RELAYCLIENT" % cls.topo.spare])

    def relay_attempt(self, source):
        c = self.smtp(source)
        courier_greeting(self, c)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<%s>" % SENDER), 250)
        r = c.cmd("RCPT TO:<%s>" % OUTSIDE)
        self.assertReply(c.cmd("QUIT"), 221)
        c.close()
        return c, r

    def test_courier_sees_the_client_and_refuses_its_relay(self):
        d = self.start_bw()
        start = len(self.mta.log_text())
        c, r = self.relay_attempt(self.topo.clean)
        self.assertReply(r, 513, "Relaying denied")
        addr = re.escape(self.topo.clean)
        self.wait_log_since(start, r"courieresmtpd: started,ip=\[::ffff:%s\],port=\[%d\]"
                            % (addr, c.sport))
        self.wait_log_since(start, r"error,relay=::ffff:%s,port=%d,.*: 513 Relaying denied"
                            % (addr, c.sport))
        self.assertNotIn("127.0.0.1", self.log_since(start),
                         "Courier saw breakwater's address")
        self.assertSession(d, c, "clean")

    def test_courier_applies_its_rules_to_the_client(self):
        self.start_bw()
        start = len(self.mta.log_text())
        _, r = self.relay_attempt(self.topo.spare)
        self.assertReply(r, 250)   # RCPT only: nothing is sent
        _, r = self.relay_attempt(self.topo.clean)
        self.assertReply(r, 513, "Relaying denied")
        self.wait_log_since(start, r"started,ip=\[::ffff:%s\]" % re.escape(self.topo.spare))


if __name__ == "__main__":
    unittest.main()
