"""breakwater watch --journal: entries of a real systemd journal, written
live by systemd-journal-remote (journald itself does not run here), are
matched like log lines; entries that were there before the start are not."""

import os
import subprocess

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


def entry(n, ident, pid, message):
    """One entry in journal export format."""
    return ("__REALTIME_TIMESTAMP=%d\n__MONOTONIC_TIMESTAMP=%d\n_BOOT_ID=%s\n"
            "SYSLOG_IDENTIFIER=%s\n_PID=%d\nMESSAGE=%s\n\n"
            % (1764420000000000 + n * 1000, n, BOOT_ID, ident, pid, message)).encode()


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

    def write(self, ident, pid, message):
        self.n += 1
        self.writer.write(entry(self.n, ident, pid, message))

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

    def test_from_start(self):
        self.write("postfix/postscreen", 42, "DNSBL rank 3 for [203.0.113.8]:4444")
        self.journal_holds("203.0.113.8")
        d = self.start_watch("--from-start", "--journal=%s" % self.dir)
        d.wait_log(r"watch client=\[203\.0\.113\.8\] rule=postscreen", timeout=5 * SLOW)

    def test_bad_options(self):
        for args, needle in ((["watch", "--journal=relative"], "unknown option"),
                             (["watch", "--frobnicate"], "unknown option"),
                             (["watch", "-c", "/dev/null", "-o", "watch_logs=", "-o",
                               "ban_backend=none"], "give 1 to 16 log files")):
            p = self.run_bw(args)
            self.assertEqual(p.returncode, 2, "%s: %s" % (args, p.stderr))
            self.assertIn(needle, p.stderr)
