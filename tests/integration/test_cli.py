"""The command line: `check` output and exit codes, bad configurations
refused with file:line, help/version, start-up messages."""

import os
import re
import shutil
import socket
import subprocess
import time
import unittest

import harness
from harness import SLOW, BreakwaterTestCase, Daemon, free_port, free_udp_port


class CheckTest(BreakwaterTestCase):
    def check(self, *args, resolver=None, sites="bl.test", extra=()):
        conf = os.path.join(self.tmp, "check.conf")
        with open(conf, "w") as f:
            f.write("hostname = %s\n" % harness.HOSTNAME)
        argv = ["check", "-c", conf,
                "-o", "dnsbl_sites=%s" % sites,
                "-o", "resolver=%s" % (resolver or self.rbldnsd().resolver)]
        for e in extra:
            argv += ["-o", e]
        return self.run_bw(argv + list(args))

    def describe(self, p):
        return "exit %d\nstdout:\n%s\nstderr:\n%s" % (p.returncode, p.stdout, p.stderr)

    def test_check_listed(self):
        p = self.check("127.66.1.1")
        self.assertEqual(p.returncode, 1, self.describe(p))
        self.assertIn("bl.test", p.stdout, self.describe(p))
        self.assertIn("127.0.0.2", p.stdout, "A answer missing\n" + self.describe(p))
        self.assertIn("Listed, see http://example.invalid/127.66.1.1", p.stdout,
                      "TXT answer missing\n" + self.describe(p))
        self.assertRegex(p.stdout, r"(?i)\blisted\b", self.describe(p))

    def test_check_per_list_output(self):
        p = self.check("127.66.1.5", sites="bl.test*2, bl2.test=127.0.0.3*3, wl.test*-1")
        self.assertEqual(p.returncode, 1, self.describe(p))
        for needle in ("bl.test", "bl2.test", "wl.test", "127.0.0.3", "bl2: listed as 3"):
            self.assertIn(needle, p.stdout, self.describe(p))
        self.assertRegex(p.stdout, r"(?i)score\D{0,3}5\b", "total score 5 not shown\n" + self.describe(p))

    def test_check_clean(self):
        p = self.check("127.1.0.1")
        self.assertEqual(p.returncode, 0, self.describe(p))
        self.assertIn("bl.test", p.stdout, self.describe(p))
        self.assertRegex(p.stdout, r"(?i)\bclean\b", self.describe(p))

    def test_check_several_addresses(self):
        p = self.check("127.1.0.1", "127.66.1.1")
        self.assertEqual(p.returncode, 1, self.describe(p))
        self.assertIn("127.1.0.1", p.stdout, self.describe(p))
        self.assertIn("127.66.1.1", p.stdout, self.describe(p))

    def test_check_ipv6(self):
        p = self.check("::1", sites="bl6.test")
        self.assertEqual(p.returncode, 1, self.describe(p))
        self.assertIn("bl6.test", p.stdout, self.describe(p))
        self.assertIn("Listed v6, see http://example.invalid/", p.stdout, self.describe(p))
        p = self.check("2001:db8:77::1", sites="bl6.test")
        self.assertEqual(p.returncode, 0, self.describe(p))
        p = self.check("2001:db8:66::25", sites="bl6.test")
        self.assertEqual(p.returncode, 1, self.describe(p))
        # an IPv4-mapped address is looked up as IPv4
        p = self.check("::ffff:127.66.1.1", sites="bl.test")
        self.assertEqual(p.returncode, 1, self.describe(p))
        self.assertIn("Listed, see http://example.invalid/127.66.1.1", p.stdout, self.describe(p))

    def test_check_refusal_answer_not_listed(self):
        p = self.check("127.67.0.1")
        self.assertNotEqual(p.returncode, 1, "a 127.255.255.254 answer counted as a listing\n"
                            + self.describe(p))
        self.assertIn("127.255.255.254", p.stdout + p.stderr, self.describe(p))

    def test_check_all_lists_failed(self):
        dns = self.blackhole_dns()
        t0 = time.monotonic()
        p = self.check("127.66.1.1", resolver=dns.resolver, sites="bl.test, bl2.test",
                       extra=["dnsbl_timeout=1s"])
        self.assertEqual(p.returncode, 3, self.describe(p))
        self.assertLess(time.monotonic() - t0, 1 + 3 * SLOW)
        p = self.check("127.66.1.1", resolver="127.0.0.1:%d" % free_udp_port(),
                       extra=["dnsbl_timeout=1s"])
        self.assertEqual(p.returncode, 3, self.describe(p))

    def test_check_some_lists_failed(self):
        # nosuch.test is not served (REFUSED): not every list failed
        p = self.check("127.1.0.1", sites="bl.test, nosuch.test", extra=["dnsbl_timeout=1s"])
        self.assertEqual(p.returncode, 0, self.describe(p))
        self.assertIn("nosuch.test", p.stdout, self.describe(p))
        p = self.check("127.66.1.1", sites="bl.test, nosuch.test", extra=["dnsbl_timeout=1s"])
        self.assertEqual(p.returncode, 1, self.describe(p))

    def test_check_usage_errors(self):
        p = self.check()                        # no address
        self.assertEqual(p.returncode, 2, self.describe(p))
        p = self.check("127.0.0.300")
        self.assertEqual(p.returncode, 2, self.describe(p))
        p = self.check("not-an-address")
        self.assertEqual(p.returncode, 2, self.describe(p))
        p = self.check("127.0.0.2", extra=["no_such_key=1"])
        self.assertEqual(p.returncode, 2, self.describe(p))
        self.assertIn("no_such_key", p.stderr, self.describe(p))
        p = self.check("127.0.0.2", sites="bl.test*heavy")
        self.assertEqual(p.returncode, 2, self.describe(p))
        self.assertIn("dnsbl_sites", p.stderr, self.describe(p))

    def test_check_txt_escaped(self):
        # A list's TXT text (or a spoofed answer) is any byte: check prints
        # it as printable ASCII with \xHH for the rest. rbldnsd serves the
        # control bytes of 127.70.0.1 as they are in its zone; a zone file
        # is lines, so the newline and NUL of 127.70.0.2 are put in on the
        # way by a spoofer between check and rbldnsd.
        zone = (b":127.0.0.2:default\n127.0.0.2\n"
                b"127.70.0.1 :127.0.0.2:red \x1b[31mALERT\x1b[0m title \x1b]0;pwned\x07"
                b" cr\rback bs\x08 tab\t soh\x01 del\x7f 8bit\xff\xfe bsl\\ q\" end\n"
                b"127.70.0.2 :127.0.0.2:" + SPOOF_FROM + b"\n"
                b"127.70.0.3 :127.0.0.2:" + b"\x01" * 200 + b"\n")
        os.makedirs(os.path.join(self.tmp, "rbldnsd"))
        with open(os.path.join(self.tmp, "rbldnsd", "ctl.zone"), "wb") as f:
            f.write(zone)
        rbl = harness.Rbldnsd(self.tmp, {"ctl.test": [("ip4set", "ctl.zone")]}).start()
        self.addCleanup(rbl.stop)
        spoofer = SpoofingDNS(rbl.port)
        self.addCleanup(spoofer.close)
        conf = os.path.join(self.tmp, "check.conf")
        with open(conf, "w") as f:
            f.write("hostname = %s\ndnsbl_sites = ctl.test\nresolver = %s\n"
                    % (harness.HOSTNAME, spoofer.resolver))
        p = subprocess.run([harness.BINARY, "check", "-c", conf,
                            "127.70.0.1", "127.70.0.2", "127.70.0.3"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15 * SLOW)
        desc = "exit %d\nstdout:\n%r\nstderr:\n%s" % (p.returncode, p.stdout,
                                                       p.stderr.decode(errors="replace"))
        self.assertFalse(harness.sanitizer_lines(p.stderr.decode(errors="replace")), desc)
        self.assertEqual(p.returncode, 1, desc)
        self.assertEqual(re.findall(rb"[^\x20-\x7e\n]", p.stdout), [],
                         "control or 8-bit bytes reached the terminal\n" + desc)
        # address, site, score: three lines each, no line added by the text
        self.assertEqual(len(p.stdout.splitlines()), 9, desc)
        self.assertIn(b'TXT "red \\x1b[31mALERT\\x1b[0m title \\x1b]0;pwned\\x07'
                      b' cr\\x0dback bs\\x08 tab\\x09 soh\\x01 del\\x7f 8bit\\xff\\xfe'
                      b' bsl\\x5c q\\x22 end";', p.stdout, desc)
        self.assertIn(b'TXT "line one\\x0aline two\\x00 end";', p.stdout, desc)
        self.assertGreater(spoofer.spoofed, 0, "the spoofer changed no answer")
        # 200 bytes escaped are 800 characters: cut, whole escapes only
        cut = re.search(rb'TXT ("(?:\\x01)+"\.\.\.);', p.stdout)
        self.assertIsNotNone(cut, desc)
        self.assertLess(len(cut.group(1)), 512, desc)


SPOOF_FROM = b"line one|line two| end"
SPOOF_TO = b"line one\nline two\x00 end"


class SpoofingDNS(harness.DelayDNS):
    """DelayDNS that, as a spoofer on the path would, rewrites SPOOF_FROM
    to SPOOF_TO (the same length) in the answers it passes on."""

    spoofed = 0

    def rewrite(self, answer):
        if SPOOF_FROM in answer:
            answer = answer.replace(SPOOF_FROM, SPOOF_TO)
            self.spoofed += 1
        return answer


class ConfigErrorTest(BreakwaterTestCase):
    def held_port(self):
        """A port this test listens on: serve configured with it fails on
        "address in use" if it binds before checking its configuration, so
        a refusal naming the configuration error proves it never tried."""
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self.addCleanup(s.close)
        return s.getsockname()[1]

    def refused(self, argv, needles):
        """serve with argv must exit 2 at once, with one error line holding
        each needle, and no other error (such as a port in use: it must not
        have bound anything first)."""
        t0 = time.monotonic()
        p = self.run_bw(argv, timeout=10 * SLOW)
        desc = "exit %d\nstderr:\n%s" % (p.returncode, p.stderr)
        self.assertEqual(p.returncode, 2, desc)
        lines = [l for l in p.stderr.splitlines() if l.strip()]
        self.assertEqual(len(lines), 1, "not one error line:\n" + desc)
        for n in needles:
            self.assertIn(n, lines[0], desc)
        self.assertNotIn("in use", lines[0], desc)
        self.assertLess(time.monotonic() - t0, 5 * SLOW)
        return lines[0]

    def write_conf(self, lines):
        path = os.path.join(self.tmp, "bad.conf")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def test_unknown_key_names_file_and_line(self):
        port = self.held_port()
        path = self.write_conf(["# a config with a typo on line 3",
                                "listen = 127.0.0.1:%d" % port,
                                "frobnicate = yes",
                                "backend = 127.0.0.1:2525"])
        self.refused(["serve", "-c", path], ["%s:3" % path, "frobnicate"])

    def test_bad_value_in_file(self):
        port = self.held_port()
        path = self.write_conf(["listen = 127.0.0.1:%d" % port,
                                "max_connections = lots"])
        self.refused(["serve", "-c", path], ["%s:2" % path, "max_connections"])

    def test_bad_values_in_options(self):
        port = self.held_port()
        path = self.write_conf(["listen = 127.0.0.1:%d" % port,
                                "backend = 127.0.0.1:%d" % free_port()])
        cases = [
            ("dnsbl_timeout=soon", "dnsbl_timeout"),
            ("dnsbl_sites=bl.test*heavy", "dnsbl_sites"),
            ("dnsbl_sites=bl.test=127.0.0.[9..2]", "dnsbl_sites"),
            ("allowlist=127.0.0.300/8", "allowlist"),
            ("denylist=10.0.0.0/40", "denylist"),
            ("listen=127.0.0.1", "listen"),
            ("backend=localhost:25", "backend"),
            ("backend_proxy_protocol=v3", "backend_proxy_protocol"),
            ("resolver=127.0.0.1:99999", "resolver"),
            ("max_connections_per_ip=-1", "max_connections_per_ip"),
            ("no_such_key=1", "no_such_key"),
        ]
        for opt, key in cases:
            with self.subTest(opt=opt):
                line = self.refused(["serve", "-c", path, "-o", opt], [key])
                self.assertIn("-o", line)

    def test_missing_config_file(self):
        path = os.path.join(self.tmp, "does-not-exist.conf")
        self.refused(["serve", "-c", path], [path])

    def test_listen_port_taken(self):
        import socket
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        self._cleanups_extra.append(s.close)
        port = s.getsockname()[1]
        p = self.run_bw(["serve", "-c", "/dev/null", "-o", "listen=127.0.0.1:%d" % port,
                         "-o", "state_dir=%s" % self.tmp], timeout=10 * SLOW)
        self.assertNotEqual(p.returncode, 0, p.stderr)
        self.assertIn(str(port), p.stderr)


class StartErrorTest(BreakwaterTestCase):
    """Problems only serve meets at start: one clear line, exit 1."""

    def serve_fails(self, opts, needles):
        argv = ["serve", "-c", "/dev/null", "-o", "listen=127.0.0.1:%d" % free_port(),
                "-o", "ban_backend=none", "-o", "control_socket=%s/control" % self.tmp,
                "-o", "metrics_listen="]  # not the default port: tests run in parallel
        for o in opts:
            argv += ["-o", o]
        p = self.run_bw(argv, timeout=10 * SLOW)
        self.assertEqual(p.returncode, 1, "exit %d\n%s" % (p.returncode, p.stderr))
        for n in needles:
            self.assertIn(n, p.stderr)
        return p

    def test_missing_user(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (the user switch happens only as root)")
        self.serve_fails(["user=bw-no-such-user", "state_dir=%s" % self.tmp],
                         ["bw-no-such-user", "useradd"])

    def test_corrupt_store(self):
        state = os.path.join(self.tmp, "state")
        os.makedirs(state)
        path = os.path.join(state, "breakwater.mdb")
        with open(path, "wb") as f:
            f.write(b"this is not an LMDB file" * 1000)
        if os.geteuid() == 0:  # the user's own store, not one root left there
            os.chown(path, 65534, 65534)
        self.serve_fails(["user=nobody", "state_dir=%s" % state],
                         [path, "cannot open the state store", "MDB_INVALID",
                          "move it and %s-lock away" % path])

    def test_runs_unprivileged_without_bans(self):
        """Started as nobody with ban_backend = none it simply serves."""
        if os.geteuid() != 0:
            self.skipTest("needs root to start it as another user")
        state = os.path.join(self.tmp, "state")
        os.makedirs(state)
        os.chown(state, 65534, 65534)
        os.chown(self.tmp, 65534, 65534)   # the control socket goes here

        # nobody may not reach the checkout (a clone in a 0700 directory):
        # run a copy from the test's own directory
        binary = os.path.join(self.tmp, "breakwater")
        shutil.copy(harness.BINARY, binary)
        os.chmod(binary, 0o755)

        def as_nobody():
            os.setgroups([])
            os.setgid(65534)
            os.setuid(65534)
        saved, harness.BINARY = harness.BINARY, binary
        try:
            d = self.start_daemon(opts={"state_dir": state}, preexec_fn=as_nobody)
        finally:
            harness.BINARY = saved
        c = self.client(d, "127.66.0.9")
        greeting = c.read_reply()
        self.assertEqual(greeting.code, 220, greeting)
        with open("/proc/%d/status" % d.proc.pid) as f:
            status = f.read()
        self.assertRegex(status, r"Uid:\s+65534\s")
        self.assertNotIn("running as user", d.log())


class CommandLineTest(BreakwaterTestCase):
    def test_help_and_version(self):
        p = self.run_bw(["help"])
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout + p.stderr
        for word in ("serve", "check"):
            self.assertIn(word, out)
        p = self.run_bw(["--version"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout + p.stderr, r"\d+\.\d+")

    def test_bad_usage(self):
        p = self.run_bw(["frobnicate"])
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        p = self.run_bw([])
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)
        p = self.run_bw(["serve", "--no-such-flag"])
        self.assertEqual(p.returncode, 2, p.stdout + p.stderr)

    def test_startup_messages(self):
        backend = self.recording_backend()
        listen = "127.0.0.1:%d, [::1]:%d" % (free_port(), free_port("::1"))
        d = self.start_daemon(backend, listen=listen,
                              opts={"backend_proxy_protocol": "none"})
        for host, port in d.listen_addresses():
            d.wait_log(r"listening on %s" % re.escape(harness.fmt_hostport(host, port)))
        # with proxy protocol none: a warning that the MTA sees every client
        # as breakwater's own address; not with v2
        d2 = self.start_daemon(backend, opts={"backend_proxy_protocol": "v2"})
        d2.wait_log(r"listening on")
        time.sleep(0.2)
        norm = lambda t: {re.sub(r"\d+", "#", l.split(" ", 1)[-1]) for l in t.splitlines()}
        extra = [l for l in norm(d.log()) - norm(d2.log()) if re.search(r"(?i)warn|trust|open relay|relay rights|sees? (every|all)", l)]
        self.assertTrue(extra, "no start-up warning about relay rights with "
                        "backend_proxy_protocol=none:\n" + d.log())
        self.assertEqual(len([l for l in d.log().splitlines()
                              if re.sub(r"\d+", "#", l.split(" ", 1)[-1]) == extra[0]]), 1,
                         "warning not printed exactly once")


if __name__ == "__main__":
    unittest.main()
