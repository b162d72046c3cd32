"""breakwater watch: following an exposed MTA's log, finding its DNSBL
rejects, banning the clients they name and ending their connections.

The reject lines written here are real ones from tests/data/logs (see the
.notes files there), given new client addresses (192.0.2.0/24,
198.51.100.0/24, 2001:db8::/32: documentation ranges, never reached).

WatchFollowTest, WatchRulesTest, WatchCountTest: ban_backend = none (the
match is logged with action=none and nothing is banned), no namespace: how
the files are followed (start at the end or --from-start, lines written in
pieces, rename rotation, copytruncate, a file that appears later, long and
binary lines), which lines match (built-in and custom rules, near misses)
and watch_max_hits.

WatchKillTest: a real Postfix smtpd (tests/integration/postfix.py, run in
the server namespace S of netns.Topology, listening on 10.77.K.1:25)
holds a connection from a client in C; a reject line naming the client,
appended to the log breakwater watch follows in S, makes it ban the client
in nft and, depending on watch_kill, end the connection (socket: the
client reads a reset and the smtpd process exits; process: the smtpd gets
SIGTERM; none: the connection stays). The instance runs with max_use = 1
so that an smtpd process exits when its session ends: by default Postfix
keeps the process for the next client (max_idle), and its exit would not
tell whether the session ended (the maillog says that too, and is
checked).

  10.77.K.1  Postfix smtpd (S)                10.77.K.3  clean client (C)
  10.77.K.2  client of the watch_kill=socket test
  10.77.K.4  client of the watch_kill=none test
  10.77.K.5  client of the watch_kill=process test
"""

import collections
import os
import re
import shutil
import socket
import subprocess
import time
import unittest

import harness
import netns
import postfix
from harness import BreakwaterTestCase, wait_until

LOG_DIR = os.path.join(harness.HERE, "..", "data", "logs")
KILL_DELAY = 0.5    # watch_kill_delay's default: from the ban to the kill

# rule name -> (log file, 1-based line number, the client address in it):
# a DNSBL reject of each MTA the built-in rules know
TEMPLATES = {
    "postfix-smtpd": ("postfix-smtpd.log", 91, "127.66.1.7"),
    "postscreen": ("postscreen.log", 9, "127.0.0.1"),
    "courier": ("courier.log", 40, "127.66.1.1"),
    "exim": ("exim.log", 28, "127.66.1.2"),
}
# the list each template names (Courier never names it)
TEMPLATE_LIST = {"postfix-smtpd": "bl.test", "postscreen": "bl.test", "courier": "-",
                 "exim": "bl.test"}

# Lines that look like DNSBL rejects but are not (see the .notes files):
# reject_warning, 4xx, local access-map REJECTs, unknown users, relay
# denials, postscreen's pregreet 550, exim warn-only dnslists and
# temporary rejects, courier 550/513/417.
NEAR_MISSES = {
    "postfix-smtpd.log": [34, 37, 41, 44, 55, 85, 88],
    "postscreen.log": [45, 50, 66, 82],
    "courier.log": [63, 65, 69],
    "exim.log": [16, 17, 18, 35, 36, 54],
}

HIT_RE = re.compile(r"watch client=\[(?P<addr>[^\]]*)\] rule=(?P<rule>\S+) list=(?P<list>\S+) "
                    r"hits=(?P<hits>\d+) action=(?P<action>\S+)")
SUMMARY_RE = re.compile(r"watch: (?P<lines>\d+) lines, (?P<rejects>\d+) rejects, "
                        r"(?P<asked>\d+) bans asked, (?P<applied>\d+) applied, "
                        r"(?P<failed>\d+) failed, (?P<ended>\d+) connections ended, "
                        r"(?P<not_ended>\d+) addresses not ended")


def slow():
    return harness.SLOW


def log_line(name, number):
    """Line `number` (1-based) of tests/data/logs/NAME, bytes, no newline."""
    with open(os.path.join(LOG_DIR, name), "rb") as f:
        return f.read().split(b"\n")[number - 1]


def reject(rule, addr):
    """A real DNSBL reject line of the MTA of `rule`, naming addr instead
    of its own client, newline included."""
    name, number, old = TEMPLATES[rule]
    line = log_line(name, number)
    assert old.encode() in line, (name, number, old)
    return line.replace(old.encode(), addr.encode()) + b"\n"


def notes_rows(name, categories):
    """(line, client) of the rows of the per-line table of the .notes file
    of tests/data/logs/NAME whose category is one of categories."""
    rows = []
    with open(os.path.join(LOG_DIR, name[:-len(".log")] + ".notes")) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) >= 3 and parts[0].isdigit() and parts[1] in categories:
                rows.append((int(parts[0]), parts[2]))
    return rows


def write(path, data):
    """Appends bytes to path (creating it, mode 0644) and closes it."""
    with open(path, "ab") as f:
        f.write(data)
    os.chmod(path, 0o644)


class Watch(harness.Daemon):
    """breakwater watch with a config file written here plus -o overrides,
    following paths. Stopped and checked (exit 0, no sanitizer report) by
    BreakwaterTestCase's cleanup like a serve daemon."""

    def __init__(self, tmpdir, conf, paths, from_start=False, opts=(), name="watch"):
        super().__init__(tmpdir, conf, opts, name=name)
        self.paths = list(paths)
        self.from_start = from_start

    def argv(self):
        a = [harness.BINARY, "watch", "-c", self.confpath]
        for k, v in self.opts:
            a += ["-o", "%s=%s" % (k, v)]
        if self.from_start:
            a.append("--from-start")
        return a + self.paths

    def start(self, wait=True, preexec_fn=None):
        super().start(wait=False, preexec_fn=preexec_fn)
        if wait:
            self.wait_ready()
        return self

    def wait_ready(self, timeout=None):
        """Until every path has its `watching PATH` line: from then on its
        starting point is taken, and lines written to it are new ones."""
        wanted = {re.compile(r"info: watching %s( from its start)?$" % re.escape(p))
                  for p in self.paths}

        def ready():
            if self.proc.poll() is not None:
                raise AssertionError("breakwater watch exited with %s at start; stderr:\n%s"
                                     % (self.proc.returncode, self.log()))
            lines = self.log().splitlines()
            return all(any(rx.search(l) for l in lines) for rx in wanted)
        limit = timeout or 5 * slow()
        try:
            wait_until(ready, limit, what="watch to start")
        except AssertionError as e:
            if "exited" in str(e):
                raise
            raise AssertionError("breakwater watch not following %s after %.0fs; stderr:\n%s"
                                 % (self.paths, limit, self.log()))

    def hits(self):
        """The `watch client=...` lines so far, as dicts, oldest first."""
        out = []
        for line in self.log().splitlines():
            m = HIT_RE.search(line)
            if m:
                d = m.groupdict()
                d["hits"] = int(d["hits"])
                d["line"] = line
                out.append(d)
        return out

    def addresses(self):
        return [h["addr"] for h in self.hits()]

    def wait_hit(self, addr, timeout=None):
        """The first hit naming addr, waiting for it."""
        def find():
            for h in self.hits():
                if h["addr"] == addr:
                    return h
            return None
        try:
            return wait_until(find, timeout or 3 * slow(), what="a hit of %s" % addr)
        except AssertionError:
            raise AssertionError("no `watch client=[%s]` line; stderr:\n%s"
                                 % (addr, self.log()[-3000:]))

    def wait_count(self, n, timeout=None):
        """All hits once there are at least n."""
        try:
            wait_until(lambda: len(self.hits()) >= n, timeout or 3 * slow(),
                       what="%d hits" % n)
        except AssertionError:
            raise AssertionError("fewer than %d `watch client=` lines; stderr:\n%s"
                                 % (n, self.log()[-3000:]))
        return self.hits()

    def summary(self):
        """The counters of the line logged at SIGTERM (None before)."""
        for line in self.log().splitlines():
            m = SUMMARY_RE.search(line)
            if m:
                return {k: int(v) for k, v in m.groupdict().items()}
        return None


class WatchTestCase(BreakwaterTestCase):

    def watch_conf(self, **extra):
        state = os.path.join(self.tmp, "state")
        os.makedirs(state, exist_ok=True)
        os.chmod(state, 0o755)
        conf = {
            "log_level": "info",
            "state_dir": state,
            "user": "nobody",
            "ban_backend": "none",
        }
        conf.update(extra)
        return conf

    def start_watch(self, paths, from_start=False, opts=(), preexec_fn=None, wait=True,
                    **conf_extra):
        w = Watch(self.tmp, self.watch_conf(**conf_extra), paths, from_start=from_start,
                  opts=list(opts), name="watch%d" % len(self._daemons))
        self._daemons.append(w)
        try:
            w.start(wait=wait, preexec_fn=preexec_fn)
        except AssertionError:
            w.expect_exit = True   # reported once, here
            raise
        return w

    def path(self, name):
        return os.path.join(self.tmp, name)

    @classmethod
    def create_postfix_topology(cls):
        """For a class that runs a real Postfix in netns.Topology: skips
        it when that cannot run here, else makes cls.topo (deleted after
        the class)."""
        if not harness.BINARY:
            raise unittest.SkipTest("no breakwater binary given (run.py --binary PATH)")
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root (network namespaces, firewall)")
        ok, why = postfix.postfix_available()
        if not ok:
            raise unittest.SkipTest(why)
        cls.topo = netns.Topology()
        cls.topo.create()
        cls.addClassCleanup(cls.topo.delete)

    def stop_watch(self, w):
        """SIGTERM; asserts exit 0 and returns the summary counters."""
        rc = w.stop()
        self.assertEqual(rc, 0, "watch did not exit 0 on SIGTERM; stderr:\n%s" % w.log()[-3000:])
        s = w.summary()
        self.assertIsNotNone(s, "no summary line at exit; stderr:\n%s" % w.log()[-3000:])
        return s

    def sentinel(self, w, path, addr):
        """Appends a reject of addr and waits for its hit: the lines written
        before it have been read and matched by then (one file is read in
        order). Returns the hits before the sentinel's."""
        write(path, reject("postfix-smtpd", addr))
        w.wait_hit(addr)
        hits = w.hits()
        i = [h["addr"] for h in hits].index(addr)
        return hits[:i]


class WatchFollowTest(WatchTestCase):

    def test_new_lines_only_every_mta_pieces_long_and_binary_lines(self):
        log = self.path("mail.log")
        shutil.copyfile(os.path.join(LOG_DIR, "postfix-smtpd.log"), log)
        os.chmod(log, 0o644)
        w = self.start_watch([log])

        # one reject of each MTA, and an IPv6 client; the file's own
        # rejects (127.0.0.1, ::1, 127.66.1.x) were there before: not new
        new = [("postfix-smtpd", "192.0.2.1"), ("postscreen", "192.0.2.2"),
               ("courier", "192.0.2.3"), ("exim", "192.0.2.4"),
               ("postfix-smtpd", "2001:db8::17")]
        write(log, b"".join(reject(rule, addr) for rule, addr in new))
        hits = w.wait_count(len(new))
        self.assertEqual([(h["rule"], h["addr"]) for h in hits], new,
                         "hits of the appended lines, in order (the file's own rejects "
                         "must not be reported: watch starts at the end)")
        for h, (rule, _) in zip(hits, new):
            self.assertEqual(h["list"], TEMPLATE_LIST[rule], h["line"])
            self.assertEqual(h["hits"], 1, h["line"])
            self.assertEqual(h["action"], "none", "ban_backend = none: %s" % h["line"])

        # near misses of every MTA: nothing
        misses = b"".join(log_line(name, n) + b"\n"
                          for name, numbers in NEAR_MISSES.items() for n in numbers)
        write(log, misses)
        before = self.sentinel(w, log, "192.0.2.9")
        self.assertEqual(len(before), len(new), "a near miss was taken for a DNSBL reject: %s"
                         % [h["line"] for h in before[len(new):]])

        # a line in two pieces: nothing until its newline, then one hit.
        # The first piece alone would match with list=bl.
        line = reject("postfix-smtpd", "192.0.2.10")
        cut = line.index(b"blocked using bl") + len(b"blocked using bl")
        count = len(w.hits())
        write(log, line[:cut])
        time.sleep(0.3)
        self.assertEqual(len(w.hits()), count, "a piece of a line without its newline "
                         "was matched: %s" % w.hits()[count:])
        write(log, line[cut:])
        h = w.wait_hit("192.0.2.10")
        self.assertEqual(h["list"], "bl.test", "the line was not put back together: %s"
                         % h["line"])

        # a line of 20,000 bytes, whose reject text comes after the first
        # 16 KiB (cut there, the rest skipped: no hit), then a reject line;
        # a long line that starts with a reject is not read either: cut, it
        # may have lost the MTA's own words (only whole lines are read)
        junk = b"2026-11-29T13:10:00.000000+00:00 mx1 noise[1]: " + b"x" * 20000
        write(log, junk + b" " + reject("postfix-smtpd", "192.0.2.11"))
        write(log, reject("postfix-smtpd", "192.0.2.12"))
        write(log, reject("postfix-smtpd", "192.0.2.13")[:-1] + b" " + b"y" * 20000 + b"\n")
        write(log, reject("exim", "192.0.2.14"))
        w.wait_hit("192.0.2.14")
        got = w.addresses()[count + 1:]
        self.assertEqual(got, ["192.0.2.12", "192.0.2.14"], "around lines longer than 16 KiB")

        # invalid UTF-8 and NUL bytes before the reject text
        line = reject("postfix-smtpd", "192.0.2.15")
        line = line.replace(b" mx1 ", b" mx\xff\xfe\x00\xc3\x28\x001 ", 1)
        self.assertIn(b"\x00", line)
        write(log, b"\x00\x00\xff garbage \xc0\xaf\n" + line)
        h = w.wait_hit("192.0.2.15")
        self.assertEqual((h["rule"], h["list"]), ("postfix-smtpd", "bl.test"), h["line"])

        s = self.stop_watch(w)
        self.assertEqual(s["rejects"], len(w.hits()), "summary %r vs the hits logged" % s)
        self.assertEqual(len(w.hits()), len(new) + 1 + 1 + 2 + 1, "hits: %s" % w.addresses())
        self.assertEqual(s["asked"], 0, "ban_backend = none asked for bans: %r" % s)

    def test_from_start(self):
        """--from-start: the files' own rejects are reported, exactly those
        the .notes files list (postscreen's `DNSBL rank` verdict lines too,
        which its built-in rule takes as rejects: with
        postscreen_dnsbl_action = drop they are the only trace)."""
        a, b = self.path("smtpd.log"), self.path("postscreen.log")
        shutil.copyfile(os.path.join(LOG_DIR, "postfix-smtpd.log"), a)
        shutil.copyfile(os.path.join(LOG_DIR, "postscreen.log"), b)
        for p in (a, b):
            os.chmod(p, 0o644)
        expected = collections.Counter()
        for line, client in notes_rows("postfix-smtpd.log", {"DNSBL-REJECT"}):
            expected[("postfix-smtpd", client)] += 1
        for line, client in notes_rows("postscreen.log", {"DNSBL-REJECT", "DNSBL-VERDICT"}):
            expected[("postscreen", client)] += 1
        self.assertEqual(sum(expected.values()), 19, "the .notes files changed")
        w = self.start_watch([a, b], from_start=True)
        w.wait_count(19)
        self.sentinel(w, a, "192.0.2.99")
        self.sentinel(w, b, "192.0.2.98")
        got = collections.Counter((h["rule"], h["addr"]) for h in w.hits()
                                  if not h["addr"].startswith("192.0.2."))
        self.assertEqual(got, expected)
        smtpd = [h["addr"] for h in w.hits() if h["rule"] == "postfix-smtpd"
                 and not h["addr"].startswith("192.0.2.")]
        self.assertEqual(smtpd, [c for _, c in notes_rows("postfix-smtpd.log",
                                                          {"DNSBL-REJECT"})],
                         "one file's rejects in the file's order")
        s = self.stop_watch(w)
        with open(os.path.join(LOG_DIR, "postfix-smtpd.log"), "rb") as f:
            n = f.read().count(b"\n")
        with open(os.path.join(LOG_DIR, "postscreen.log"), "rb") as f:
            n += f.read().count(b"\n")
        self.assertEqual(s["lines"], n + 2, "lines read: %r" % s)
        self.assertEqual(s["rejects"], 21, "summary: %r" % s)

    def test_rotation_copytruncate_and_a_file_that_comes_later(self):
        rot, ct, later = self.path("rot.log"), self.path("ct.log"), self.path("later.log")
        shutil.copyfile(os.path.join(LOG_DIR, "exim.log"), rot)
        # larger than what is written after the truncation: a follower
        # that looked at the size only would miss it
        shutil.copyfile(os.path.join(LOG_DIR, "postfix-smtpd.log"), ct)
        for p in (rot, ct):
            os.chmod(p, 0o644)
        w = self.start_watch([rot, ct, later])
        written = 0

        # rename rotation as logrotate with `create` does it, the writer
        # keeping its descriptor until told to reopen
        writer = open(rot, "ab", buffering=0)
        try:
            writer.write(reject("exim", "198.51.100.1"))
            w.wait_hit("198.51.100.1")
            os.rename(rot, rot + ".1")
            writer.write(reject("postfix-smtpd", "198.51.100.2"))   # now in rot.log.1
            w.wait_hit("198.51.100.2")
            write(rot, b"")                                          # created, empty
            writer.write(b"mx1 postfix/qmgr[1]: not a reject\n")
            writer.write(reject("courier", "198.51.100.3"))          # still the old file
            w.wait_hit("198.51.100.3")
        finally:
            writer.close()
        written += 4
        with open(rot, "ab", buffering=0) as writer:                 # reopened
            writer.write(reject("postscreen", "198.51.100.4"))
            writer.write(reject("exim", "198.51.100.5"))
        written += 2
        w.wait_hit("198.51.100.5")
        # a second rotation, the new file written at once
        os.rename(rot, rot + ".2")
        write(rot, reject("postfix-smtpd", "198.51.100.6"))
        written += 1
        w.wait_hit("198.51.100.6")

        # copytruncate
        write(ct, reject("postfix-smtpd", "198.51.100.7"))
        w.wait_hit("198.51.100.7")
        shutil.copyfile(ct, ct + ".1")
        os.truncate(ct, 0)
        write(ct, reject("exim", "198.51.100.8") + b"mx1 postfix/qmgr[1]: removed\n")
        write(ct, reject("postfix-smtpd", "198.51.100.9"))
        written += 4
        w.wait_hit("198.51.100.9")

        # the file that did not exist at the start: read from its start
        write(later, b"mx1 postfix/master[1]: daemon started\n" +
              reject("courier", "198.51.100.10") + reject("postfix-smtpd", "198.51.100.11"))
        written += 3
        w.wait_hit("198.51.100.11")

        time.sleep(0.3)  # any late duplicate would come now
        s = self.stop_watch(w)
        got = collections.Counter(w.addresses())
        want = collections.Counter("198.51.100.%d" % i for i in range(1, 12))
        self.assertEqual(got, want, "every reject reported exactly once; stderr:\n%s"
                         % w.log()[-3000:])
        self.assertEqual(s["rejects"], 11, "summary: %r" % s)
        self.assertEqual(s["lines"], written, "lines read (each once): %r" % s)


class WatchRulesTest(WatchTestCase):

    MADE_UP = ("2026-11-29T13:20:00.000000+00:00 mx1 frobmtad[4242]: refused connection "
               "from %s (listed in %s)\n")

    def rules_file(self, text, name="rules"):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        os.chmod(p, 0o644)
        return p

    def test_custom_rules(self):
        rules = self.rules_file(
            "# frobmtad, a made-up MTA\n"
            "\n"
            r"frobmtad\[\d+\]: refused connection from (?<addr>[0-9A-Fa-f:.]+) "
            r"\(listed in (?<list>[a-z0-9.-]+)\)$" "\n"
            r"   ^\S+ frobmtad\[\d+\]: dropped (?<addr>\S+)$" "\n")
        log = self.path("mail.log")
        write(log, b"")
        w = self.start_watch([log], watch_rules=rules)
        # line 3 may match anywhere in a line: a warning naming it; line 4
        # is anchored
        warnings = [l for l in w.log().splitlines() if "is not anchored with ^" in l]
        self.assertEqual(len(warnings), 1, w.log())
        self.assertIn("watch_rules %s line 3:" % rules, warnings[0])
        write(log, (self.MADE_UP % ("203.0.113.5", "zen.example")).encode())
        write(log, b"mx1 frobmtad[4242]: dropped 203.0.113.6\n")
        write(log, reject("postfix-smtpd", "203.0.113.7"))    # built-ins still on
        write(log, b"mx1 frobmtad[4242]: dropped not-an-address\n")
        before = self.sentinel(w, log, "203.0.113.8")
        self.assertEqual([(h["addr"], h["rule"], h["list"]) for h in before],
                         [("203.0.113.5", "custom:3", "zen.example"),
                          ("203.0.113.6", "custom:4", "-"),
                          ("203.0.113.7", "postfix-smtpd", "bl.test")])
        self.stop_watch(w)

        # watch_rules_only: the Postfix line gives nothing
        log2 = self.path("mail2.log")
        write(log2, b"")
        w = self.start_watch([log2], watch_rules=rules, watch_rules_only="yes")
        w.wait_log(r"watch: 2 rules")
        write(log2, reject("postfix-smtpd", "203.0.113.9") + reject("exim", "203.0.113.10"))
        write(log2, (self.MADE_UP % ("203.0.113.11", "zen.example")).encode())
        w.wait_hit("203.0.113.11")
        self.assertEqual(w.addresses(), ["203.0.113.11"],
                         "watch_rules_only = yes, yet a built-in rule matched")
        self.stop_watch(w)

    def run_watch_expecting_exit(self, conf_extra, log):
        conf = self.watch_conf(**conf_extra)
        path = self.path("bad.conf")
        with open(path, "w") as f:
            f.writelines("%s = %s\n" % kv for kv in conf.items())
        try:
            return self.run_bw(["watch", "-c", path, log], timeout=5 * slow())
        except subprocess.TimeoutExpired:
            self.fail("breakwater watch with %r kept running" % (conf_extra,))

    def test_bad_rules_files(self):
        log = self.path("mail.log")
        write(log, b"")
        cases = [
            ("does not compile", "# ok so far\n"
             r"frobmtad: (?<addr>\S+) ok" "\n\n"
             r"frobmtad: refused (?<addr>[0-9.]+" "\n", 4, "compile"),
            ("no addr group", r"frobmtad: refused (?<ip>\S+)" "\n", 1, "addr"),
            ("unnamed group only", "\n" r"frobmtad: refused (\S+)" "\n", 2, "addr"),
        ]
        for what, text, line, needle in cases:
            with self.subTest(what):
                rules = self.rules_file(text, "rules-%d" % line)
                p = self.run_watch_expecting_exit({"watch_rules": rules}, log)
                self.assertEqual(p.returncode, 2, "exit status; stderr: %r" % p.stderr)
                self.assertIn("%s:%d:" % (rules, line), p.stderr,
                              "the message must name the file and line")
                self.assertIn(needle, p.stderr)
                self.assertNotIn("watching", p.stderr)
        with self.subTest("missing file"):
            missing = self.path("no-such-rules")
            p = self.run_watch_expecting_exit({"watch_rules": missing}, log)
            self.assertEqual(p.returncode, 2, "stderr: %r" % p.stderr)
            self.assertIn(missing, p.stderr)
        with self.subTest("only comments, watch_rules_only"):
            rules = self.rules_file("# nothing here\n\n", "rules-empty")
            p = self.run_watch_expecting_exit({"watch_rules": rules, "watch_rules_only": "yes"},
                                              log)
            self.assertEqual(p.returncode, 2, "stderr: %r" % p.stderr)
            self.assertIn(rules, p.stderr)


class WatchCountTest(WatchTestCase):

    def test_max_hits(self):
        """watch_max_hits = 2: the first reject counts, the second is the
        ban (action=none without a backend), and counting starts over;
        each address has its own count; a count older than watch_window
        is forgotten."""
        log = self.path("mail.log")
        write(log, b"")
        w = self.start_watch([log], watch_max_hits="2", watch_window="1s")
        a, b = "192.0.2.21", "192.0.2.22"
        write(log, reject("postfix-smtpd", a) + reject("exim", b) + reject("courier", a)
              + reject("postscreen", a))
        hits = w.wait_count(4)
        self.assertEqual([(h["addr"], h["hits"], h["action"]) for h in hits],
                         [(a, 1, "count"), (b, 1, "count"), (a, 2, "none"), (a, 1, "count")])
        time.sleep(1.3)  # b's window passes
        write(log, reject("exim", b))
        hits = w.wait_count(5)
        self.assertEqual((hits[4]["addr"], hits[4]["hits"], hits[4]["action"]),
                         (b, 1, "count"), "watch_window = 1s: %s" % hits[4]["line"])
        s = self.stop_watch(w)
        self.assertEqual(s["rejects"], 5, "summary: %r" % s)


class WatchKillTest(WatchTestCase):
    """One topology and one private Postfix for the class (starting Postfix
    takes seconds); each test has its own client address, breakwater watch
    and freshly loaded nft ruleset."""

    PORT = 25
    NFT_TABLE = "inet breakwater"
    BAN_TIME = 30

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.create_postfix_topology()
        # service_throttle_time: an smtpd killed in its first session
        # (test_kill_process) makes the master throttle the service, by
        # default for 60 s ("bad command startup -- throttling")
        cls.pf = netns.NsPostfix(cls.topo.s, cls.topo.server, port=cls.PORT,
                                 extra_main={"max_use": "1", "service_throttle_time": "1s"})
        cls.addClassCleanup(cls.pf.stop)
        cls.pf.start()

    def setUp(self):
        super().setUp()
        self.S, self.C = self.topo.s, self.topo.c
        self.log = self.path("mail.log")
        write(self.log, b"")

    def start_ns_watch(self, **extra):
        conf = dict(ban_backend="nft", ban_time="%ds" % self.BAN_TIME,
                    ban_ports=str(self.PORT), watch_ports=str(self.PORT))
        conf.update(extra)
        w = Watch(self.tmp, self.watch_conf(**conf), [self.log],
                  name="watch%d" % len(self._daemons))
        w.write_conf()
        # the ruleset watch's bans need, loaded afresh into S
        self.S.run(["nft", "delete", "table"] + self.NFT_TABLE.split())
        p = self.run_bw(["rules", "-c", w.confpath])
        self.assertEqual(p.returncode, 0, "breakwater rules: %s" % p.stderr)
        self.S.check(["nft", "-f", "-"], input=p.stdout)
        self.assertEqual(self.nft4(), {})
        self._daemons.append(w)
        try:
            w.start(preexec_fn=self.S.preexec())
        except AssertionError:
            w.expect_exit = True
            raise
        return w

    def nft4(self):
        return netns.nft_set(self.S, self.NFT_TABLE, "banned4")

    def held(self, source):
        """A client in C that got Postfix's greeting and holds the
        connection; returns (client, pid of the smtpd serving it)."""
        c = netns.smtp_client(self.C, source, self.topo.server, self.PORT, 5 * slow())
        self._cleanups_extra.append(c.close)
        r = c.read_reply()
        self.assertEqual(r.code, 220, r.text)
        self.assertIn("private-postfix", r.text)

        def conn():
            for x in netns.tcp_connections(self.S, self.PORT):
                if x["peer"] == source and x["peer_port"] == c.sport and x["pids"]:
                    return x
            return None
        x = wait_until(conn, 2 * slow(), what="the smtpd of %s:%d in ss" % (source, c.sport))
        self.assertEqual(len(x["pids"]), 1, "one process holds the connection: %s" % x["line"])
        pid = x["pids"][0]
        with open("/proc/%d/comm" % pid) as f:
            self.assertEqual(f.read().strip(), "smtpd", x["line"])
        return c, pid

    def postfix_reject(self, c, pid):
        """The reject smtpd would log for client c (port logging is on)."""
        line = log_line("postfix-smtpd.log", 91).replace(b"[11118]", b"[%d]" % pid) \
            .replace(b"[14858]", b"[%d]" % pid) \
            .replace(b"unknown[127.66.1.7]", b"unknown[%s]:%d" % (c.source.encode(), c.sport)) \
            .replace(b"127.66.1.7", c.source.encode())
        self.assertIn(b"smtpd[%d]" % pid, line)
        return line + b"\n"

    def read_end(self, c, timeout):
        """How the held connection ends for the client: 'reset', 'eof',
        'data: ...' or 'open' (nothing within timeout)."""
        c.sock.settimeout(timeout)
        try:
            data = c.sock.recv(4096)
        except ConnectionResetError:
            return "reset"
        except socket.timeout:
            return "open"
        return "eof" if not data else "data: %r" % data

    def assertBanned(self, addr):
        entry = wait_until(lambda: (self.nft4() or {}).get(addr), 1.0 * slow(), interval=0.05,
                           what="%s in banned4" % addr)
        timeout, expires = entry
        self.assertEqual(timeout, self.BAN_TIME, "ban timeout of %s: %r" % (addr, entry))
        self.assertGreaterEqual(expires, self.BAN_TIME - 3, "ban of %s: %r" % (addr, entry))
        self.assertEqual(netns.connect_result(self.C, addr, self.topo.server, self.PORT), "timeout",
                         "a new connection from the banned %s must be dropped" % addr)
        # ... while a clean client still gets Postfix's greeting
        c = netns.smtp_client(self.C, self.topo.clean, self.topo.server, self.PORT, 5 * slow())
        try:
            self.assertEqual(c.read_reply().code, 220)
            self.assertEqual(c.cmd("QUIT").code, 221)
        finally:
            c.close()

    def wait_maillog(self, pattern):
        rx = re.compile(pattern)
        try:
            return wait_until(lambda: rx.search(self.pf.maillog()), 3 * slow(),
                              what="maillog /%s/" % pattern)
        except AssertionError:
            raise AssertionError("Postfix maillog has no line /%s/; tail:\n%s"
                                 % (pattern, self.pf.maillog_tail(15)))

    def test_kill_socket(self):
        addr = self.topo.listed
        w = self.start_ns_watch()
        c, pid = self.held(addr)
        tag = re.escape("unknown[%s]:%d" % (addr, c.sport))
        t0 = time.monotonic()
        write(self.log, self.postfix_reject(c, pid))
        end = self.read_end(c, KILL_DELAY + 1.0 * slow())
        took = time.monotonic() - t0
        self.assertIn(end, ("reset", "eof"), "the client's connection after the reject line "
                      "(%.2fs); watch stderr:\n%s" % (took, w.log()[-2000:]))
        # the ban at once, the kill watch_kill_delay after it
        self.assertGreaterEqual(took, KILL_DELAY, "ended before watch_kill_delay")
        wait_until(lambda: not netns.pid_alive(pid), 1.0 * slow(), what="smtpd %d to exit" % pid)
        self.assertEqual([x for x in netns.tcp_connections(self.S, self.PORT)
                          if x["peer"] == addr], [], "the connection is still there in S")
        h = w.wait_hit(addr)
        self.assertEqual((h["rule"], h["list"], h["action"]), ("postfix-smtpd", "bl.test", "ban"),
                         h["line"])
        self.wait_maillog(r"lost connection after CONNECT from %s" % tag)
        self.wait_maillog(r"disconnect from %s" % tag)
        self.assertBanned(addr)
        s = self.stop_watch(w)
        self.assertGreaterEqual(s["ended"], 1, "summary: %r" % s)
        self.assertEqual(s["not_ended"], 0, "summary: %r" % s)
        self.assertEqual((s["rejects"], s["asked"], s["applied"], s["failed"]), (1, 1, 1, 0),
                         "summary: %r" % s)

    def test_kill_two_addresses_of_one_network(self):
        """ipv4_prefix = 31: reject lines for two addresses of one /31 within
        a second ban the /31 once and end both addresses' connections (the
        second's although the network's ban was a moment old); a client
        outside the /31 keeps its connection and can connect. With
        watch_kill_delay = 0 the connections end as the ban goes in."""
        w = self.start_ns_watch(ipv4_prefix="31", watch_kill_delay="0")
        first, second, outside = self.topo.listed2, self.topo.spare, self.topo.clean
        c1, pid1 = self.held(first)
        c2, pid2 = self.held(second)
        c3, _ = self.held(outside)
        t0 = time.monotonic()
        write(self.log, self.postfix_reject(c1, pid1) + self.postfix_reject(c2, pid2))
        for c in (c1, c2):
            self.assertIn(self.read_end(c, 1.0 * slow()), ("reset", "eof"),
                          "%s's connection after its reject line; watch stderr:\n%s"
                          % (c.source, w.log()[-2000:]))
        print("\n  watch_kill_delay = 0: both ended %.3f s after the lines" %
              (time.monotonic() - t0), end=" ")
        self.assertEqual(self.read_end(c3, 0.3 * slow()), "open")
        # the /31 in its hash set, by its first address
        net31 = lambda: netns.nft_set(self.S, self.NFT_TABLE, "banned4net31") or {}
        wait_until(lambda: first in net31(), 1.0 * slow(), interval=0.05,
                   what="%s/31 in banned4net31" % first)
        self.assertEqual(list(net31()), [first])
        self.assertEqual(self.nft4(), {})
        self.assertEqual(netns.connect_result(self.C, second, self.topo.server, self.PORT),
                         "timeout")
        self.assertEqual(netns.connect_result(self.C, outside, self.topo.server, self.PORT),
                         "connected")
        s = self.stop_watch(w)
        self.assertGreaterEqual(s["ended"], 2, "summary: %r" % s)
        self.assertEqual(s["not_ended"], 0, "summary: %r" % s)

    def test_kill_within_half_the_ban(self):
        """A kill never comes after its ban has ended (the address could
        then be on a new, unrefused connection): with watch_kill_delay =
        10s and a 2 s ban, the connection ends half the ban (1 s) after
        the line, not 10 s."""
        addr = self.topo.spare
        w = self.start_ns_watch(watch_kill_delay="10s", ban_time="2s")
        c, pid = self.held(addr)
        t0 = time.monotonic()
        write(self.log, self.postfix_reject(c, pid))
        end = self.read_end(c, 1.0 + 2.0 * slow())
        took = time.monotonic() - t0
        self.assertIn(end, ("reset", "eof"), "after %.2f s; watch stderr:\n%s"
                      % (took, w.log()[-2000:]))
        self.assertGreaterEqual(took, 1.0, "ended before half the ban")
        print("\n  ban 2 s, watch_kill_delay 10 s: ended %.3f s after the line" % took, end=" ")
        s = self.stop_watch(w)
        self.assertEqual((s["applied"], s["ended"]), (1, 1), "summary: %r" % s)

    def test_kill_decided_before_a_stop(self):
        """SIGTERM between a ban and its kill: watch's stop waits for the
        kill already decided (watch_kill_delay after the ban) and its
        summary counts it; the connection does not stay open."""
        addr = self.topo.listed
        w = self.start_ns_watch(watch_kill_delay="3s")
        c, pid = self.held(addr)
        write(self.log, self.postfix_reject(c, pid))
        self.assertEqual(w.wait_hit(addr)["action"], "ban")
        wait_until(lambda: addr in (self.nft4() or {}), 1.0 * slow(), interval=0.05,
                   what="%s in banned4" % addr)
        self.assertEqual(self.read_end(c, 0.1), "open", "ended before watch_kill_delay")
        t0 = time.monotonic()
        s = self.stop_watch(w)
        took = time.monotonic() - t0
        self.assertIn(self.read_end(c, 1.0 * slow()), ("reset", "eof"))
        print("\n  stopped %.3f s after SIGTERM, the kill counted" % took, end=" ")
        self.assertEqual((s["applied"], s["ended"], s["not_ended"]), (1, 1, 0),
                         "summary: %r" % s)

    def test_kill_none_and_max_hits(self):
        """watch_kill = none, watch_max_hits = 2: the first reject only
        counts (no ban: a new connection gets through), the second bans;
        the connection held meanwhile stays open and usable (only SYNs of
        a banned address are dropped)."""
        addr = self.topo.listed2
        w = self.start_ns_watch(watch_kill="none", watch_max_hits="2")
        c, pid = self.held(addr)
        write(self.log, self.postfix_reject(c, pid))
        h = w.wait_hit(addr)
        self.assertEqual((h["hits"], h["action"]), (1, "count"), h["line"])
        self.assertNotIn(addr, self.nft4() or {}, "banned after one reject of two")
        self.assertEqual(netns.connect_result(self.C, addr, self.topo.server, self.PORT),
                         "connected", "not banned yet")

        write(self.log, self.postfix_reject(c, pid))
        hits = w.wait_count(2)
        self.assertEqual((hits[1]["addr"], hits[1]["hits"], hits[1]["action"]),
                         (addr, 2, "ban"), hits[1]["line"])
        self.assertBanned(addr)
        self.assertEqual(self.read_end(c, 0.5), "open", "watch_kill = none ended the connection")
        self.assertTrue(netns.pid_alive(pid), "watch_kill = none, yet smtpd %d is gone" % pid)
        self.assertTrue([x for x in netns.tcp_connections(self.S, self.PORT)
                         if x["peer"] == addr and x["peer_port"] == c.sport],
                        "the held connection is gone from S")
        r = c.cmd("EHLO client.test")
        self.assertEqual(r.code, 250, "the held connection no longer works: %r" % r.text)
        self.assertEqual(c.cmd("QUIT").code, 221)
        c.close()
        s = self.stop_watch(w)
        self.assertEqual((s["ended"], s["not_ended"]), (0, 0), "summary: %r" % s)
        self.assertEqual((s["rejects"], s["asked"], s["applied"], s["failed"]), (2, 1, 1, 0),
                         "summary: %r" % s)

    def test_kill_process(self):
        """watch_kill = process: the smtpd holding the connection gets
        SIGTERM (the fallback for kernels without SOCK_DESTROY). smtpd runs
        as user postfix: the helper must read another user's /proc/PID/fd
        (CAP_DAC_READ_SEARCH and CAP_SYS_PTRACE, killconn.c)."""
        addr = self.topo.spare
        w = self.start_ns_watch(watch_kill="process")
        c, pid = self.held(addr)
        write(self.log, self.postfix_reject(c, pid))
        end = self.read_end(c, KILL_DELAY + 1.0 * slow())
        self.assertIn(end, ("reset", "eof"), "the client's connection after the reject line; "
                      "watch stderr:\n%s" % w.log()[-2000:])
        wait_until(lambda: not netns.pid_alive(pid), 1.0 * slow(), what="smtpd %d to exit" % pid)
        self.wait_maillog(r"process \S*/smtpd pid %d killed by signal 15" % pid)
        self.assertEqual(w.wait_hit(addr)["action"], "ban")
        self.assertBanned(addr)
        s = self.stop_watch(w)
        self.assertEqual((s["asked"], s["applied"], s["failed"]), (1, 1, 0), "summary: %r" % s)
        self.assertGreaterEqual(s["ended"], 1, "summary: %r" % s)
        self.assertEqual(s["not_ended"], 0, "summary: %r" % s)

    def test_kill_process_spares_a_shared_process(self):
        """watch_kill = process never signals a process that also serves
        another client (postscreen, a proxy): one process in S holds the
        banned client's connection to a watch port and a clean client's to
        another port it listens on; after the reject it lives on, both
        connections stay open, and watch counts and logs the connection it
        did not end."""
        port = 2527
        server = subprocess.Popen(
            ["python3", "-c", "import socket,sys,time\n"
             "ls = [socket.create_server((sys.argv[1], int(p))) for p in sys.argv[2:]]\n"
             "held = [l.accept()[0] for l in ls]\n"
             "print('held', flush=True)\n"
             "time.sleep(60)\n", self.topo.server, str(port), str(port + 1)],
            stdout=subprocess.PIPE, text=True, preexec_fn=self.S.preexec())
        self.addCleanup(server.wait)
        self.addCleanup(server.kill)
        w = self.start_ns_watch(watch_kill="process", watch_ports=str(port))
        clients = []
        for source, to in ((self.topo.listed2, port), (self.topo.clean, port + 1)):
            c = wait_until(lambda: self.connect_or_none(source, to), 5 * slow(),
                           what="%s connected to port %d" % (source, to))
            self._cleanups_extra.append(c.close)
            clients.append(c)
        self.assertEqual(server.stdout.readline().strip(), "held")
        write(self.log, reject("postfix-smtpd", self.topo.listed2))
        self.assertEqual(w.wait_hit(self.topo.listed2)["action"], "ban")
        w.wait_log("also serves other clients", timeout=2 * slow())
        for c in clients:
            self.assertEqual(self.read_end(c, 0.5 * slow()), "open", c.source)
        self.assertIsNone(server.poll(), "the shared process was signalled")
        s = self.stop_watch(w)
        self.assertEqual(s["ended"], 0, "summary: %r" % s)
        self.assertGreaterEqual(s["not_ended"], 1, "summary: %r" % s)

    def connect_or_none(self, source, port):
        try:
            return netns.smtp_client(self.C, source, self.topo.server, port, 5 * slow())
        except OSError:
            return None

if __name__ == "__main__":
    unittest.main()
