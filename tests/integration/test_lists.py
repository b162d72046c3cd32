"""Deciding: allow/deny lists, weights and filters, refusal answers, list
health checks, DNS outages and pregreet."""

import os
import shutil
import signal
import time
import unittest

import harness
from harness import (SLOW, BreakwaterTestCase, Rbldnsd, backend_greeting,
                     engine_greeting, free_udp_port, rejected_dialogue)


class ListsTest(BreakwaterTestCase):
    # -- allow / deny lists: decided without any lookup

    def test_allowlist_relayed_without_lookups(self):
        sink = self.smtp_sink()
        dns = self.blackhole_dns()
        d = self.start_daemon(sink, resolver=dns.resolver,
                              opts={"allowlist": "10.0.0.0/8, 127.66.9.0/24",
                                    "dnsbl_timeout": "3s", "dnsbl_health_interval": "0"})
        dns.queries()
        t0 = time.monotonic()
        c = self.client(d, "127.66.9.9")     # listed in bl.test, but allow-listed
        backend_greeting(self, c)
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW, "allow-listed client waited for DNS")
        self.quit(c)
        self.assertSession(d, c, "allowlisted")
        self.assertEqual(dns.queries(), 0, "DNS queries were sent for an allow-listed client")

    def test_denylist_rejected_without_lookups(self):
        backend = self.recording_backend()
        dns = self.blackhole_dns()
        d = self.start_daemon(backend, resolver=dns.resolver,
                              opts={"denylist": "127.1.5.0/24 192.0.2.1",
                                    "dnsbl_timeout": "3s", "dnsbl_health_interval": "0"})
        dns.queries()
        t0 = time.monotonic()
        c = self.client(d, "127.1.5.5")       # clean, but deny-listed
        engine_greeting(self, c)
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW, "deny-listed client waited for DNS")
        rejected_dialogue(self, c, "127.1.5.5")
        self.assertSession(d, c, "denylisted")
        self.assertEqual(dns.queries(), 0, "DNS queries were sent for a deny-listed client")
        self.assertEqual(backend.count(), 0)

    # -- weights, thresholds, filters

    def test_weights_and_threshold(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"dnsbl_sites": "bl.test*2, bl2.test*2",
                                          "dnsbl_threshold": "3"})
        c = self.client(d, "127.66.0.5")       # bl.test only: 2 < 3
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean", ["bl.test"])
        self.assertEqual(s.get("score"), "2", s["line"])
        c = self.client(d, "127.66.1.5")       # both: 4 >= 3
        engine_greeting(self, c)
        rejected_dialogue(self, c, "127.66.1.5", ["bl.test", "bl2.test"])
        s = self.assertSession(d, c, "listed", ["bl.test", "bl2.test"])
        self.assertEqual(s.get("score"), "4", s["line"])

    def test_negative_weight_allow_list(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"dnsbl_sites": "bl.test, wl.test=127.0.2.[1..3]*-5"})
        c = self.client(d, "127.66.2.2")       # in bl.test (+1) and wl.test (-5)
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean")
        self.assertEqual(s.get("score"), "-4", s["line"])
        c = self.client(d, "127.68.0.1")       # only in wl.test
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean")
        # -5, or 0 when decided before wl.test answered (it can only lower
        # the score once bl.test said no)
        self.assertIn(s.get("score"), ("0", "-5"), s["line"])
        c = self.client(d, "127.66.1.1")       # only in bl.test
        engine_greeting(self, c)
        rejected_dialogue(self, c, "127.66.1.1", ["bl.test"])
        s = self.assertSession(d, c, "listed", ["bl.test"])
        self.assertEqual(s.get("score"), "1", s["line"])

    def test_reply_filters(self):
        sink = self.smtp_sink()
        # bl2.test answers 127.0.0.2 and 127.0.0.3 for 127.66.1.0/24;
        # bl.test answers 127.0.0.2, which its filter here does not accept.
        sites = ("bl2.test=127.0.0.3*2, bl2.test=127.0.0.[1;2], bl2.test=127.0.0.[4..9]*50, "
                 "bl.test=127.0.0.[5..9]*2")
        d = self.start_daemon(sink, opts={"dnsbl_sites": sites, "dnsbl_threshold": "3"})
        c = self.client(d, "127.66.1.5")
        engine_greeting(self, c)
        rejected_dialogue(self, c, "127.66.1.5", ["bl2.test"])
        s = self.assertSession(d, c, "listed")
        self.assertEqual(s.get("score"), "3", s["line"])
        self.assertEqual(set(harness.list_names(s.get("lists"))), {"bl2.test"}, s["line"])
        c = self.client(d, "127.66.0.5")       # bl.test's answer filtered out
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean", [])
        self.assertEqual(s.get("score"), "0", s["line"])

    def test_refusal_answer_is_not_a_listing(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        c = self.client(d, "127.67.0.1")       # bl.test answers 127.255.255.254
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean")
        self.assertEqual(s.get("score"), "0", s["line"])
        d.wait_log(r"bl\.test.*(127\.255\.255\.254|refus)|(127\.255\.255\.254|refus).*bl\.test")
        # a refusal is an error: it never sticks as a cached verdict
        c = self.client(d, "127.67.0.1")
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean")
        self.assertNotEqual(s.get("cache"), "hit", s["line"])
        # the same with a filter that would otherwise accept the answer
        d2 = self.start_daemon(sink, opts={"dnsbl_sites": "bl.test=127.255.255.[0..255]*5"})
        c = self.client(d2, "127.67.0.2")
        backend_greeting(self, c)
        self.quit(c)
        self.assertSession(d2, c, "clean")

    # -- list health (RFC 5782 test points)

    def test_dead_list_suspended(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"dnsbl_sites": "dead.test*5, bl.test",
                                          "dnsbl_health_interval": "1s"})
        d.wait_log(r"dead\.test.*suspend|suspend.*dead\.test", timeout=5 * SLOW)
        c = self.client(d, "127.1.0.1")
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean")
        self.assertEqual(s.get("score"), "0", s["line"])
        c = self.client(d, "127.66.1.1")       # bl.test still counts
        engine_greeting(self, c)
        rejected_dialogue(self, c, "127.66.1.1", ["bl.test"])
        s = self.assertSession(d, c, "listed", ["bl.test"])
        self.assertEqual(s.get("score"), "1", s["line"])
        # check shows the suspension and does not count the dead list
        p = self.run_bw(["check", "-c", d.confpath, "-o", "dnsbl_sites=dead.test*5, bl.test",
                         "-o", "dnsbl_health_interval=1s", "127.1.0.1"])
        self.assertEqual(p.returncode, 0, "check exit %d:\n%s%s" % (p.returncode, p.stdout, p.stderr))
        self.assertRegex(p.stdout, r"(?is)dead\.test.*suspend")

    def test_list_recovers_and_list_without_test_point(self):
        # A private rbldnsd: flaky.test starts dead, then is fixed;
        # notp.test lists 127.66.0.0/16 but not the test point 127.0.0.2.
        zdir = os.path.join(self.tmp, "zones")
        os.makedirs(zdir)
        os.chmod(zdir, 0o755)
        for name, text in (("flaky.zone", "0.0.0.0/1\n128.0.0.0/1\n"),
                           ("notp.zone", "127.66.0.0/16\n")):
            with open(os.path.join(zdir, name), "w") as f:
                f.write(text)
            os.chmod(os.path.join(zdir, name), 0o644)
        shutil.copy(os.path.join(harness.ZONE_DIR, "testpoint6.zone"), zdir)
        os.chmod(os.path.join(zdir, "testpoint6.zone"), 0o644)
        rbl = Rbldnsd(self.tmp, {"flaky.test": [("ip4set", "flaky.zone")],
                                 "notp.test": [("ip4set", "notp.zone")]})
        rbl.dir = zdir          # zone files written above, not copied from zones/
        rbl.start()
        self._cleanups_extra.append(rbl.stop)
        sink = self.smtp_sink()
        d = self.start_daemon(sink, resolver=rbl.resolver,
                              opts={"dnsbl_sites": "flaky.test, notp.test",
                                    "dnsbl_health_interval": "1s"})
        d.wait_log(r"flaky\.test.*suspend|suspend.*flaky\.test", timeout=5 * SLOW)
        d.wait_log(r"notp\.test.*suspend|suspend.*notp\.test", timeout=5 * SLOW)
        c = self.client(d, "127.66.3.1")       # both lists suspended
        backend_greeting(self, c)
        self.quit(c)
        self.assertSession(d, c, "clean")
        # fix flaky.test: it lists 127.66.0.0/16 and the test point only
        with open(os.path.join(zdir, "flaky.zone"), "w") as f:
            f.write("127.66.0.0/16\n127.0.0.2\n")
        future = time.time() + 2
        os.utime(os.path.join(zdir, "flaky.zone"), (future, future))
        rbl.proc.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 6 * SLOW
        i = 0
        while True:
            i += 1
            c = self.client(d, "127.66.4.%d" % i)
            r = c.read_reply()
            if r.lines[0].startswith("220 %s ESMTP" % harness.HOSTNAME):
                rejected_dialogue(self, c, "127.66.4.%d" % i, ["flaky.test"])
                break
            c.close()
            if time.monotonic() > deadline:
                self.fail("flaky.test was not taken back after it passed its health check")
            time.sleep(0.3)

    # -- DNS outages

    def test_dns_refused_fails_open(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, resolver="127.0.0.1:%d" % free_udp_port(),
                              opts={"dnsbl_timeout": "1s"})
        t0 = time.monotonic()
        c = self.client(d, "127.66.1.1")       # listed, but nobody can tell
        backend_greeting(self, c, timeout=5 * SLOW)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 1.0 + 1.5 * SLOW,
                        "relayed only after %.1fs with dnsbl_timeout=1s" % elapsed)
        self.quit(c)
        self.assertSession(d, c, "clean")

    def test_dns_silent_fails_open_after_timeout(self):
        sink = self.smtp_sink()
        dns = self.blackhole_dns()
        d = self.start_daemon(sink, resolver=dns.resolver, opts={"dnsbl_timeout": "1s"})
        t0 = time.monotonic()
        c = self.client(d, "127.66.1.2")
        backend_greeting(self, c, timeout=5 * SLOW)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.7, "did not wait for the lists (%.2fs)" % elapsed)
        self.assertLess(elapsed, 1.0 + 1.5 * SLOW,
                        "relayed only after %.1fs with dnsbl_timeout=1s" % elapsed)
        self.assertGreater(dns.queries(), 0, "no DNS query was sent")
        self.quit(c)
        self.assertSession(d, c, "clean")

    def test_one_list_silent_others_decide(self):
        # rbldnsd answers bl.test; a zone nobody serves (rbldnsd does not
        # answer for it: REFUSED) must not hold the verdict up nor count.
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"dnsbl_sites": "bl.test, nosuch.test*5",
                                          "dnsbl_timeout": "2s"})
        t0 = time.monotonic()
        c = self.client(d, "127.66.1.3")
        engine_greeting(self, c, timeout=5 * SLOW)
        self.assertLess(time.monotonic() - t0, 2 + 1.5 * SLOW)
        rejected_dialogue(self, c, "127.66.1.3", ["bl.test"])
        c = self.client(d, "127.1.0.3")
        backend_greeting(self, c, timeout=5 * SLOW)
        self.quit(c)
        self.assertSession(d, c, "clean")

    # -- slow lists: wait for them within dnsbl_timeout, not longer, and
    #    not at all once the verdict is settled

    def test_slow_answer_within_timeout_counts(self):
        backend = self.recording_backend()
        dns = self.delay_dns({"bl.test": 0.6})
        d = self.start_daemon(backend, resolver=dns.resolver, opts={"dnsbl_timeout": "2s"})
        t0 = time.monotonic()
        c = self.client(d, "127.66.1.1")
        engine_greeting(self, c, timeout=5 * SLOW)
        self.assertGreater(time.monotonic() - t0, 0.5)
        rejected_dialogue(self, c, "127.66.1.1", ["bl.test"])
        self.assertSession(d, c, "listed", ["bl.test"])
        self.assertEqual(backend.count(), 0)

    def test_answer_after_timeout_ignored(self):
        sink = self.smtp_sink()
        dns = self.delay_dns({"bl.test": 2.0})
        d = self.start_daemon(sink, resolver=dns.resolver, opts={"dnsbl_timeout": "1s"})
        t0 = time.monotonic()
        c = self.client(d, "127.66.1.2")
        backend_greeting(self, c, timeout=5 * SLOW)
        elapsed = time.monotonic() - t0
        self.assertGreater(elapsed, 0.7)
        self.assertLess(elapsed, 1.0 + 1.0 * SLOW,
                        "relayed only after %.1fs with dnsbl_timeout=1s" % elapsed)
        time.sleep(1.3)            # the late answer arrives now
        self.assertReply(c.cmd("NOOP"), 250)
        self.quit(c)
        self.assertSession(d, c, "clean")

    def test_decides_once_settled(self):
        sink = self.smtp_sink()
        dns = self.delay_dns({"bl2.test": 2.5})
        d = self.start_daemon(sink, resolver=dns.resolver,
                              opts={"dnsbl_sites": "bl.test*2, bl2.test", "dnsbl_threshold": "2",
                                    "dnsbl_timeout": "3s"})
        # bl.test alone reaches the threshold: no need to wait for bl2.test
        t0 = time.monotonic()
        c = self.client(d, "127.66.0.9")
        engine_greeting(self, c, timeout=5 * SLOW)
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW,
                        "waited for a list that could not change the verdict")
        rejected_dialogue(self, c, "127.66.0.9", ["bl.test"])
        # not in bl.test: bl2.test alone (1) cannot reach 2
        t0 = time.monotonic()
        c = self.client(d, "127.1.0.9")
        backend_greeting(self, c, timeout=5 * SLOW)
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW,
                        "waited for a list that could not change the verdict")
        self.quit(c)
        self.assertSession(d, c, "clean")
        names = [n for n, _ in dns.queries]
        self.assertIn("9.0.66.127.bl2.test", names, "the slow list was never asked")

    def test_same_address_concurrent_sessions(self):
        backend = self.recording_backend()
        dns = self.delay_dns({"bl.test": 0.5})
        d = self.start_daemon(backend, resolver=dns.resolver, opts={"dnsbl_timeout": "3s"})
        cs = [self.client(d, "127.66.1.3") for _ in range(3)]
        for c in cs:
            engine_greeting(self, c, timeout=5 * SLOW)
        for c in cs:
            rejected_dialogue(self, c, "127.66.1.3", ["bl.test"])
            self.assertSession(d, c, "listed", ["bl.test"])

    def test_reset_during_lookup(self):
        sink = self.smtp_sink()
        dns = self.blackhole_dns()
        d = self.start_daemon(sink, resolver=dns.resolver, opts={"dnsbl_timeout": "1s"})
        for i in range(5):
            self.client(d, "127.1.8.%d" % (i + 1)).reset()
        c = self.client(d, "127.1.8.9")
        backend_greeting(self, c, timeout=5 * SLOW)
        self.quit(c)
        time.sleep(0.5)   # the abandoned lookups time out now
        self.assertTrue(d.alive())
        c = self.client(d, "127.1.8.10")
        backend_greeting(self, c, timeout=5 * SLOW)

    def test_option_overrides_file(self):
        backend = self.recording_backend()
        d = self.start_daemon(backend, conf_extra={"dnsbl_sites": "nosuch.test",
                                                   "dnsbl_timeout": "1m"},
                              opts={"dnsbl_sites": "bl.test"})
        c = self.client(d, "127.66.1.4")
        engine_greeting(self, c)
        rejected_dialogue(self, c, "127.66.1.4", ["bl.test"])

    def test_config_file_lists_with_spaces(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, conf_extra={"dnsbl_sites": "bl.test*2   bl2.test*2",
                                                "dnsbl_threshold": "3",
                                                "allowlist": "127.66.8.0/24 ,127.66.9.0/24"})
        c = self.client(d, "127.66.1.6")
        engine_greeting(self, c)
        rejected_dialogue(self, c, "127.66.1.6", ["bl.test", "bl2.test"])
        c = self.client(d, "127.66.9.1")
        backend_greeting(self, c)
        self.quit(c)
        self.assertSession(d, c, "allowlisted")

    # -- pregreet

    def test_pregreet_is_listed(self):
        backend = self.recording_backend()
        dns = self.blackhole_dns()    # the verdict waits: the bot talks first
        d = self.start_daemon(backend, resolver=dns.resolver, opts={"dnsbl_timeout": "2s"})
        c = self.client(d, "127.1.7.7")          # clean address
        c.send(b"EHLO bot.test\r\n")
        engine_greeting(self, c, timeout=5 * SLOW)
        c.send(b"MAIL FROM:<bot@spam.example>\r\nRCPT TO:<victim@example.org>\r\n")
        codes = []
        for _ in range(3):
            r = c.read_reply()
            codes.append(r.code)
            if r.code == 550:
                self.assertIn("5.7.1", r.text)
                self.assertIn("127.1.7.7", r.text)
                break
        self.assertEqual(codes[-1], 550, "replies after pregreet: %s" % codes)
        self.assertReply(c.cmd("QUIT"), 221)
        self.assertClosed(c)
        self.assertSession(d, c, "pregreet")
        time.sleep(0.1)
        self.assertEqual(backend.count(), 0, "a pregreeting client reached the backend")

    def test_pregreet_while_backend_connecting(self):
        # Clean and decided at once, but the backend's connect hangs: a
        # client talking now has not been spoken to (the relay has not
        # started).
        d = self.start_daemon(self.syn_dropping_backend(),
                              opts={"backend_connect_timeout": "3s"})
        c = self.client(d, "127.1.7.8")
        time.sleep(0.4)
        c.send(b"EHLO bot.test\r\n")
        engine_greeting(self, c)
        c.send(b"MAIL FROM:<bot@spam.example>\r\nRCPT TO:<victim@example.org>\r\n")
        codes = []
        for _ in range(3):
            r = c.read_reply()
            codes.append(r.code)
            if r.code == 550:
                break
        self.assertEqual(codes[-1], 550, "replies after pregreet: %s" % codes)
        self.quit(c)
        self.assertSession(d, c, "pregreet")

    def test_pregreet_before_backend_greeting(self):
        # Relayed, but the backend has not greeted yet: the client has still
        # not been spoken to, so talking now is a pregreet; the backend gets
        # none of its bytes.
        backend = self.recording_backend(greeting=b"")
        d = self.start_daemon(backend)
        c = self.client(d, "127.1.7.9")
        backend.wait_connections(1)
        time.sleep(0.2)
        c.send(b"EHLO bot.test\r\n")
        engine_greeting(self, c)
        c.send(b"MAIL FROM:<bot@spam.example>\r\nRCPT TO:<victim@example.org>\r\n")
        codes = [c.read_reply().code for _ in range(3)]   # EHLO, MAIL, RCPT
        self.assertEqual(codes, [250, 250, 550], "replies after pregreet: %s" % codes)
        self.quit(c)
        self.assertSession(d, c, "pregreet")
        self.assertEqual(backend.wait_connections(1)[0].bytes(), b"",
                         "the pregreeting client's bytes reached the backend")

    # -- the verdict cache

    def test_verdict_cache_spares_queries(self):
        rbl = Rbldnsd(self.tmp, {"bl.test": [("ip4set", "bl.zone")]})
        rbl.start()
        self._cleanups_extra.append(rbl.stop)
        sink = self.smtp_sink()
        d = self.start_daemon(sink, resolver=rbl.resolver,
                              opts={"dnsbl_sites": "bl.test", "dnsbl_timeout": "2s",
                                    "dnsbl_health_interval": "0"})
        listed, clean = "127.66.7.7", "127.1.7.7"
        c = self.client(d, listed)
        engine_greeting(self, c)
        rejected_dialogue(self, c, listed)
        s = self.assertSession(d, c, "listed", ["bl.test"])
        self.assertNotIn("cache", s, s["line"])
        c = self.client(d, clean)
        backend_greeting(self, c)
        self.quit(c)
        self.assertSession(d, c, "clean")
        rbl.stop()                           # no DNS any more: only the cache can tell
        t0 = time.monotonic()
        c = self.client(d, listed)
        engine_greeting(self, c)
        self.assertLess(time.monotonic() - t0, 1.0 * SLOW, "a cached verdict waited for DNS")
        rejected_dialogue(self, c, listed)
        s = self.assertSession(d, c, "listed", ["bl.test"])
        self.assertEqual(s.get("cache"), "hit", s["line"])
        c = self.client(d, clean)
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean")
        self.assertEqual(s.get("cache"), "hit", s["line"])
        # an address never seen waits for the dead DNS and fails open
        c = self.client(d, "127.66.7.8")
        backend_greeting(self, c, timeout=4 * SLOW)
        self.quit(c)
        s = self.assertSession(d, c, "clean")
        self.assertNotIn("cache", s, s["line"])

    def test_verdict_cache_off(self):
        rbl = Rbldnsd(self.tmp, {"bl.test": [("ip4set", "bl.zone")]})
        rbl.start()
        self._cleanups_extra.append(rbl.stop)
        sink = self.smtp_sink()
        d = self.start_daemon(sink, resolver=rbl.resolver,
                              opts={"dnsbl_sites": "bl.test", "dnsbl_timeout": "1s",
                                    "dnsbl_health_interval": "0", "cache_max_entries": "0"})
        c = self.client(d, "127.66.7.9")
        engine_greeting(self, c)
        rejected_dialogue(self, c, "127.66.7.9")
        self.assertSession(d, c, "listed", ["bl.test"])
        rbl.stop()
        c = self.client(d, "127.66.7.9")
        backend_greeting(self, c, timeout=4 * SLOW)   # no cache: DNS down, fail open
        self.quit(c)
        self.assertSession(d, c, "clean")


if __name__ == "__main__":
    unittest.main()
