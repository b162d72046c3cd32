"""A private, throwaway Postfix instance for integration tests.

It lives entirely under a temporary folder: its own config_directory
(main.cf, master.cf), queue_directory, data_directory and a maillog file
written by its own postlogd. It never reads or changes the system instance's
configuration in /etc/postfix (only the read-only meta files in
meta_directory, as every Postfix command does), and never needs it running.

    with PrivatePostfix(proxy_protocol="haproxy", plain_service=True) as pf:
        smtp to 127.0.0.1:pf.port ...
        pf.wait_log(r"connect from unknown\\[198\\.51\\.100\\.7\\]")

How it runs (root only; the daemons drop to the `postfix` user):
    postfix -c DIR start          # = the checks of `postfix check` (creates
                                  # the queue tree, data dir), then master -w,
                                  # which returns once the master is up
    postfix -c DIR stop           # bounded; then SIGKILL of the master's
                                  # process group as a last resort

`postfix -c DIR` needs no `alternate_config_directories` entry in
/etc/postfix/main.cf: the postfix command is reserved for the superuser
anyway, and that list is consulted only by the set-gid commands postqueue(1)
and postdrop(1) (postconf(5)), which this instance never uses (no sendmail,
no pickup). `postfix -c` exports MAIL_CONFIG, and the master's -c passes the
directory on to every daemon (import_environment keeps MAIL_CONFIG).

Postfix writes its command-line errors to stderr only when stderr is a
terminal, so the commands run on a pseudo-terminal and its text is captured
(`PostfixError` carries it, together with the maillog tail).

The SMTP service is a dedicated `127.0.0.1:PORT inet` line in master.cf,
optionally with `-o smtpd_upstream_proxy_protocol=haproxy` (PROXY v1 and
v2). `mynetworks` trusts 127.0.0.0/8 on purpose -- the dangerous default a
transparent front end must neutralise -- except 127.1.0.0/16, which stands
in for outside clients (see MYNETWORKS). Relaying is governed by
`smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination`
(554 5.7.1 Relay access denied). Mail for the local domain is accepted for
any local part and discarded; nothing ever leaves the instance
(default/relay transports are `discard:` too).
"""

import os
import pty
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from harness import SMTPClient, free_port

POSTFIX = shutil.which("postfix", path="/usr/sbin:/usr/bin:/sbin:/bin") or "/usr/sbin/postfix"

__all__ = ["PrivatePostfix", "PostfixError", "postfix_available",
           "proxy_v2_header", "MYNETWORKS", "UNTRUSTED_LOOPBACK"]


class PostfixError(RuntimeError):
    pass


def postfix_available():
    """(ok, reason): whether a private instance can run here."""
    if not os.path.exists(POSTFIX):
        return False, "postfix not installed (%s missing)" % POSTFIX
    if os.geteuid() != 0:
        return False, "needs root (a private Postfix instance)"
    return True, ""


def _run_on_pty(argv, timeout, env=None):
    """Run argv with stdout/stderr on a pseudo-terminal (Postfix prints its
    diagnostics only to a terminal). Returns (exit code, text). Bounded."""
    master, slave = pty.openpty()
    try:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=slave,
                                stderr=slave, env=env, close_fds=True,
                                start_new_session=True)
    except BaseException:
        os.close(master)
        os.close(slave)
        raise
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
                chunks.append(b"\n[timed out after %.1fs]\n" % timeout)
                break
            r, _, _ = select.select([master], [], [], min(left, 0.2))
            if r:
                try:
                    data = os.read(master, 65536)
                except OSError:     # EIO: every writer closed the terminal
                    data = b""
                if not data:
                    proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                    break
                chunks.append(data)
            elif proc.poll() is not None:
                # Exited but a daemon it forked may still hold the terminal
                # (the master redirects its own fds to /dev/null, so this is
                # rare); drain what is there and stop.
                while select.select([master], [], [], 0)[0]:
                    try:
                        data = os.read(master, 65536)
                    except OSError:
                        break
                    if not data:
                        break
                    chunks.append(data)
                break
    finally:
        os.close(master)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    return proc.returncode, text


# Debian's (and Postfix's own, mynetworks_style = host on Linux, where lo is
# 127.0.0.1/8) default trusts all of 127.0.0.0/8 for relaying -- which
# includes a front end connecting from 127.0.0.1. Tests cannot use real
# outside addresses without network namespaces, so 127.1.0.0/16 stands in
# for "the internet": test clients bind there, and it is carved out of the
# trusted block. Everything else in 127/8 (the front end's 127.0.0.1) stays
# trusted, as in a careless real deployment.
UNTRUSTED_LOOPBACK = "127.1.0.0/16"
MYNETWORKS = "!%s, 127.0.0.0/8" % UNTRUSTED_LOOPBACK


class PrivatePostfix:
    """A throwaway Postfix listening on 127.0.0.1:port only.

    proxy_protocol: "" (plain smtpd) or "haproxy" (PROXY v1/v2 required).
    plain_service: also run a second smtpd on 127.0.0.1:plain_port without
    the upstream proxy protocol (the careless deployment, for contrast).
    domain: the only local domain (mydestination); any local part is
    accepted and the mail discarded.
    """

    def __init__(self, port=None, proxy_protocol="haproxy",
                 domain="example.test", mynetworks=MYNETWORKS,
                 plain_service=False,
                 base_dir=None, extra_main=None, keep=False,
                 start_timeout=15.0, stop_timeout=8.0):
        self.port = port
        self.plain_service = plain_service
        self.plain_port = None
        self.proxy_protocol = proxy_protocol
        self.domain = domain
        self.mynetworks = mynetworks
        self.extra_main = dict(extra_main or {})
        self.keep = keep or bool(os.environ.get("KEEP_POSTFIX"))
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.base_dir = base_dir
        self.dir = None
        self.running = False
        self.log_text = ""      # output of postfix commands (pty)

    # -- paths -------------------------------------------------------------
    @property
    def config_dir(self):
        return os.path.join(self.dir, "etc")

    @property
    def queue_dir(self):
        return os.path.join(self.dir, "queue")

    @property
    def data_dir(self):
        return os.path.join(self.dir, "data")

    @property
    def maillog_path(self):
        return os.path.join(self.dir, "maillog")

    @property
    def address(self):
        return ("127.0.0.1", self.port)

    # -- configuration -----------------------------------------------------
    def main_cf(self):
        d = self.dir
        conf = [
            ("compatibility_level", "3.6"),
            ("config_directory", self.config_dir),
            ("queue_directory", self.queue_dir),
            ("data_directory", self.data_dir),
            ("mail_owner", "postfix"),
            ("syslog_name", "postfix-bwtest"),
            ("maillog_file", self.maillog_path),
            ("maillog_file_prefixes", d),
            ("myhostname", "mx." + self.domain),
            ("mydomain", self.domain),
            ("myorigin", "$myhostname"),
            ("mydestination", self.domain),
            ("inet_interfaces", "127.0.0.1"),
            ("inet_protocols", "ipv4"),
            # The dangerous default under test: loopback is trusted.
            ("mynetworks", self.mynetworks),
            ("smtpd_relay_restrictions",
             "permit_mynetworks, reject_unauth_destination"),
            ("smtpd_recipient_restrictions", ""),
            ("relay_domains", ""),
            ("smtpd_banner", "$myhostname ESMTP private-postfix"),
            # No reverse DNS of clients: deterministic "unknown[addr]", fast.
            ("smtpd_peername_lookup", "no"),
            ("smtpd_client_port_logging", "yes"),
            ("biff", "no"),
            ("append_dot_mydomain", "no"),
            # Any local part of the local domain exists; mail is discarded.
            ("local_recipient_maps", ""),
            ("alias_maps", ""),
            ("alias_database", ""),
            ("local_transport", "discard:"),
            # Nothing leaves the instance, ever: mail it would relay is
            # accepted (so an open relay shows as 250) and discarded. An
            # error: transport would already refuse it at RCPT (550 5.1.1).
            ("default_transport", "discard:"),
            ("relay_transport", "discard:"),
            ("relayhost", ""),
            ("smtp_dns_support_level", "disabled"),
            ("notify_classes", ""),
            ("bounce_notice_recipient", "postmaster"),
            ("smtpd_upstream_proxy_timeout", "5s"),
            ("message_size_limit", "10240000"),
            ("mailbox_size_limit", "0"),
            ("multi_instance_enable", "no"),
        ]
        conf.extend(self.extra_main.items())
        return "".join("%s = %s\n" % kv for kv in conf)

    def master_cf(self):
        smtpd = "127.0.0.1:%d inet n - n - - smtpd\n" % self.port
        if self.proxy_protocol:
            smtpd += "  -o smtpd_upstream_proxy_protocol=%s\n" % self.proxy_protocol
        smtpd += "  -o syslog_name=postfix-bwtest/smtpd\n"
        if self.plain_service:
            smtpd += ("127.0.0.1:%d inet n - n - - smtpd\n"
                      "  -o smtpd_upstream_proxy_protocol=\n"
                      "  -o syslog_name=postfix-bwtest/plain\n" % self.plain_port)
        # chroot "n" everywhere: nothing to populate under the queue dir.
        return smtpd + """\
cleanup    unix n - n - 0 cleanup
qmgr       unix n - n 300 1 qmgr
rewrite    unix - - n - - trivial-rewrite
bounce     unix - - n - 0 bounce
defer      unix - - n - 0 bounce
trace      unix - - n - 0 bounce
verify     unix - - n - 1 verify
flush      unix n - n 1000? 0 flush
proxymap   unix - - n - - proxymap
proxywrite unix - - n - 1 proxymap
error      unix - - n - - error
retry      unix - - n - - error
discard    unix - - n - - discard
anvil      unix - - n - 1 anvil
scache     unix - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
"""

    # -- lifecycle ---------------------------------------------------------
    def _postfix(self, *args, timeout=None):
        argv = [POSTFIX, "-c", self.config_dir] + list(args)
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        rc, out = _run_on_pty(argv, timeout or self.start_timeout, env=env)
        self.log_text += "$ %s\n%s" % (" ".join(argv), out)
        return rc, out

    def start(self):
        ok, why = postfix_available()
        if not ok:
            raise PostfixError(why)
        if self.port is None:
            self.port = free_port()
        if self.plain_service and self.plain_port is None:
            while self.plain_port in (None, self.port):
                self.plain_port = free_port()
        self.dir = tempfile.mkdtemp(prefix="bwpf-", dir=self.base_dir)
        # Daemons run as `postfix` and must traverse into the queue.
        os.chmod(self.dir, 0o755)
        os.makedirs(self.config_dir, 0o755)
        # `postfix` chdirs here before anything else; the rest of the queue
        # tree (and data_directory) is made by `postfix check`.
        os.makedirs(self.queue_dir, 0o755)
        with open(os.path.join(self.config_dir, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.config_dir, "master.cf"), "w") as f:
            f.write(self.master_cf())
        try:
            # `postfix start` runs the same integrity checks as `postfix
            # check` (post-install create-missing makes the queue tree and
            # data_directory, postsuper, permission warnings) and then
            # `master -w`, which returns once the master is initialised.
            rc, out = self._postfix("start")
            if rc != 0:
                rc2, out2 = self._postfix("check")
                raise PostfixError("postfix start failed (%d):\n%s\n"
                                   "postfix check (%d):\n%s\nmaillog:\n%s"
                                   % (rc, out, rc2, out2, self.maillog_tail()))
            self.running = True
            self._wait_listening()
        except BaseException:
            self.stop()
            raise
        return self

    def _listening(self, port):
        """Whether 127.0.0.1:port is in LISTEN state, read from
        /proc/net/tcp: a probe connection would put a spurious
        "connect from ...[127.0.0.1]" in the maillog."""
        want = "0100007F:%04X" % port
        try:
            with open("/proc/net/tcp") as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[1] == want and fields[3] == "0A":
                        return True
        except OSError:
            pass
        return False

    def _wait_listening(self):
        # `postfix start` (master -w) returns once the master has bound its
        # sockets; this only double-checks, without connecting.
        deadline = time.monotonic() + self.start_timeout
        while not all(self._listening(p) for p in (self.port, self.plain_port) if p):
            if time.monotonic() > deadline:
                raise PostfixError("postfix not listening on %s:%d\n%s\n%s"
                                   % (self.address + (self.log_text,
                                                      self.maillog_tail())))
            time.sleep(0.05)

    def master_pid(self):
        try:
            with open(os.path.join(self.queue_dir, "pid", "master.pid")) as f:
                return int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    @staticmethod
    def _alive(pid):
        """Running (a zombie counts as gone: the daemonised master is
        reparented to PID 1, which may reap it only later)."""
        try:
            with open("/proc/%d/stat" % pid) as f:
                return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
        except (OSError, IndexError):
            return False

    def stop(self):
        """Stop the instance (bounded) and remove its folder. Idempotent."""
        if self.dir is None:
            return
        pid = self.master_pid()
        if pid and self._alive(pid):
            self._postfix("stop", timeout=self.stop_timeout)
            deadline = time.monotonic() + 2.0
            while self._alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if self._alive(pid):
                # The master is a session and process-group leader: this
                # reaches it and the daemons it started, and nothing else.
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
        self.running = False
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- log ---------------------------------------------------------------
    def maillog(self):
        try:
            with open(self.maillog_path, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def maillog_tail(self, lines=40):
        return "\n".join(self.maillog().splitlines()[-lines:])

    def wait_log(self, pattern, timeout=5.0):
        """Wait until the maillog matches regex pattern; return the match
        or None (logging is asynchronous through postlogd)."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.maillog())
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)


def proxy_v2_header(src, dst):
    """PROXY protocol v2 header, PROXY command, TCP over IPv4.
    src, dst: (ipv4 address, port)."""
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    body = (socket.inet_aton(src[0]) + socket.inet_aton(dst[0])
            + src[1].to_bytes(2, "big") + dst[1].to_bytes(2, "big"))
    return sig + bytes([0x21, 0x11]) + len(body).to_bytes(2, "big") + body


if __name__ == "__main__":
    # Standalone self-check: python3 tests/integration/postfix.py
    def dialogue(c, rcpts):
        out = [c.read_reply(), c.cmd("EHLO client.test"),
               c.cmd("MAIL FROM:<a@sender.test>")]
        out += [c.cmd("RCPT TO:<%s>" % r) for r in rcpts]
        out.append(c.cmd("QUIT"))
        for r in out:
            print("  ", r.text.replace("\n", "\n   "))

    hdr = proxy_v2_header(("198.51.100.7", 4321), ("127.0.0.1", 25))
    with PrivatePostfix(proxy_protocol="haproxy", plain_service=True) as pf:
        print("private postfix: %s, haproxy service on %d, plain on %d"
              % (pf.dir, pf.port, pf.plain_port))
        print("PROXY v2 from 198.51.100.7:4321:")
        c = SMTPClient("127.0.0.1", pf.port, connect=True)
        c.send(hdr)
        dialogue(c, ["x@outside.example", "x@" + pf.domain])
        c.close()
        print("plain service, client 127.0.0.1 (trusted: an open relay):")
        with SMTPClient("127.0.0.1", pf.plain_port) as c:
            dialogue(c, ["x@outside.example"])
        print("plain service, client 127.1.9.9 (untrusted):")
        with SMTPClient("127.0.0.1", pf.plain_port, source="127.1.9.9") as c:
            dialogue(c, ["x@outside.example"])
        pf.wait_log(r"disconnect from unknown\[127\.1\.9\.9\]")
        print(pf.maillog())
