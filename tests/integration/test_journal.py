"""breakwater watch --journal: entries of a real systemd journal are matched
like log lines; entries that were there before the start are not; only the
entries of watch_journal_users count.

JournalTest: entries written live by systemd-journal-remote (export
format, so a test sets every field, _UID included). JournaldTest: a real
systemd-journald, started in a private mount namespace on directories of
the test's own, fed by `logger` run as a user of the test's choice: the
_UID it records is the kernel's word, not the sender's."""

import json
import os
import pwd
import subprocess
import time

import harness
from harness import SLOW, BreakwaterTestCase

JOURNAL_REMOTE = "/lib/systemd/systemd-journal-remote"
BOOT_ID = "0123456789abcdef0123456789abcdef"


class WatchDaemon(harness.Daemon):
    """breakwater watch with the harness's config file and clean-up."""

    def __init__(self, tmpdir, conf, args):
        super().__init__(tmpdir, conf, (), name="watch")
        self.args = list(args)

    def argv(self):
        return [harness.BINARY, "watch", "-c", self.confpath] + self.args


def entry(n, ident, pid, message, uid=0):
    """One entry in journal export format; uid None: no _UID field."""
    return ("__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n"
            "SYSLOG_IDENTIFIER=%s\n_PID=%d\n%sMESSAGE=%s\n\n"
            % (1764420000000000 + n * 1000, n, BOOT_ID, ident, pid,
               "" if uid is None else "_UID=%d\n" % uid, message)).encode()


def postfix_reject(addr):
    return ("NOQUEUE: reject: RCPT from unknown[%s]: 554 5.7.1 Service unavailable; Client "
            "host [%s] blocked using zen.example; from=<a@b> to=<c@d> proto=ESMTP helo=<x>"
            % (addr, addr))


class JournalTest(BreakwaterTestCase):

    def setUp(self):
        super().setUp()
        if not os.path.exists(JOURNAL_REMOTE):
            self.skipTest("systemd-journal-remote is not installed")
        self.dir = os.path.join(self.tmp, "journal")
        os.makedirs(self.dir)
        fifo = os.path.join(self.tmp, "entries")
        os.mkfifo(fifo)
        self.remote = subprocess.Popen([JOURNAL_REMOTE, "--output=%s/remote.journal" % self.dir,
                                        fifo], stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
        self._cleanups_extra.append(lambda: harness.stop_process(self.remote))
        self.writer = open(fifo, "wb", buffering=0)
        self._cleanups_extra.append(self.writer.close)
        self.n = 0

    def write(self, ident, pid, message, uid=0):
        self.n += 1
        self.writer.write(entry(self.n, ident, pid, message, uid))

    def journal_holds(self, text):
        """Waits until the journal files hold text (so that it was there
        before the watcher started), and lets the watcher read them."""
        path = os.path.join(self.dir, "remote.journal")

        def there():
            p = subprocess.run(["journalctl", "--directory", self.dir, "-o", "cat"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            return text in p.stdout.decode("utf-8", "replace")
        harness.wait_until(there, 5 * SLOW, what="%r in the journal" % text)
        os.chmod(path, 0o644)   # the watcher runs as nobody

    def start_watch(self, *args):
        state = os.path.join(self.tmp, "state")
        conf = {"ban_backend": "none", "user": "nobody", "state_dir": state,
                "log_level": "info"}
        d = WatchDaemon(self.tmp, conf, args)
        d.start(wait=False)
        self._daemons.append(d)
        d.wait_log(r"watching the journal", timeout=5 * SLOW)
        return d

    def test_new_entries_matched_old_ones_not(self):
        self.write("postfix/postscreen", 42, "DNSBL rank 3 for [203.0.113.8]:4444")
        self.journal_holds("203.0.113.8")
        d = self.start_watch("--journal=%s" % self.dir)
        self.write("postfix/smtpd", 43, "NOQUEUE: reject: RCPT from unknown[198.51.100.9]: "
                   "554 5.7.1 Service unavailable; Client host [198.51.100.9] blocked using "
                   "zen.example; from=<a@b> to=<c@d> proto=ESMTP helo=<x>")
        self.write("postfix/smtpd", 43, "NOQUEUE: reject_warning: RCPT from unknown[198.51.100.10]"
                   ": 554 5.7.1 Service unavailable; Client host [198.51.100.10] blocked using "
                   "zen.example; from=<a@b>")
        self.write("courieresmtpd", 44, "error,relay=::ffff:192.0.2.44,port=1234,from=<a@b>,"
                   "to=<c@d>: 511 Listed in bl.test")
        line = d.wait_log(r"watch client=\[192\.0\.2\.44\]", timeout=5 * SLOW)
        self.assertIn("rule=courier", line)
        line = d.wait_log(r"watch client=\[198\.51\.100\.9\]")
        self.assertIn("rule=postfix-smtpd list=zen.example", line)
        log = d.log()
        self.assertNotIn("203.0.113.8", log, "an entry from before the start was reported")
        self.assertNotIn("198.51.100.10", log, "a reject_warning was reported")
        self.assertEqual(d.stop(), 0)
        self.assertRegex(d.log(), r"watch: \d+ lines, 2 rejects")

    def test_only_entries_of_trusted_users(self):
        """The same reject from uid 65534 (nobody, not in the default
        watch_journal_users), from an entry without _UID, and from root:
        only root's counts; with watch_journal_users = nobody, nobody's."""
        self.write("breakwater-test", 44, "journal up")
        self.journal_holds("journal up")
        d = self.start_watch("--journal=%s" % self.dir)
        self.write("postfix/smtpd", 45, postfix_reject("192.0.2.45"), uid=65534)
        self.write("postfix/smtpd", 46, postfix_reject("192.0.2.46"), uid=None)
        self.write("postfix/smtpd", 47, postfix_reject("192.0.2.47"), uid=0)
        d.wait_log(r"watch client=\[192\.0\.2\.47\]", timeout=5 * SLOW)
        log = d.log()
        self.assertNotIn("client=[192.0.2.45]", log, "an entry of uid 65534 was matched")
        self.assertNotIn("client=[192.0.2.46]", log, "an entry without _UID was matched")
        self.assertIn("entries of uid 65534 (not one of watch_journal_users) are not read", log)
        self.assertEqual(d.stop(), 0)
        d = self.start_watch("-o", "watch_journal_users=nobody", "--journal=%s" % self.dir)
        self.write("postfix/smtpd", 48, postfix_reject("192.0.2.48"), uid=0)
        self.write("postfix/smtpd", 49, postfix_reject("192.0.2.49"), uid=65534)
        d.wait_log(r"watch client=\[192\.0\.2\.49\]", timeout=5 * SLOW)
        self.assertNotIn("client=[192.0.2.48]", d.log())

    def test_from_start(self):
        self.write("postfix/postscreen", 42, "DNSBL rank 3 for [203.0.113.8]:4444")
        self.journal_holds("203.0.113.8")
        d = self.start_watch("--from-start", "--journal=%s" % self.dir)
        d.wait_log(r"watch client=\[203\.0\.113\.8\] rule=postscreen", timeout=5 * SLOW)

    def test_bad_options(self):
        for args, needle in ((["watch", "--journal=relative"], "unknown option"),
                             (["watch", "-c", "/dev/null", "-o",
                               "watch_journal_users=nosuchuser1, nosuchuser2", "--journal"],
                              "none of 'nosuchuser1, nosuchuser2' is a user here"),
                             (["watch", "-c", "/dev/null", "-o",
                               "watch_journal_users=root;evil", "--journal"],
                              "not a user name"),
                             (["watch", "--frobnicate"], "unknown option"),
                             (["watch", "-c", "/dev/null", "-o", "watch_logs=", "-o",
                               "ban_backend=none"], "give 1 to 16 log files")):
            p = self.run_bw(args)
            self.assertEqual(p.returncode, 2, "%s: %s" % (args, p.stderr))
            self.assertIn(needle, p.stderr)


class JournaldTest(BreakwaterTestCase):
    """A real systemd-journald in a private mount namespace: /run/systemd
    and /run/log are the test's directories there, so its sockets and
    journal files are reachable from here. `logger` sends to its syslog
    socket as root, as postfix (the user Postfix's smtpd runs as) or as
    nobody (any local user)."""

    JOURNALD = "/lib/systemd/systemd-journald"

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root (a mount namespace for journald)")
        if not os.path.exists(self.JOURNALD):
            self.skipTest("systemd-journald is not installed")
        try:
            pwd.getpwnam("postfix")
        except KeyError:
            self.skipTest("no postfix user (the postfix package is not installed)")
        self.run_dir = os.path.join(self.tmp, "run-systemd")
        self.log_dir = os.path.join(self.tmp, "run-log")
        os.makedirs(self.run_dir)
        os.makedirs(self.log_dir)
        script = ("mount --bind %s /run/systemd && mount --bind %s /run/log && exec %s"
                  % (self.run_dir, self.log_dir, self.JOURNALD))
        self.journald = subprocess.Popen(["unshare", "--mount", "--propagation", "private",
                                          "sh", "-c", script],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._cleanups_extra.append(lambda: harness.stop_process(self.journald))
        self.socket = os.path.join(self.run_dir, "journal", "dev-log")
        with open("/etc/machine-id") as f:
            self.dir = os.path.join(self.log_dir, "journal", f.read().strip())
        harness.wait_until(lambda: os.path.exists(self.socket) and os.path.isdir(self.dir),
                           5 * SLOW, what="journald's syslog socket and journal directory")
        self.written = []

    def logger(self, user, tag, message):
        """`logger -t tag message` run as user, through journald's socket."""
        argv = ["logger", "-u", self.socket, "-t", tag, message]
        if user != "root":
            pw = pwd.getpwnam(user)
            argv = ["setpriv", "--reuid=%d" % pw.pw_uid, "--regid=%d" % pw.pw_gid,
                    "--clear-groups"] + argv
        subprocess.run(argv, check=True, timeout=10)

    def journal_text(self):
        """The journal's entries (uid, identifier, message), for a failure."""
        p = subprocess.run(["journalctl", "-D", self.dir, "-o", "json", "--no-pager"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=10,
                           universal_newlines=True)
        out = []
        for line in p.stdout.splitlines():
            try:
                e = json.loads(line)
            except ValueError:
                out.append(line)
                continue
            out.append("%s %s %s %s: %s" % (e.get("__REALTIME_TIMESTAMP"), e.get("_UID"),
                                           e.get("_TRANSPORT"), e.get("SYSLOG_IDENTIFIER"),
                                           e.get("MESSAGE")))
        return "\n".join(out)

    def start_watch(self):
        harness.wait_until(lambda: any(n.endswith(".journal") for n in os.listdir(self.dir)),
                           5 * SLOW, what="a journal file")
        for name in os.listdir(self.dir):
            os.chmod(os.path.join(self.dir, name), 0o644)  # the watcher runs as nobody
        os.chmod(self.dir, 0o755)
        conf = {"ban_backend": "none", "user": "nobody",
                "state_dir": os.path.join(self.tmp, "state"), "log_level": "info"}
        d = WatchDaemon(self.tmp, conf, ["--journal=%s" % self.dir])
        d.start(wait=False)
        self._daemons.append(d)
        d.wait_log(r"watching the journal", timeout=5 * SLOW)
        return d

    def test_logger_of_a_local_user_bans_nothing(self):
        """nobody's `logger -t postfix/smtpd` with a whole DNSBL reject of
        192.0.2.99 (the address of a partner's MX, say) bans nothing; the
        same words logged as user postfix are Postfix's and count."""
        self.logger("root", "breakwater-test", "journal up")
        # journald starts by copying the kernel's ring buffer (thousands of
        # lines here: other tests' namespaces). A watch that took its place
        # at the journal's end while that went on never read the entries
        # logged next in 3 of 30 runs under load (why it lost its place
        # inside libsystemd is not settled; an MTA's journal is long past
        # its start). Starting it once journald has written this first
        # line: 0 of 30.
        harness.wait_until(lambda: "breakwater-test: journal up" in self.journal_text(),
                           10 * SLOW, what="journald to write its first entries")
        d = self.start_watch()
        for tag in ("postfix/smtpd", "postfix/postscreen", "courieresmtpd", "exim"):
            self.logger("nobody", tag, postfix_reject("192.0.2.99"))
        self.logger("nobody", "postfix/postscreen", "DNSBL rank 9 for [192.0.2.99]:25")
        self.logger("nobody", "courieresmtpd", "error,relay=192.0.2.99,port=1,from=<a>,"
                    "to=<b>: 511 Listed")
        self.logger("postfix", "postfix/smtpd", postfix_reject("198.51.100.77"))
        line = d.wait_log(r"watch client=\[198\.51\.100\.77\]", timeout=5 * SLOW)
        self.assertIn("rule=postfix-smtpd list=zen.example hits=1 action=", line)
        self.assertNotIn("192.0.2.99", d.log(), "a local user's logger line was matched")
        try:
            d.wait_log(r"entries of uid %d \(not one of watch_journal_users\)"
                       % pwd.getpwnam("nobody").pw_uid, timeout=5 * SLOW)
        except AssertionError:
            raise AssertionError("no 'entries of uid' line in watch's log:\n%s\nthe journal:\n%s"
                                 % (d.log()[-3000:], self.journal_text()[-6000:]))
        self.assertEqual(d.stop(), 0)
        self.assertRegex(d.log(), r"watch: \d+ lines, 1 rejects")
