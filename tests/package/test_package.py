"""The Debian package on Debian 12 (bookworm) and 13 (trixie), in throwaway
roots: `make test-package`, after `make deb`.

    python3 tests/package/test_package.py --deb build/deb/breakwater_V_ARCH.deb \
        --dsc build/deb/breakwater_V.dsc [--releases bookworm,trixie]

The bookworm package is the one `make deb` built on this host (Debian 12).
The trixie one is built here by `make deb` too, in the source package (the
.dsc) unpacked in a trixie chroot with the build dependencies of
debian/control: dpkg-buildpackage (which runs the unit tests, `make
unit`), then trixie's lintian (no error, no warning), since trixie's
libraries differ (hiredis 1.2, c-ares 1.34, nftables 1.1).

Each release's package then goes through a Debian root of its release: a
minbase chroot with systemd, cached by chroot.py (pkg-RELEASE; the trixie
build chroot is pkgbuild-trixie), under an overlayfs whose upper layer is
this run's, mounted in a private mount namespace (Root): the cache is never
changed. In order, as an admin would meet it:
  1. apt-get install of an earlier version (the same package, its version
     set to VERSION~prev by dpkg-deb: the first release has no
     predecessor), pulling its libraries from the archive; nothing enabled
     or started
  2. the configuration edited and a state file written, then the upgrade
     to this version: both kept, no prompt
  3. `breakwater --version` and the man pages' version, `systemctl enable`
     and `disable` (offline: the [Install] symlinks), `breakwater check`
     against rbldnsd in a network namespace, `systemd-analyze verify` of
     both units, the user
     and /var/lib/breakwater, and `breakwater serve` from the installed
     unit's command line relaying a clean client's message to smtp-sink
     and refusing a listed one with 550, as the package's user
  4. systemd as PID 1 in the root: `systemctl enable --now breakwater` and
     a restart, the user's files in /var/lib/breakwater left the user's
  5. reinstall: the edit kept
  6. remove: the binary gone, the configuration and the state kept
  7. purge: /etc/breakwater and /var/lib/breakwater gone, the user kept
     (Debian's practice), and nothing else of the package left in the
     root (the overlay's upper layer is read)
Network: apt talks to the Debian mirror of this host's apt sources; the
daemon and its peers (the host's rbldnsd and smtp-sink) run in a network
namespace made here with loopback only. Root only. Python 3 standard
library; the test modules of tests/integration (chroot, netns, harness).
"""

import argparse
import concurrent.futures
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import chroot  # noqa: E402
import harness  # noqa: E402
import netns  # noqa: E402

ARGS = None          # the command line, set in main()
BASE_PACKAGES = ["systemd", "man-db"]   # systemd-analyze verify (man: links), systemctl
# with pkg-config, which the Makefile's build packages name (on trixie a
# transitional package for pkgconf, the first choice of Build-Depends)
BUILD_TOOLS = ["build-essential", "debhelper", "dpkg-dev", "lintian", "pkg-config"]
LISTED, CLEAN = "127.66.0.1", "127.1.0.1"
DEB_UNITS = ("breakwater.service", "breakwater-watch.service")


def build_depends():
    """The first alternative of each Build-Depends entry of debian/control,
    without versions and build profiles."""
    with open(os.path.join(REPO, "debian", "control")) as f:
        text = f.read()
    m = re.search(r"^Build-Depends:(.*?)(?=^\S)", text, re.M | re.S)
    out = []
    for entry in m.group(1).split(","):
        first = entry.split("|")[0]
        name = re.sub(r"\(.*?\)|<.*?>|\[.*?\]", "", first).strip()
        if name and not name.startswith("debhelper-compat"):
            out.append(name)
    return out


def deb_field(deb, field):
    return subprocess.run(["dpkg-deb", "-f", deb, field], stdout=subprocess.PIPE,
                          check=True, universal_newlines=True).stdout.strip()


class Root:
    """A throwaway root: an overlayfs over the cached chroot lower, mounted
    (with /proc, and tmpfs on /run and /tmp) in a private mount namespace
    that a sleeping process holds. run() enters that namespace (and, if
    given, a network namespace) and runs a shell command in the root."""

    HOLD = r"""
set -e
lower="$1"; upper="$2"; work="$3"; root="$4"
mount -t overlay overlay -o "lowerdir=$lower,upperdir=$upper,workdir=$work" "$root"
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
echo ready
exec sleep 86400
"""

    def __init__(self, lower, tmpdir):
        self.lower = lower
        self.dir = tempfile.mkdtemp(prefix="root-", dir=tmpdir)
        self.upper, self.work, self.root = (os.path.join(self.dir, d)
                                            for d in ("upper", "work", "root"))
        for d in (self.upper, self.work, self.root):
            os.mkdir(d)
        self.holder = None

    def start(self):
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", self.HOLD, "hold",
             self.lower, self.upper, self.work, self.root],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            universal_newlines=True, start_new_session=True)
        line = self.holder.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("the root did not mount: %s" % self.holder.stderr.read())
        return self

    def argv(self, command, ns=None):
        enter = ["nsenter", "--mount=/proc/%d/ns/mnt" % self.holder.pid]
        if ns is not None:
            enter.append("--net=" + ns.path)
        return enter + ["chroot", self.root, "/bin/sh", "-c", command]

    def run(self, command, ns=None, timeout=600):
        """(exit status, output) of a shell command in the root."""
        p = subprocess.run(self.argv(command, ns), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=chroot.ENV,
                           timeout=timeout, errors="replace", universal_newlines=True)
        return p.returncode, p.stdout

    def check(self, command, ns=None, timeout=600):
        rc, out = self.run(command, ns, timeout)
        if rc != 0:
            tags = "\n".join(l for l in out.splitlines() if re.match(r"[EW]: ", l))
            raise AssertionError("in the root: %s: exit %d:\n%s\n%s"
                                 % (command, rc, out[-3000:], tags))
        return out

    def path(self, inside):
        """Where a path of the root is, seen from here (through the
        holder's mount namespace)."""
        return "/proc/%d/root%s/%s" % (self.holder.pid, self.root, inside.lstrip("/"))

    def stop(self):
        if self.holder is not None:
            os.killpg(self.holder.pid, signal.SIGKILL)
            self.holder.wait()
            self.holder = None
        if not chroot.mounts_under(self.dir):
            shutil.rmtree(self.dir, ignore_errors=True)


def ensure_roots(release):
    """The cached chroots: (base, build or None)."""
    base = chroot.ensure("pkg-" + release, release, BASE_PACKAGES)
    build = None
    if release != "bookworm":
        build = chroot.ensure("pkgbuild-" + release, release, BUILD_TOOLS + build_depends())
    return base, build


def build_in_chroot(build_root, tmpdir):
    """The package built from the .dsc in a root of the release, checked by
    its lintian: the path of the .deb (copied to tmpdir)."""
    r = Root(build_root, tmpdir).start()
    try:
        src = r.path("/tmp/src")
        os.mkdir(src)
        dsc = ARGS.dsc
        for f in [dsc] + [os.path.join(os.path.dirname(dsc), name) for name in
                          re.findall(r"^ \w+ \d+ (\S+)$", open(dsc).read(), re.M)]:
            shutil.copy(f, src)
        name = os.path.basename(dsc)
        version = re.search(r"^Version: (\S+)$", open(dsc).read(), re.M).group(1)
        # the documented command, `make deb`: dpkg-buildpackage (which runs
        # the unit tests), then lintian --fail-on error,warning
        out = r.check("cd /tmp/src && dpkg-source -x %s tree && cd tree && make deb 2>&1"
                      % name, timeout=1800)
        tags = [l for l in out.splitlines() if re.match(r"[EWIPXO]: ", l)]
        sys.stderr.write("  make deb in the chroot: built, unit tests passed; lintian: %s\n"
                         % ("; ".join(tags) or "no tag"))
        built = os.path.join(src, "tree", "build", "deb")
        debs = [n for n in os.listdir(built) if re.match(r"breakwater_%s_.*\.deb$"
                                                         % re.escape(version), n)]
        if len(debs) != 1:
            raise AssertionError("built %r" % debs)
        dest = os.path.join(tmpdir, debs[0])
        shutil.copy(os.path.join(built, debs[0]), dest)
        return dest
    finally:
        r.stop()


def earlier_version(deb, tmpdir):
    """deb again with its version set to VERSION~prev (sorts before it)."""
    tree = os.path.join(tmpdir, "prev")
    subprocess.run(["dpkg-deb", "-R", deb, tree], check=True)
    control = os.path.join(tree, "DEBIAN", "control")
    with open(control) as f:
        text = f.read()
    version = deb_field(deb, "Version")
    with open(control, "w") as f:
        f.write(re.sub(r"^Version: .*$", "Version: %s~prev" % version, text, flags=re.M))
    out = os.path.join(tmpdir, "breakwater_%s~prev.deb" % version)
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", tree, out], check=True,
                   stdout=subprocess.DEVNULL)
    shutil.rmtree(tree)
    return out


class PackageTest(unittest.TestCase):
    """The admin's path through one release's package (numbered: in order)."""

    RELEASE = None

    @classmethod
    def setUpClass(cls):
        if cls.RELEASE is None:
            raise unittest.SkipTest("the base class")
        t0 = time.monotonic()
        cls.tmp = tempfile.mkdtemp(prefix="bw-package-%s-" % cls.RELEASE)
        os.chmod(cls.tmp, 0o755)
        base, build = ensure_roots(cls.RELEASE)
        cls.deb = build_in_chroot(build, cls.tmp) if build else ARGS.deb
        cls.version = deb_field(cls.deb, "Version")
        cls.prev = earlier_version(cls.deb, cls.tmp)
        cls.root = Root(base, cls.tmp)
        # the packages where apt-get reads them: /debs in the upper layer
        debs = os.path.join(cls.root.upper, "debs")
        os.mkdir(debs)
        for d in (cls.deb, cls.prev):
            shutil.copy(d, debs)
        cls.root.start()
        cls.root.check("apt-get update -qq")
        sys.stderr.write("\n  %s: roots and package ready in %.0f s\n"
                         % (cls.RELEASE, time.monotonic() - t0))

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "root", None):
            cls.root.stop()
        shutil.rmtree(getattr(cls, "tmp", ""), ignore_errors=True)

    def apt(self, args):
        return self.root.check("apt-get -y -q -o Dpkg::Options::=--force-confdef %s </dev/null"
                               % args)

    def status(self):
        rc, out = self.root.run("dpkg-query -W -f '${Status} ${Version}' breakwater")
        return out.strip() if rc == 0 else "not installed"

    def unit_dir(self):
        for d in ("/usr/lib/systemd/system", "/lib/systemd/system"):
            if os.path.exists(self.root.path(d + "/breakwater.service")):
                return d
        self.fail("no breakwater.service installed")

    def test_1_install_earlier_version(self):
        out = self.apt("install /debs/%s" % os.path.basename(self.prev))
        self.assertEqual(self.status(), "install ok installed %s~prev" % self.version, out)
        # every library the package depends on came from the archive
        for dep in deb_field(self.deb, "Depends").split(","):
            name = re.sub(r"\(.*?\)", "", dep.split("|")[0]).strip()
            rc, st = self.root.run("dpkg-query -W -f '${Status}' %s" % name)
            self.assertEqual((rc, st), (0, "install ok installed"), "dependency %s" % name)
        # installing enables and starts nothing: port 25 is the MTA's
        for unit in DEB_UNITS:
            rc, state = self.root.run("systemctl is-enabled %s" % unit)
            self.assertEqual(state.strip(), "disabled", unit)
        self.assertFalse(os.path.lexists(self.root.path(
            "/etc/systemd/system/multi-user.target.wants/breakwater.service")))

    def test_2_upgrade_keeps_edits(self):
        conf = self.root.path("/etc/breakwater/breakwater.conf")
        with open(conf, "a") as f:
            f.write("\n# edited by the admin\nmax_connections = 1234\n")
        with open(conf) as f:
            edited = f.read()
        with open(self.root.path("/var/lib/breakwater/kept"), "w") as f:
            f.write("state\n")
        out = self.apt("install /debs/%s" % os.path.basename(self.deb))
        self.assertEqual(self.status(), "install ok installed %s" % self.version, out)
        with open(conf) as f:
            self.assertEqual(f.read(), edited, "the edited conffile was replaced")
        self.assertTrue(os.path.exists(self.root.path("/var/lib/breakwater/kept")))

    def test_3_binary_units_user(self):
        out = self.root.check("breakwater --version")
        self.assertEqual(out.strip(), "breakwater %s" % self.version)
        # one version in the binary, the package and the man pages
        for page in ("man8/breakwater.8.gz", "man5/breakwater.conf.5.gz"):
            th = self.root.check("zcat /usr/share/man/%s | grep '^\\.TH'" % page)
            self.assertIn('"breakwater %s"' % self.version, th, page)
        out = self.root.check("man -P cat breakwater 2>/dev/null | head -5")
        self.assertIn("breakwater", out)
        # what the admin does once the MTA has moved (systemd need not run:
        # enabling is the [Install] section's symlinks)
        wants = self.root.path("/etc/systemd/system/multi-user.target.wants/breakwater.service")
        self.root.check("systemctl enable breakwater.service 2>&1")
        self.assertTrue(os.path.islink(wants), "enable made no symlink")
        self.root.check("systemctl disable breakwater.service 2>&1")
        self.assertFalse(os.path.lexists(wants))
        d = self.unit_dir()
        out = self.root.check("systemd-analyze verify %s 2>&1"
                              % " ".join("%s/%s" % (d, u) for u in DEB_UNITS))
        self.assertNotIn("breakwater", out, "systemd-analyze verify said:\n" + out)
        for u in DEB_UNITS:
            text = open(self.root.path("%s/%s" % (d, u))).read()
            self.assertIn("ExecStart=/usr/sbin/breakwater ", text)
            self.assertNotIn("/usr/local/", re.sub(r"(?m)^#.*$", "", text))
        user = self.root.check("getent passwd breakwater").strip().split(":")
        self.assertEqual((user[5], user[6]), ("/var/lib/breakwater", "/usr/sbin/nologin"))
        self.assertLess(int(user[2]), 1000, "not a system user: %r" % user)
        st = self.root.check("stat -c '%U:%G %a' /var/lib/breakwater").strip()
        self.assertEqual(st, "breakwater:breakwater 750")
        conffiles = self.root.check("dpkg-query -W -f '${Conffiles}' breakwater")
        self.assertIn("/etc/breakwater/breakwater.conf", conffiles)

    def test_4_serves_mail(self):
        """The installed binary, as its unit starts it (as root, dropping to
        the package's user), in a network namespace with rbldnsd and
        smtp-sink: a clean client's message relayed, a listed one refused."""
        ns = netns.NetNS("bwpkg-%d" % os.getpid()).create()
        dns = sink = serve = None
        try:
            dns = netns.NsRbldnsd(ns, self.tmp, [LISTED]).start()
            sink = netns.NsSmtpSink(ns, self.tmp).start()
            # `breakwater check` with the package's libraries against rbldnsd
            q = "breakwater check -c /etc/breakwater/breakwater.conf -o dnsbl_sites=bl.test " \
                "-o dnsbl_threshold=1 " \
                "-o resolver=%s %s" % (dns.resolver, "%s")
            rc, out = self.root.run(q % LISTED, ns=ns, timeout=30)
            self.assertEqual(rc, 1, "check of a listed address:\n" + out)
            rc, out = self.root.run(q % CLEAN, ns=ns, timeout=30)
            self.assertEqual(rc, 0, "check of a clean address:\n" + out)
            self.root.check("install -d -m 0755 /run/breakwater")
            log = open(os.path.join(self.tmp, "serve.log"), "wb")
            serve = subprocess.Popen(
                self.root.argv("exec breakwater serve -c /etc/breakwater/breakwater.conf "
                               "-o listen=127.0.0.1:2525 -o backend=%s -o dnsbl_sites=bl.test "
                               "-o dnsbl_threshold=1 "
                               "-o resolver=%s -o ban_backend=none"
                               % (sink.address, dns.resolver), ns=ns),
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=chroot.ENV)
            log.close()
            harness.wait_until(lambda: serve.poll() is not None or
                               netns.connect_result(ns, CLEAN, "127.0.0.1", 2525) == "connected",
                               10, interval=0.1, what="serve listening")
            self.assertIsNone(serve.poll(), open(log.name).read())
            c = netns.smtp_client(ns, CLEAN, "127.0.0.1", 2525)
            self.assertEqual(c.read_reply().code, 220)
            for cmd, code in (("EHLO client.test", 250), ("MAIL FROM:<a@client.test>", 250),
                              ("RCPT TO:<rcpt@example.org>", 250), ("DATA", 354)):
                self.assertEqual(c.cmd(cmd).code, code, cmd)
            c.send(b"Subject: from the package\r\n\r\nhello\r\n.\r\n")
            self.assertEqual(c.read_reply().code, 250)
            c.cmd("QUIT")
            sink.wait_message(b"Subject: from the package", timeout=10)
            c = netns.smtp_client(ns, LISTED, "127.0.0.1", 2525)
            c.read_reply()
            c.cmd("EHLO bot.test")
            c.cmd("MAIL FROM:<b@bot.test>")
            self.assertEqual(c.cmd("RCPT TO:<rcpt@example.org>").code, 550)
            # it runs as the package's user (a uid of the root's passwd)
            uid = int(self.root.check("id -u breakwater"))
            with open("/proc/%d/status" % serve.pid) as f:
                uids = re.search(r"^Uid:\s+(\d+)\s+(\d+)", f.read(), re.M).groups()
            self.assertEqual(tuple(map(int, uids)), (uid, uid))
            serve.send_signal(signal.SIGTERM)
            self.assertEqual(serve.wait(40), 0, open(log.name).read())
            serve = None
        finally:
            if serve is not None:
                serve.kill()
                serve.wait()
            for p in (sink, dns):
                if p is not None:
                    p.stop()
            ns.delete()

    BOOT = r"""
root="$1"
mount -t proc proc "$root/proc"
mount --rbind /sys "$root/sys"
mount --rbind /dev "$root/dev"
mount -t tmpfs -o mode=0755 tmpfs "$root/run"
export container=other
exec chroot "$root" /lib/systemd/systemd --system --log-target=console --log-level=info
"""

    def test_4_systemd_enable_now_and_restart(self):
        """Under a real systemd (PID 1 of its own PID and mount namespace,
        in the root, in a network namespace with loopback only): `systemctl
        enable --now breakwater` and a restart both end active, and what
        the user keeps in /var/lib/breakwater stays the user's: a setuid
        copy of a shell and a hard link to another user's file (with
        StateDirectory= and no User=, systemd gave both to root at each
        start, and serve then refused its store, root's by then)."""
        ns = netns.NetNS("bwpkgsd-%d" % os.getpid()).create()
        boot = None
        try:
            self.root.check("cp /bin/dash /var/lib/breakwater/x && "
                            "chown breakwater:breakwater /var/lib/breakwater/x && "
                            "chmod 4755 /var/lib/breakwater/x && "
                            "mkdir -p /srv && echo victim > /srv/victim && "
                            "chown nobody:nogroup /srv/victim && chmod 0666 /srv/victim && "
                            "ln /srv/victim /var/lib/breakwater/hl")
            log = open(os.path.join(self.tmp, "systemd.log"), "wb")
            boot = subprocess.Popen(
                ["nsenter", "--mount=/proc/%d/ns/mnt" % self.root.holder.pid,
                 "--net=" + ns.path, "unshare", "--mount", "--propagation", "private",
                 "--pid", "--fork", "--kill-child", "sh", "-c", self.BOOT, "boot",
                 self.root.root],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=chroot.ENV,
                start_new_session=True)
            log.close()

            def pid1():
                try:
                    with open("/proc/%d/task/%d/children" % (boot.pid, boot.pid)) as f:
                        kids = f.read().split()
                    return int(kids[0]) if kids else None
                except OSError:
                    return None
            init = harness.wait_until(pid1, 10, what="systemd started")

            def ctl(args, timeout=120):
                p = subprocess.run(["nsenter", "-t", str(init), "-m", "-p", "-n", "-r", "-w",
                                    "systemctl"] + args, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                   env=chroot.ENV, timeout=timeout, universal_newlines=True)
                return p.returncode, p.stdout.strip()

            def booted():
                self.assertIsNone(boot.poll(), open(log.name, "rb").read()[-3000:])
                return ctl(["is-system-running"], 10)[1] in ("running", "degraded")
            harness.wait_until(booted, 120, interval=0.5, what="systemd up")

            def owners():
                out = self.root.check("stat -c '%n %U %a' /var/lib/breakwater/x /srv/victim "
                                      "/var/lib/breakwater/breakwater.mdb 2>/dev/null; true")
                return out.strip().split("\n")

            for step in (["enable", "--now", "breakwater"], ["restart", "breakwater"]):
                rc, out = ctl(step)
                status = ctl(["status", "--no-pager", "-n", "20", "breakwater"])[1]
                self.assertEqual(rc, 0, "systemctl %s: %s\n%s" % (" ".join(step), out, status))
                self.assertEqual(ctl(["is-active", "breakwater"])[1], "active", status)
                self.assertEqual(owners(), ["/var/lib/breakwater/x breakwater 4755",
                                            "/srv/victim nobody 666",
                                            "/var/lib/breakwater/breakwater.mdb breakwater 640"],
                                 " ".join(step))
            self.assertEqual(ctl(["is-enabled", "breakwater"])[1], "enabled")
            rc, out = ctl(["disable", "--now", "breakwater"])
            self.assertEqual(rc, 0, out)
        finally:
            if boot is not None:
                os.killpg(boot.pid, signal.SIGKILL)
                boot.wait()
            ns.delete()
            self.root.run("rm -rf /srv/victim /var/lib/breakwater/x /var/lib/breakwater/hl")

    def test_5_reinstall_keeps_edits(self):
        conf = self.root.path("/etc/breakwater/breakwater.conf")
        before = open(conf).read()
        self.apt("install --reinstall /debs/%s" % os.path.basename(self.deb))
        self.assertEqual(open(conf).read(), before)

    def test_6_remove_keeps_config_and_state(self):
        self.apt("remove breakwater")
        self.assertTrue(self.status().startswith("deinstall ok config-files"), self.status())
        self.assertFalse(os.path.exists(self.root.path("/usr/sbin/breakwater")))
        self.assertIn("# edited by the admin",
                      open(self.root.path("/etc/breakwater/breakwater.conf")).read())
        self.assertTrue(os.path.exists(self.root.path("/var/lib/breakwater/kept")))

    def test_7_purge_leaves_only_the_user(self):
        self.apt("purge breakwater")
        self.assertEqual(self.status(), "not installed")
        for gone in ("/etc/breakwater", "/var/lib/breakwater"):
            self.assertFalse(os.path.lexists(self.root.path(gone)), gone)
        self.root.check("getent passwd breakwater")
        # the upper layer holds every change the root saw: what is left
        # that names the package, beyond the user and the package tools' logs
        allowed = re.compile(r"^/(etc/(passwd|group|shadow|gshadow|subuid|subgid)-?"
                             r"|var/log/(dpkg\.log|apt/.*)|var/lib/dpkg/.*|var/cache/.*"
                             r"|var/lib/apt/.*|debs/.*)$")
        left = []
        for top, dirs, files in os.walk(self.root.upper):
            for n in dirs + files:
                p = os.path.join(top, n)
                rel = "/" + os.path.relpath(p, self.root.upper)
                if "breakwater" in rel and not allowed.match(rel):
                    left.append(rel)
                elif os.path.isfile(p) and not os.path.islink(p) and not allowed.match(rel):
                    with open(p, "rb") as f:
                        if b"breakwater" in f.read(1 << 20):
                            left.append(rel + " (mentions it)")
        self.assertEqual(left, [], "left after purge")


def main():
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--deb", required=True, help="the package built here (bookworm)")
    ap.add_argument("--dsc", required=True, help="its source package, built again for trixie")
    ap.add_argument("--releases", default="bookworm,trixie")
    ARGS, rest = ap.parse_known_args()
    if os.geteuid() != 0:
        sys.exit("test_package: needs root (chroots, namespaces)")
    if not chroot.have_overlay():
        sys.exit("test_package: the kernel lacks overlayfs")
    # every chroot first, built side by side (a first run: minutes each)
    releases = ARGS.releases.split(",")
    t0 = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(len(releases)) as pool:
        for f in [pool.submit(ensure_roots, r) for r in releases]:
            f.result()
    sys.stderr.write("chroots ready in %.0f s\n" % (time.monotonic() - t0))
    suite = unittest.TestSuite()
    for release in releases:
        cls = type("Package_%s" % release, (PackageTest,), {"RELEASE": release})
        suite.addTests(unittest.defaultTestLoader.loadTestsFromTestCase(cls))
    result = unittest.TextTestRunner(verbosity=2, failfast=True).run(suite)
    ran = result.testsRun - len(result.skipped)
    print("package: %d passed, %d failed, %d skipped"
          % (ran - len(result.failures) - len(result.errors),
             len(result.failures) + len(result.errors), len(result.skipped)))
    sys.exit(0 if result.wasSuccessful() and not result.skipped else 1)


if __name__ == "__main__":
    main()
