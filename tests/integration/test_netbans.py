"""Bans of a client's network (ipv4_prefix, ipv6_prefix): one address of an
IPv6 /64 refused gets the whole /64 banned in the kernel (nft: the /64's
first address in the hash set banned6net64, matched by a rule that cuts
the client's address to /64; ipset hash:net; xt_recent with --mask), not
the next /64;
ipv6_prefix = 128 bans the address alone; the allowlist narrows a ban to
the address; `ctl bans`, `ctl ban ADDRESS/LEN` and `ctl unban` work on
networks; escalation counts the network; a restart puts a network back.

serve runs in the server namespace S of netns.Topology, clients in C, over
the addresses of 2001:db8:77::/48 that test_netlimits gives the veth pair
(the denylist holds the bot's one address, so only it is refused)."""

import subprocess
import time

import harness
import netns
from harness import wait_until
from test_bans import NFT_TABLE, SMTP_PORT, slow
from test_netlimits import V6_NET, V6_NEXT, V6_SERVER, NetLimitTestCase

BOT = V6_NET + "5"            # the refused address
NEIGHBOUR = V6_NET + "9"      # another address of its /64
BOT_NET = V6_NET + "/64"      # "2001:db8:77:1::/64"
NET64 = "banned6net64"        # the nft hash set of the /64s


class NetBanTestCase(NetLimitTestCase):

    def setUp(self):
        super().setUp()
        netns._ip(["-n", self.S.name, "addr", "add", V6_SERVER + "/48", "dev", "veth0", "nodad"])
        for a in (BOT, NEIGHBOUR, V6_NET + "7", V6_NEXT):
            netns._ip(["-n", self.C.name, "addr", "add", a + "/48", "dev", "veth1", "nodad"])

    def daemon(self, backend="nft", **extra):
        extra.setdefault("denylist", BOT)
        d = self.make_daemon(backend, listen="[%s]:%d" % (V6_SERVER, SMTP_PORT), **extra)
        self.load_rules(d, backend)
        self.start(d)
        return d

    def refuse_bot(self, source=BOT):
        """The denylisted address up to its 550 at RCPT, then closed."""
        c = netns.smtp_client(self.C, source, V6_SERVER, SMTP_PORT, 5 * slow())
        self._cleanups_extra.append(c.close)
        harness.engine_greeting(self, c)
        self.assertReply(c.cmd("EHLO bot.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<bot@spam.example>"), 250)
        self.assertReply(c.cmd("RCPT TO:<victim@example.org>"), 550)
        c.close()

    def connect6(self, source):
        return netns.connect_result(self.C, source, V6_SERVER, SMTP_PORT, 1.0)

    def nft6(self, name="banned6"):
        return netns.nft_set(self.S, NFT_TABLE, name) or {}

    def wait_nft6(self, key, name="banned6"):
        return wait_until(lambda: self.nft6(name).get(key), 1.0 * slow(), interval=0.05,
                          what="%s in %s" % (key, name))


class NftNetworkBanTest(NetBanTestCase):

    def test_ban_of_one_address_drops_its_64_not_the_next(self):
        """The bot's refusal bans its /64: another address of the /64 has
        its SYN dropped, the next /64 connects; `ctl bans` lists the
        network; the ban's record comes back after a restart."""
        d = self.daemon()
        self.assertEqual(self.connect6(NEIGHBOUR), "connected")
        self.refuse_bot()
        timeout, _ = self.wait_nft6(V6_NET, NET64)   # the /64, by its first address
        self.assertAbout(timeout, 30, 2, "the /64's timeout")
        self.assertEqual(list(self.nft6(NET64)), [V6_NET])
        self.assertEqual(self.nft6(), {})
        self.assertEqual(self.nft6("banned6net"), {})
        self.assertEqual(self.connect6(NEIGHBOUR), "timeout",
                         "a neighbour in the banned /64 must have its SYN dropped")
        self.assertEqual(self.connect6(V6_NEXT), "connected", "the next /64 is not banned")
        ban = self.ctl_bans(d).get(BOT_NET)
        self.assertIsNotNone(ban, "ctl bans: %r" % self.ctl_bans(d))
        self.assertEqual((ban["reason"], ban["count"]), ("denylist", "1"))
        # a restart with an empty set: the stored network goes back in
        self.assertEqual(d.stop(), 0, d.log()[-2000:])
        self.S.check(["nft", "flush", "set", "inet", "breakwater", "banned6"])
        self.assertEqual(self.nft6(), {})
        d2 = self.make_daemon(listen=d.conf["listen"], denylist=BOT, name="bw-restarted")
        self.assertEqual(self.start(d2), 1)
        self.wait_nft6(V6_NET, NET64)
        self.assertEqual(self.connect6(NEIGHBOUR), "timeout")

    def test_prefix_128_bans_the_address_alone(self):
        self.daemon(ipv6_prefix="128")
        self.refuse_bot()
        self.wait_nft6(BOT)
        self.assertEqual(list(self.nft6()), [BOT])
        self.assertEqual(self.connect6(NEIGHBOUR), "connected")
        self.assertEqual(self.connect6(BOT), "timeout")

    def test_reload_to_a_network_prefix(self):
        """Rules printed for ipv6_prefix 128, then a reload to 64 with
        workers = 2: the next ban is of the /64, which the rules' hash set
        cannot match by mask, so it goes to the interval set, and a
        neighbour's SYN is dropped; ctl bans shows the /64."""
        d = self.daemon(ipv6_prefix="128", workers="2")
        d.conf["ipv6_prefix"] = "64"
        d.write_conf()
        p = self.ctl(d, "reload")
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_until(lambda: d.log().count("configuration reloaded") == 2, 5 * slow(),
                   what="both workers reloaded")
        self.refuse_bot()
        self.wait_nft6(BOT_NET, "banned6net")
        self.assertEqual(self.nft6(), {})
        self.assertEqual(self.connect6(NEIGHBOUR), "timeout")
        self.assertEqual(self.connect6(V6_NEXT), "connected")
        self.assertIn(BOT_NET, self.ctl_bans(d))

    def test_allowlist_in_the_network_narrows_the_ban(self):
        """An allowlisted address inside the /64: the bot alone is banned,
        so the allowlisted address and the neighbour still connect; a ban
        by hand of the whole /64 is refused with the reason."""
        d = self.daemon(allowlist=V6_NET + "7")
        self.refuse_bot()
        self.wait_nft6(BOT)
        self.assertEqual(list(self.nft6()), [BOT])
        self.assertEqual(self.nft6(NET64), {})
        self.assertEqual(self.connect6(V6_NET + "7"), "connected")
        self.assertEqual(self.connect6(NEIGHBOUR), "connected")
        p = self.ctl(d, "ban", BOT_NET)
        self.assertEqual(p.returncode, 1, "%r %r" % (p.stdout, p.stderr))
        self.assertIn("allowlist", p.stderr)
        # the /64's first address, banned alone: an address, never read as
        # the /64 (the allowlisted ::7 and the neighbour still connect)
        p = self.ctl(d, "ban", V6_NET)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.wait_nft6(V6_NET)
        self.assertEqual(self.nft6(NET64), {})
        self.assertEqual(self.connect6(V6_NET + "7"), "connected")
        self.assertEqual(self.connect6(NEIGHBOUR), "connected")

    def test_escalation_counts_the_network(self):
        """ban_time 1s: the bot's ban ends, a neighbour of the same /64 is
        refused next: the /64's second ban, twice as long."""
        d = self.daemon(ban_time="1s", ban_time_max="1m", denylist=BOT + ", " + NEIGHBOUR)
        self.refuse_bot()
        self.wait_nft6(V6_NET, NET64)
        wait_until(lambda: V6_NET not in self.nft6(NET64), 3 * slow(), interval=0.1,
                   what="the first ban ended")
        time.sleep(0.2)
        self.refuse_bot(NEIGHBOUR)
        timeout, _ = self.wait_nft6(V6_NET, NET64)
        self.assertEqual(timeout, 2, "the second ban of the /64 lasts twice ban_time")
        self.assertEqual(self.ctl_bans(d)[BOT_NET]["count"], "2")

    def test_ctl_networks(self):
        """ctl ban ADDRESS/LEN of another length than ipv6_prefix bans that
        network (in the interval set); ctl ban ADDRESS bans its /64; ctl
        unban of any address inside lifts the network's ban; a network
        wider than /16 is refused."""
        d = self.daemon(ban_time="10m")
        p = self.ctl(d, "ban", "2001:db8:77::/48", "30s")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.wait_nft6("2001:db8:77::/48", "banned6net")
        self.assertEqual(self.connect6(V6_NEXT), "timeout")
        self.assertEqual(self.ctl_bans(d)["2001:db8:77::/48"]["reason"], "manual")
        p = self.ctl(d, "unban", NEIGHBOUR)
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_until(lambda: self.nft6("banned6net") == {}, 1.0 * slow(), what="the /48 unbanned")
        self.assertEqual(self.ctl_bans(d), {})
        self.assertEqual(self.connect6(V6_NEXT), "connected")

        p = self.ctl(d, "ban", NEIGHBOUR)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.wait_nft6(V6_NET, NET64)
        self.assertEqual(self.ctl_bans(d)[BOT_NET]["reason"], "manual")
        self.assertEqual(self.connect6(BOT), "timeout")
        p = self.ctl(d, "unban", BOT_NET)
        self.assertEqual(p.returncode, 0, p.stderr)
        wait_until(lambda: self.nft6(NET64) == {}, 1.0 * slow(), what="the /64 unbanned")

        p = self.ctl(d, "ban", "2001:db8::/15")
        self.assertEqual(p.returncode, 1, "%r %r" % (p.stdout, p.stderr))
        self.assertIn("wider than", p.stderr)
        self.assertTrue(d.alive())

    def test_sets_and_rules_of_an_older_version(self):
        """The ruleset of the version before network bans (hash sets, no
        mask rule, no interval sets): the start fails naming `breakwater
        rules`; loading the rules keeps the sets and their bans and the
        start succeeds. Rules printed for ipv6_prefix 64 with a daemon set
        to 48: the start fails naming the missing set."""
        self.S.check(["nft", "-f", "-"], input=(
            "add table inet breakwater\n"
            "add set inet breakwater banned4 { type ipv4_addr; flags timeout; }\n"
            "add set inet breakwater banned6 { type ipv6_addr; flags timeout; }\n"
            "add element inet breakwater banned4 { 192.0.2.9 timeout 10m }\n"))
        listen = "[%s]:%d" % (V6_SERVER, SMTP_PORT)
        d = self.make_daemon(listen=listen, denylist=BOT)
        self.start_refused(d, "banned4net does not exist")
        self.assertIn("breakwater rules | nft -f -", d.log())
        self.load_rules(d)
        self.assertIn("192.0.2.9", netns.nft_set(self.S, NFT_TABLE, "banned4"))
        d2 = self.make_daemon(listen=listen, denylist=BOT, ipv6_prefix="48", name="bw-48")
        self.start_refused(d2, "banned6net48 does not exist")
        d3 = self.make_daemon(listen=listen, denylist=BOT, name="bw-64")
        self.start(d3)
        self.refuse_bot()
        self.wait_nft6(V6_NET, NET64)

    def start_refused(self, d, why):
        d.expect_exit = True
        self.start(d, ready=False)
        try:
            d.proc.wait(5 * slow())
        except subprocess.TimeoutExpired:
            self.fail("serve runs with a ruleset it cannot use:\n%s" % d.log())
        self.assertNotEqual(d.proc.returncode, 0)
        self.assertIn(why, d.log())


class IpsetNetworkBanTest(NetBanTestCase):

    def test_ipset_hash_net(self):
        self.daemon("ipset")
        self.refuse_bot()
        left = wait_until(lambda: (netns.ipset_members(self.S, "breakwater-banned6") or {})
                          .get(BOT_NET), 1.0 * slow(), interval=0.05,
                          what="%s in ipset breakwater-banned6" % BOT_NET)
        self.assertAbout(left, 30, 2, "ipset timeout")
        self.assertEqual(self.connect6(NEIGHBOUR), "timeout")
        self.assertEqual(self.connect6(V6_NEXT), "connected")

    def test_recent_refuses_what_its_mask_would_widen(self):
        """An allowlisted address in the bot's /64: the ban is of the bot's
        address alone, which the IPv6 list (--mask /64) cannot hold: it is
        refused and counted as failed, and nothing of the /64 is dropped."""
        d = self.daemon("recent", allowlist=V6_NET + "7")
        self.refuse_bot()
        wait_until(lambda: self.ctl_stats(d).get("bans_failed", 0) >= 1, 2 * slow(),
                   what="the ban counted as failed")
        self.assertEqual(netns.recent_members(self.S, "breakwater6"), [])
        self.assertIn("the list holds only networks of /64", d.log())
        self.assertEqual(self.connect6(NEIGHBOUR), "connected")
        self.assertEqual(self.connect6(V6_NET + "7"), "connected")


class RecentNetworkBanTest(NetBanTestCase):

    def test_recent_mask(self):
        """xt_recent's IPv6 list holds the /64's first address; the rule's
        --mask makes it stand for the /64."""
        self.daemon("recent")
        self.refuse_bot()
        wait_until(lambda: V6_NET in (netns.recent_members(self.S, "breakwater6") or []),
                   1.0 * slow(), interval=0.05, what="%s in xt_recent breakwater6" % V6_NET)
        self.assertEqual(netns.recent_members(self.S, "breakwater"), [])
        self.assertEqual(self.connect6(NEIGHBOUR), "timeout")
        self.assertEqual(self.connect6(V6_NEXT), "connected")
