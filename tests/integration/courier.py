"""A real Courier MTA for integration tests, in a Debian chroot.

Debian 12's courier-mta (1.0.16) conflicts with the postfix package the
other tests need, and PROXY protocol (`couriertcpd -haproxy`, v1 only)
arrived only in Courier 1.3.9, so Courier runs from debootstrap chroots
cached outside the checkout:

    /var/cache/breakwater-tests/courier-bookworm   Debian 12, Courier 1.0.16
    /var/cache/breakwater-tests/courier-trixie     Debian 13, Courier 1.4.1

    ensure_chroot("trixie")          # builds it once (75-90 s here)
    with NsCourier(topo.s, "bookworm", tmpdir, topo.server, 25,
                   blacklists="-block=bl.test,BLOCK,*",
                   resolver="127.0.0.1", dnslookup=False) as mta:
        SMTP from a client in the namespace ...
        mta.wait_message(b"Subject: hello")
        mta.wait_log(r"error,relay=::ffff:10\\.77\\.5\\.2,.*: 511 ")

Building (ensure_chroot, through chroot.py, which says how): a minbase
debootstrap of the release with courier-mta installed, kept once
courier-mta's couriertcpd runs, with its version in the marker. The
build's output: CACHE_DIR/courier-RELEASE.build.log.

Running (NsCourier): one process tree per instance,

    ip netns exec NS setpriv --pdeathsig KILL \\
        unshare --mount --propagation private --pid --fork --kill-child \\
        python3 -c INIT PLAN

whose PID 1 (INIT, the host's Python) mounts an overlayfs (the cached
chroot as lowerdir, upperdir and workdir in the instance's folder) on
DIR/root, then /proc and a tmpfs /run in it, bind-mounts the test's syslog
socket on DIR/root/dev/log, writes the per-test files, and runs in the
chroot: useradd and the Maildir, what Debian's tmpfiles.d makes at boot
(`install -d -m 0775 -o root -g courier /run/courier`, `install -d -m
0750 -o courier -g courier /run/courier/authdaemon`: authdaemond does not
start without it), makeacceptmailfor, makesmtpaccess, then `authdaemond
start; courier start; esmtpd start`. It reaps orphans until SIGTERM, runs
`esmtpd stop; courier stop; authdaemond stop` (bounded) and exits; the
kernel then kills whatever is left in the PID namespace and drops every
mount. stop() sends that SIGTERM; after a bound it SIGKILLs PID 1 and
unshare (--kill-child), which takes the whole namespace. --pdeathsig does
the same when the thread that called start() ends (a test process killed
by its watchdog): call start() from the main thread. Per-test
configuration (esmtpd, locals, smtpaccess, users, Maildirs) lands in the
overlay's upperdir, so the cached chroot is never changed; the Maildirs
are read from there (DIR/upper/home/USER/Maildir).

Logging: Courier logs through syslog(3) to /dev/log inside the root. The
test process binds a unix datagram socket in the instance folder and a
thread writes each datagram as one line to DIR/maillog, as rsyslog would
("Mmm dd hh:mm:ss mx tag[pid]: text": the <PRI> dropped, the host name
added), the file `breakwater watch` reads: .log_text(), .wait_log(regex,
timeout).

Defaults chosen for tests (see NsCourier): no DNS (couriertcpd
-nodnslookup: with no reachable DNS server its reverse lookup holds the
greeting back for over 90 s here), TARPIT=0, BOFHCHECKDNS=0, and Debian's
smtpaccess lines that make 10/8 and 192.168/16 relay clients commented out
(the namespaces here give outside clients 10.x addresses).

It never reads or changes the host's own mail setup (/etc/postfix, its
services), never mounts or unmounts anything in the host's mount
namespace, and never signals a process outside its own PID namespace.
Python 3 standard library only; root only.
"""

import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import chroot
import netns

RELEASES = ("bookworm", "trixie")
ENV = chroot.ENV
debian_mirror = chroot.debian_mirror

__all__ = ["ensure_chroot", "chroot_path", "chroot_info", "courier_available",
           "NsCourier", "CourierError", "proxy_v1_header", "debian_mirror"]


class CourierError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# The cached chroots (chroot.py)

def _name(release):
    return "courier-" + release


def chroot_path(release):
    return chroot.path(_name(release))


def chroot_info(release):
    """The marker's record ({release, courier, seconds, built, mirror, ...})
    of a finished chroot, or None."""
    return chroot.info(_name(release))


def courier_available(release="bookworm"):
    """(ok, reason): whether an NsCourier of release can run here without
    building anything (root, overlayfs, the chroot already cached)."""
    if os.geteuid() != 0:
        return False, "needs root (a Courier chroot in namespaces)"
    if not chroot.have_overlay():
        return False, "kernel lacks overlayfs"
    if chroot_info(release) is None:
        return False, "no Courier chroot at %s (courier.ensure_chroot(%r))" % (
            chroot_path(release), release)
    return True, ""


def _verify_courier(root):
    """courier-mta is installed and its couriertcpd runs: its version."""
    version = subprocess.run(
        ["chroot", root, "dpkg-query", "-W", "-f", "${Version}", "courier-mta"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        timeout=60, env=ENV, universal_newlines=True)
    if version.returncode != 0 or not version.stdout.strip():
        raise CourierError("courier-mta not installed in %s: %s" % (root, version.stdout))
    # the daemon binary runs (help text, exit status not meaningful)
    tcpd = subprocess.run(["chroot", root, "/usr/sbin/couriertcpd"], stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          timeout=60, env=ENV, universal_newlines=True)
    if "couriertcpd" not in tcpd.stdout and "Usage" not in tcpd.stdout:
        raise CourierError("couriertcpd does not run in %s: %r" % (root, tcpd.stdout))
    return {"courier": version.stdout.strip()}


def ensure_chroot(release="bookworm", lock_timeout=chroot.LOCK_TIMEOUT):
    """The path of the cached Courier chroot of release, built first when
    missing or broken (chroot.ensure; its log:
    CACHE_DIR/courier-RELEASE.build.log)."""
    if release not in RELEASES:
        raise CourierError("unknown release %r (one of %s)" % (release, RELEASES))
    return chroot.ensure(_name(release), release, ["courier-mta"], verify=_verify_courier,
                         lock_timeout=lock_timeout)


# --------------------------------------------------------------------------
# An instance in a network namespace

# PID 1 of the instance's PID namespace, run with the host's python3 in a
# private mount namespace inside the caller's network namespace. argv[1]:
# the instance's JSON plan. It writes one line to plan["status"]: "started"
# or "failed: ...".
_INIT = r"""
import json, os, signal, subprocess, sys, time
plan = json.load(open(sys.argv[1]))
root = plan["root"]
ENV = plan["env"]
stopping = []
signal.signal(signal.SIGTERM, lambda *a: stopping.append(1))
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)

def log(text):
    with open(plan["initlog"], "a") as f:
        f.write(time.strftime("%H:%M:%S ") + text + "\n")

def run(argv, timeout):
    log("$ " + " ".join(argv))
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, env=ENV, timeout=timeout,
                       universal_newlines=True, errors="replace")
    if p.stdout:
        log(p.stdout.rstrip())
    if p.returncode != 0:
        raise RuntimeError("exit %d: %s: %s" % (p.returncode, " ".join(argv),
                                                 p.stdout.strip()[-2000:]))

def status(text):
    with open(plan["status"] + ".new", "w") as f:
        f.write(text + "\n")
    os.rename(plan["status"] + ".new", plan["status"])

def reap():
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return

try:
    run(["mount", "-t", "overlay", "overlay", "-o",
         "lowerdir=%(lower)s,upperdir=%(upper)s,workdir=%(work)s" % plan, root], 30)
    run(["mount", "-t", "proc", "proc", root + "/proc"], 30)
    run(["mount", "-t", "tmpfs", "-o", "mode=0755,nosuid,nodev", "tmpfs", root + "/run"], 30)
    devlog = root + "/dev/log"
    if os.path.lexists(devlog):
        os.unlink(devlog)
    open(devlog, "w").close()
    run(["mount", "--bind", plan["logsock"], devlog], 30)
    for f in plan["files"]:
        path = root + f["path"]
        os.makedirs(os.path.dirname(path), exist_ok=True)
        existed = os.path.exists(path)
        with open(path, "w") as out:
            out.write(f["content"])
        if not existed or f.get("mode") is not None:
            os.chmod(path, f.get("mode") or 0o644)
    run(["chroot", root, "sh", "-ec", plan["setup"]], plan["timeout"])
    run(["chroot", root, "sh", "-ec", plan["start"]], plan["timeout"])
    status("started")
except Exception as e:
    log("failed: %r" % (e,))
    status("failed: %s" % (e,))
    sys.exit(1)
while not stopping:
    reap()
    time.sleep(0.1)
log("SIGTERM: stopping")
try:
    run(["chroot", root, "sh", "-c", plan["stop"]], plan["stop_timeout"])
except Exception as e:
    log("stop: %r" % (e,))
log("exit")
# PID 1 exits: the kernel kills what is left in the namespace, and the
# mount namespace (overlay, proc, tmpfs, the bind mount) goes with it.
"""

# What Debian's tmpfiles.d (courier-authdaemon, courier-base) would make at
# boot; authdaemond does not start without it.
_TMPFILES = ("install -d -m 0775 -o root -g courier /run/courier\n"
             "install -d -m 0750 -o courier -g courier /run/courier/authdaemon\n")
START = "authdaemond start; courier start; esmtpd start"
STOP = "esmtpd stop; courier stop; authdaemond stop"


def proxy_v1_header(src, dst):
    """PROXY protocol v1 header for TCP over IPv4: src, dst (address, port)."""
    return ("PROXY TCP4 %s %s %d %d\r\n" % (src[0], dst[0], src[1], dst[1])).encode()


def _set_var(text, name, value):
    """text (a shell-style KEY=VALUE file, e.g. /etc/courier/esmtpd) with
    name set to value: its first assignment replaced, others dropped, or
    one appended."""
    line = "%s=%s" % (name, _shell_value(value))
    rx = re.compile(r"^%s=.*(?:\n|$)" % re.escape(name), re.M)
    out, n = [], 0
    pos = 0
    for m in rx.finditer(text):
        out.append(text[pos:m.start()])
        if n == 0:
            out.append(line + "\n")
        n += 1
        pos = m.end()
    out.append(text[pos:])
    text = "".join(out)
    if n == 0:
        if text and not text.endswith("\n"):
            text += "\n"
        text += line + "\n"
    return text


def _shell_value(value):
    value = str(value)
    if re.fullmatch(r"[A-Za-z0-9_.]*", value):
        return value
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


SYSLOG_HOST = b"mx"             # the host name written into each log line


def syslog_file_line(datagram):
    """One syslog(3) datagram ("<PRI>Mmm dd hh:mm:ss tag[pid]: text") as
    rsyslog writes it to a file: no <PRI>, the host name after the time
    stamp; one line, newline-terminated."""
    text = datagram.rstrip(b"\0\n").replace(b"\n", b" ")
    m = re.match(rb"<\d{1,3}>([A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d) (.*)", text, re.S)
    if m:
        text = b"%s %s %s" % (m.group(1), SYSLOG_HOST, m.group(2))
    return text + b"\n"


class NsCourier:
    """Courier (authdaemond, courierd, esmtpd) from the cached chroot of
    release, run in network namespace ns (a netns.NetNS), its esmtpd on
    address:port. tmpdir: a folder of the test; the instance's lives
    below it (upper/work of the overlay, maillog, init.log).

    Configuration (keyword arguments):
      maxdaemons, maxperip, maxperc   esmtpd MAXDAEMONS, MAXPERIP, MAXPERC
                       (None: Debian's 40, 5, 5; MAXPERC must be > 0:
                       "Invalid -maxperc option")
      blacklists       esmtpd BLACKLISTS, e.g. "-block=bl.test,BLOCK,*"
                       (needs resolver=)
      tarpit           TARPIT (default 0; Debian's 1 delays error replies)
      bofhcheckdns     BOFHCHECKDNS (default 0: a sender domain need not
                       resolve)
      resolver         None: no DNS (resolv.conf names 127.0.0.1, where
                       nothing need listen); "ADDR": nameserver ADDR, port
                       53 (resolv.conf takes no port: NsRbldnsd(...,
                       port=53)). Needed by blacklists and bofhcheckdns
      dnslookup        couriertcpd's reverse lookup of clients (default:
                       on when resolver is set; off adds -nodnslookup).
                       On with no DNS server: no greeting for over 90 s
      (ident lookups are always off: -noidentlookup where couriertcpd
      still has it, i.e. 1.0.16; 1.4 dropped ident and the option)
      haproxy          True: couriertcpd -haproxy=15 (PROXY v1; trixie
                       only; a bare -haproxy does nothing); N:
                       -haproxy=N (seconds to wait for the header).
                       couriertcpd accepts no other connection while it
                       waits for a header
      tcpdopts_extra   more couriertcpd options (a string)
      esmtpd           {VAR: value}: any other esmtpd variables
      smtpaccess       lines for /etc/courier/smtpaccess/ (e.g.
                       "127.0.0.2\\tallow,RELAYCLIENT"; makesmtpaccess runs)
      trust_private_nets  keep Debian's smtpaccess/default lines that make
                       10/8 and 192.168/16 relay clients (default False:
                       they are commented out, since the namespaces here
                       use 10.x addresses for outside clients; 127.0.0.1
                       and ::1 stay relay clients)
      domain, user     the local domain (locals, esmtpacceptmailfor.dir)
                       and its user, made with useradd -m and a Maildir
      files            {absolute path in the root: text} written before start
      setup            extra shell lines run in the chroot before start
    """

    def __init__(self, ns, release="bookworm", tmpdir=None, address="127.0.0.1", port=25,
                 maxdaemons=None, maxperip=None, maxperc=None, blacklists="",
                 tarpit=0, bofhcheckdns=0, resolver=None, dnslookup=None,
                 haproxy=False, tcpdopts_extra="", esmtpd=None, smtpaccess=(),
                 trust_private_nets=False,
                 domain="courier.test", user="alice", files=None, setup="",
                 start_timeout=90.0, stop_timeout=30.0):
        self.ns = ns
        self.release = release
        self.tmpdir = tmpdir
        self.address = address
        self.port = port
        self.maxdaemons = maxdaemons
        self.maxperip = maxperip
        self.maxperc = maxperc
        self.blacklists = blacklists
        self.tarpit = tarpit
        self.bofhcheckdns = bofhcheckdns
        self.resolver = resolver
        self.dnslookup = bool(resolver) if dnslookup is None else dnslookup
        self.haproxy = haproxy
        self.tcpdopts_extra = tcpdopts_extra
        self.esmtpd_vars = dict(esmtpd or {})
        self.smtpaccess = list(smtpaccess)
        self.trust_private_nets = trust_private_nets
        self.domain = domain
        self.user = user
        self.files = dict(files or {})
        self.setup_sh = setup
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self.dir = None
        self.proc = None            # unshare (host PID), parent of PID 1
        self.init_pid = None        # PID 1 of the namespace, as the host sees it
        self.pidns = None           # its /proc/PID/ns/pid link
        self._log_sock = None
        self._log_thread = None
        self._log_stop = threading.Event()
        self.timings = {}

    # -- paths -------------------------------------------------------------
    @property
    def lower(self):
        return chroot_path(self.release)

    @property
    def upper(self):
        return os.path.join(self.dir, "upper")

    @property
    def root(self):
        return os.path.join(self.dir, "root")

    @property
    def log_path(self):
        return os.path.join(self.dir, "maillog")

    @property
    def init_log_path(self):
        return os.path.join(self.dir, "init.log")

    def home(self, user=None):
        return os.path.join(self.upper, "home", user or self.user)

    # -- configuration -----------------------------------------------------
    def _lower_text(self, path):
        with open(self.lower + path, errors="surrogateescape") as f:
            return f.read()

    def tcpdopts(self):
        text = self._lower_text("/etc/courier/esmtpd")
        m = re.search(r'^TCPDOPTS="?([^"\n]*)"?', text, re.M)
        opts = (m.group(1) if m else "-stderrlogger=/usr/sbin/courierlogger").split()
        drop = {"-nodnslookup", "-noidentlookup", "-haproxy"}
        opts = [o for o in opts if o not in drop]
        if not self.dnslookup:
            opts.append("-nodnslookup")
        if self._tcpd_knows(b"noidentlookup"):     # gone in Courier 1.4 (no ident)
            opts.append("-noidentlookup")
        if self.haproxy:
            # A bare "-haproxy" is silently a no-op: couriertcpd (1.4.1, and
            # courier-libs tcpd.c today) strtok()s its empty value into no
            # entry, and the PROXY line reaches courieresmtpd as a command
            # ("502 ESMTP command error"). The timeout makes it one entry.
            opts.append("-haproxy=%d" % (15 if self.haproxy is True else self.haproxy))
        opts += self.tcpdopts_extra.split()
        return " ".join(opts)

    def _tcpd_knows(self, option):
        """Whether the chroot's couriertcpd has option (its name as bytes):
        Courier 1.4 rejects -noidentlookup ("Invalid option") and has no
        ident lookups at all."""
        with open(self.lower + "/usr/sbin/couriertcpd", "rb") as f:
            return option in f.read()

    def esmtpd_text(self):
        text = self._lower_text("/etc/courier/esmtpd")
        values = [("ADDRESS", self.address), ("PORT", self.port),
                  ("MAXDAEMONS", self.maxdaemons), ("MAXPERIP", self.maxperip),
                  ("MAXPERC", self.maxperc), ("BLACKLISTS", self.blacklists),
                  ("TARPIT", self.tarpit), ("BOFHCHECKDNS", self.bofhcheckdns),
                  ("TCPDOPTS", self.tcpdopts()), ("ESMTPDSTART", "YES")]
        values += sorted(self.esmtpd_vars.items())
        for k, v in values:
            if v is not None:
                text = _set_var(text, k, v)
        return text

    def plan_files(self):
        files = [
            {"path": "/etc/courier/esmtpd", "content": self.esmtpd_text(), "mode": None},
            {"path": "/etc/resolv.conf", "mode": 0o644,
             "content": "nameserver %s\noptions timeout:1 attempts:1\n"
                        % (self.resolver or "127.0.0.1")},
            {"path": "/etc/courier/locals",
             "content": self._lower_text("/etc/courier/locals").rstrip("\n")
                        + "\n" + self.domain + "\n", "mode": None},
            {"path": "/etc/courier/esmtpacceptmailfor.dir/breakwater-test",
             "content": self.domain + "\n", "mode": 0o644},
        ]
        if not self.trust_private_nets:
            text = self._lower_text("/etc/courier/smtpaccess/default")
            text = re.sub(r"^(10|192\.168)(\s+allow,RELAYCLIENT)",
                          r"# breakwater tests: not a relay client: \1\2", text, flags=re.M)
            files.append({"path": "/etc/courier/smtpaccess/default",
                          "content": text, "mode": None})
        if self.smtpaccess:
            files.append({"path": "/etc/courier/smtpaccess/breakwater-test",
                          "content": "".join(l.rstrip("\n") + "\n" for l in self.smtpaccess),
                          "mode": 0o644})
        for path, text in sorted(self.files.items()):
            files.append({"path": path, "content": text, "mode": None})
        return files

    def setup_script(self):
        u = shlex.quote(self.user)
        return "".join([
            "useradd -m -s /bin/sh %s\n" % u,
            "install -d -m 0700 -o %s -g %s /home/%s/Maildir /home/%s/Maildir/new "
            "/home/%s/Maildir/cur /home/%s/Maildir/tmp\n" % ((u,) * 6),
            _TMPFILES,
            "makeacceptmailfor\n",
            "makesmtpaccess\n",
            self.setup_sh, "\n"])

    # -- syslog ------------------------------------------------------------
    def _start_log(self):
        path = os.path.join(self.dir, "devlog")
        s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        s.bind(path)
        os.chmod(path, 0o666)
        s.settimeout(0.2)
        self._log_sock = s
        self._log_stop.clear()
        out = open(self.log_path, "ab", buffering=0)

        def reader():
            try:
                while True:
                    try:
                        data = s.recv(65536)
                    except socket.timeout:
                        if self._log_stop.is_set():
                            return
                        continue
                    except OSError:
                        return
                    out.write(syslog_file_line(data))
            finally:
                out.close()
        self._log_thread = threading.Thread(target=reader, daemon=True,
                                            name="courier-syslog")
        self._log_thread.start()
        return path

    def _stop_log(self):
        if self._log_thread:
            self._log_stop.set()
            self._log_thread.join(5)
            self._log_thread = None
        if self._log_sock:
            self._log_sock.close()
            self._log_sock = None

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def wait_log(self, pattern, timeout=10.0):
        """The first match of regex pattern in the log, waiting up to
        timeout seconds; None when it never appeared."""
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            m = rx.search(self.log_text())
            if m or time.monotonic() > deadline:
                return m
            time.sleep(0.05)

    # -- lifecycle ---------------------------------------------------------
    def start(self):
        t0 = time.monotonic()
        if os.geteuid() != 0:
            raise CourierError("needs root")
        if not chroot.have_overlay():
            raise CourierError("kernel lacks overlayfs")
        ensure_chroot(self.release)
        self.timings["ensure_chroot"] = time.monotonic() - t0
        self.dir = tempfile.mkdtemp(prefix="courier-%s-" % self.release, dir=self.tmpdir)
        os.chmod(self.dir, 0o755)
        for d in ("upper", "work", "root"):
            os.mkdir(os.path.join(self.dir, d), 0o755)
        try:
            logsock = self._start_log()
            plan = {"root": self.root, "lower": self.lower, "upper": self.upper,
                    "work": os.path.join(self.dir, "work"), "logsock": logsock,
                    "status": os.path.join(self.dir, "status"),
                    "initlog": self.init_log_path, "env": ENV,
                    "files": self.plan_files(), "setup": self.setup_script(),
                    "start": START, "stop": STOP,
                    "timeout": self.start_timeout, "stop_timeout": self.stop_timeout}
            plan_path = os.path.join(self.dir, "plan.json")
            with open(plan_path, "w") as f:
                json.dump(plan, f, indent=1)
            err = open(os.path.join(self.dir, "init.err"), "wb")
            # setpriv --pdeathsig: unshare dies with the thread that
            # started it (a test process killed by its watchdog), and
            # --kill-child takes the namespace along
            self.proc = subprocess.Popen(
                self.ns.argv(["setpriv", "--pdeathsig", "KILL",
                              "unshare", "--mount", "--propagation", "private", "--pid",
                              "--fork", "--kill-child", sys.executable or "python3", "-c",
                              _INIT, plan_path]),
                stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=ENV,
                start_new_session=True)
            err.close()
            self._wait_started(plan["status"], t0)
        except BaseException:
            self.stop()
            raise
        self.timings["start"] = time.monotonic() - t0
        return self

    def _find_init(self):
        try:
            with open("/proc/%d/task/%d/children" % (self.proc.pid, self.proc.pid)) as f:
                kids = [int(x) for x in f.read().split()]
        except OSError:
            return None
        for k in kids:
            try:
                return k, os.readlink("/proc/%d/ns/pid" % k)
            except OSError:
                pass
        return None

    def _wait_started(self, status_path, t0):
        deadline = time.monotonic() + self.start_timeout
        status = ""
        started_at = None
        while time.monotonic() < deadline:
            if self.init_pid is None:
                found = self._find_init()
                if found and found[1] != os.readlink("/proc/self/ns/pid"):
                    self.init_pid, self.pidns = found
            try:
                with open(status_path) as f:
                    status = f.read().strip()
            except OSError:
                pass
            if status.startswith("failed") or self.proc.poll() is not None:
                break
            if status == "started" and self.init_pid:
                if self._listening():
                    return
                if started_at is None:
                    started_at = time.monotonic()
                elif time.monotonic() - started_at > 5 and \
                        "couriertcpd" not in self.processes().values():
                    status = "started, but no couriertcpd after 5s"
                    break
            time.sleep(0.05)
        raise CourierError("Courier (%s) did not start on %s:%d in %s: status %r, "
                           "exit %r\ninit.log:\n%s\ninit.err:\n%s\nmaillog:\n%s"
                           % (self.release, self.address, self.port, self.ns.name,
                              status, self.proc.poll(), self._read("init.log")[-4000:],
                              self._read("init.err")[-2000:], self.log_text()[-3000:]))

    def _listening(self):
        return netns.ns_listening(self.init_pid, self.port)

    def _read(self, name):
        try:
            with open(os.path.join(self.dir, name), errors="replace") as f:
                return f.read()
        except (OSError, TypeError):
            return ""

    def ns_pids(self):
        """Host PIDs of every process in the instance's PID namespace."""
        if not self.pidns:
            return []
        out = []
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    if os.readlink("/proc/%s/ns/pid" % name) == self.pidns:
                        out.append(int(name))
                except OSError:
                    pass
        return out

    def processes(self):
        """{host PID: comm} of the instance's processes."""
        out = {}
        for pid in self.ns_pids():
            try:
                with open("/proc/%d/comm" % pid) as f:
                    out[pid] = f.read().strip()
            except OSError:
                pass
        return out

    def smtpd_pids(self):
        """Host PIDs of the courieresmtpd processes (one per connection)."""
        return sorted(p for p, comm in self.processes().items() if comm == "courieresmtpd")

    def stop(self):
        """Stops every process of the instance (bounded: SIGTERM to PID 1,
        which runs esmtpd/courier/authdaemond stop, then SIGKILL of the
        namespace) and removes its folder unless $KEEP_COURIER. Idempotent."""
        t0 = time.monotonic()
        if self.proc is not None:
            if self.proc.poll() is None and self.init_pid:
                try:
                    os.kill(self.init_pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
                try:
                    self.proc.wait(self.stop_timeout + 5)
                except subprocess.TimeoutExpired:
                    pass
            if self.proc.poll() is None:
                # --kill-child: unshare's death SIGKILLs PID 1, and with it
                # every process of the namespace
                if self.init_pid:
                    try:
                        os.kill(self.init_pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                self.proc.kill()
                self.proc.wait(10)
            # PID 1 gone: the kernel SIGKILLs the rest; wait for them to go
            deadline = time.monotonic() + 10
            while self.ns_pids() and time.monotonic() < deadline:
                time.sleep(0.05)
            left = self.ns_pids()
            self.proc = None
            if left:
                raise CourierError("processes left in the namespace: %s" % left)
        self._stop_log()
        if self.dir and not os.environ.get("KEEP_COURIER"):
            if not chroot.mounts_under(self.dir):
                shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None
        self.timings["stop"] = time.monotonic() - t0

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- mail --------------------------------------------------------------
    def maildir_messages(self, user=None):
        """The messages (bytes) in user's Maildir/new and Maildir/cur,
        oldest first."""
        paths = []
        for sub in ("new", "cur"):
            d = os.path.join(self.home(user), "Maildir", sub)
            try:
                paths += [os.path.join(d, n) for n in os.listdir(d)]
            except OSError:
                pass
        out = []
        for p in sorted(paths, key=lambda p: (os.path.getmtime(p) if os.path.exists(p) else 0, p)):
            try:
                with open(p, "rb") as f:
                    out.append(f.read())
            except OSError:
                pass
        return out

    def wait_message(self, needle, timeout=10.0, user=None):
        """The first message of user holding needle (bytes or str), waiting
        up to timeout seconds; None when none came."""
        if isinstance(needle, str):
            needle = needle.encode()
        deadline = time.monotonic() + timeout
        while True:
            for m in self.maildir_messages(user):
                if needle in m:
                    return m
            if time.monotonic() > deadline:
                return None
            time.sleep(0.05)

if __name__ == "__main__":
    # python3 tests/integration/courier.py [RELEASE...]: build (if needed)
    for rel in sys.argv[1:] or ["bookworm"]:
        t = time.monotonic()
        path = ensure_chroot(rel)
        print("%s: %s %s (%.1fs here)" % (rel, path, chroot_info(rel), time.monotonic() - t))
