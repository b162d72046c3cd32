"""Fleet: three breakwater hosts share bans and verdicts through one real
redis-server.

Each test builds a hub namespace H (redis-server, rbldnsd with a query
log, and the clients) and three host namespaces A, B and C, each running
breakwater with its own nft ruleset; a bridge in H joins them:

  10.78.K.1    H: redis-server :6379 (ACL user bw), rbldnsd :5353
  10.78.K.11   A    10.78.K.12  B    10.78.K.13  C   (breakwater :2525)
  10.78.K.100+ H: client addresses; .100-.149 are listed, .150+ clean

Clients connect from H, so each host's firewall sees them as real
traffic. Everything is deleted when the test ends.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import time

import harness
import netns
from harness import SLOW, BreakwaterTestCase, wait_until

NFT_TABLE = "inet breakwater"
PASSWORD = "fleet-secret-1"
PROPAGATION = 2.0       # seconds a peer's ban may take here (the bench measures it)
# the rights docs/operations.md and README.md give the fleet's Redis user
DOCUMENTED_ACL = ("~breakwater:* &breakwater:* +get +set +eval +publish +subscribe +scan "
                  "+ping +select +auth")


class FleetTestCase(BreakwaterTestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root (network namespaces, firewall)")
        if shutil.which("redis-server") is None:
            self.skipTest("redis-server missing (package redis-server, in TEST_PACKAGES)")
        self.k = (os.getpid() + id(self)) % 250 + 1
        self.net = "10.78.%d." % self.k
        tag = "%d-%d" % (os.getpid(), id(self) % 100000)
        self.H = netns.NetNS("bwt-fh-" + tag)
        self.hosts = {name: netns.NetNS("bwt-f%s-%s" % (name.lower(), tag)) for name in "ABC"}
        self._cleanups_extra.append(self.delete_namespaces)
        self.H.create()
        netns._ip(["-n", self.H.name, "link", "add", "br0", "type", "bridge"])
        netns._ip(["-n", self.H.name, "addr", "add", self.net + "1/24", "dev", "br0"])
        for i in range(100, 160):
            netns._ip(["-n", self.H.name, "addr", "add", "%s%d/24" % (self.net, i), "dev", "br0"])
        netns._ip(["-n", self.H.name, "link", "set", "br0", "up"])
        netns._ip(["-n", self.H.name, "link", "set", "lo", "up"])
        for n, (name, ns) in enumerate(sorted(self.hosts.items())):
            ns.create()
            netns._ip(["-n", self.H.name, "link", "add", "v" + name, "type", "veth",
                       "peer", "name", "eth0", "netns", ns.name])
            netns._ip(["-n", self.H.name, "link", "set", "v" + name, "master", "br0"])
            netns._ip(["-n", self.H.name, "link", "set", "v" + name, "up"])
            netns._ip(["-n", ns.name, "addr", "add", "%s%d/24" % (self.net, 11 + n), "dev", "eth0"])
            netns._ip(["-n", ns.name, "link", "set", "eth0", "up"])
            netns._ip(["-n", ns.name, "link", "set", "lo", "up"])
        self.redis = None
        self.start_redis()
        self.start_rbldnsd()

    def delete_namespaces(self):
        for ns in self.hosts.values():
            ns.delete()
        self.H.delete()

    # -- hub services
    def start_redis(self):
        d = os.path.join(self.tmp, "redis")
        os.makedirs(d, exist_ok=True)
        conf = os.path.join(d, "redis.conf")
        with open(conf, "w") as f:
            f.write("bind %s1\nport 6379\nsave \"\"\nappendonly no\ndir %s\n"
                    "user default off\nuser bw on >%s ~* &* +@all\n"
                    "user nopub on >%s ~* &* +@all -publish\n"
                    "user doc on >%s %s\n"
                    % (self.net, d, PASSWORD, PASSWORD, PASSWORD, DOCUMENTED_ACL))
        err = open(os.path.join(d, "redis.log"), "ab")
        self.redis = subprocess.Popen(self.H.argv(["redis-server", conf]),
                                      stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        self._cleanups_extra.append(lambda p=self.redis: harness.stop_process(p))
        wait_until(lambda: self.redis_cli("PING").strip() == "PONG", 10 * SLOW,
                   what="redis-server answering")

    def redis_cli(self, *args):
        p = self.H.run(["redis-cli", "-h", self.net + "1", "--user", "bw", "--pass", PASSWORD,
                        "--no-auth-warning"] + list(args), timeout=10)
        return p.stdout

    def start_rbldnsd(self):
        d = os.path.join(self.tmp, "rbldnsd")
        os.makedirs(d, exist_ok=True)
        os.chmod(d, 0o777)
        with open(os.path.join(d, "bl.zone"), "w") as f:
            f.write(":127.0.0.2:Listed, see http://example.invalid/$\n%s100-%s149\n127.0.0.2\n"
                    % (self.net, self.net))
        os.chmod(os.path.join(d, "bl.zone"), 0o644)
        self.querylog = os.path.join(d, "queries.log")
        err = open(os.path.join(self.tmp, "rbldnsd.err"), "ab")
        p = subprocess.Popen(self.H.argv(["rbldnsd", "-n", "-u", "rbldns", "-w", d,
                                          "-l", "+" + self.querylog, "-b", self.net + "1/5353",
                                          "bl.test:ip4set:bl.zone"]),
                             stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        self._cleanups_extra.append(lambda: harness.stop_process(p))
        wait_until(lambda: self.H.call(harness.dig, 5353, "2.0.0.127.bl.test", timeout=10,
                                       server=self.net + "1") == ["127.0.0.2"],
                   10 * SLOW, what="rbldnsd answering")

    def queries_for(self, addr):
        """DNSBL queries rbldnsd logged for one client address"""
        rev = ".".join(reversed(addr.split(".")))
        try:
            with open(self.querylog) as f:
                return sum(1 for line in f if rev + ".bl.test" in line)
        except FileNotFoundError:
            return 0

    # -- the hosts
    def host_address(self, name):
        return "%s%d" % (self.net, 11 + "ABC".index(name))

    def start_host(self, name, password=PASSWORD, expect_start=True, user="bw",
                   daemon_name=None, **extra):
        ns = self.hosts[name]
        conf = self.base_conf("127.0.0.1:9", listen="%s:2525" % self.host_address(name),
                              resolver=self.net + "1:5353")
        conf.update({
            "ban_backend": "nft", "ban_time": "5m", "ban_time_max": "1h",
            "dnsbl_health_interval": "0", "dnsbl_timeout": "2s",
            "state_dir": os.path.join(self.tmp, "state-" + name),
            "control_socket": os.path.join(self.tmp, "control-" + name),
            "fleet_redis": "redis://%s:%s@%s1:6379" % (user, password, self.net),
            "fleet_host_id": "host-" + name.lower(),
            "fleet_timeout": "0.5s",
        })
        conf.update(extra)
        d = harness.Daemon(self.tmp, conf, (), name=daemon_name or "bw" + name)
        d.write_conf()
        p = self.run_bw(["rules", "-c", d.confpath])
        self.assertEqual(p.returncode, 0, p.stderr)
        ns.check(["nft", "-f", "-"], input=p.stdout)
        d.start(wait=False, preexec_fn=ns.preexec())
        self._daemons.append(d)
        d.ns = ns
        if expect_start:
            d.wait_listening()
            d.wait_log("fleet: listening on breakwater:bans", timeout=10 * SLOW)
        return d

    def banned(self, d, nft_set="banned4"):
        return set(netns.nft_set(d.ns, NFT_TABLE, nft_set) or {})

    def smtp(self, d, source):
        c = netns.smtp_client(self.H, source, d.listen_addresses()[0][0], 2525, 5 * SLOW)
        self._cleanups_extra.append(c.close)
        return c

    def refuse(self, d, source):
        c = self.smtp(d, source)
        harness.engine_greeting(self, c)
        self.assertReply(c.cmd("EHLO bot.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<bot@spam.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<victim@example.org>"), 550, source)
        c.close()

    def wait_banned(self, d, addr, present=True, timeout=PROPAGATION, nft_set="banned4"):
        wait_until(lambda: (addr in self.banned(d, nft_set)) == present, timeout * SLOW,
                   what="%s %s host %s's nft set" % (addr, "in" if present else "out of",
                                                     d.conf["fleet_host_id"]))

    def wait_received(self, d, n):
        """Until host d has received n well-formed ban messages."""
        wait_until(lambda: (self.metric(d, "breakwater_fleet_bans_total",
                                        '{result="received"}') or 0) >= n,
                   PROPAGATION * SLOW, what="%d ban messages received by %s"
                   % (n, d.conf["fleet_host_id"]))

    def metric(self, d, name, labels=""):
        text = self.scrape(d)
        m = re.search(r"^%s%s (\S+)$" % (re.escape(name), re.escape(labels)), text, re.M)
        return float(m.group(1)) if m else None

    def scrape(self, d):
        host, port = d.conf["metrics_listen"].rsplit(":", 1)
        p = d.ns.run(["python3", "-c", "import urllib.request,sys;sys.stdout.write("
                      "urllib.request.urlopen('http://%s:%s/metrics',timeout=5).read().decode())"
                      % (host, port)], timeout=15)
        return p.stdout


class FleetTest(FleetTestCase):

    def test_ban_reaches_peers_and_late_starter_unban_too(self):
        a, b = self.start_host("A"), self.start_host("B")
        bot = self.net + "101"
        self.refuse(a, bot)
        self.wait_banned(a, bot)
        self.wait_banned(b, bot)    # within PROPAGATION (the bench measures it)
        # C starts after the ban: it reads the live bans from Redis
        c = self.start_host("C")
        self.wait_banned(c, bot)
        # the peers' copies are peers' bans: B does not publish it again
        self.assertEqual(self.metric(b, "breakwater_fleet_bans_total", '{result="sent"}'), 0)
        self.assertGreaterEqual(self.metric(b, "breakwater_fleet_bans_total",
                                            '{result="applied"}'), 1)
        self.assertEqual(self.metric(a, "breakwater_fleet_connected"), 1)
        # a second connection to B from the bot is dropped by B's firewall
        self.assertEqual(netns.connect_result(self.H, bot, self.host_address("B"), 2525, 1.0),
                         "timeout")
        # ctl unban on A lifts it everywhere
        p = self.run_bw(["ctl", "-c", a.confpath, "unban", bot])
        self.assertEqual(p.returncode, 0, p.stderr)
        for d in (a, b, c):
            self.wait_banned(d, bot, present=False)
        # the key now holds the unban (for ban_time_max), not the ban: a
        # host starting later reads it and an older ban is refused there
        held = self.redis_cli("GET", "breakwater:ban:" + bot)
        self.assertTrue(held.startswith("unban v2 host-a %s " % bot), held)
        ttl = int(self.redis_cli("PTTL", "breakwater:ban:" + bot))
        self.assertTrue(3500 * 1000 < ttl <= 3600 * 1000, ttl)   # ban_time_max 1h

    def test_network_ban_reaches_peers_of_its_prefix(self):
        """A network ban (ctl ban NET/24 on A) travels as NET/24: B, whose
        ipv4_prefix is 24 too, bans the network; C, which bans single
        addresses, refuses a peer's ban wider than its own; an unban on A
        of an address inside lifts B's copy."""
        a = self.start_host("A", ipv4_prefix="24")
        b = self.start_host("B", ipv4_prefix="24")
        c = self.start_host("C")
        net = "198.51.100.0/24"
        p = self.run_bw(["ctl", "-c", a.confpath, "ban", net, "2m"])
        self.assertEqual(p.returncode, 0, p.stderr)
        first = "198.51.100.0"      # the /24 in banned4net24, by its first address
        self.wait_banned(a, first, nft_set="banned4net24")
        self.wait_banned(b, first, nft_set="banned4net24")
        self.assertIn("ban v2 host-a %s " % net, self.redis_cli("GET", "breakwater:ban:" + net))
        self.wait_received(c, 1)    # C has the message: then it must not have applied it
        self.assertEqual(self.banned(c), set(), "C took a ban wider than its ipv4_prefix")
        self.assertEqual(self.metric(c, "breakwater_fleet_bans_total", '{result="applied"}'), 0)
        self.assertEqual(netns.nft_set(c.ns, NFT_TABLE, "banned4net"), {})
        p = self.run_bw(["ctl", "-c", a.confpath, "unban", "198.51.100.7"])
        self.assertEqual(p.returncode, 0, p.stderr)
        for d in (a, b):
            self.wait_banned(d, first, present=False, nft_set="banned4net24")
        # a peer's /24 is not put back by a host that bans single addresses
        # now: B restarted with ipv4_prefix 32
        p = self.run_bw(["ctl", "-c", a.confpath, "ban", net, "2m"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.wait_banned(b, first, nft_set="banned4net24")
        self.assertEqual(b.stop(), 0, b.log()[-2000:])
        b2 = self.start_host("B", daemon_name="bwB2")
        b2.wait_log(r"put 0 stored bans back")
        self.assertEqual(netns.nft_set(b2.ns, NFT_TABLE, "banned4net"), {})

    def test_allowlist_wins_and_ban_time_max_bounds_a_peer(self):
        a = self.start_host("A")
        b = self.start_host("B", allowlist=self.net + "102")
        c = self.start_host("C", ban_time="1m", ban_time_max="2m")
        self.refuse(a, self.net + "102")
        self.wait_banned(c, self.net + "102")
        self.wait_received(b, 1)    # B has the message: then it must not have applied it
        self.assertNotIn(self.net + "102", self.banned(b), "B's allowlist did not win")
        self.assertEqual(self.metric(b, "breakwater_fleet_bans_total", '{result="applied"}'), 0)
        # a forged ban from Redis for ten years: C keeps it at most ban_time_max
        until = int(time.time() * 1000) + 10 * 365 * 86400 * 1000
        self.redis_cli("PUBLISH", "breakwater:bans",
                       "ban v1 forger %s103 %d 1 manual %d" % (self.net, until,
                                                               int(time.time() * 1000)))
        self.wait_banned(c, self.net + "103")
        timeout, _ = netns.nft_set(c.ns, NFT_TABLE, "banned4")[self.net + "103"]
        self.assertLessEqual(timeout, 120, "a peer banned for longer than ban_time_max")

    def test_malformed_messages_dropped_and_counted(self):
        a, b = self.start_host("A"), self.start_host("B")
        now = int(time.time() * 1000)
        bad = [
            "garbage",
            "ban v1 forger 999.1.2.3 %d 1 dnsbl %d" % (now + 60000, now),     # no address
            "ban v1 forger %s104 %d 1 nonsense %d" % (self.net, now + 60000, now),  # reason
            "ban v1 forger %s104 %d 0 dnsbl %d" % (self.net, now + 60000, now),     # count 0
            "ban v1 forg/er %s104 %d 1 dnsbl %d" % (self.net, now + 60000, now),    # origin
            "ban v2 forger %s104 %d 1 dnsbl %d" % (self.net, now + 60000, now),     # version
            "ban v1 forger %s104 %d 1 dnsbl %d extra" % (self.net, now + 60000, now),
            "unban v1 forger %s104" % self.net,                                   # no time
            "x" * 5000,
        ]
        for m in bad:
            self.redis_cli("PUBLISH", "breakwater:bans", m)
        wait_until(lambda: self.metric(a, "breakwater_fleet_bans_dropped_total",
                                       '{reason="malformed"}') == len(bad), 5 * SLOW,
                   what="A counted every malformed message")
        self.assertEqual(self.metric(b, "breakwater_fleet_bans_dropped_total",
                                     '{reason="malformed"}'), len(bad))
        self.assertEqual(self.banned(a), set())
        self.assertTrue(a.alive() and b.alive())
        # a well-formed one still works after them
        self.redis_cli("PUBLISH", "breakwater:bans", "ban v1 forger %s105 %d 1 dnsbl %d"
                       % (self.net, now + 60000, now))
        self.wait_banned(a, self.net + "105")

    def test_verdict_made_once_for_the_fleet(self):
        a, b, c = self.start_host("A"), self.start_host("B"), self.start_host("C")
        clean = self.net + "150"
        for d in (a, b, c):     # the backend is down: 421, but the verdict is made
            s = self.smtp(d, clean)
            r = s.read_reply()
            self.assertEqual(r.code, 421, r.text)
            s.close()
        self.assertEqual(self.queries_for(clean), 1, "more than one DNSBL query for the fleet")
        self.assertGreaterEqual(self.metric(b, "breakwater_fleet_verdict_lookups_total",
                                            '{result="hit"}'), 1)
        self.assertGreaterEqual(self.metric(c, "breakwater_fleet_verdict_lookups_total",
                                            '{result="hit"}'), 1)

    def test_redis_down_then_back(self):
        a, b, c = self.start_host("A"), self.start_host("B"), self.start_host("C")
        self.redis.kill()
        self.redis.wait(10)
        wait_until(lambda: self.metric(a, "breakwater_fleet_connected") == 0, 5 * SLOW,
                   what="A noticed Redis gone")
        # each host goes on alone: refuses and bans locally
        self.refuse(a, self.net + "110")
        self.wait_banned(a, self.net + "110")
        self.refuse(b, self.net + "111")
        self.wait_banned(b, self.net + "111")
        clean = self.net + "151"   # DNS still decides
        s = self.smtp(c, clean)
        self.assertEqual(s.read_reply().code, 421)
        s.close()
        self.assertNotIn(self.net + "110", self.banned(b))
        for d in (a, b, c):
            self.assertTrue(d.alive())
        self.assertIn("going on alone", a.log())
        # Redis back (empty): what each made meanwhile reaches the others
        self.start_redis()
        for d in (b, c):
            self.wait_banned(d, self.net + "110", timeout=40)
        for d in (a, c):
            self.wait_banned(d, self.net + "111", timeout=40)
        self.assertIn("made while Redis was away published", a.log())

    def test_redis_stalled_then_resumed(self):
        a, b = self.start_host("A"), self.start_host("B")
        self.redis.send_signal(signal.SIGSTOP)
        try:
            # a verdict waits fleet_timeout at most, then the list decides
            t0 = time.monotonic()
            self.refuse(a, self.net + "120")
            self.assertLess(time.monotonic() - t0, 3 * SLOW)
            self.wait_banned(a, self.net + "120")
            self.assertGreaterEqual(self.metric(a, "breakwater_fleet_verdict_lookups_total",
                                                '{result="timeout"}'), 1)
            a.wait_log("replies overdue", timeout=10 * SLOW)
            self.assertTrue(a.alive() and b.alive())
        finally:
            self.redis.send_signal(signal.SIGCONT)
        # resumed: the ban made meanwhile reaches B, and new ones flow again
        self.wait_banned(b, self.net + "120", timeout=40)
        self.refuse(b, self.net + "121")
        self.wait_banned(a, self.net + "121")

    def test_workers_publish_one_listens(self):
        a = self.start_host("A", workers="2")
        b = self.start_host("B")
        bots = [self.net + str(i) for i in range(132, 140)]   # over both of A's workers
        for bot in bots:
            self.refuse(a, bot)
        for bot in bots:
            self.wait_banned(b, bot)
        self.refuse(b, self.net + "140")
        self.wait_banned(a, self.net + "140")
        # one listener on A: the peer's ban was received once
        self.assertEqual(self.metric(a, "breakwater_fleet_bans_total", '{result="received"}'), 1)
        self.assertEqual(self.metric(a, "breakwater_fleet_connected"), 2)

    def test_documented_acl_is_enough(self):
        """A host whose Redis user has only the rights the docs give bans,
        publishes, receives, shares verdicts and refuses nothing."""
        a = self.start_host("A", user="doc")
        b = self.start_host("B")
        self.refuse(a, self.net + "143")
        self.wait_banned(b, self.net + "143")
        self.refuse(b, self.net + "144")
        self.wait_banned(a, self.net + "144")
        clean = self.net + "152"        # B's verdict, read from Redis by A
        for d in (b, a):
            s = self.smtp(d, clean)
            self.assertEqual(s.read_reply().code, 421)  # the backend is down
            s.close()
        self.assertEqual(self.queries_for(clean), 1)
        self.assertGreaterEqual(self.metric(a, "breakwater_fleet_verdict_lookups_total",
                                            '{result="hit"}'), 1)
        p = self.run_bw(["ctl", "-c", a.confpath, "unban", self.net + "143"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.wait_banned(b, self.net + "143", present=False)
        self.assertEqual(self.metric(a, "breakwater_fleet_bans_dropped_total",
                                     '{reason="refused"}'), 0)
        self.assertNotIn("Redis refused", a.log())

    def test_publish_refused_is_dropped_not_retried(self):
        a = self.start_host("A", user="nopub")   # its ACL user may not PUBLISH
        b = self.start_host("B")
        self.refuse(a, self.net + "141")
        self.wait_banned(a, self.net + "141")
        wait_until(lambda: self.metric(a, "breakwater_fleet_bans_dropped_total",
                                       '{reason="refused"}') == 1, 5 * SLOW,
                   what="the refused PUBLISH counted once")
        a.wait_log("Redis refused the ban's publication: .*can't run this command")
        time.sleep(2.5 * SLOW)   # the backlog is flushed every second: nothing to send
        self.assertEqual(self.metric(a, "breakwater_fleet_bans_dropped_total",
                                     '{reason="refused"}'), 1)
        self.assertNotIn(self.net + "141", self.banned(b))
        # B's bans still reach A (A may subscribe)
        self.refuse(b, self.net + "142")
        self.wait_banned(a, self.net + "142")


class FleetPoisonTest(FleetTestCase):
    """Values that whoever may write the fleet's keys stores in Redis, too
    long to be a ban or a verdict: they stay in Redis, and the hosts read
    everything else (none of them is larger than a reply may be)."""

    def test_oversized_values_do_not_stop_the_fleet(self):
        now = int(time.time() * 1000)
        # 3,000 live bans of a peer, 10.200.X.Y, and among them two keys
        # of 5 MiB and 32 KiB; a verdict of 5 MiB for a client of the test
        self.redis_cli("EVAL", "for i = 0, 2999 do "
                       "local a = '10.200.' .. math.floor(i / 250) .. '.' .. (i % 250 + 1) "
                       "redis.call('SET', 'breakwater:ban:' .. a, 'ban v2 host-x ' .. a .. ' ' "
                       ".. ARGV[1] .. ' ' .. ARGV[2] .. ' 1 dnsbl ' .. ARGV[1], 'PX', 600000) "
                       "end", "0", str(now), str(now + 600000))
        self.redis_cli("EVAL", "redis.call('SET', KEYS[1], string.rep('p', 5 * 1048576)) "
                       "redis.call('SET', KEYS[2], string.rep('q', 32768)) "
                       "redis.call('SET', KEYS[3], string.rep('v', 5 * 1048576))", "3",
                       "breakwater:ban:10.201.0.1", "breakwater:ban:10.201.0.2",
                       "breakwater:verdict:%s150" % self.net)
        a = self.start_host("A", user="doc")
        wait_until(lambda: len(self.banned(a)) >= 3000, 20 * SLOW,
                   what="the 3,000 live bans in A's set")
        self.assertEqual(len(self.banned(a)), 3000)
        # the verdict of 5 MiB is not one: A asks the list, the link stays
        s = self.smtp(a, self.net + "150")
        self.assertEqual(s.read_reply().code, 421)  # the backend is down
        s.close()
        self.assertEqual(self.queries_for(self.net + "150"), 1)
        self.assertGreaterEqual(self.metric(a, "breakwater_fleet_verdict_lookups_total",
                                            '{result="miss"}'), 1)
        self.assertEqual(self.metric(a, "breakwater_fleet_connected"), 1)
        self.assertNotIn("connection lost", a.log())
        self.assertNotIn("a reply over", a.log())


class FleetOrderTest(FleetTestCase):
    """A ban and an unban of one address from different hosts can reach a
    host, or Redis, in either order: the newer decision wins everywhere."""

    def publish(self, text):
        self.assertEqual(self.redis_cli("PUBLISH", "breakwater:bans", text).strip(), "1")

    def stale(self, d):
        return self.metric(d, "breakwater_fleet_bans_dropped_total", '{reason="stale"}') or 0

    def test_unban_then_older_ban_on_the_channel(self):
        b = self.start_host("B")
        now = int(time.time() * 1000)
        x, y = self.net + "160", self.net + "161"
        # wrong order: the unban decided now arrives before a ban decided 1 s earlier
        self.publish("unban v2 peer-1 %s %d %d" % (x, now, now))
        self.publish("ban v2 peer-2 %s %d %d 1 dnsbl %d" % (x, now - 1000, now + 600000, now))
        self.wait_received(b, 2)
        wait_until(lambda: self.stale(b) == 1, PROPAGATION * SLOW, what="the old ban refused")
        self.assertNotIn(x, self.banned(b))
        # the right order: the ban applies, the newer unban lifts it, and
        # the same ban delivered again afterwards (a replay) stays refused
        self.publish("ban v2 peer-2 %s %d %d 1 dnsbl %d" % (y, now - 1000, now + 600000, now))
        self.wait_banned(b, y)
        self.publish("unban v2 peer-1 %s %d %d" % (y, now, now))
        self.wait_banned(b, y, present=False)
        self.publish("ban v2 peer-2 %s %d %d 1 dnsbl %d" % (y, now - 1000, now + 600000, now))
        wait_until(lambda: self.stale(b) == 2, PROPAGATION * SLOW, what="the replay refused")
        # at the same millisecond the unban wins, in either order
        z = self.net + "162"
        self.publish("unban v2 peer-1 %s %d %d" % (z, now, now))
        self.publish("ban v2 peer-2 %s %d %d 1 dnsbl %d" % (z, now, now + 600000, now))
        wait_until(lambda: self.stale(b) == 3, PROPAGATION * SLOW, what="the tie refused")
        self.assertNotIn(z, self.banned(b))
        # an event decided a day ahead of B's clock would outrank every later
        # one for as long as B keeps it: refused, and a ban of now applies
        w = self.net + "163"
        self.publish("unban v2 peer-1 %s %d %d" % (w, now + 86400000, now))
        wait_until(lambda: self.metric(b, "breakwater_fleet_bans_dropped_total",
                                       '{reason="clock"}') == 1, PROPAGATION * SLOW,
                   what="the future event refused")
        self.publish("ban v2 peer-2 %s %d %d 1 dnsbl %d" % (w, now, now + 600000, now))
        self.wait_banned(b, w)
        b.wait_log("ahead of this host's clock")
        # what B holds survives a restart: the old ban is still refused after it
        self.assertEqual(b.stop(), 0, b.log()[-2000:])
        b2 = self.start_host("B", daemon_name="bwB2")
        self.publish("ban v2 peer-2 %s %d %d 1 dnsbl %d" % (x, now - 1000, now + 600000, now))
        wait_until(lambda: self.stale(b2) == 1, PROPAGATION * SLOW,
                   what="the old ban refused after a restart")
        self.assertEqual(self.banned(b2), {w})   # put back; x stays out

    def test_old_ban_from_a_backlog_is_refused_by_redis(self):
        """C bans X while cut off from Redis (the ban waits in its backlog);
        A unbans X later; when C is back its ban is older than the unban
        that Redis holds: Redis does not publish it, B never bans X, and C
        lifts its own ban on reading A's unban."""
        a, b, c = self.start_host("A"), self.start_host("B"), self.start_host("C")
        x = "198.51.100.44"
        cut = ("table inet cut {\n chain out {\n type filter hook output priority 0;\n"
               " ip daddr %s1 tcp dport 6379 drop\n }\n}\n" % self.net)
        c.ns.check(["nft", "-f", "-"], input=cut)
        try:
            p = self.run_bw(["ctl", "-c", c.confpath, "ban", x, "10m"])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.wait_banned(c, x)
            c.wait_log("replies overdue", timeout=10 * SLOW)   # the ban is waiting
            time.sleep(0.05)
            p = self.run_bw(["ctl", "-c", a.confpath, "unban", x])
            self.assertEqual(p.returncode, 0, p.stderr)
            wait_until(lambda: self.redis_cli("GET", "breakwater:ban:" + x)
                       .startswith("unban v2 host-a "), PROPAGATION * SLOW,
                       what="A's unban in Redis")
        finally:
            c.ns.check(["nft", "delete", "table", "inet", "cut"])
        wait_until(lambda: self.stale(c) >= 1, 40 * SLOW,
                   what="C's old ban refused by Redis once C is back")
        self.assertTrue(self.redis_cli("GET", "breakwater:ban:" + x).startswith("unban v2 host-a "))
        self.wait_banned(c, x, present=False, timeout=10)
        self.assertNotIn(x, self.banned(b))
        # B got A's unban and nothing else: the old ban never went out
        self.assertEqual(self.metric(b, "breakwater_fleet_bans_total", '{result="received"}'), 1)


class FleetWatchTest(FleetTestCase):
    """breakwater watch in a fleet: a ban it makes from the MTA's log
    reaches serve hosts, and their bans reach it."""

    def start_watch(self, **extra):
        """watch on host B following a mail log of its own; (watch, log path)."""
        import test_watch
        log = os.path.join(self.tmp, "mail.log")
        with open(log, "wb"):
            pass
        os.chmod(log, 0o644)
        conf = self.base_conf("127.0.0.1:9")
        conf.update({"ban_backend": "nft", "ban_time": "5m", "ban_time_max": "1h",
                     "state_dir": os.path.join(self.tmp, "state-B"),
                     "watch_kill": "none",
                     "fleet_redis": "redis://bw:%s@%s1:6379" % (PASSWORD, self.net),
                     "fleet_host_id": "watcher-b"})
        conf.update(extra)
        w = test_watch.Watch(self.tmp, conf, [log], name="watchB")
        w.write_conf()
        p = self.run_bw(["rules", "-c", w.confpath])
        self.hosts["B"].check(["nft", "-f", "-"], input=p.stdout)
        self._daemons.append(w)
        w.start(preexec_fn=self.hosts["B"].preexec())
        w.ns = self.hosts["B"]
        w.wait_log("fleet: listening on breakwater:bans", timeout=10 * SLOW)
        return w, log

    def test_watch_and_serve_share_bans(self):
        import test_watch
        a = self.start_host("A")
        w, log = self.start_watch()
        # the exposed MTA's log says it refused 10.78.K.130: banned on B, then on A
        test_watch.write(log, test_watch.reject("postfix-smtpd", self.net + "130"))
        self.wait_banned(w, self.net + "130")
        self.wait_banned(a, self.net + "130")
        # A refuses a bot: the watcher bans it too
        self.refuse(a, self.net + "131")
        self.wait_banned(w, self.net + "131")

    def test_peer_ban_leaves_live_connections(self):
        """A peer's ban only blocks new connections on a watch host: with
        watch_kill = socket, a live session of the address peers banned
        stays up, while one that B's own MTA log names is ended (so the
        kill works here, and a peer's word alone does not trigger it)."""
        import test_watch
        port = 2526
        b = self.host_address("B")
        server = self.hosts["B"].call(lambda: socket.create_server((b, port)))
        self._cleanups_extra.append(server.close)
        a = self.start_host("A")
        w, log = self.start_watch(watch_kill="socket", watch_ports=str(port))

        def hold(source):
            c = netns.smtp_client(self.H, source, b, port, 5 * SLOW)
            self._cleanups_extra.append(c.close)
            server.settimeout(5 * SLOW)
            peer, _ = server.accept()
            self._cleanups_extra.append(peer.close)
            return c, peer

        def state(c):
            c.sock.settimeout(test_watch.KILL_DELAY + 1.0 * SLOW)
            try:
                return "data" if c.sock.recv(64) else "eof"
            except ConnectionResetError:
                return "reset"
            except socket.timeout:
                return "open"

        peers_word, own_log = self.net + "132", self.net + "133"
        c1, p1 = hold(peers_word)
        c2, _ = hold(own_log)
        self.refuse(a, peers_word)                    # A bans it and publishes
        self.wait_banned(w, peers_word)
        self.assertEqual(state(c1), "open", "a peer's ban ended a live session on B")
        p1.sendall(b"still here\r\n")
        self.assertEqual(c1.sock.recv(64), b"still here\r\n")
        test_watch.write(log, test_watch.reject("postfix-smtpd", own_log))
        self.wait_banned(w, own_log)
        self.assertIn(state(c2), ("reset", "eof"), "B's own log line did not end the session")
        self.assertEqual(state(c1), "open")


class FleetPasswordTest(FleetTestCase):

    def test_wrong_password_is_a_start_error(self):
        d = self.start_host("A", password="wrong", expect_start=False)
        d.expect_exit = True
        d.proc.wait(20 * SLOW)
        self.assertEqual(d.proc.returncode, 1, d.log())
        self.assertRegex(d.log(), r"Redis refused AUTH for user bw: WRONGPASS")
        # and the right one works (the other tests start with it)
        ok = self.start_host("B")
        self.assertIn("fleet: connected to Redis", ok.log())
