"""Kernel bans (ban_backend = nft, ipset, recent), the state store across
restarts, privilege separation and the control socket.

Every test builds its own pair of network namespaces (netns.Topology):
breakwater, rbldnsd and smtp-sink run in the server namespace S, the
clients connect from the client namespace C over a veth pair, so the
firewall rules loaded into S see real traffic and nothing outside the
test is touched. The namespaces are deleted when the test ends, also when
it fails (BreakwaterTestCase's cleanup).

  10.77.K.1  breakwater (S)          10.77.K.3  clean client (C)
  10.77.K.2  listed client (C)       10.77.K.4  another listed client (C)
  10.77.K.5  spare (C; allowlisted where a test needs one)
"""

import os
import re
import signal
import subprocess
import time

import harness
import netns
from harness import BreakwaterTestCase, wait_until

SMTP_PORT = 2525
NFT_TABLE = "inet breakwater"
CONNECT_TIMEOUT = 1.0   # a SYN answered in the namespace takes microseconds


def slow():
    return harness.SLOW


class BanTestCase(BreakwaterTestCase):
    """Per test: the namespaces, rbldnsd and smtp-sink in S."""

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root (network namespaces, firewall)")
        self.topo = netns.Topology()
        self.topo.create()
        # _cleanups_extra run in reverse after the daemons have stopped:
        # the namespaces go last
        self._cleanups_extra.append(self.topo.delete)
        self.S, self.C = self.topo.s, self.topo.c
        self.dns = netns.NsRbldnsd(self.S, self.tmp, [self.topo.listed, self.topo.listed2])
        self._cleanups_extra.append(self.dns.stop)
        self.dns.start()
        self.sink = netns.NsSmtpSink(self.S, self.tmp)
        self._cleanups_extra.append(self.sink.stop)
        self.sink.start()
        self.messages_sent = 0

    # -- breakwater in S
    def make_daemon(self, ban_backend="nft", name=None, **extra):
        """A Daemon with its configuration file written, not started."""
        conf = self.base_conf(self.sink.address,
                              listen="%s:%d" % (self.topo.server, SMTP_PORT),
                              resolver=self.dns.resolver)
        conf.update({
            "ban_backend": ban_backend,
            "ban_time": "30s",
            "dnsbl_health_interval": "0",
            "dnsbl_timeout": "2s",
        })
        conf.update(extra)
        d = harness.Daemon(self.tmp, conf, (), name=name or "bw%d" % len(self._daemons))
        d.write_conf()
        return d

    def load_rules(self, d, backend="nft"):
        """`breakwater rules -c CONF` into S: nft -f - or sh."""
        p = self.run_bw(["rules", "-c", d.confpath])
        self.assertEqual(p.returncode, 0, "breakwater rules: %s" % p.stderr)
        self.S.check(["nft", "-f", "-"] if backend == "nft" else ["sh", "-e"], input=p.stdout)
        return p.stdout

    def start(self, d, ready=True):
        """Starts d in S; with ready, waits until it listens and (with a
        ban backend) has put its stored bans back, and returns that count."""
        d.start(wait=False, preexec_fn=self.S.preexec())
        self._daemons.append(d)
        if not ready:
            return None
        try:
            d.wait_listening()
            if d.conf.get("ban_backend") != "none":
                line = d.wait_log(r"put \d+ stored bans back", timeout=5 * slow())
                return int(re.search(r"put (\d+) stored", line).group(1))
        except AssertionError:
            d.expect_exit = True   # reported here, once
            raise
        return None

    def ctl(self, d, *args):
        return self.run_bw(["ctl", "-c", d.confpath] + list(args))

    def ctl_bans(self, d):
        """`ctl bans` as {address: {remaining, reason, count}}."""
        p = self.ctl(d, "bans")
        self.assertEqual(p.returncode, 0, "ctl bans: %r %r" % (p.stdout, p.stderr))
        out = {}
        for line in p.stdout.splitlines():
            f = dict(re.findall(r"(\w+)=(\S+)", line))
            self.assertIn("address", f, "ctl bans line %r" % line)
            out[f["address"]] = f
        return out

    def ctl_stats(self, d):
        p = self.ctl(d, "stats")
        self.assertEqual(p.returncode, 0, "ctl stats: %r %r" % (p.stdout, p.stderr))
        out = {}
        for line in p.stdout.splitlines():
            k, _, v = line.partition(" ")
            out[k] = float(v)
        return out

    # -- clients in C
    def smtp(self, source, timeout=5.0, port=SMTP_PORT):
        c = netns.smtp_client(self.C, source, self.topo.server, port, timeout * slow())
        self._cleanups_extra.append(c.close)
        return c

    def connect(self, source, port=SMTP_PORT):
        return netns.connect_result(self.C, source, self.topo.server, port, CONNECT_TIMEOUT)

    def refuse_listed(self, source, keep_open=False, port=SMTP_PORT):
        """A listed client up to RCPT 550; then it closes unless keep_open
        (once banned its packets are dropped, so the dialogue cannot go
        on)."""
        c = self.smtp(source, port=port)
        harness.engine_greeting(self, c)
        self.assertReply(c.cmd("EHLO client.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<bot@spam.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<victim@example.org>"), 550, "5.7.1", source, "bl.test")
        if not keep_open:
            c.close()
        return c

    def relay(self, source):
        """A client relayed to smtp-sink that delivers one message."""
        self.messages_sent += 1
        tag = "msg-%s-%d" % (source, self.messages_sent)
        c = self.smtp(source)
        harness.backend_greeting(self, c)
        harness.send_message(self, c, [b"Subject: " + tag.encode(), b"", b"body " + tag.encode()])
        self.sink.wait_message(tag.encode(), timeout=5 * slow())
        return c

    # -- the firewall in S
    def nft4(self):
        return netns.nft_set(self.S, NFT_TABLE, "banned4")

    def wait_nft(self, addr, timeout=None, what=None):
        """(timeout, expires) of addr once it is in banned4."""
        return wait_until(lambda: (self.nft4() or {}).get(addr), timeout or 1.0 * slow(),
                          interval=0.05, what=what or "%s in banned4" % addr)

    def wait_not_nft(self, addr, timeout):
        wait_until(lambda: addr not in (self.nft4() or {}), timeout, interval=0.05,
                   what="%s gone from banned4" % addr)

    def assertAbout(self, value, expected, slack, what):
        self.assertIsNotNone(value, what)
        self.assertLessEqual(abs(value - expected), slack,
                             "%s: %r, expected about %r" % (what, value, expected))


class NftBanTest(BanTestCase):

    def test_ban_drop_expire_escalate(self):
        """550 at RCPT -> in banned4 with ban_time; SYNs dropped; clean
        clients unaffected; the ban expires; listed again -> 2x ban_time,
        count=2."""
        t = self.topo
        d = self.make_daemon(ban_time="3s", ban_time_max="1h")
        self.load_rules(d)
        self.start(d)

        # banned right after the 550, while the session is still open
        c = self.refuse_listed(t.listed, keep_open=True)
        banned_at = time.monotonic()
        timeout, expires = self.wait_nft(t.listed, what="%s in banned4 within 1s of its 550"
                                         % t.listed)
        c.close()
        self.assertAbout(timeout, 3, 1, "timeout of the first ban")
        self.assertEqual(self.ctl_bans(d).get(t.listed, {}).get("count"), "1",
                         "ctl bans after the first ban")

        self.assertEqual(self.connect(t.listed), "timeout",
                         "a banned client's SYN must be dropped")
        self.assertEqual(self.connect(t.clean), "connected")
        self.relay(t.clean)
        self.assertNotIn(t.clean, self.nft4() or {}, "a clean client was banned")

        # expiry: gone from the set, and the client gets through again
        self.wait_not_nft(t.listed, banned_at + 3 + 2 * slow() - time.monotonic())
        self.assertEqual(self.connect(t.listed), "connected", "ban did not expire")

        # listed again after the ban ended: twice as long, count 2
        self.refuse_listed(t.listed)
        timeout, expires = self.wait_nft(t.listed, what="%s banned again" % t.listed)
        self.assertAbout(timeout, 6, 1, "timeout of the second ban (escalated)")
        ban = self.ctl_bans(d).get(t.listed)
        self.assertIsNotNone(ban, "ctl bans lacks %s" % t.listed)
        self.assertEqual(ban["count"], "2", "ctl bans: %r" % ban)
        self.assertEqual(ban["reason"], "dnsbl", "ctl bans: %r" % ban)
        self.assertAbout(float(ban["remaining"]), 6, 1.5, "remaining of the second ban")
        self.assertTrue(d.alive())

    def test_refresh_and_ban_ports(self):
        """ban_ports = the first listen port only: a banned client still
        reaches the second one, and a 550 there refreshes its ban (same
        length from now, count unchanged)."""
        t = self.topo
        other = SMTP_PORT + 2
        d = self.make_daemon(ban_time="30s", ban_ports=str(SMTP_PORT),
                             listen="%s:%d, %s:%d" % (t.server, SMTP_PORT, t.server, other))
        self.load_rules(d)
        self.start(d)
        self.refuse_listed(t.listed)
        timeout, expires = self.wait_nft(t.listed)
        self.assertAbout(timeout, 30, 1, "ban timeout")
        self.assertEqual(self.connect(t.listed), "timeout", "port %d not dropped" % SMTP_PORT)
        self.assertEqual(self.connect(t.listed, other), "connected",
                         "port %d is not in ban_ports but was dropped" % other)
        time.sleep(1.5)   # refreshes are at least 1 s apart
        # meanwhile expires went down to about 27; the refresh puts it back
        self.refuse_listed(t.listed, port=other)
        last = {}

        def refreshed():
            last["elem"] = (self.nft4() or {}).get(t.listed)
            return last["elem"] is not None and last["elem"][1] >= 29
        try:
            wait_until(refreshed, 1.0 * slow(), interval=0.05)
        except AssertionError:
            self.fail("the ban of %s was not refreshed in banned4: (timeout, expires) = %r "
                      "2.5 s after the first ban; ctl bans: %r"
                      % (t.listed, last.get("elem"), self.ctl_bans(d).get(t.listed)))
        ban = self.ctl_bans(d).get(t.listed)
        self.assertIsNotNone(ban, "ctl bans lacks %s" % t.listed)
        self.assertEqual(ban["count"], "1", "a refresh is not a new ban: %r" % ban)
        self.assertGreaterEqual(float(ban["remaining"]), 29, "ctl bans: %r" % ban)

    def test_firewall_failure_keeps_mail_flowing(self):
        """The nft table deleted while serving: bans fail (logged, counted),
        listed clients still get 550, clean ones still relay."""
        t = self.topo
        d = self.make_daemon()
        self.load_rules(d)
        self.start(d)
        self.assertIsNotNone(self.nft4(), "banned4 missing after the rules were loaded")
        self.S.check(["nft", "delete", "table"] + NFT_TABLE.split())
        self.assertIsNone(self.nft4())

        self.refuse_listed(t.listed)
        line = d.wait_log(r"firewall: .*bans failed", timeout=3 * slow())
        self.assertIn("error", line.lower(), "not logged as an error: %r" % line)
        self.relay(t.clean)
        self.refuse_listed(t.listed2)
        self.assertTrue(d.alive(), "breakwater died after a firewall error")

        def two_failed():
            s = self.ctl_stats(d)
            return s if s.get("bans_failed", 0) >= 2 else None
        stats = wait_until(two_failed, 3 * slow(), interval=0.1, what="bans_failed >= 2")
        self.assertEqual(stats.get("bans_applied"), 0, "stats: %r" % stats)

    def test_allowlisted_never_banned(self):
        """An allowlisted address that a DNSBL lists is relayed without a
        lookup and never banned; a listed one next to it is."""
        t = self.topo
        d = self.make_daemon(allowlist=t.listed)
        self.load_rules(d)
        self.start(d)
        c = self.relay(t.listed)
        self.assertSession(d, c, "allowlisted")
        # same helper queue, in order: once .4's ban is in, any ban of .2
        # (made at the end of its session, before .4 came) would be too
        self.refuse_listed(t.listed2)
        self.wait_nft(t.listed2)
        self.assertNotIn(t.listed, self.nft4(), "an allowlisted address was banned")
        self.assertNotIn(t.listed, self.ctl_bans(d))
        self.assertEqual(self.connect(t.listed), "connected")


class RestartTest(BanTestCase):

    def test_cache_and_bans_survive_restart(self):
        t = self.topo
        d = self.make_daemon(ban_time="30s")
        self.load_rules(d)
        self.start(d)
        c = self.relay(t.clean)
        s = self.assertSession(d, c, "clean")
        self.assertNotEqual(s.get("cache"), "hit", "first lookup cannot be a cache hit: %s"
                            % s["line"])
        self.refuse_listed(t.listed)
        self.wait_nft(t.listed)
        banned_at = time.monotonic()
        self.assertEqual(d.stop(), 0, "breakwater did not exit 0:\n" + d.log()[-2000:])

        # no DNS from now on, and the kernel forgets the ban
        self.dns.stop()
        self.S.check(["nft", "flush", "set"] + NFT_TABLE.split() + ["banned4"])
        self.assertNotIn(t.listed, self.nft4())

        d2 = self.make_daemon(ban_time="30s", name="bw-restarted")
        restored = self.start(d2)
        self.assertEqual(restored, 1, "stored bans put back: %r" % restored)
        timeout, expires = self.wait_nft(t.listed, timeout=2 * slow(),
                                         what="%s back in banned4 after the restart" % t.listed)
        elapsed = time.monotonic() - banned_at
        self.assertLess(timeout, 30, "the restored ban must have its remaining time")
        self.assertGreaterEqual(timeout, 30 - elapsed - 2, "restored ban too short")
        self.assertEqual(self.connect(t.listed), "timeout", "restored ban not enforced")
        self.assertIn(t.listed, self.ctl_bans(d2))

        # the verdict of .3 comes from the store (rbldnsd is down)
        c = self.relay(t.clean)
        s = self.assertSession(d2, c, "clean")
        self.assertEqual(s.get("cache"), "hit", "verdict not from the store: %s" % s["line"])


    def test_kill9_keeps_a_ban_and_flush_empties_the_cache(self):
        t = self.topo
        d = self.make_daemon(ban_time="10m")
        self.load_rules(d)
        self.start(d)
        # ctl flush: the verdict cache empties, the next lookup asks DNS
        c = self.relay(t.clean)
        self.assertSession(d, c, "clean")
        self.assertGreaterEqual(self.ctl_stats(d)["verdicts_cached"], 1)
        p = self.ctl(d, "flush")
        self.assertEqual(p.returncode, 0, "ctl flush: %r" % p.stderr)
        self.assertEqual(self.ctl_stats(d)["verdicts_cached"], 0)
        c = self.relay(t.clean)
        s = self.assertSession(d, c, "clean")
        self.assertNotEqual(s.get("cache"), "hit", "cache not flushed: %s" % s["line"])

        # a ban made just before a kill -9 is not lost
        p = self.ctl(d, "ban", t.listed2, "5m")
        self.assertEqual(p.returncode, 0, "ctl ban: %r" % p.stderr)
        d.proc.kill()
        d.proc.wait(timeout=5)
        d.expect_exit = True
        self.S.check(["nft", "flush", "set"] + NFT_TABLE.split() + ["banned4"])
        d2 = self.make_daemon(ban_time="10m", name="bw-after-kill")
        self.assertEqual(self.start(d2), 1, "the ban made before kill -9 was not restored")
        timeout, _ = self.wait_nft(t.listed2, timeout=2 * slow())
        self.assertAbout(timeout, 300, 5, "restored manual ban")
        self.assertEqual(self.ctl_bans(d2)[t.listed2]["reason"], "manual")


class IpsetBanTest(BanTestCase):

    def test_ipset_ban(self):
        t = self.topo
        d = self.make_daemon("ipset", ban_time="30s")
        self.load_rules(d, "ipset")
        self.assertEqual(netns.ipset_members(self.S, "breakwater-banned4"), {})
        self.start(d)
        self.refuse_listed(t.listed)
        left = wait_until(lambda: (netns.ipset_members(self.S, "breakwater-banned4") or {})
                          .get(t.listed), 1.0 * slow(), interval=0.05,
                          what="%s in ipset breakwater-banned4" % t.listed)
        self.assertAbout(left, 30, 2, "ipset timeout")
        self.assertEqual(self.connect(t.listed), "timeout",
                         "a banned client's SYN must be dropped")
        self.relay(t.clean)
        self.assertNotIn(t.clean, netns.ipset_members(self.S, "breakwater-banned4"))


class RecentBanTest(BanTestCase):

    def test_recent_ban(self):
        t = self.topo
        d = self.make_daemon("recent", ban_time="30s")
        self.load_rules(d, "recent")
        self.assertEqual(netns.recent_members(self.S, "breakwater"), [])
        self.start(d)
        self.refuse_listed(t.listed)
        wait_until(lambda: t.listed in (netns.recent_members(self.S, "breakwater") or []),
                   1.0 * slow(), interval=0.05,
                   what="%s in /proc/net/xt_recent/breakwater" % t.listed)
        self.assertEqual(self.connect(t.listed), "timeout",
                         "a banned client's SYN must be dropped")
        self.relay(t.clean)
        self.assertNotIn(t.clean, netns.recent_members(self.S, "breakwater"))


class StartErrorTest(BanTestCase):

    def test_missing_sets_are_a_start_error(self):
        """No ruleset loaded: serve exits non-zero naming `breakwater rules`."""
        for backend in ("nft", "ipset", "recent"):
            with self.subTest(ban_backend=backend):
                d = self.make_daemon(backend, name="bw-%s" % backend)
                d.expect_exit = True
                self.start(d, ready=False)
                try:
                    d.proc.wait(5 * slow())
                except subprocess.TimeoutExpired:
                    self.fail("breakwater with ban_backend=%s and no sets still runs; "
                              "stderr:\n%s" % (backend, d.log()))
                self.assertNotEqual(d.proc.returncode, 0)
                self.assertIn("breakwater rules", d.log())


def proc_status(pid):
    """/proc/PID/status as a dict (None when the process is gone)."""
    try:
        with open("/proc/%d/status" % pid) as f:
            return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)
    except OSError:
        return None


def children(pid):
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            st = proc_status(int(name))
            if st and st.get("PPid") == str(pid):
                out.append(int(name))
    return out


class PrivsepTest(BanTestCase):

    def test_privileges_dropped(self):
        d = self.make_daemon()
        self.load_rules(d)
        self.start(d)
        d.wait_log(r"running as user nobody")
        nobody = "\t".join(["65534"] * 4)
        st = proc_status(d.proc.pid)
        self.assertEqual(st["Uid"], nobody, "daemon uids")
        self.assertEqual(st["Gid"], "\t".join(["65534"] * 4), "daemon gids")
        self.assertEqual(st["CapEff"], "0000000000000000", "daemon CapEff")
        self.assertEqual(st["CapPrm"], "0000000000000000", "daemon CapPrm")
        kids = children(d.proc.pid)
        self.assertEqual(len(kids), 1, "expected one child (the ban helper): %r" % kids)
        hs = proc_status(kids[0])
        self.assertEqual(hs["Uid"], nobody, "helper uids")
        self.assertEqual(hs["CapEff"], "0000000000001000", "helper CapEff (CAP_NET_ADMIN only)")
        self.assertEqual(hs["CapPrm"], "0000000000001000", "helper CapPrm")
        # and the helper does its job with that
        self.refuse_listed(self.topo.listed)
        self.wait_nft(self.topo.listed)


    def test_stop_of_the_process_group_logs_no_error(self):
        """A stop that signals the whole process group (Ctrl-C, timeout(1),
        systemd's stop) reaches the ban helper too: it outlives the daemon,
        which exits 0 with no error line (the helper used to die first:
        "the ban helper is gone")."""
        d = self.make_daemon()
        self.load_rules(d)
        self.start(d)
        self.refuse_listed(self.topo.listed)
        self.wait_nft(self.topo.listed)
        kids = children(d.proc.pid)
        self.assertEqual(len(kids), 1, "expected one child (the ban helper): %r" % kids)
        d.expect_exit = True
        # as kill(-pgid, SIGTERM) would, and the helper's signal handled
        # first: it must live on, since the daemon may still have bans and
        # drains its relays for up to shutdown_timeout
        os.kill(kids[0], signal.SIGTERM)
        time.sleep(0.3 * slow())
        self.assertTrue(os.path.exists("/proc/%d" % kids[0]), "SIGTERM ended the helper")
        os.kill(d.proc.pid, signal.SIGTERM)
        d.proc.wait(5 * slow())
        self.assertEqual(d.proc.returncode, 0, d.log()[-2000:])
        errors = [l for l in d.log().splitlines() if ": error:" in l]
        self.assertEqual(errors, [], "a clean stop logged errors")
        harness.wait_until(lambda: not os.path.exists("/proc/%d" % kids[0]), 5 * slow(),
                           what="the helper gone after the daemon")


class ControlTest(BanTestCase):

    def test_ctl(self):
        t = self.topo
        d = self.make_daemon(allowlist=t.spare, ban_time="10m")
        self.load_rules(d)
        self.start(d)

        p = self.ctl(d, "ban", t.listed2, "30s")
        self.assertEqual(p.returncode, 0, "ctl ban: %r" % p.stderr)
        timeout, _ = self.wait_nft(t.listed2)
        self.assertAbout(timeout, 30, 1, "timeout of a 30s manual ban")
        ban = self.ctl_bans(d).get(t.listed2)
        self.assertIsNotNone(ban, "ctl bans lacks the manual ban")
        self.assertEqual(ban["reason"], "manual", "ctl bans: %r" % ban)
        self.assertEqual(ban["count"], "1", "ctl bans: %r" % ban)
        self.assertAbout(float(ban["remaining"]), 30, 2, "remaining")
        self.assertEqual(self.connect(t.listed2), "timeout", "manual ban not enforced")

        p = self.ctl(d, "unban", t.listed2)
        self.assertEqual(p.returncode, 0, "ctl unban: %r" % p.stderr)
        self.wait_not_nft(t.listed2, 1.0 * slow())
        self.assertNotIn(t.listed2, self.ctl_bans(d))
        self.assertEqual(self.connect(t.listed2), "connected", "unbanned but still dropped")

        p = self.ctl(d, "ban", t.spare)
        self.assertEqual(p.returncode, 1, "ctl ban of an allowlisted address: %r %r"
                         % (p.stdout, p.stderr))
        self.assertIn("allowlist", p.stderr)
        p = self.ctl(d, "ban", "not-an-address")
        self.assertEqual(p.returncode, 1, "ctl ban of a non-address: %r" % p.stderr)
        p = self.ctl(d, "frobnicate")
        self.assertEqual(p.returncode, 1, "unknown ctl command: %r %r" % (p.stdout, p.stderr))
        self.assertIn("unknown command", p.stderr)

        stats = self.ctl_stats(d)
        for key in ("bans_applied", "bans_failed", "ban_latency_p99_seconds"):
            self.assertIn(key, stats)
        self.assertGreaterEqual(stats["bans_applied"], 1, "stats: %r" % stats)
        self.assertEqual(stats["bans_failed"], 0, "stats: %r" % stats)
        self.assertGreater(stats["ban_latency_p99_seconds"], 0, "stats: %r" % stats)
        self.assertNotIn(t.spare, self.nft4() or {})
        self.assertTrue(d.alive())
