"""Packaging: `make install` / `make uninstall` into a DESTDIR, the systemd
unit (systemd-analyze verify; its capabilities, sandbox paths and
notifications against the installed binary), the man pages (rendered by
man, parsed by lexgrog) and the key table of docs/configuration.md against
src/conf.c.

Every test installs into its own temporary DESTDIR with the binary the run
was given (INSTALL_BIN), so nothing is rebuilt and nothing outside the
temporary directory is touched: with DESTDIR set, make install creates no
user and does not talk to systemd. The unit's start is played without
systemd: its ExecStartPre= and ExecStart= run as root in a private network
namespace under setpriv with the unit's CapabilityBoundingSet= and
no_new_privs, with a notify socket of the test's own.
"""

import filecmp
import os
import re
import shutil
import socket
import subprocess
import sys
import time

import harness
import netns
from harness import SLOW, BreakwaterTestCase

REPO = os.path.dirname(os.path.dirname(harness.HERE))
KEY_TABLE_DOC = os.path.join(REPO, "docs/configuration.md")   # the key table, man/mkman.py's source
UNIT = "lib/systemd/system/breakwater.service"
WATCH_UNIT = "lib/systemd/system/breakwater-watch.service"
CONF = "etc/breakwater/breakwater.conf"
MAN8 = "share/man/man8/breakwater.8"
MAN5 = "share/man/man5/breakwater.conf.5"


def unit_settings(path):
    """{(section, key): [values...]} of a unit file."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith(("#", ";")):
                continue
            if line.startswith("["):
                section = line.strip("[]")
                continue
            key, _, value = line.partition("=")
            out.setdefault((section, key.strip()), []).append(value.strip())
    return out


def documented_default(key):
    """The default the key table (docs/configuration.md) gives key (the
    text in backticks)."""
    with open(KEY_TABLE_DOC) as f:
        for line in f:
            m = re.match(r"\| `%s` \| `([^`]*)` \|" % re.escape(key), line)
            if m:
                return m.group(1)
    raise AssertionError("the key table in docs/configuration.md has no literal default for %s"
                         % key)


class InstallTestCase(BreakwaterTestCase):

    def make(self, target, destdir, prefix="/usr/local", check=True):
        argv = ["make", "-C", REPO, "--no-print-directory", target, "DESTDIR=" + destdir,
                "PREFIX=" + prefix, "INSTALL_BIN=" + harness.BINARY]
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, universal_newlines=True,
                           errors="replace", timeout=300)
        if check:
            self.assertEqual(p.returncode, 0, "%s failed:\n%s" % (" ".join(argv), p.stdout))
        return p

    def install(self, prefix="/usr/local", destdir=None):
        destdir = destdir or os.path.join(self.tmp, "dest")
        self.make("install", destdir, prefix)
        return destdir

    def files_under(self, root):
        found = {}
        for d, _, names in os.walk(root):
            for n in names:
                p = os.path.join(d, n)
                found[os.path.relpath(p, root)] = os.stat(p).st_mode & 0o7777
        return found

    def assertMode(self, path, mode):
        self.assertEqual(os.stat(path).st_mode & 0o7777, mode,
                         "%s: mode %o, expected %o" % (path, os.stat(path).st_mode & 0o7777, mode))


class InstallLayoutTest(InstallTestCase):

    def test_install_layout(self):
        d = self.install()
        local = "usr/local/"
        expected = {
            local + "sbin/breakwater": 0o755,
            CONF: 0o644,
            local + UNIT: 0o644,
            local + WATCH_UNIT: 0o644,
            local + MAN8: 0o644,
            local + MAN5: 0o644,
        }
        self.assertEqual(self.files_under(d), expected)
        self.assertTrue(filecmp.cmp(harness.BINARY, os.path.join(d, local, "sbin/breakwater"),
                                    shallow=False), "installed binary differs from the given one")
        self.assertTrue(filecmp.cmp(os.path.join(REPO, "etc/breakwater.conf"),
                                    os.path.join(d, CONF), shallow=False))
        p = subprocess.run([os.path.join(d, local, "sbin/breakwater"), "--version"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True, timeout=10 * SLOW)
        self.assertEqual(p.returncode, 0, p.stdout)
        unit = unit_settings(os.path.join(d, local, UNIT))
        self.assertEqual(unit[("Service", "ExecStart")],
                         ["/usr/local/sbin/breakwater serve -c /etc/breakwater/breakwater.conf"])

    def test_install_prefix_usr(self):
        d = self.install(prefix="/usr")
        self.assertEqual(sorted(self.files_under(d)),
                         sorted([CONF, "usr/sbin/breakwater", "usr/" + UNIT, "usr/" + WATCH_UNIT,
                                 "usr/" + MAN8, "usr/" + MAN5]))
        with open(os.path.join(d, "usr", UNIT)) as f:
            text = f.read()
        self.assertNotIn("/usr/local", text)
        unit = unit_settings(os.path.join(d, "usr", UNIT))
        self.assertEqual(unit[("Service", "ExecStart")],
                         ["/usr/sbin/breakwater serve -c /etc/breakwater/breakwater.conf"])
        self.assertIn("/usr/sbin/breakwater rules", unit[("Service", "ExecStartPre")][-1])

    def test_install_keeps_existing_conf_and_uninstall_keeps_edited_conf(self):
        d = os.path.join(self.tmp, "dest")
        conf = os.path.join(d, CONF)
        os.makedirs(os.path.dirname(conf))
        with open(conf, "w") as f:
            f.write("# the admin's own\nlisten = 0.0.0.0:25\n")
        os.chmod(conf, 0o640)
        self.install(destdir=d)
        with open(conf) as f:
            self.assertEqual(f.read(), "# the admin's own\nlisten = 0.0.0.0:25\n",
                             "make install overwrote an existing config")
        self.assertMode(conf, 0o640)
        # a second install over a first one: same files, still no overwrite
        self.install(destdir=d)
        p = self.make("uninstall", d)
        self.assertIn("kept", p.stdout)
        self.assertEqual(self.files_under(d), {CONF: 0o640})

    def test_uninstall_removes_what_install_put(self):
        d = self.install()
        self.make("uninstall", d)
        self.assertEqual(self.files_under(d), {}, "files left after make uninstall")
        self.assertFalse(os.path.exists(os.path.join(d, "etc/breakwater")))
        # nothing installed: uninstall still succeeds
        self.make("uninstall", d)


class UnitTest(InstallTestCase):

    def setUp(self):
        super().setUp()
        if shutil.which("systemd-analyze") is None:
            self.skipTest("systemd-analyze missing (package systemd, in TEST_PACKAGES)")
        self.dest = self.install()
        self.unit_path = os.path.join(self.dest, "usr/local", UNIT)
        self.unit = unit_settings(self.unit_path)
        self.binary = os.path.join(self.dest, "usr/local/sbin/breakwater")

    def test_unit_verifies(self):
        # verify wants the commands to exist and the man pages of
        # Documentation= to be found: point both at the DESTDIR copies
        vdir = os.path.join(self.tmp, "verify")
        os.makedirs(vdir)
        for unit in (UNIT, WATCH_UNIT):
            name = os.path.basename(unit)
            with open(os.path.join(self.dest, "usr/local", unit)) as f:
                text = f.read().replace("/usr/local/sbin/breakwater", self.binary)
            with open(os.path.join(vdir, name), "w") as f:
                f.write(text)
            env = dict(os.environ, MANPATH=os.path.join(self.dest, "usr/local/share/man"),
                       SYSTEMD_LOG_LEVEL="notice")
            p = subprocess.run(["systemd-analyze", "verify", os.path.join(vdir, name)],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True, env=env,
                               timeout=60)
            self.assertEqual(p.returncode, 0, p.stdout)
            # unknown or misspelt keys are only warned about: the output must be empty
            self.assertEqual(p.stdout.strip(), "", "systemd-analyze verify complained: " + name)

    def test_unit_settings(self):
        u = self.unit
        want = {
            "Type": "notify", "NotifyAccess": "main", "KillMode": "mixed",
            "NoNewPrivileges": "yes", "ProtectSystem": "strict", "ProtectHome": "yes",
            "PrivateTmp": "yes", "ReadWritePaths": "-/var/lib/breakwater",
            "RuntimeDirectory": "breakwater",
        }
        for key, value in want.items():
            self.assertEqual(u.get(("Service", key)), [value], key)
        self.assertIn(("Service", "WatchdogSec"), u)
        self.assertNotIn(("Service", "User"), u, "serve must start as root to bind and drop")
        self.assertEqual(sorted(u[("Service", "CapabilityBoundingSet")][0].split()),
                         sorted(["CAP_NET_BIND_SERVICE", "CAP_NET_ADMIN", "CAP_SETUID",
                                 "CAP_SETGID", "CAP_CHOWN", "CAP_FOWNER",
                                 "CAP_DAC_READ_SEARCH"]))
        # the directories systemd makes writable are the ones serve uses
        self.assertEqual("-" + documented_default("state_dir"),
                         u[("Service", "ReadWritePaths")][0])
        # never StateDirectory=: with no User=, systemd would give the
        # user's files in it to root at every start (red-team finding)
        self.assertNotIn(("Service", "StateDirectory"), u)
        self.assertEqual(os.path.dirname(documented_default("control_socket")),
                         "/run/" + u[("Service", "RuntimeDirectory")][0])

    # -- the start, played without systemd

    def bounding(self, drop=None):
        caps = self.unit[("Service", "CapabilityBoundingSet")][0].split()
        return "-all" + "".join(",+" + c[4:].lower() for c in caps if c != drop)

    def as_unit(self, argv, drop=None):
        return ["setpriv", "--no-new-privs", "--inh-caps=-all",
                "--bounding-set=" + self.bounding(drop)] + argv

    def unit_command(self, key):
        """ExecStartPre=/ExecStart= with the test's binary, config and run
        dir (the unit's RuntimeDirectory=)."""
        cmd = self.unit[("Service", key)][-1]
        run = "/run/" + self.unit[("Service", "RuntimeDirectory")][0]
        return (cmd.replace("/usr/local/sbin/breakwater", self.binary)
                .replace("/etc/breakwater/breakwater.conf", self.conf)
                .replace(run, self.rundir))

    def notify_socket(self):
        path = os.path.join(self.tmp, "notify")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._cleanups_extra.append(s.close)
        s.bind(path)
        os.chmod(path, 0o666)   # as systemd's: serve speaks after dropping root
        return s, path

    def wait_message(self, s, wanted, proc, timeout):
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            s.settimeout(max(0.05, min(0.2, deadline - time.monotonic())))
            try:
                m = s.recv(4096).decode()
            except socket.timeout:
                if proc.poll() is not None:
                    break
                continue
            seen.append(m)
            if wanted in m:
                return True
        return False

    def start_unit(self, ns, notify_path, drop=None):
        """The unit's ExecStart= under its bounding set (less drop) in ns."""
        log = open(os.path.join(self.tmp, "unit-%s.log" % (drop or "all")), "w+")
        self._cleanups_extra.append(log.close)
        env = dict(os.environ, NOTIFY_SOCKET=notify_path, WATCHDOG_USEC="400000")
        env.pop("WATCHDOG_PID", None)
        argv = self.as_unit(self.unit_command("ExecStart").split(), drop)
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                env=env, preexec_fn=ns.preexec())

        def stop():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self._cleanups_extra.append(stop)
        return proc, log

    def read_log(self, log):
        log.flush()
        log.seek(0)
        text = log.read()
        bad = harness.sanitizer_lines(text)
        self.assertFalse(bad, "sanitizer report:\n" + text[-6000:])
        return text

    def test_unit_start_with_its_capabilities(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (namespaces, firewall, switching user)")
        for tool in ("setpriv", "nft", "ip"):
            if shutil.which(tool) is None:
                self.skipTest("%s missing" % tool)
        ns = netns.NetNS("bwt-inst-%d-%d" % (os.getpid(), id(self) % 10000))
        self._cleanups_extra.append(ns.delete)
        ns.create()
        self.rundir = os.path.join(self.tmp, "run")       # RuntimeDirectory=
        os.makedirs(self.rundir, mode=0o755)
        self.conf = os.path.join(self.tmp, "breakwater.conf")
        with open(self.conf, "w") as f:
            f.write("listen = 127.0.0.1:25\n"             # port 25: CAP_NET_BIND_SERVICE
                    "backend = 127.0.0.1:2525\n"
                    "hostname = %s\n"
                    "dnsbl_sites =\n"
                    "ban_backend = nft\n"
                    "user = nobody\n"
                    "state_dir = %s\n"
                    "control_socket = %s/control\n"
                    "metrics_listen = 127.0.0.1:9625\n"
                    % (harness.HOSTNAME, os.path.join(self.tmp, "state"), self.rundir))
        # ExecStartPre=: the ruleset into the namespace's nftables
        pre = self.as_unit(["/bin/sh", "-c", self.unit_command("ExecStartPre")])
        p = ns.run(pre, timeout=30 * SLOW)
        self.assertEqual(p.returncode, 0, "ExecStartPre failed: %s%s" % (p.stdout, p.stderr))
        self.assertIn("banned4", ns.check(["nft", "list", "table", "inet", "breakwater"]))

        s, path = self.notify_socket()
        # first start: state_dir is made; second: it is the user's already
        # (reaching its files then takes CAP_DAC_READ_SEARCH)
        for run in (1, 2):
            proc, log = self.start_unit(ns, path)
            ready = self.wait_message(s, "READY=1", proc, 10 * SLOW)
            self.assertTrue(ready, "start %d: no READY=1; log:\n%s" % (run, self.read_log(log)))
            self.assertTrue(self.wait_message(s, "WATCHDOG=1", proc, 2 * SLOW),
                            "no watchdog ping; log:\n" + self.read_log(log))
            # ExecReload=: the file read again by the unprivileged daemon
            reload = self.unit_command("ExecReload").replace("$MAINPID", str(proc.pid))
            subprocess.run(reload.split(), check=True, timeout=10 * SLOW)
            harness.wait_until(lambda: "configuration reloaded" in self.read_log(log),
                               5 * SLOW, what="reload through ExecReload=")
            proc.send_signal(15)
            self.assertTrue(self.wait_message(s, "STOPPING=1", proc, 5 * SLOW))
            proc.wait(15 * SLOW)
            self.assertEqual(proc.returncode, 0, self.read_log(log)[-3000:])
        st = os.stat(os.path.join(self.tmp, "state"))
        self.assertEqual(st.st_mode & 0o777, 0o750)

        # and none of them is superfluous: without any one, serve does not start
        for cap in self.unit[("Service", "CapabilityBoundingSet")][0].split():
            with self.subTest(without=cap):
                proc, log = self.start_unit(ns, path, drop=cap)
                ready = self.wait_message(s, "READY=1", proc, 5 * SLOW)
                if proc.poll() is None:
                    proc.send_signal(15)
                proc.wait(15 * SLOW)
                self.assertFalse(ready, "serve started without %s" % cap)
                self.assertNotEqual(proc.returncode, 0)
                self.assertIn("error", self.read_log(log))

    def test_watch_unit_start_with_its_capabilities(self):
        if os.geteuid() != 0:
            self.skipTest("needs root (namespaces, firewall, switching user)")
        for tool in ("setpriv", "nft", "ip"):
            if shutil.which(tool) is None:
                self.skipTest("%s missing" % tool)
        import test_watch
        self.unit = unit_settings(os.path.join(self.dest, "usr/local", WATCH_UNIT))
        ns = netns.NetNS("bwt-instw-%d-%d" % (os.getpid(), id(self) % 10000))
        self._cleanups_extra.append(ns.delete)
        ns.create()
        self.rundir = os.path.join(self.tmp, "run-watch")        # RuntimeDirectory=
        os.makedirs(self.rundir, mode=0o755)
        os.chmod(self.tmp, 0o755)
        log = os.path.join(self.tmp, "mail.log")
        with open(log, "wb"):
            pass
        os.chmod(log, 0o644)
        self.conf = os.path.join(self.tmp, "breakwater.conf")
        with open(self.conf, "w") as f:
            f.write("ban_backend = nft\nban_ports = 25, 587\nuser = nobody\n"
                    "state_dir = %s\nwatch_logs = %s\n" % (os.path.join(self.tmp, "state-w"), log))
        p = ns.run(self.as_unit(["/bin/sh", "-c", self.unit_command("ExecStartPre")]),
                   timeout=30 * SLOW)
        self.assertEqual(p.returncode, 0, "ExecStartPre failed: %s%s" % (p.stdout, p.stderr))
        s, path = self.notify_socket()
        proc, out = self.start_unit(ns, path)
        self.assertTrue(self.wait_message(s, "READY=1", proc, 10 * SLOW),
                        "no READY=1; log:\n" + self.read_log(out))
        # the MTA's log says it refused a client: into the namespace's set
        test_watch.write(log, test_watch.reject("postfix-smtpd", "192.0.2.77"))
        harness.wait_until(lambda: "192.0.2.77" in (netns.nft_set(ns, "inet breakwater",
                                                                  "banned4") or {}),
                           5 * SLOW, what="the watcher's ban in the nft set")
        proc.send_signal(15)
        self.assertTrue(self.wait_message(s, "STOPPING=1", proc, 5 * SLOW))
        proc.wait(15 * SLOW)
        self.assertEqual(proc.returncode, 0, self.read_log(out)[-3000:])


class ManPageTest(InstallTestCase):

    def setUp(self):
        super().setUp()
        if shutil.which("man") is None:
            self.skipTest("man missing (package man-db, in TEST_PACKAGES)")
        self.dest = self.install()

    def render(self, page):
        path = os.path.join(self.dest, "usr/local", page)
        env = dict(os.environ, MANWIDTH="80", LC_ALL="C.UTF-8", MAN_DISABLE_SECCOMP="1")
        p = subprocess.run(["man", "--warnings=all", "-l", path], stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           universal_newlines=True, env=env, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        # groff's warnings ("troff: <standard input>:12: warning: ...") go to
        # stderr; the page's own text may say "warning"
        self.assertEqual(p.stderr.strip(), "", "man -l %s complained" % page)
        self.assertNotRegex(p.stdout, r"(?i)(troff|man|tbl)\S*:.*warning|:\d+: warning")
        if shutil.which("lexgrog"):   # what mandb/apropos read the NAME line with
            g = subprocess.run(["lexgrog", path], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, universal_newlines=True, timeout=30)
            self.assertEqual(g.returncode, 0, g.stdout)
        # the text without overstrikes
        return re.sub(r".\x08", "", p.stdout)

    def documented_keys(self):
        """The keys of the key table, as the generator reads them (README.md
        and docs/)."""
        sys.path.insert(0, os.path.join(REPO, "man"))
        keep, sys.dont_write_bytecode = sys.dont_write_bytecode, True  # no man/__pycache__
        try:
            import mkman
        finally:
            sys.path.pop(0)
            sys.dont_write_bytecode = keep
        docs, _ = mkman.read_docs([os.path.join(REPO, "README.md")])
        return [row[0].strip("`") for row in mkman.key_table(docs)]

    def test_man_breakwater_8(self):
        text = self.render(MAN8)
        self.assertIn("breakwater - a spam-wave shield", text)
        for section in ("SYNOPSIS", "DESCRIPTION", "COMMANDS AND OPTIONS", "EXIT STATUS",
                        "SECURITY", "FILES", "SEE ALSO"):
            self.assertRegex(text, r"(?m)^%s$" % section)
        for command in ("serve", "check", "rules", "ctl", "watch"):
            self.assertRegex(text, r"breakwater %s \[-c FILE\]" % command)
        self.assertIn("/etc/breakwater/breakwater.conf", text)

    def test_man_breakwater_conf_5(self):
        text = self.render(MAN5)
        self.assertIn("breakwater.conf - configuration file of breakwater(8)", text)
        keys = self.documented_keys()
        self.assertGreater(len(keys), 30)
        for key in keys:
            self.assertRegex(text, r"(?m)^ {7}%s$" % re.escape(key),
                             "key %s has no entry in breakwater.conf(5)" % key)


class KeyTableTest(BreakwaterTestCase):
    """The key table (docs/configuration.md, the man page's source) against
    conf_keys[]."""

    def mkman(self, conf_c, *docs_args):
        return subprocess.run(["python3", os.path.join(REPO, "man/mkman.py")] + list(docs_args)
                              + ["--check-keys", conf_c], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, universal_newlines=True, timeout=60)

    def test_documented_keys_match_conf_c(self):
        # as the Makefile reads them: README.md and the docs/ beside it
        p = self.mkman(os.path.join(REPO, "src/conf.c"),
                       "--readme", os.path.join(REPO, "README.md"))
        self.assertEqual(p.returncode, 0,
                         "docs/configuration.md's key table and src/conf.c disagree:\n" + p.stderr)
        self.assertEqual(p.stderr, "")

    def test_key_check_finds_differences(self):
        with open(KEY_TABLE_DOC) as f:
            doc = f.read()
        with open(os.path.join(REPO, "src/conf.c")) as f:
            conf_c = f.read()
        # a key the table forgets, a default it gets wrong, a key only it has
        doc = re.sub(r"(?m)^\| `ban_time` \|.*\n", "", doc)
        doc = doc.replace("| `dnsbl_timeout` | `5s` |", "| `dnsbl_timeout` | `6s` |")
        doc = doc.replace("| `log_level` |", "| `log_colour` | `no` | x |\n| `log_level` |")
        bad_doc = os.path.join(self.tmp, "configuration.md")
        with open(bad_doc, "w") as f:
            f.write(doc)
        p = self.mkman(os.path.join(REPO, "src/conf.c"), "--readme", bad_doc, "--no-docs")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertRegex(p.stderr, r"src/conf.c has ban_time, which the key table in "
                                   r"configuration\.md does not document")
        self.assertRegex(p.stderr, r"dnsbl_timeout: configuration\.md says the default is '6s', "
                                   r"src/conf.c has '5s'")
        self.assertRegex(p.stderr, r"configuration\.md documents log_colour")
        self.assertIn('"ban_time"', conf_c)


class ManSourceTest(BreakwaterTestCase):
    """man/mkman.py finds its sections across README.md and docs/*.md, and
    refuses a link to a heading that does not exist."""

    def copy_docs(self):
        root = os.path.join(self.tmp, "src")
        os.makedirs(root)
        shutil.copy(os.path.join(REPO, "README.md"), root)
        shutil.copytree(os.path.join(REPO, "docs"), os.path.join(root, "docs"))
        return root

    def mkman(self, root):
        return subprocess.run(["python3", os.path.join(REPO, "man/mkman.py"),
                               "--readme", os.path.join(root, "README.md"),
                               "--out", os.path.join(self.tmp, "man")],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              universal_newlines=True, timeout=60)

    def test_pages_from_readme_and_docs(self):
        p = self.mkman(self.copy_docs())
        self.assertEqual(p.returncode, 0, p.stderr)
        with open(os.path.join(self.tmp, "man", "breakwater.8")) as f:
            page8 = f.read()
        for heading in ("COMMANDS AND OPTIONS", "EXIT STATUS", "SERVICE", "WATCH", "BANS",
                        "STATE", "SECURITY", "METRICS", "FILES"):
            self.assertIn('.SH "%s"' % heading, page8)
        # a link to a section of neither page names the file that holds it
        self.assertIn("see Reload in docs/operations.md", page8)

    def test_dead_link_is_an_error(self):
        root = self.copy_docs()
        with open(os.path.join(root, "docs", "watch.md"), "a") as f:
            f.write("\nSee [nothing](operations.md#no-such-heading).\n")
        p = self.mkman(root)
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertIn("docs/watch.md: [nothing](operations.md#no-such-heading): "
                      "docs/operations.md has no such heading", p.stderr)
