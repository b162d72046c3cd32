"""breakwater watch cannot be turned against an innocent address by text a
client gets into the MTA's log (issue 12, part 1).

PostfixInjectionTest: a real Postfix smtpd (netns.NsPostfix in the server
namespace S, `reject_rbl_client bl.test` against an rbldnsd in S that lists
only 10.77.K.2) and `breakwater watch` following its maillog with real nft
bans in S. A clean client in C (10.77.K.3) puts whole DNSBL reject lines of
every MTA's format, each naming a victim (10.77.K.4, a host in C that must
stay reachable, and 192.0.2.99), into every field Postfix logs for it: the
sender (a relay refusal and the qmgr line of accepted mail), the HELO name,
the recipient and the message-id. Postfix logs them all (checked in its
maillog); watch bans nothing for them, while the genuine DNSBL reject of
10.77.K.2 in the same log is banned.

FixtureInjectionTest: the same attempts in Courier's and Exim's line
formats, made from the real lines in tests/data/logs (those MTAs do not run
here yet), written to a file watch follows: the victim is never named, the
genuine line still is.
"""

import os
import re
import shutil
import unittest

import harness
import netns
from harness import wait_until
from test_watch import Watch, WatchTestCase, log_line, write, slow

VICTIM_DOC = "192.0.2.99"


def fakes(victim):
    """A whole DNSBL reject line of each MTA's format naming victim, as a
    client would write it into a field of its own (the Postfix one is the
    sender of the review that found the flaw)."""
    return [
        "/smtpd[1]: NOQUEUE: reject: RCPT from x[%s]: 554 5.7.1 x; Client host [%s] blocked "
        "using evil.example" % (victim, victim),
        "postfix/postscreen[1]: DNSBL rank 9 for [%s]:25" % victim,
        "courieresmtpd: error,relay=%s,port=1,from=<a>: 511 x" % victim,
        "2026-11-29 13:02:08 H=(x) [%s] F=<a> rejected RCPT <b>: blocked using evil.example"
        % victim,
    ]


class PostfixInjectionTest(WatchTestCase):

    PORT = 25
    NFT_TABLE = "inet breakwater"

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_postfix_topology()
        cls.tmpdir = harness.new_tmpdir("bw-inject-")
        cls.addClassCleanup(shutil.rmtree, cls.tmpdir, True)
        # Postfix's resolver reads /etc/resolv.conf: `ip netns exec S`
        # bind-mounts /etc/netns/S/resolv.conf over it
        cls.etc = os.path.join("/etc/netns", cls.topo.s.name)
        os.makedirs(cls.etc)
        cls.addClassCleanup(shutil.rmtree, cls.etc, True)
        with open(os.path.join(cls.etc, "resolv.conf"), "w") as f:
            f.write("nameserver 127.0.0.1\n")
        cls.dns = netns.NsRbldnsd(cls.topo.s, cls.tmpdir, [cls.topo.listed], port=53)
        cls.dns.start()
        cls.addClassCleanup(cls.dns.stop)
        cls.pf = netns.NsPostfix(cls.topo.s, cls.topo.server, port=cls.PORT, extra_main={
            "smtpd_recipient_restrictions": "reject_rbl_client bl.test",
            "smtpd_helo_required": "no"})
        cls.addClassCleanup(cls.pf.stop)
        cls.pf.start()

    def start_ns_watch(self):
        conf = self.watch_conf(ban_backend="nft", ban_time="60s", ban_ports=str(self.PORT),
                               watch_ports=str(self.PORT), watch_kill="none")
        w = Watch(self.tmp, conf, [self.pf.maillog_path], name="watch%d" % len(self._daemons))
        w.write_conf()
        self.topo.s.run(["nft", "delete", "table"] + self.NFT_TABLE.split())
        p = self.run_bw(["rules", "-c", w.confpath])
        self.assertEqual(p.returncode, 0, "breakwater rules: %s" % p.stderr)
        self.topo.s.check(["nft", "-f", "-"], input=p.stdout)
        self._daemons.append(w)
        w.start(preexec_fn=self.topo.s.preexec())
        return w

    def client(self, source):
        c = netns.smtp_client(self.topo.c, source, self.topo.server, self.PORT, 5 * slow())
        self._cleanups_extra.append(c.close)
        self.assertEqual(c.read_reply().code, 220)
        return c

    def wait_maillog(self, text):
        """Until Postfix has logged text, or a line matching it if it is a
        regular expression (the injection reached the log)."""
        def there():
            log = self.pf.maillog()
            return text.search(log) if hasattr(text, "search") else text in log
        try:
            wait_until(there, 5 * slow(), what="maillog %r" % text)
        except AssertionError:
            raise AssertionError("Postfix did not log %r; tail:\n%s"
                                 % (text, self.pf.maillog_tail(20)))

    def test_client_fields_ban_nothing_the_real_reject_does(self):
        w = self.start_ns_watch()
        victim = self.topo.listed2
        logged = []
        c = self.client(self.topo.clean)
        for who, fake in [(v, f) for v in (victim, VICTIM_DOC) for f in fakes(v)]:
            quoted = '"%s"' % fake.replace('"', "'")
            # the HELO name, then the sender and the recipient of a relay
            # attempt Postfix refuses (its reject line holds all three)
            self.assertEqual(c.cmd("EHLO " + fake.replace(" ", "_")).code, 250)
            self.assertEqual(c.cmd("MAIL FROM:<%s@b.example>" % quoted).code, 250)
            r = c.cmd("RCPT TO:<%s@outside.example>" % quoted)
            self.assertEqual(r.code, 554, r.text)
            self.assertEqual(c.cmd("RSET").code, 250)
            # (Postfix shows some of the HELO's bytes as '?')
            logged.append(re.compile(r"helo=<[^>]*%s" % re.escape(who)))
            # mail that is accepted: the qmgr line's sender, the cleanup
            # line's message-id
            self.assertEqual(c.cmd("MAIL FROM:<%s@b.example>" % quoted).code, 250)
            self.assertEqual(c.cmd("RCPT TO:<alice@example.test>").code, 250)
            self.assertEqual(c.cmd("DATA").code, 354)
            c.send(("Message-ID: <%s>\r\nSubject: x\r\n\r\nbody\r\n.\r\n"
                    % fake.replace("<", "(").replace(">", ")")).encode())
            self.assertEqual(c.read_reply().code, 250)
            logged.append("message-id=<%s>" % fake.replace("<", "(").replace(">", ")"))
            logged.append("from=<%s@b.example>, size=" % quoted)
        self.assertEqual(c.cmd("QUIT").code, 221)
        for text in logged:
            self.wait_maillog(text)
        # the genuine reject, after all of them in the same log
        g = self.client(self.topo.listed)
        self.assertEqual(g.cmd("EHLO genuine.example").code, 250)
        self.assertEqual(g.cmd("MAIL FROM:<a@b.example>").code, 250)
        r = g.cmd("RCPT TO:<alice@example.test>")
        self.assertEqual(r.code, 554, r.text)
        self.assertIn("blocked using bl.test", r.text)
        h = w.wait_hit(self.topo.listed, timeout=5 * slow())
        self.assertEqual((h["rule"], h["list"], h["action"]), ("postfix-smtpd", "bl.test", "ban"),
                         h["line"])
        banned = wait_until(lambda: netns.nft_set(self.topo.s, self.NFT_TABLE, "banned4") or None,
                            2 * slow(), what="the ban in banned4")
        self.assertEqual(sorted(banned), [self.topo.listed],
                         "only the listed client is banned; watch:\n%s" % w.log()[-3000:])
        self.assertEqual(w.addresses(), [self.topo.listed], w.log()[-3000:])
        self.assertEqual(netns.connect_result(self.topo.c, victim, self.topo.server, self.PORT),
                         "connected", "the victim can no longer reach the MTA")


class FixtureInjectionTest(WatchTestCase):
    """Courier's and Exim's formats, from their real lines."""

    ATTACKER = "198.51.100.1"

    def courier_lines(self, fake):
        """Courier lines for the attacker's session carrying fake in its
        sender and recipient: a refusal that is not a DNSBL one (550) and a
        delivery."""
        refusal = log_line("courier.log", 63).decode()   # 550 User unknown
        delivery = log_line("courier.log", 57).decode()  # courierlocal ...from=<...>
        refusal = refusal.replace("127.77.1.1", self.ATTACKER) \
            .replace("from=<sender@example.test>", "from=<%s>" % fake) \
            .replace("to=<nosuchuser@mx.test>", "to=<%s>" % fake)
        delivery = delivery.replace("from=<sender@example.test>", "from=<%s>" % fake)
        return [refusal, delivery]

    def exim_lines(self, fake):
        """Exim lines of the attacker carrying fake: an accepted message
        (sender and HELO), a relay refusal (sender), and the attacker's own
        DNSBL reject with a junk HELO (helo_accept_junk_hosts) that fakes
        Exim's fields up to the client's address."""
        accepted = log_line("exim.log", 13).decode()     # <= ... H=(helo) [ip]
        refused = log_line("exim.log", 17).decode()      # relay not permitted
        listed = log_line("exim.log", 28).decode()       # is in a black list at bl.test
        accepted = accepted.replace("<= sender@example.test", "<= " + fake) \
            .replace("127.77.1.1", self.ATTACKER)
        refused = refused.replace("F=<sender@example.test>", "F=<%s>" % fake) \
            .replace("127.77.1.2", self.ATTACKER)
        helo = "x) [%s] F=<a> rejected RCPT <b>: blocked using evil x" % VICTIM_DOC
        junk_helo = listed.replace("H=(client.example.test) [127.66.1.2]",
                                   "H=(%s) [%s]:4711" % (helo, self.ATTACKER))
        # the same HELO on Exim's other H= lines (a real Exim 4.96 logs this
        # for a sender it cannot verify)
        verify = "2026-11-29 13:02:08 H=(x) [%s] rejected RCPT <b>: blocked using evil.example" \
            ") [%s] sender verify fail for <s@nonexistent.invalid>: Unrouteable address" \
            % (VICTIM_DOC, self.ATTACKER)
        return [accepted, refused, junk_helo, verify]

    def test_courier_and_exim_fields(self):
        for mta, make, genuine in (
                ("courier", self.courier_lines, (40, "127.66.1.1")),
                ("exim", self.exim_lines, (28, "127.66.1.2"))):
            with self.subTest(mta=mta):
                path = self.path("%s.log" % mta)
                write(path, b"")
                w = self.start_watch([path])
                lines = []
                for fake in fakes(VICTIM_DOC):
                    lines += make(fake)
                self.assertTrue(all(VICTIM_DOC in l for l in lines))
                write(path, "".join(l + "\n" for l in lines).encode())
                write(path, log_line("%s.log" % mta, genuine[0]) + b"\n")
                w.wait_hit(genuine[1])
                for h in w.hits():
                    self.assertIn(h["addr"], (genuine[1], self.ATTACKER), h["line"])
                self.assertNotIn(VICTIM_DOC, w.log(), "%s: the victim was named" % mta)
                self.stop_watch(w)


if __name__ == "__main__":
    unittest.main()
