"""dnsbl_names: a list domain that carries the customer's key (Spamhaus
DQS: KEY.zen.dq.spamhaus.net) shows only its public name, in the reply,
serve's log, /metrics, `check`, `ctl`, the state store and what goes to
the fleet's Redis; without a public name the start warns.

rbldnsd serves bl.zone under KEY.zen.dq.test; a local redis-server with
`redis-cli monitor` records every command breakwater sends it."""

import os
import shutil
import subprocess
import time
import urllib.request

import harness
from harness import SLOW, BreakwaterTestCase, Rbldnsd, engine_greeting, wait_until

KEY = "0123456789abcdefghijklmnop"          # 26 letters and digits, as a DQS key
DOMAIN = KEY + ".zen.dq.test"
PUBLIC = "zen.test"
LISTED = "127.66.0.5"                        # in bl.zone


class DnsblNamesTest(BreakwaterTestCase):

    def setUp(self):
        super().setUp()
        self.dns = Rbldnsd(self.tmp, {DOMAIN: [("ip4set", "bl.zone"),
                                               ("ip6trie", "testpoint6.zone")]}).start()
        self._cleanups_extra.append(self.dns.stop)

    def start_redis(self):
        """redis-server on loopback and a monitor of everything sent to it;
        returns (url, path of the monitor's output)."""
        if shutil.which("redis-server") is None:
            self.skipTest("redis-server missing (package redis-server, in TEST_PACKAGES)")
        port = harness.free_port()
        server = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                   "--save", "", "--appendonly", "no"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._cleanups_extra.append(lambda: harness.stop_process(server))
        wait_until(lambda: subprocess.run(["redis-cli", "-p", str(port), "ping"],
                                          capture_output=True, text=True).stdout.strip()
                   == "PONG", 5 * SLOW, what="redis-server to answer")
        path = os.path.join(self.tmp, "monitor.out")
        out = open(path, "wb")
        monitor = subprocess.Popen(["redis-cli", "-p", str(port), "monitor"], stdout=out,
                                   stderr=subprocess.STDOUT)
        out.close()
        self._cleanups_extra.append(lambda: harness.stop_process(monitor))
        wait_until(lambda: b"OK" in open(path, "rb").read(), 5 * SLOW,
                   what="redis-cli monitor to start")
        return "redis://127.0.0.1:%d" % port, path

    def opts(self, names=True, **extra):
        o = {"dnsbl_sites": DOMAIN + "=127.0.0.[2..11]*1", "resolver": self.dns.resolver,
             "dnsbl_health_interval": "0"}
        if names:
            o["dnsbl_names"] = "%s=%s" % (DOMAIN.upper() + ".", PUBLIC)
        o.update(extra)
        return o

    def refused(self, d, source=LISTED):
        """The 550 reply text a listed client gets."""
        c = self.client(d, source)
        engine_greeting(self, c)
        self.assertReply(c.cmd("EHLO bot.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<bot@spam.test>"), 250)
        r = c.cmd("RCPT TO:<someone@bw.test>")
        self.assertReply(r, 550)
        c.close()
        return str(r)

    def metrics(self, d):
        url = "http://%s/metrics" % d.conf["metrics_listen"]
        return urllib.request.urlopen(url, timeout=5 * SLOW).read().decode()

    def state_bytes(self, d):
        data = b""
        for root, _, files in os.walk(d.conf["state_dir"]):
            for f in files:
                with open(os.path.join(root, f), "rb") as fh:
                    data += fh.read()
        return data

    def test_key_in_no_output(self):
        url, monitor = self.start_redis()
        d = self.start_daemon(conf_extra=self.opts(fleet_redis=url, fleet_name="names",
                                                   fleet_host_id="host-a"))
        d.wait_log("fleet: connected to Redis", timeout=5 * SLOW)
        reply = self.refused(d)
        self.assertIn("blocked using " + PUBLIC, reply)
        self.assertNotIn(KEY, reply)
        self.assertIn("lists=" + PUBLIC, d.wait_session()["line"])
        wait_until(lambda: "breakwater_dnsbl_queries_total" in self.metrics(d), 5 * SLOW,
                   what="metrics")
        metrics = self.metrics(d)
        self.assertIn('list="%s"' % PUBLIC, metrics)
        # the verdict went to Redis (the fleet shares it): the monitor saw it
        wait_until(lambda: b"SET" in open(monitor, "rb").read().upper(), 5 * SLOW,
                   what="the verdict written to Redis")
        check = self.run_bw(["check", "-c", d.confpath, LISTED])
        self.assertIn(PUBLIC, check.stdout)
        ctl = [self.run_bw(["ctl", "-c", d.confpath, what]) for what in ("stats", "bans")]
        d.stop()
        outputs = {"serve's log": d.log(), "/metrics": metrics,
                   "check": check.stdout + check.stderr,
                   "ctl": "".join(p.stdout + p.stderr for p in ctl),
                   "Redis": open(monitor, "rb").read().decode("latin-1"),
                   "the state store": self.state_bytes(d).decode("latin-1")}
        for where, text in outputs.items():
            self.assertNotIn(KEY.lower(), text.lower(), "the key is in %s" % where)
        self.assertIn(PUBLIC, d.log())

    def test_without_a_name_the_start_warns_and_the_key_shows(self):
        """The other side: no dnsbl_names, the reply carries the whole
        domain (what the searches above would find) and the start and
        `check` say how to hide it, without printing the key."""
        d = self.start_daemon(conf_extra=self.opts(names=False))
        reply = self.refused(d)
        self.assertIn(KEY, reply)
        d.wait_log("looks like it carries your key")
        check = self.run_bw(["check", "-c", d.confpath, LISTED])
        self.assertIn("looks like it carries your key", check.stderr)
        warnings = [l for l in (d.log() + check.stderr).splitlines() if "carries your key" in l]
        self.assertTrue(warnings)
        for line in warnings:
            self.assertNotIn(KEY, line)
            self.assertIn("dnsbl_names = KEY.zen.dq.test=", line)

    def test_names_reloaded_and_bad_values_refused(self):
        d = self.start_daemon(conf_extra=self.opts())
        self.assertIn("using " + PUBLIC, self.refused(d))
        # a reload with another public name: the next reply uses it
        d.conf["dnsbl_names"] = "%s=other.test" % DOMAIN
        d.write_conf()
        r = self.run_bw(["ctl", "-c", d.confpath, "reload"])
        self.assertEqual(r.returncode, 0, r.stderr)
        d.wait_log("configuration reloaded")
        self.assertIn("using other.test", self.refused(d, "127.66.0.6"))
        # refused values: the error names the file and line
        conf = os.path.join(self.tmp, "bad.conf")
        for value, why in (("nokey", "not DOMAIN=PUBLIC_NAME"),
                           ("%s=bad_name!" % DOMAIN, "bad public name in 'bad_name!'"),
                           ("other.test=x.test", "x.test is not a domain of dnsbl_sites")):
            with open(conf, "w") as f:
                f.write("dnsbl_sites = %s\nresolver = %s\ndnsbl_names = %s\n"
                        % (DOMAIN, self.dns.resolver, value))
            p = self.run_bw(["check", "-c", conf, LISTED])
            self.assertEqual(p.returncode, 2, p.stderr)
            self.assertIn(why, p.stderr)
            self.assertNotIn(KEY, p.stderr)
            if "dnsbl_sites" not in why:
                self.assertIn("%s:3" % conf, p.stderr)
