"""Reload (SIGHUP and `breakwater ctl reload`): the configuration is read
again; new connections get the new lists, threshold, messages and
limits; sessions and relays already open keep theirs; a broken file is
refused with its file:line error and the old configuration stays; keys
only a restart can change are named and keep their running values."""

import os
import signal

from harness import (SLOW, BreakwaterTestCase, backend_greeting, engine_greeting,
                     free_port, send_message, wait_until)

# 127.66.0.x is listed in bl.test only (score 1); 127.66.1.x in bl.test and
# bl2.test (score 2): tests/integration/zones/
SITES = "bl.test, bl2.test"


class ReloadTest(BreakwaterTestCase):

    def daemon(self, **conf):
        sink = self.smtp_sink()
        base = {"dnsbl_sites": SITES, "dnsbl_threshold": "1",
                "reject_message": "old %a (%l)"}
        base.update(conf)
        d = self.start_daemon(sink, conf_extra=base)
        os.chmod(d.confpath, 0o644)   # read again after the switch to `user`
        return d

    def rewrite(self, d, **changes):
        """as an admin's editor would: a whole new file put in place"""
        d.conf.update(changes)
        path = d.confpath
        d.confpath = path + ".new"
        d.write_conf()
        d.confpath = path
        os.chmod(path + ".new", 0o644)
        os.rename(path + ".new", path)

    def ctl_reload(self, d):
        return self.run_bw(["ctl", "-c", d.confpath, "reload"])

    def ctl_reload_socket(self, d):
        """ctl without reading the (broken) file: only the socket named"""
        return self.run_bw(["ctl", "-c", "/dev/null", "-o",
                            "control_socket=%s" % d.conf["control_socket"], "reload"])

    def refused_at_rcpt(self, d, source, port=None):
        c = self.client(d, source, port=port)
        engine_greeting(self, c)
        self.assertReply(c.cmd("EHLO bot.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@bot.example>"), 250)
        r = c.cmd("RCPT TO:<b@example.org>")
        c.close()
        return r

    def test_threshold_changes_new_sessions_only(self):
        d = self.daemon()
        # score 1 >= threshold 1: refused (and its verdict is now cached)
        self.assertReply(self.refused_at_rcpt(d, "127.66.0.5"), 550, "old 127.66.0.5")
        # opened before the reload: a relay, and a listed session in the
        # reject engine, each under the old configuration
        relayed = self.client(d, "127.1.0.1")
        backend_greeting(self, relayed)
        listed = self.client(d, "127.66.1.7")
        engine_greeting(self, listed)
        self.assertReply(listed.cmd("EHLO bot.test"), 250)

        self.rewrite(d, dnsbl_threshold="2", reject_message="new %a (%l)")
        r = self.ctl_reload(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        d.wait_log("configuration reloaded")

        # the same address, its verdict cached: score 1 < 2 now, relayed
        c = self.client(d, "127.66.0.5")
        backend_greeting(self, c)
        send_message(self, c, [b"Subject: after the reload", b"", b"relayed"])
        c.close()
        # score 2 is still listed, with the new message
        self.assertReply(self.refused_at_rcpt(d, "127.66.1.8"), 550, "new 127.66.1.8",
                         "bl.test,bl2.test")
        # the session opened before keeps the old message
        self.assertReply(listed.cmd("MAIL FROM:<a@bot.example>"), 250)
        self.assertReply(listed.cmd("RCPT TO:<b@example.org>"), 550, "old 127.66.1.7")
        # the relay opened before the reload still carries a message
        send_message(self, relayed, [b"Subject: opened before", b"", b"still flowing"])
        relayed.close()
        self.assertTrue(d.alive())

    def test_sighup_changes_lists_and_allowlist(self):
        d = self.daemon(dnsbl_sites="bl.test")
        self.assertReply(self.refused_at_rcpt(d, "127.66.0.9"), 550, "(bl.test)")
        self.rewrite(d, dnsbl_sites="bl2.test", allowlist="127.66.1.20")
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("configuration reloaded")
        # 127.66.0.x is not in bl2.test: the cached bl.test verdict was dropped
        c = self.client(d, "127.66.0.9")
        backend_greeting(self, c)
        c.close()
        self.assertReply(self.refused_at_rcpt(d, "127.66.1.9"), 550, "(bl2.test)")
        c = self.client(d, "127.66.1.20")   # allowlisted now
        backend_greeting(self, c)
        c.close()
        self.assertIn("cached verdicts dropped (dnsbl_sites changed)", d.log())

    def test_broken_config_refused_old_stays(self):
        d = self.daemon()
        self.rewrite(d, dnsbl_threshold="many")
        line = [n for n, text in enumerate(open(d.confpath), 1)
                if text.startswith("dnsbl_threshold")][0]
        where = "%s:%d: dnsbl_threshold" % (d.confpath, line)
        # ctl reads the file first: the error, and nothing sent
        r = self.ctl_reload(d)
        self.assertEqual(r.returncode, 2, r.stdout + r.stderr)
        self.assertIn(where, r.stderr)
        # the daemon refuses it with the same message
        r = self.ctl_reload_socket(d)
        self.assertEqual(r.returncode, 1, r.stdout + r.stderr)
        self.assertIn(where, r.stderr)
        self.assertIn("running configuration stays", r.stderr)
        # SIGHUP with the same file: logged, the daemon goes on
        d.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: d.log().count("reload refused, the running configuration stays: "
                                         "%s" % where) == 2, 5 * SLOW, what="SIGHUP refused")
        self.assertTrue(d.alive())
        # a threshold that can never be reached is refused too (conf_finish)
        self.rewrite(d, dnsbl_threshold="5")
        r = self.ctl_reload_socket(d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("can never be reached", r.stderr)
        # the old configuration is in force
        self.assertReply(self.refused_at_rcpt(d, "127.66.0.11"), 550, "old 127.66.0.11")

    def test_restart_only_keys_are_named_and_kept(self):
        d = self.daemon()
        old_port = d.port
        new_state = os.path.join(self.tmp, "elsewhere")
        self.rewrite(d, listen="127.0.0.1:%d" % free_port(), state_dir=new_state,
                     reject_message="new %a")
        r = self.ctl_reload(d)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("listen, state_dir changed: that needs a restart", r.stderr)
        # still on the old port, and the other keys did change
        c = self.client(d, "127.66.0.12", port=old_port)
        engine_greeting(self, c)
        c.close()
        self.assertReply(self.refused_at_rcpt(d, "127.66.0.13", port=old_port), 550,
                         "new 127.66.0.13")
        self.assertFalse(os.path.exists(new_state), "state_dir moved while running")

    def test_workers_reload_through_the_supervisor(self):
        d = self.daemon(workers="2")
        sources = ["127.66.0.%d" % i for i in range(20, 36)]   # spread over both workers
        for s in sources[:8]:
            self.assertReply(self.refused_at_rcpt(d, s), 550, "old")
        self.rewrite(d, dnsbl_threshold="2")
        r = self.ctl_reload(d)   # answered by one worker, carried out by all
        self.assertEqual(r.returncode, 0, r.stderr)
        wait_until(lambda: d.log().count("configuration reloaded") >= 2, 5 * SLOW,
                   what="both workers reloaded")
        self.assertIn("reload: passed on to 2 workers", d.log())
        for s in sources:
            c = self.client(d, s)
            backend_greeting(self, c)
            c.close()
        # broken: refused by the worker that answers, no worker reloads
        self.rewrite(d, dnsbl_threshold="x")
        r = self.ctl_reload_socket(d)
        self.assertEqual(r.returncode, 1)
        self.assertIn("dnsbl_threshold", r.stderr)
        # SIGHUP to the supervisor: refused and logged once
        d.proc.send_signal(signal.SIGHUP)
        d.wait_log("reload refused, the running configuration stays")
        self.assertEqual(d.log().count("configuration reloaded"), 2)
        self.assertTrue(d.alive())
