"""How long a verdict is cached, from the lists' own TTLs: a clean verdict
(NXDOMAIN from every list) lives the lists' shortest negative-caching TTL
(RFC 2308: the lesser of the SOA record's TTL and its MINIMUM field, from
the authority section of the NXDOMAIN), never below 60 s (or
cache_clean_ttl when that is shorter) and never above cache_clean_ttl; a
listed verdict keeps its A records' TTL. And a list that refuses this
resolver (its test point 127.0.0.2 answered with 127.255.255.x, as
Spamhaus does to public resolvers) is said once, plainly, with the fix,
by serve and by check, and counted in /metrics.

A verdict's lifetime is read where breakwater itself tells it: the
expiry of the verdict it shares with its fleet (the PTTL of the Redis key
FLEET_NAME:verdict:ADDRESS, the expiry a peer takes it with), so that the
SOA's value can be seen deciding between the 60 s floor and the cap
without waiting a minute; one test waits for a short lifetime to pass
and sees the address listed meanwhile refused.

rbldnsd serves negative answers with the SOA of the zone's $SOA line,
both its TTL and MINIMUM set to that line's last field; a proxy in front
of it (a caching resolver counting the SOA's TTL down, or a spoofer)
rewrites the authority section where a test needs it.
"""

import os
import shutil
import signal
import struct
import subprocess
import time
import unittest
import urllib.request

import harness
from harness import (SLOW, BreakwaterTestCase, DelayDNS, Rbldnsd, backend_greeting,
                     engine_greeting, free_port, hostport, rejected_dialogue, wait_until)

SOA_TYPE = 6


def zone_text(negative_ttl=None, listed=(), a_ttl=None, answer="127.0.0.2"):
    """An ip4set zone: its test point 127.0.0.2 and `listed`; $SOA with
    negative_ttl as its MINIMUM (None: no $SOA, negative answers carry no
    SOA); $TTL a_ttl for the A records."""
    lines = []
    if negative_ttl is not None:
        # ttl origin person serial refresh retry expire minimum
        lines.append("$SOA 1d ns.neg.test hostmaster.neg.test 0 1h 10m 1w %s" % negative_ttl)
    if a_ttl is not None:
        lines.append("$TTL %s" % a_ttl)
    lines.append(":%s:Listed $" % answer)
    lines.append("127.0.0.2")
    lines.extend(listed)
    return "\n".join(lines) + "\n"


def skip_name(pkt, i):
    """Offset after the (possibly compressed) name at i."""
    while True:
        n = pkt[i]
        if n & 0xC0 == 0xC0:
            return i + 2
        if n == 0:
            return i + 1
        i += 1 + n


def authority_soa(pkt):
    """Offset of the first authority SOA's TTL field and of its RDATA, or
    None."""
    qd, an, ns = struct.unpack("!HHH", pkt[4:10])
    i = 12
    for _ in range(qd):
        i = skip_name(pkt, i) + 4
    for k in range(an + ns):
        i = skip_name(pkt, i)
        rtype, _, _, rdlen = struct.unpack("!HHIH", pkt[i:i + 10])
        if k >= an and rtype == SOA_TYPE:
            return i + 4, i + 10
        i += 10 + rdlen
    return None


class RewritingDNS(DelayDNS):
    """A resolver in front of rbldnsd that changes the SOA of negative
    answers: fn(packet bytearray, ttl offset, rdata offset) -> bytes."""

    def __init__(self, upstream_port, fn):
        self.fn = fn
        super().__init__(upstream_port)

    def rewrite(self, answer):
        where = authority_soa(answer)
        if where is None:
            return answer
        return bytes(self.fn(bytearray(answer), *where))


class NegativeTtlTest(BreakwaterTestCase):

    # -- peers
    def zone_rbldnsd(self, zones):
        """A private rbldnsd; zones: {zone: zone text} (ip4set each)."""
        zdir = os.path.join(self.tmp, "zones")
        os.makedirs(zdir, exist_ok=True)
        os.chmod(zdir, 0o755)
        sets = {}
        for zone, text in zones.items():
            self.write_zone(zdir, zone, text)
            sets[zone] = [("ip4set", zone + ".zone")]
        rbl = Rbldnsd(self.tmp, sets)
        rbl.dir = zdir           # the zone files written here, not copied from zones/
        rbl.start()
        self._cleanups_extra.append(rbl.stop)
        return rbl

    @staticmethod
    def write_zone(zdir, zone, text, future=0):
        path = os.path.join(zdir, zone + ".zone")
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, 0o644)
        if future:               # rbldnsd reloads a file whose mtime changed
            t = time.time() + future
            os.utime(path, (t, t))

    def reload_zone(self, rbl, zone, text, probe, expected):
        """Rewrites a zone file, makes rbldnsd read it (SIGHUP) and waits
        until it answers `expected` for the name `probe`."""
        self.write_zone(rbl.dir, zone, text, future=2)
        rbl.proc.send_signal(signal.SIGHUP)
        wait_until(lambda: harness.dig(rbl.port, probe) == expected, 5 * SLOW,
                   what="rbldnsd serving the new %s" % zone)

    def redis(self):
        """A redis-server on loopback for the fleet's shared verdicts;
        returns a function running redis-cli with its arguments."""
        if shutil.which("redis-server") is None:
            self.skipTest("redis-server missing (package redis-server, in TEST_PACKAGES)")
        d = os.path.join(self.tmp, "redis")
        os.makedirs(d, exist_ok=True)
        port = free_port()
        err = open(os.path.join(d, "redis.log"), "ab")
        p = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                              "--save", "", "--appendonly", "no", "--dir", d],
                             stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        self._cleanups_extra.append(lambda: harness.stop_process(p))

        def cli(*args):
            return subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(port)]
                                  + list(args), stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, timeout=10,
                                  universal_newlines=True).stdout.strip()
        wait_until(lambda: cli("PING") == "PONG", 10 * SLOW, what="redis-server answering")
        cli.url = "redis://127.0.0.1:%d" % port
        return cli

    def fleet_daemon(self, resolver, sites, opts=None):
        """breakwater sharing its verdicts through a Redis of its own;
        returns (daemon, redis-cli function)."""
        cli = self.redis()
        o = {"dnsbl_sites": sites, "fleet_redis": cli.url, "fleet_timeout": "0.5s",
             "cache_clean_ttl": "1h", "cache_listed_ttl": "1h",
             "dnsbl_health_interval": "0"}
        o.update(opts or {})
        d = self.start_daemon(self.smtp_sink(), resolver=resolver, opts=o)
        d.wait_log(r"fleet: connected to Redis", timeout=5 * SLOW)
        return d, cli

    def lifetime(self, d, cli, addr, verdict="clean"):
        """Lets addr be decided (a miss: the lists are asked) and returns
        the seconds its verdict is kept, from the Redis key's PTTL."""
        c = self.client(d, addr)
        if verdict == "clean":
            backend_greeting(self, c)
            self.quit(c)
        else:
            engine_greeting(self, c)
            rejected_dialogue(self, c, addr)
        s = self.assertSession(d, c, verdict)
        self.assertNotIn("cache", s, s["line"])
        key = "breakwater:verdict:" + addr

        def pttl():
            ms = int(cli("PTTL", key) or -2)   # -2: no such key (yet)
            return ms if ms > 0 else None
        return wait_until(pttl, 5 * SLOW, what="the shared verdict of %s in Redis" % addr) / 1e3

    def assertLifetime(self, seconds, expected, what):
        # the key is read a moment after the verdict was made
        self.assertLessEqual(seconds, expected, what)
        self.assertGreater(seconds, expected - 5 * SLOW, what)

    # -- a clean verdict: the lists' negative TTL, bounded

    def test_soa_negative_ttl_decides_below_cache_clean_ttl(self):
        rbl = self.zone_rbldnsd({"neg.test": zone_text(negative_ttl=300)})
        d, cli = self.fleet_daemon(rbl.resolver, "neg.test")
        self.assertLifetime(self.lifetime(d, cli, "127.1.31.1"), 300,
                            "a clean verdict lives the SOA's negative TTL (300 s), "
                            "not cache_clean_ttl (1 h)")

    def test_cache_clean_ttl_caps_a_longer_soa(self):
        rbl = self.zone_rbldnsd({"neg.test": zone_text(negative_ttl="2d")})
        d, cli = self.fleet_daemon(rbl.resolver, "neg.test", {"cache_clean_ttl": "10m"})
        self.assertLifetime(self.lifetime(d, cli, "127.1.31.2"), 600,
                            "cache_clean_ttl (10 min) caps the SOA's 2 days")

    def test_shortest_negative_ttl_of_the_lists(self):
        rbl = self.zone_rbldnsd({"neg.test": zone_text(negative_ttl=300),
                                 "short.test": zone_text(negative_ttl=120),
                                 "allow.test": zone_text(negative_ttl=900)})
        d, cli = self.fleet_daemon(rbl.resolver,
                                   "neg.test*2, short.test*2, allow.test*-5",
                                   {"dnsbl_threshold": "2"})
        self.assertLifetime(self.lifetime(d, cli, "127.1.31.3"), 120,
                            "a clean verdict lives the shortest negative TTL of the lists")

    def test_floor_of_60s(self):
        # a list's 5 s, and a list whose NXDOMAIN carries no SOA at all
        # (RFC 2308: not to be cached), both give the 60 s floor
        rbl = self.zone_rbldnsd({"neg.test": zone_text(negative_ttl=5),
                                 "nosoa.test": zone_text()})
        d, cli = self.fleet_daemon(rbl.resolver, "neg.test")
        self.assertLifetime(self.lifetime(d, cli, "127.1.31.4"), 60,
                            "a 5 s negative TTL is raised to the 60 s floor")
        d2, cli2 = self.fleet_daemon(rbl.resolver, "nosoa.test")
        self.assertLifetime(self.lifetime(d2, cli2, "127.1.31.5"), 60,
                            "an NXDOMAIN without SOA is kept for the floor, not the cap")

    def test_soa_record_ttl_below_its_minimum(self):
        # a caching resolver counts the SOA's TTL down while its MINIMUM
        # stays: the lesser of the two is the negative TTL
        rbl = self.zone_rbldnsd({"neg.test": zone_text(negative_ttl=600)})

        def countdown(pkt, ttl_at, rdata_at):
            pkt[ttl_at:ttl_at + 4] = struct.pack("!I", 200)
            return pkt
        proxy = RewritingDNS(rbl.port, countdown)
        self._cleanups_extra.append(proxy.close)
        d, cli = self.fleet_daemon(proxy.resolver, "neg.test")
        self.assertLifetime(self.lifetime(d, cli, "127.1.31.6"), 200,
                            "the SOA record's TTL (200 s), below its MINIMUM (600 s)")

    def test_hostile_authority_sections(self):
        # every byte of the answer is the sender's: a SOA whose RDATA does
        # not add up, one cut short, or a TTL with its top bit set give
        # the floor, never the cap, and nothing breaks
        rbl = self.zone_rbldnsd({"neg.test": zone_text(negative_ttl=600)})

        def bad_rdlength(pkt, ttl_at, rdata_at):
            pkt[ttl_at + 4:ttl_at + 6] = struct.pack("!H", 7)
            return pkt

        def cut(pkt, ttl_at, rdata_at):
            return pkt[:rdata_at + 3]

        def top_bit(pkt, ttl_at, rdata_at):
            pkt[ttl_at:ttl_at + 4] = struct.pack("!I", 0x80000000 | 3000)
            return pkt
        for i, fn in enumerate((bad_rdlength, cut, top_bit)):
            with self.subTest(fn.__name__):
                proxy = RewritingDNS(rbl.port, fn)
                self._cleanups_extra.append(proxy.close)
                d, cli = self.fleet_daemon(proxy.resolver, "neg.test")
                self.assertLifetime(self.lifetime(d, cli, "127.1.32.%d" % (i + 1)), 60,
                                    "%s: the floor" % fn.__name__)

    # -- a listed verdict: its A records' TTL, as before

    def test_listed_verdict_keeps_the_a_ttl(self):
        rbl = self.zone_rbldnsd({"neg.test": zone_text(negative_ttl=90, a_ttl=200,
                                                       listed=["127.66.31.0/24"])})
        d, cli = self.fleet_daemon(rbl.resolver, "neg.test")
        self.assertLifetime(self.lifetime(d, cli, "127.66.31.1", "listed"), 200,
                            "a listed verdict lives its A record's TTL")

    # -- in real time: listed meanwhile, refused once the lifetime passed

    def test_listed_after_clean_verdict_refused_once_it_expired(self):
        # cache_clean_ttl = 5s (its minimum is 1 s): a cap below the 60 s
        # floor is the lifetime, here shorter than the SOA's 1 day
        rbl = self.zone_rbldnsd({"neg.test": zone_text(negative_ttl="1d")})
        d = self.start_daemon(self.smtp_sink(), resolver=rbl.resolver,
                              opts={"dnsbl_sites": "neg.test", "cache_clean_ttl": "5s",
                                    "dnsbl_health_interval": "0"})
        bot = "127.1.33.1"
        c = self.client(d, bot)
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean")
        self.assertNotIn("cache", s, s["line"])
        decided = time.monotonic()
        # the list learns of the bot
        self.reload_zone(rbl, "neg.test",
                         zone_text(negative_ttl="1d", listed=[bot]),
                         "1.33.1.127.neg.test", ["127.0.0.2"])
        self.assertLess(time.monotonic() - decided, 3.0,
                        "the zone reload took too long for this test")
        c = self.client(d, bot)                 # still within the verdict's 5 s
        backend_greeting(self, c)
        self.quit(c)
        s = self.assertSession(d, c, "clean")
        self.assertEqual(s.get("cache"), "hit", s["line"])
        time.sleep(max(0.0, decided + 5.5 - time.monotonic()))
        c = self.client(d, bot)                 # expired: asked again, refused
        engine_greeting(self, c)
        rejected_dialogue(self, c, bot, ["neg.test"])
        s = self.assertSession(d, c, "listed", ["neg.test"])
        self.assertNotIn("cache", s, s["line"])

    # -- a list refusing this resolver

    REFUSED_ZONES = {
        "bl.test": [("ip4set", "bl.zone"), ("ip6trie", "testpoint6.zone")],
        "refused.test": [("ip4set", "refused.zone"), ("ip6trie", "refused6.zone")],
    }
    REFUSED_ADVICE = (r"refusing\.example refuses this resolver.*127\.255\.255\.254.*"
                      r"unbound.*DQS.*dnsbl_names")

    def test_refused_resolver_said_once_and_counted(self):
        rbl = Rbldnsd(self.tmp, self.REFUSED_ZONES).start()
        self._cleanups_extra.append(rbl.stop)
        d = self.start_daemon(self.smtp_sink(), resolver=rbl.resolver,
                              opts={"dnsbl_sites": "bl.test, refused.test",
                                    "dnsbl_names": "refused.test=refusing.example",
                                    "dnsbl_health_interval": "1s"})
        d.wait_log(self.REFUSED_ADVICE, timeout=5 * SLOW)
        url = "http://%s:%d/metrics" % hostport(d.conf["metrics_listen"])

        def refused_count():
            with urllib.request.urlopen(url, timeout=5 * SLOW) as r:
                text = r.read().decode()
            for line in text.splitlines():
                if line.startswith('breakwater_dnsbl_health_refused_total{list="refusing.example"} '):
                    return int(line.split()[-1])
            return None
        # three rounds of health checks (IPv4 and IPv6 test points each)
        wait_until(lambda: (refused_count() or 0) >= 6, 8 * SLOW,
                   what="refused health checks counted")
        with urllib.request.urlopen(url, timeout=5 * SLOW) as r:
            text = r.read().decode()
        self.assertNotIn("refused.test", text, "metrics must show the list's public name")
        self.assertIn('breakwater_dnsbl_health_refused_total{list="bl.test"} 0', text)
        lines = [l for l in d.log().splitlines() if "refuses this resolver" in l]
        self.assertEqual(len(lines), 1, "said once, not per check or family:\n%s" % d.log())
        self.assertNotIn("refused.test", d.log())
        # the list counts 0 (suspended); bl.test still decides
        c = self.client(d, "127.66.31.7")      # in bl.test and refused.test
        engine_greeting(self, c)
        rejected_dialogue(self, c, "127.66.31.7", ["bl.test"])
        s = self.assertSession(d, c, "listed", ["bl.test"])
        self.assertEqual(s.get("score"), "1", s["line"])

    def test_check_says_resolver_refused(self):
        rbl = Rbldnsd(self.tmp, self.REFUSED_ZONES).start()
        self._cleanups_extra.append(rbl.stop)
        conf = os.path.join(self.tmp, "check.conf")
        with open(conf, "w") as f:
            f.write("resolver = %s\ndnsbl_sites = bl.test, refused.test\n"
                    "dnsbl_names = refused.test=refusing.example\n" % rbl.resolver)
        p = self.run_bw(["check", "-c", conf, "127.1.31.8", "127.66.31.8"])
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 1, out)
        self.assertRegex(p.stderr, self.REFUSED_ADVICE)
        self.assertEqual(p.stderr.count("refuses this resolver:"), 1, "said once:\n" + out)
        self.assertRegex(p.stdout, r"refusing\.example: .*SUSPENDED", out)
        self.assertNotIn("refused.test", out)


if __name__ == "__main__":
    unittest.main()
