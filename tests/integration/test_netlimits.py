"""Limits per client network: max_connections_per_ip over an IPv6 /64
(ipv6_prefix), max_connection_rate_per_ip with its 421, its ban
(connection_rate_ban) and the kernel's limit from `breakwater rules`.

serve runs in the server namespace S of netns.Topology, clients in C; for
IPv6 both ends also get addresses of 2001:db8:77::/48 on the veth pair."""

import re
import time

import harness
import netns
from harness import wait_until
from test_bans import NFT_TABLE, SMTP_PORT, BanTestCase, slow

V6_SERVER = "2001:db8:77::1"
V6_NET = "2001:db8:77:1::"      # the bot's /64: 21 addresses of it in C
V6_NEXT = "2001:db8:77:2::1"    # the next /64


class NetLimitTestCase(BanTestCase):

    def rate_reply(self, c):
        r = c.read_reply()
        self.assertEqual(r.code, 421, str(r))
        return str(r)

    def quit_relayed(self, source):
        c = self.smtp(source)
        harness.backend_greeting(self, c)
        self.assertReply(c.cmd("QUIT"), 221)
        c.close()

    def rate_refused(self, source):
        c = self.smtp(source)
        text = self.rate_reply(c)
        c.close()
        self.assertIn("4.7.0 Error: too many connections from [%s]" % source, text)


class RateLimitTest(NetLimitTestCase):

    def test_rate_421_per_address_and_window(self):
        """3 a window: the 4th connection gets 421, another address is
        served meanwhile, and the first again once the window is over."""
        t = self.topo
        d = self.make_daemon(ban_backend="none", max_connection_rate_per_ip="3",
                             connection_rate_window="3s")
        self.start(d)
        t0 = time.monotonic()
        for _ in range(3):
            self.quit_relayed(t.clean)
        self.rate_refused(t.clean)
        self.quit_relayed(t.spare)
        refused = [x for x in d.sessions() if x.get("reason") == "max_connection_rate_per_ip"]
        self.assertEqual([x["addr"] for x in refused], [t.clean], d.log()[-2000:])
        wait_until(lambda: time.monotonic() - t0 > 3.2, 5)
        self.quit_relayed(t.clean)

    def test_rate_per_ipv4_network(self):
        """ipv4_prefix = 24: two addresses of one /24 share the count."""
        t = self.topo
        d = self.make_daemon(ban_backend="none", max_connection_rate_per_ip="2",
                             connection_rate_window="60s", ipv4_prefix="24")
        self.start(d)
        self.quit_relayed(t.clean)
        self.quit_relayed(t.spare)
        self.rate_refused(t.clean)
        self.rate_refused(t.spare)

    def test_rate_ban(self):
        """connection_rate_ban = yes: a network that goes on past the limit
        (as many refusals as the limit) is banned, reason rate."""
        t = self.topo
        d = self.make_daemon(max_connection_rate_per_ip="2", connection_rate_window="60s",
                             connection_rate_ban="yes")
        self.load_rules(d)
        self.start(d)
        for _ in range(2):
            self.quit_relayed(t.clean)
        self.rate_refused(t.clean)
        self.assertNotIn(t.clean, self.nft4() or {}, "banned at the first refusal")
        self.rate_refused(t.clean)
        self.wait_nft(t.clean, what="%s banned after going on past the rate" % t.clean)
        self.assertEqual(self.ctl_bans(d)[t.clean]["reason"], "rate")
        self.assertEqual(self.connect(t.clean), "timeout")
        self.quit_relayed(t.spare)

    def test_rate_ban_of_the_network(self):
        """ipv4_prefix = 24, rate 2, connection_rate_ban: refusals of two
        addresses of one /24 count together, and the ban is of the /24."""
        t = self.topo
        d = self.make_daemon(max_connection_rate_per_ip="2", connection_rate_window="60s",
                             connection_rate_ban="yes", ipv4_prefix="24")
        self.load_rules(d)
        self.start(d)
        for _ in range(2):
            self.quit_relayed(t.clean)
        self.rate_refused(t.clean)
        self.rate_refused(t.spare)
        net = t.clean.rsplit(".", 1)[0] + ".0"
        wait_until(lambda: net in (netns.nft_set(self.S, NFT_TABLE, "banned4net24") or {}),
                   1.0 * slow(), interval=0.05, what="%s/24 banned after going on past "
                   "the rate" % net)
        self.assertEqual(self.ctl_bans(d)[net + "/24"]["reason"], "rate")
        self.assertEqual(self.connect(t.spare), "timeout")

    def test_allowlist_in_the_network_stops_the_rate_ban(self):
        """ipv4_prefix = 24, rate 2, connection_rate_ban, an allowlisted
        address in the /24: the network's refusals ban nothing (no one
        address of it can be picked instead), and the allowlisted address
        is neither refused by the daemon nor dropped by the kernel's
        limit."""
        t = self.topo
        d = self.make_daemon(max_connection_rate_per_ip="2", connection_rate_window="60s",
                             connection_rate_ban="yes", ipv4_prefix="24",
                             allowlist=t.listed2)
        self.load_rules(d)
        self.start(d)
        for _ in range(2):
            self.quit_relayed(t.clean)
        self.rate_refused(t.clean)
        self.rate_refused(t.spare)           # the /24's refusals reach the limit
        time.sleep(0.5)
        self.assertEqual(self.nft4() or {}, {}, "a network holding an allowlisted address "
                         "was banned, or one address of it")
        # the /24 has had the kernel's burst (4): its next SYN is dropped ...
        self.assertEqual(self.connect(t.spare), "timeout")
        for _ in range(4):                   # ... but not the allowlisted address's
            c = self.smtp(t.listed2)
            harness.backend_greeting(self, c)
            self.assertReply(c.cmd("QUIT"), 221)
            c.close()

    def test_kernel_limit_from_rules(self):
        """`breakwater rules` with max_connection_rate_per_ip: the kernel
        lets through twice the rate (its burst) and drops the SYNs beyond,
        counted in the rule's counter; another address is not touched."""
        t = self.topo
        d = self.make_daemon(ban_backend="none", max_connection_rate_per_ip="2",
                             connection_rate_window="60s")
        d.conf["ban_backend"] = "nft"           # the rules of the nft backend...
        d.write_conf()
        self.load_rules(d)
        d.conf["ban_backend"] = "none"          # ... with a daemon that bans nothing
        d.write_conf()
        self.start(d)
        results = [self.connect(t.clean) for _ in range(8)]
        self.assertEqual(results[:4], ["connected"] * 4, results)
        self.assertIn("timeout", results[4:], results)
        ruleset = self.S.check(["nft", "list", "table"] + NFT_TABLE.split())
        m = re.search(r"add @ratelimit4 \{ ip saddr limit rate over (\d+)/hour burst 4 packets "
                      r"\} counter packets (\d+)", ruleset)
        self.assertIsNotNone(m, ruleset)
        self.assertEqual(m.group(1), "240")
        self.assertGreaterEqual(int(m.group(2)), 1, ruleset)
        self.assertEqual(self.connect(t.spare), "connected")


class Ipv6NetworkTest(NetLimitTestCase):
    """max_connections_per_ip counts a client's /64."""

    def setUp(self):
        super().setUp()
        netns._ip(["-n", self.S.name, "addr", "add", V6_SERVER + "/48", "dev", "veth0", "nodad"])
        for i in range(1, 22):
            netns._ip(["-n", self.C.name, "addr", "add", "%s%x/48" % (V6_NET, i), "dev",
                       "veth1", "nodad"])
        netns._ip(["-n", self.C.name, "addr", "add", V6_NEXT + "/48", "dev", "veth1", "nodad"])

    def held(self, source):
        """A client held in the reject engine (the /48 is denylisted)."""
        c = netns.smtp_client(self.C, source, V6_SERVER, SMTP_PORT, 5 * slow())
        self._cleanups_extra.append(c.close)
        return c

    def daemon(self, **extra):
        d = self.make_daemon(ban_backend="none", listen="[%s]:%d" % (V6_SERVER, SMTP_PORT),
                             denylist="2001:db8:77::/48", max_connections_per_ip="20",
                             **extra)
        self.start(d)
        return d

    def test_21_addresses_of_one_64(self):
        self.daemon()
        for i in range(1, 21):
            harness.engine_greeting(self, self.held("%s%x" % (V6_NET, i)))
        c = self.held("%s%x" % (V6_NET, 21))
        self.assertIn("4.7.0 Too many connections from your address", self.rate_reply(c))
        harness.engine_greeting(self, self.held(V6_NEXT))   # the next /64

    def test_21_addresses_of_one_64_with_workers(self):
        """workers = 2: the steering sends a whole /64 to one worker, so
        the count stays exact (by address, its 21 addresses would spread
        over both and each worker would see about 10)."""
        self.daemon(workers="2")
        for i in range(1, 21):
            harness.engine_greeting(self, self.held("%s%x" % (V6_NET, i)))
        c = self.held("%s%x" % (V6_NET, 21))
        self.assertIn("4.7.0 Too many connections from your address", self.rate_reply(c))

    def test_reload_changes_prefix_and_rate(self):
        """A reload applies a new prefix and a new rate to new connections,
        with workers = 2 (the steering follows the new prefix): from /128
        and no rate to /64 and 3 a minute, four addresses of the /64 count
        as one network, the fourth is refused; the next /64 is served."""
        d = self.daemon(ipv6_prefix="128", workers="2")
        held = [self.held("%s%x" % (V6_NET, i)) for i in range(1, 22)]
        for c in held:
            harness.engine_greeting(self, c)
        for c in held[1:]:
            c.close()
        d.conf.update(ipv6_prefix="64", max_connection_rate_per_ip="3",
                      connection_rate_window="60s")
        d.write_conf()
        p = self.ctl(d, "reload")
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_until(lambda: d.log().count("configuration reloaded") == 2, 5 * slow(),
                   what="both workers reloaded")
        for i in range(2, 5):  # the /64 opens 3 more (the one held counts apart)
            harness.engine_greeting(self, self.held("%s%x" % (V6_NET, i)))
        c = self.held("%s%x" % (V6_NET, 5))
        self.assertIn("4.7.0 Error: too many connections from [%s%x]" % (V6_NET, 5),
                      self.rate_reply(c))
        harness.engine_greeting(self, self.held(V6_NEXT))

    def test_prefix_128_counts_addresses(self):
        self.daemon(ipv6_prefix="128")
        for i in range(1, 22):
            harness.engine_greeting(self, self.held("%s%x" % (V6_NET, i)))
