"""Privilege separation, seen by an attacker who already runs as breakwater's
own user (a compromised serve or watch process).

PrivsepSymlinkTest: serve starts as root and, before it drops to `user`,
makes the control socket in a directory it gave to `user`, and gives the
state_dir files to `user`. A process running as `user` races every start:
it swaps a symlink to a root-owned 0600 file over the control socket the
moment it appears (the code before the fix chowned the path right after
bind(), and followed the symlink), and plants symlinks under the store's
file names. Serve and the swapper run on two CPUs of their own, and the
socket's directory sits 30 directories deep (the code before the fix
walked that path again in chown()): the window is the one a real attacker
has, made a little wider. After 40 restarts the root-owned file must still
be root's, mode 0600, unchanged. Before the fix it became the user's,
mostly within a few restarts.

PrivsepFilesTest: the same rules, one case at a time: the control socket
is the user's and 0600 in a directory the user owns (made as the user)
and in a root-owned one (made by root, given away without following);
root's `breakwater ctl` is not led by a symlink in the user's directory;
state_dir names that are a symlink or a hard link to someone else's file
are refused at start, not chowned; a state_dir inside a directory the user
can write, or that is itself a symlink, is refused; a root-owned file the
user renamed into state_dir under a store name (one link, root's: the code
before the fix gave it away) is refused too, and stays root's.

PrivsepCtlTest: root's `breakwater ctl`, and serve's start, against what the
user can put at the control socket's path: a name the user swaps in and
out of a root-owned, group-writable directory while root's ctl runs (the
code before the fix connected as root by path when the name was missing
at its one look, then met the user's symlink); a symlink, in a sticky
directory, in place of the socket's directory; a listener of the user's
answering with terminal control sequences; one that never answers, or
whose backlog is full (ctl and serve's start waited forever); one that
sends a single byte MSG_OOB (ctl's blocking recv() skipped it and waited
forever); one that answers without end (ctl read it all, `ctl stats
--json` kept it all in memory) or with numbers JSON has no word for
(`0x1p4`); another user's socket renamed onto the control name in a
root-owned group-writable directory (the code before the fix connected
with that other user's identity); a name flipped between a dead socket and
a symlink while serve starts (the start's look connected by name, through
the symlink, as root).

ServeHelperKillTest: a compromised serve holds its socket to the ban
helper. The test plays that process: it stops serve (SIGSTOP), takes a
copy of the helper socket with pidfd_getfd(2) and sends BAN_KILL for a
client holding a connection to a watch_ports port (watch_kill = socket in
the configuration serve read). serve's helper refuses it: failed = 1, the
reason in the reply, one log line however many arrive, the connection
untouched and no ban; a plain BAN on the same socket still works. watch's
helper still ends connections: test_watch.py, WatchKillTest.
"""

import ctypes
import errno
import os
import pwd
import signal
import socket
import stat
import struct
import subprocess
import sys
import threading
import time
import unittest

import harness
import netns
import test_bans
from harness import BreakwaterTestCase, SLOW, wait_until

USER = "nobody"
SO_SNDBUFFORCE = 32   # <asm-generic/socket.h>; Python does not name it
RESTARTS = 40          # starts of serve raced by the swapper
BUDGET = 120           # seconds for the whole loop, whatever happens
DEPTH = 30             # directories above the run dir (sun_path: 108 bytes)
CTL_RACES = 300        # root's ctl runs raced by the toggler
CTL_RACES_MIN = 50     # ... at least, even if it takes longer than:
CTL_BUDGET = 40        # seconds for those (up to 3x, * SLOW, to reach CTL_RACES_MIN)
CTL_TIMEOUT = 5        # seconds ctl waits for each part, serve's start in all (CONTROL_WAIT)
CTL_ANSWER_WAIT = 20   # seconds for ctl's whole request (CONTROL_ANSWER_WAIT)
ANSWER_MAX = 256 << 20  # bytes of an answer ctl reads (CONTROL_OUT_MAX, control.h)
STATS_MAX = 1 << 20     # ... `ctl stats --json` and `stats` (CONTROL_STATS_MAX)
OTHER_UID = 54321       # another user than USER and root, owner of its own socket
FLIP_STARTS = 200      # serve starts raced by the flipper
FLIP_BUDGET = 60       # seconds for those, whatever happens

# The swapper: runs as USER, spins on the control socket's path and, the
# moment a socket appears, renames a symlink to the secret over it; keeps
# it there 50 ms (long past any chown of the code before the fix), then
# removes it so that the next start can bind. One round in eight it plants
# symlinks (or hard links where fs.protected_hardlinks allows them) to
# the secret under the store's file names, and removes them the round
# after. It stops at the stop file or its deadline and prints its counts.
SWAPPER = r"""
import os, stat, sys, time
sock, secret, state, stopfile, deadline = sys.argv[1:6]
deadline = float(deadline)
names = ("breakwater.mdb", "breakwater.mdb-lock")
# names relative to the socket's directory: no path walk in the hot loop
os.chdir(os.path.dirname(sock))
sock, link = os.path.basename(sock), ".swap"
swaps = planted = linked = rounds = 0
access, rename, F_OK = os.access, os.rename, os.F_OK
def plant(path, tmp):
    global linked
    try:
        os.link(secret, tmp)
        linked += 1
    except OSError:
        os.symlink(secret, tmp)
    os.rename(tmp, path)
def state_names(plant_them):
    # plant_them: a symlink (or a hard link) to the secret under each
    # name of the store; else remove what was planted
    global planted
    for n in names:
        path = os.path.join(state, n)
        try:
            st = os.lstat(path)
            if not plant_them and (stat.S_ISLNK(st.st_mode) or st.st_nlink > 1):
                os.unlink(path)
        except OSError:
            pass
        if plant_them:
            try:
                plant(path, os.path.join(state, ".plant"))
                planted += 1
            except OSError:
                pass
while time.monotonic() < deadline and not os.path.exists(stopfile):
    rounds += 1
    state_names(rounds % 8 == 0)   # planted for one round in eight
    if not os.path.lexists(link):
        os.symlink(secret, link)
    # nothing but serve's bind() makes this name: whatever appears there
    # is swapped at once (access() does not raise: the loop stays tight)
    for _ in range(20000):
        if access(sock, F_OK, follow_symlinks=False):
            rename(link, sock)
            swaps += 1
            time.sleep(0.05)
            try:
                if stat.S_ISLNK(os.lstat(sock).st_mode):
                    os.unlink(sock)
            except OSError:
                pass
            break
print("swaps=%d planted=%d linked=%d" % (swaps, planted, linked), flush=True)
"""


def cpus():
    """Two CPUs of this process's set, one for serve and one for the
    swapper, so that neither waits for the other; None with fewer."""
    mine = sorted(os.sched_getaffinity(0))
    return (mine[0], mine[1]) if len(mine) >= 2 else None


def on_cpu(cpu):
    """preexec_fn: run on that CPU alone (None: anywhere)."""
    def pin():
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
    return pin


def as_user(uid, gid, cpu=None):
    """preexec_fn: become uid/gid for good (no supplementary groups), at a
    high priority (set while root) so that the race is run hard."""
    def drop():
        on_cpu(cpu)()
        os.nice(-10)
        os.setgroups([])
        os.setresgid(gid, gid, gid)
        os.setresuid(uid, uid, uid)
    return drop


def user_python():
    """A python3 the unprivileged user can run (this one may sit under
    /root)."""
    for path in ("/usr/bin/python3", "/usr/local/bin/python3"):
        if os.path.exists(path):
            return path
    return sys.executable


class PrivsepTestCase(BreakwaterTestCase):

    def setUp(self):
        super().setUp()
        if os.geteuid() != 0:
            self.skipTest("needs root (serve switching to a user)")
        try:
            pw = pwd.getpwnam(USER)
        except KeyError:
            self.skipTest("no user %s" % USER)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid

    def secret(self):
        """A root-owned 0600 file the user must never get."""
        path = os.path.join(self.tmp, "secret")
        content = os.urandom(32).hex().encode()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, content)
        os.close(fd)
        return path, content

    def assertSecretKept(self, path, content, why):
        st = os.lstat(path)
        self.assertTrue(stat.S_ISREG(st.st_mode), why)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink),
                         (0, 0, 0o600, 1),
                         "the root-owned 0600 file was changed (owner, group, mode, links); "
                         + why)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), content, why)

    def start_once(self, conf, name, cpu=None):
        """One start of serve (on cpu, if given): ('up', log) once it
        listens (then stopped), or ('failed', log) when it exits first. Its
        stderr is checked for sanitizer reports either way."""
        d = harness.Daemon(self.tmp, conf, name=name)
        d.start(wait=False, preexec_fn=on_cpu(cpu))
        deadline = time.monotonic() + 5 * SLOW
        result = None
        while result is None:
            if d.proc.poll() is not None:
                result = "failed"
            elif d.listening()[0]:
                result = "up"
            elif time.monotonic() > deadline:
                result = "hung"
            else:
                time.sleep(0.01)
        rc = d.stop()
        log = d.log()
        self.assertEqual(harness.sanitizer_lines(log), [], log[-4000:])
        self.assertNotEqual(result, "hung", "serve neither listens nor exits:\n" + log[-2000:])
        # up, then out at once: a store name planted after the start checks
        self.assertNotEqual(rc, "killed", "serve did not stop on SIGTERM:\n" + log[-2000:])
        return result, log

    def assertOwned(self, path, mode):
        st = os.lstat(path)
        self.assertEqual((st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)),
                         (self.uid, self.gid, mode), path)

    def run_as_user(self, code, *args):
        """Python code run as the user (what a compromised serve can do)."""
        p = subprocess.run([user_python(), "-c", code] + list(args), stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.tmp,
                           timeout=10 * SLOW, preexec_fn=as_user(self.uid, self.gid))
        self.assertEqual(p.returncode, 0, "as %s: %r %r" % (USER, p.stdout, p.stderr))


class PrivsepSymlinkTest(PrivsepTestCase):

    def test_swapper_across_restarts(self):
        secret, content = self.secret()
        # the run dir (made by serve for the user) sits DEPTH levels down,
        # in root's directories: the code before the fix walked that path
        # again in chown() after bind(), a wider window than in /run (the
        # report needed 44 restarts to hit it there)
        deep = os.path.join(self.tmp, *["d"] * DEPTH)
        os.makedirs(deep, mode=0o755)
        rundir = os.path.join(deep, "run")
        conf = self.base_conf(self.dead_backend_address())
        conf.update(control_socket=os.path.join(rundir, "control"), user=USER)
        stopfile = os.path.join(self.tmp, "stop-swapper")

        # the first start makes the run dir and the store for the user
        self.assertEqual(self.start_once(conf, "start0")[0], "up")
        self.assertOwned(rundir, 0o750)
        self.assertOwned(conf["control_socket"], 0o600)

        deadline = time.monotonic() + BUDGET
        pair = cpus()
        swapper = subprocess.Popen(
            [user_python(), "-c", SWAPPER, conf["control_socket"], secret,
             conf["state_dir"], stopfile, str(deadline + 10)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=self.tmp, preexec_fn=as_user(self.uid, self.gid, pair and pair[1]))
        self._cleanups_extra.append(lambda: harness.stop_process(swapper))
        results = []
        try:
            for i in range(1, RESTARTS + 1):
                if time.monotonic() > deadline:
                    break
                results.append(self.start_once(conf, "start%d" % i, pair and pair[0])[0])
                if os.lstat(secret).st_uid != 0:
                    break   # lost already: no need to go on
                time.sleep(0.1)   # the swapper lets go of its symlink
        finally:
            open(stopfile, "w").close()
            out, err = swapper.communicate(timeout=20)
        report = "%d starts: %d up, %d refused; swapper: %s %s" % (
            len(results), results.count("up"), results.count("failed"), out.decode().strip(),
            err.decode()[-1500:])
        self.assertSecretKept(secret, content, report)
        self.assertEqual(swapper.returncode, 0, report)
        self.assertGreaterEqual(len(results), 20, "too few restarts in %ds: %s" % (BUDGET, report))
        self.assertGreaterEqual(results.count("up"), 10, report)
        swaps = int(out.decode().split("swaps=")[1].split()[0])
        self.assertGreaterEqual(swaps, 10, "the swapper hardly got at a socket: " + report)


class PrivsepFilesTest(PrivsepTestCase):

    def conf(self, **extra):
        conf = self.base_conf(self.dead_backend_address())
        conf.update(user=USER)
        conf.update(extra)
        return conf

    def test_control_socket_owner(self):
        """In a directory serve made for the user: the user's from bind()
        on. In a root-owned one (a RuntimeDirectory= of systemd): made by
        root, given to the user without following the name. Both 0600,
        both answer ctl."""
        for where in ("run", None):
            sock = os.path.join(self.tmp, where, "control") if where else \
                os.path.join(self.tmp, "control")
            d = self.start_daemon(conf_extra={"control_socket": sock})
            if where:
                self.assertOwned(os.path.dirname(sock), 0o750)
            self.assertOwned(sock, 0o600)
            p = self.run_bw(["ctl", "-c", d.confpath, "stats"])
            self.assertEqual(p.returncode, 0, "ctl stats: %r %r" % (p.stdout, p.stderr))
            self.assertEqual(d.stop(), 0, d.log()[-2000:])
        st = os.stat(self.tmp)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o755),
                         "the root-owned directory stays root's")

    def test_ctl_as_root_not_led_by_a_symlink(self):
        """Root's `breakwater ctl` does not follow a symlink the user put
        in its own run directory in place of the control socket (here to
        a root-only socket): it refuses it; the root-only socket hears
        nothing."""
        rundir = os.path.join(self.tmp, "run")
        os.mkdir(rundir, 0o750)
        os.chown(rundir, self.uid, self.gid)
        private = os.path.join(self.tmp, "root-only.sock")
        ls = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._cleanups_extra.append(ls.close)
        ls.bind(private)
        os.chmod(private, 0o600)
        ls.listen(4)
        os.symlink(private, os.path.join(rundir, "control"))
        d = harness.Daemon(self.tmp, self.conf(control_socket=os.path.join(rundir, "control")),
                           name="ctl")
        d.write_conf()
        ctl = subprocess.Popen([harness.BINARY, "ctl", "-c", d.confpath, "stats"],
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, universal_newlines=True)
        self._cleanups_extra.append(lambda: harness.stop_process(ctl))
        ls.settimeout(1.0 * SLOW)
        heard = None
        try:
            c, _ = ls.accept()
            c.settimeout(1.0)
            heard = c.recv(256)
            c.close()       # ctl reads no answer and gives up
        except socket.timeout:
            pass
        out, err = ctl.communicate(timeout=10 * SLOW)
        self.assertIsNone(heard, "root's ctl reached the root-only socket and sent %r" % heard)
        self.assertEqual(ctl.returncode, 2, "ctl: %r %r" % (out, err))
        self.assertIn("cannot reach the daemon", err)
        self.assertIn("a symlink (not followed here)", err)

    def test_state_names_not_followed(self):
        """A symlink, or a hard link, to a root-owned file under a store
        name: start refused with the name and the reason; the file not
        chowned (the code before the fix gave the hard-linked one away)."""
        secret, content = self.secret()
        for kind in ("hardlink", "symlink"):
            state = os.path.join(self.tmp, "state-" + kind)
            os.mkdir(state, 0o750)
            planted = os.path.join(state, "breakwater.mdb")
            (os.symlink if kind == "symlink" else os.link)(secret, planted)
            result, log = self.start_once(self.conf(state_dir=state), "start-" + kind)
            os.unlink(planted)
            self.assertSecretKept(secret, content, kind + ": " + log[-1000:])
            self.assertEqual(result, "failed", kind)
            self.assertIn("%s: not a plain file" % planted, log, kind)

    def test_root_files_renamed_into_state_dir_kept(self):
        """A non-sticky directory the user may write, on state_dir's file
        system, holds a root-owned 0600 file (here a drop box root:nogroup
        0770). The user renames it under each store name in its state_dir:
        one link, root's, a regular file. The code before the fix gave it to
        the user at the next start (and only then failed: not an LMDB file).
        The start now stops, says how to give it back if the admin means
        it, and the file stays root's; once it is gone, serve starts again
        on the user's own store."""
        conf = self.conf()
        self.assertEqual(self.start_once(conf, "first")[0], "up")
        drop = os.path.join(self.tmp, "drop")
        os.mkdir(drop)
        os.chown(drop, 0, self.gid)
        os.chmod(drop, 0o770)
        for name in ("breakwater.mdb", "breakwater.mdb-lock"):
            secret, content = self.secret()
            os.rename(secret, os.path.join(drop, "secret"))
            planted = os.path.join(conf["state_dir"], name)
            self.run_as_user("import os, sys; os.rename(sys.argv[1], sys.argv[2])",
                             os.path.join(drop, "secret"), planted)
            result, log = self.start_once(conf, "start-" + name)
            self.assertSecretKept(planted, content, name + ": " + log[-1000:])
            self.assertEqual(result, "failed", name)
            self.assertIn("%s: root's" % planted, log, name)
            self.assertIn("chown %s: %s" % (USER, planted), log, name)
            os.unlink(planted)
        # serve listens (its ports, control socket, metrics) before it
        # opens the store: wait for the store, not for the sockets alone
        d = harness.Daemon(self.tmp, conf, name="again").start()
        store = os.path.join(conf["state_dir"], "breakwater.mdb")
        try:
            wait_until(lambda: os.path.exists(store), 5 * SLOW, what="the store made again")
        finally:
            d.stop()
        self.assertEqual(harness.sanitizer_lines(d.log()), [], d.log()[-4000:])
        self.assertOwned(store, 0o640)

    def test_state_dir_refused_where_the_user_can_swap_it(self):
        """state_dir inside a directory the user owns, or that is a
        symlink: refused, nothing given away."""
        secret, content = self.secret()
        home = os.path.join(self.tmp, "home")
        os.mkdir(home, 0o755)
        os.chown(home, self.uid, self.gid)
        result, log = self.start_once(self.conf(state_dir=os.path.join(home, "state")), "home")
        self.assertEqual(result, "failed")
        self.assertIn("must be root's", log)
        self.assertFalse(os.path.exists(os.path.join(home, "state")), log[-1000:])

        target = os.path.join(self.tmp, "elsewhere")
        os.mkdir(target, 0o700)
        link = os.path.join(self.tmp, "state-link")
        os.symlink(target, link)
        result, log = self.start_once(self.conf(state_dir=link), "link")
        self.assertEqual(result, "failed")
        self.assertIn("a symlink (not followed here)", log)
        st = os.stat(target)
        self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (0, 0o700), log[-1000:])
        self.assertSecretKept(secret, content, log[-1000:])


# The toggler: runs as USER in a directory it may write (not its own) and
# swaps the control socket's name in and out as fast as it can: a symlink
# to a root-only socket, then nothing. The code before the fix looked at
# the name once and, finding nothing, connected as root by path. Stops at
# the stop file or its deadline and prints its count.
TOGGLER = r"""
import os, sys, time
rundir, target, stopfile, deadline = sys.argv[1:5]
deadline = float(deadline)
os.chdir(rundir)
symlink, rename, unlink = os.symlink, os.rename, os.unlink
toggles = 0
while time.monotonic() < deadline and not os.path.exists(stopfile):
    for _ in range(1000):
        symlink(target, ".l")
        rename(".l", "control")
        unlink("control")
    toggles += 1000
print("toggles=%d" % toggles, flush=True)
"""


# The flipper: runs as USER in its own run directory and flips the control
# socket's name as fast as it can between a dead socket of its own (nothing
# listens there: serve's start removes it) and a symlink to target. The
# code before the fix looked at the name, then connected to it by name.
# Stops at the stop file or its deadline and prints its count.
FLIPPER = r"""
import os, socket, sys, time
rundir, target, stopfile, deadline = sys.argv[1:5]
deadline = float(deadline)
os.chdir(rundir)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.bind(".dead")
s.close()
link, symlink, rename = os.link, os.symlink, os.rename
flips = 0
while time.monotonic() < deadline and not os.path.exists(stopfile):
    for _ in range(1000):
        link(".dead", ".s")
        rename(".s", "control")
        symlink(target, ".l")
        rename(".l", "control")
    flips += 1000
print("flips=%d" % flips, flush=True)
"""


class Listener(threading.Thread):
    """A listening Unix socket at path (uid's, mode 0600 unless told),
    standing for a daemon or for what the user put there. Once started, it
    accepts every client, keeps what each one sent first in .heard, sends
    answer back (bytes, or a function of the listener and the connection
    that does the answering); not started, its clients wait in the backlog
    unanswered."""

    def __init__(self, test, path, uid=0, gid=0, answer=b"", backlog=16, mode=0o600):
        super().__init__(daemon=True)
        self.answer, self.heard, self.done, self.queued = answer, [], False, []
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        test._cleanups_extra.append(self.close)
        self.sock.bind(path)
        os.chown(path, uid, gid)
        os.chmod(path, mode)
        self.sock.listen(backlog)
        self.path = path

    def run(self):
        self.sock.settimeout(0.1)
        while not self.done:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with c:
                c.settimeout(2)
                try:
                    self.heard.append(c.recv(512))
                    if callable(self.answer):
                        self.answer(self, c)
                    else:
                        c.sendall(self.answer)
                except OSError:
                    pass

    def hold(self, seconds):
        """Keep the connection being answered open (bounded)."""
        deadline = time.monotonic() + seconds
        while not self.done and time.monotonic() < deadline:
            time.sleep(0.05)

    def fill_backlog(self):
        """Queue clients until the backlog is full (listen(0)): a
        blocking connect() to it then waits."""
        for _ in range(8):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.setblocking(False)
            self.queued.append(s)
            try:
                s.connect(self.path)
            except BlockingIOError:
                return
        raise AssertionError("the backlog of %s never filled" % self.path)

    def close(self):
        self.done = True
        if self.is_alive():
            self.join(5)
        for s in self.queued:
            s.close()
        self.sock.close()


class PrivsepCtlTest(PrivsepTestCase):

    def user_dir(self, name, uid=None, gid=None, mode=0o750):
        """A directory of self.tmp given to uid:gid (the user's by
        default) with mode."""
        path = os.path.join(self.tmp, name)
        os.mkdir(path)
        os.chown(path, self.uid if uid is None else uid, self.gid if gid is None else gid)
        os.chmod(path, mode)
        return path

    def ctl(self, sock, cpu=None, command=("ctl", "stats"), limit=3 * CTL_TIMEOUT):
        """Root's `breakwater ctl stats` (or command) at sock, the daemon's
        user being USER (bytes out, bytes err, status) and how long it took;
        the test fails when it still waits after limit (* SLOW) seconds."""
        start = time.monotonic()
        try:
            p = subprocess.run([harness.BINARY, command[0], "-c", "/dev/null", "-o",
                                "control_socket=" + sock, "-o", "user=" + USER]
                               + list(command[1:]),
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=limit * SLOW,
                               preexec_fn=on_cpu(cpu))
        except subprocess.TimeoutExpired:
            self.fail("root's ctl at %s still waits after %.0fs" % (sock, limit * SLOW))
        err = p.stderr.decode("utf-8", "replace")
        self.assertEqual(harness.sanitizer_lines(err), [], err[-4000:])
        return p, time.monotonic() - start

    def test_ctl_not_raced_in_a_group_writable_dir(self):
        """The socket's directory is root's but group-writable by the user:
        the user swaps a symlink to a root-only socket in and out of the
        socket's name while root runs ctl again and again. The root-only
        socket never hears from root; a real daemon's socket there still
        answers ctl."""
        rundir = self.user_dir("run", uid=0, mode=0o770)
        private = self.user_dir("private", uid=0, gid=0, mode=0o700)
        target = Listener(self, os.path.join(private, "sock"))
        target.start()
        stopfile = os.path.join(self.tmp, "stop-toggler")
        # CTL_BUDGET, or longer until CTL_RACES_MIN runs: on a busy machine
        # an ASan ctl run takes over a second (33 runs in 40 s was seen)
        start = time.monotonic()
        deadline, hard = start + CTL_BUDGET, start + 3 * CTL_BUDGET * SLOW
        pair = cpus()
        toggler = subprocess.Popen(
            [user_python(), "-c", TOGGLER, rundir, target.path, stopfile, str(hard + 10)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=self.tmp, preexec_fn=as_user(self.uid, self.gid, pair and pair[1]))
        self._cleanups_extra.append(lambda: harness.stop_process(toggler))
        runs = 0
        try:
            time.sleep(0.2)    # under way
            while runs < CTL_RACES and not target.heard and (
                    time.monotonic() < deadline
                    or (runs < CTL_RACES_MIN and time.monotonic() < hard)):
                self.ctl(os.path.join(rundir, "control"), pair and pair[0])
                runs += 1
        finally:
            open(stopfile, "w").close()
            out, err = toggler.communicate(timeout=20)
        report = "%d runs of ctl; toggler: %s %s" % (runs, out.decode().strip(),
                                                     err.decode()[-1500:])
        self.assertEqual(target.heard, [], "root's ctl reached the root-only socket: " + report)
        self.assertEqual(toggler.returncode, 0, report)
        self.assertGreaterEqual(runs, CTL_RACES_MIN, report)
        for name in ("control", ".l"):
            if os.path.lexists(os.path.join(rundir, name)):
                os.unlink(os.path.join(rundir, name))
        sock = os.path.join(rundir, "control")
        d = self.start_daemon(conf_extra={"control_socket": sock, "user": USER})
        self.assertOwned(sock, 0o600)
        p, _ = self.ctl(sock)
        self.assertEqual(p.returncode, 0, "ctl stats: %r %r" % (p.stdout, p.stderr))
        self.assertIn(b"bans_applied", p.stdout)
        self.assertEqual(d.stop(), 0, d.log()[-2000:])

    def test_ctl_refuses_a_symlinked_directory(self):
        """The socket's directory named in a sticky one (as /tmp) is the
        user's symlink to a root-only directory holding a root-only socket
        of the same name: refused, not followed; that socket hears
        nothing."""
        sticky = self.user_dir("sticky", uid=0, gid=0, mode=0o1777)
        private = self.user_dir("private", uid=0, gid=0, mode=0o700)
        target = Listener(self, os.path.join(private, "control"))
        target.start()
        link = os.path.join(sticky, "run")
        os.symlink(private, link)
        os.lchown(link, self.uid, self.gid)
        p, _ = self.ctl(os.path.join(link, "control"))
        self.assertEqual(target.heard, [], "root's ctl followed the symlinked directory")
        self.assertEqual(p.returncode, 2, "ctl: %r %r" % (p.stdout, p.stderr))
        self.assertIn(b"%s: a symlink (not followed here)" % link.encode(), p.stderr)

    def test_ctl_answer_escaped(self):
        """A listener of the user's in its run directory answers root's ctl
        with terminal control sequences, a NUL and 8-bit bytes, in a data
        line and in an error line: ctl prints them as \\xHH, nothing else
        but printable ASCII and newlines reaches the terminal."""
        rundir = self.user_dir("run")
        answer = (b"title \x1b]0;owned\x07 clear \x1b[2J\r bell\x07 nul\x00 del\x7f hi\xff\n"
                  b"error: red \x1b[31m text\x1b[0m\n")
        Listener(self, os.path.join(rundir, "control"), self.uid, self.gid, answer).start()
        p, _ = self.ctl(os.path.join(rundir, "control"))
        self.assertEqual(p.returncode, 1, "ctl: %r %r" % (p.stdout, p.stderr))
        for name, text in (("stdout", p.stdout), ("stderr", p.stderr)):
            raw = sorted({b for b in text if (b < 0x20 and b != 0x0a) or b >= 0x7f})
            self.assertEqual(raw, [], "%s carries raw bytes: %r" % (name, text))
        self.assertEqual(p.stdout, b"title \\x1b]0;owned\\x07 clear \\x1b[2J\\x0d bell\\x07 "
                         b"nul\\x00 del\\x7f hi\\xff\n")
        self.assertIn(b"breakwater: red \\x1b[31m text\\x1b[0m\n", p.stderr)

    def test_ctl_peer_is_the_user(self):
        """Root's ctl talks to a socket in the user's directory as the user
        whole: the listener's SO_PEERCRED names the user, not root (a
        service of a shared user's that trusts uid 0 learns nothing)."""
        rundir = self.user_dir("run")
        seen = []

        def answer(listener, c):
            creds = c.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
            seen.append(struct.unpack("3i", creds)[1:])
            c.sendall(b"ok\n")
        Listener(self, os.path.join(rundir, "control"), self.uid, self.gid, answer).start()
        p, _ = self.ctl(os.path.join(rundir, "control"))
        self.assertEqual(p.returncode, 0, "ctl: %r %r" % (p.stdout, p.stderr))
        self.assertEqual(seen, [(self.uid, self.gid)], "the peer's uid and gid")

    def test_ctl_gives_up_on_a_silent_socket(self):
        """A listener of the user's that never answers, and one whose
        backlog is full: root's ctl gives up after CTL_TIMEOUT seconds and
        says so (the code before the fix waited forever)."""
        rundir = self.user_dir("run")
        for case in ("silent", "full"):
            sock = os.path.join(rundir, case)
            listener = Listener(self, sock, self.uid, self.gid,
                                backlog=16 if case == "silent" else 0)
            if case == "full":
                listener.fill_backlog()
            p, took = self.ctl(sock)
            self.assertEqual(p.returncode, 2, "%s: %r %r" % (case, p.stdout, p.stderr))
            self.assertIn(b"no answer from the control socket %s within %ds"
                          % (sock.encode(), CTL_TIMEOUT), p.stderr, case)
            self.assertGreater(took, CTL_TIMEOUT - 1, case)

    def test_ctl_gives_up_on_a_dripping_socket(self):
        """A listener of the user's answers one byte a second without end:
        each comes within CTL_TIMEOUT of the last, so only ctl's bound on
        the whole request (CTL_ANSWER_WAIT) ends it, and ctl says so."""
        rundir = self.user_dir("run")
        sock = os.path.join(rundir, "drip")

        def drip(listener, c):
            deadline = time.monotonic() + 2 * CTL_ANSWER_WAIT * SLOW
            while not listener.done and time.monotonic() < deadline:
                try:
                    c.send(b"x")
                except OSError:
                    return
                time.sleep(1)
        Listener(self, sock, self.uid, self.gid, drip).start()
        p, took = self.ctl(sock, limit=CTL_ANSWER_WAIT + 2 * CTL_TIMEOUT)
        print("\n  ctl gave up after %.1f s" % took, end=" ")
        self.assertEqual(p.returncode, 2, "ctl: %r %r" % (p.stdout, p.stderr))
        self.assertIn(b"the answer from the control socket %s took longer than %ds"
                      % (sock.encode(), CTL_ANSWER_WAIT), p.stderr)
        self.assertGreater(took, CTL_ANSWER_WAIT - 1)

    def test_start_gives_up_on_a_stuck_socket(self):
        """serve's start finds a socket at its control socket's name whose
        backlog is full (the user's listener): it stops with an error after
        CTL_TIMEOUT seconds instead of waiting forever to learn whether
        another daemon answers there."""
        rundir = self.user_dir("run")
        sock = os.path.join(rundir, "control")
        Listener(self, sock, self.uid, self.gid, backlog=0).fill_backlog()
        d = harness.Daemon(self.tmp, self.conf_for(sock), name="stuck")
        d.start(wait=False)
        try:
            rc = d.proc.wait(3 * CTL_TIMEOUT * SLOW)
        except subprocess.TimeoutExpired:
            rc = None
        d.stop()
        log = d.log()
        self.assertEqual(harness.sanitizer_lines(log), [], log[-4000:])
        self.assertIsNotNone(rc, "serve still waits for the socket:\n" + log[-2000:])
        self.assertNotEqual(rc, 0, log[-2000:])
        self.assertIn("no answer from the control socket %s within %ds" % (sock, CTL_TIMEOUT),
                      log)

    def test_ctl_not_held_by_an_out_of_band_byte(self):
        """A listener of the user's answers root's ctl with one byte sent
        MSG_OOB and keeps the connection open: poll() says there is
        something to read, a blocking recv() skips that byte and waits (the
        code before the fix, for as long as the listener liked). ctl reads
        without blocking and gives up after CTL_TIMEOUT seconds."""
        a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            a.send(b"!", socket.MSG_OOB)
        except OSError as e:
            self.skipTest("kernel lacks MSG_OOB on Unix stream sockets (%s)" % e)
        finally:
            a.close()
            b.close()
        rundir = self.user_dir("run")
        sock = os.path.join(rundir, "control")

        def oob(listener, c):
            c.send(b"!", socket.MSG_OOB)
            listener.hold(4 * CTL_TIMEOUT * SLOW)
        listener = Listener(self, sock, self.uid, self.gid, oob)
        listener.start()
        p, took = self.ctl(sock)
        self.assertEqual(listener.heard, [b"stats\n"])
        self.assertEqual(p.returncode, 2, "ctl: %r %r" % (p.stdout, p.stderr))
        self.assertIn(b"no answer from the control socket %s within %ds"
                      % (sock.encode(), CTL_TIMEOUT), p.stderr)
        self.assertGreater(took, CTL_TIMEOUT - 1)

    def test_ctl_not_led_to_another_users_socket(self):
        """The socket's directory is root's, writable by the user's group and
        not sticky (as in test_ctl_not_raced_in_a_group_writable_dir).
        Another user (OTHER_UID) has its own 0600 socket there; the user
        renames it onto the control socket's name: one link, an owner that
        is not root. The code before the fix connected with that owner's
        identity and reached it. ctl connects as the configured user and
        uses a socket of that user's only: refused, the other socket hears
        nothing; a socket of the user's at the name still answers."""
        rundir = self.user_dir("run", uid=0, mode=0o770)
        other = Listener(self, os.path.join(rundir, "other"), OTHER_UID, OTHER_UID,
                         b"the other daemon\nok\n")
        other.start()
        sock = os.path.join(rundir, "control")
        self.run_as_user("import os, sys; os.rename(sys.argv[1], sys.argv[2])", other.path, sock)
        st = os.lstat(sock)
        self.assertEqual((st.st_uid, st.st_nlink), (OTHER_UID, 1))
        p, _ = self.ctl(sock)
        self.assertEqual(other.heard, [], "root's ctl reached another user's socket: %r %r"
                         % (p.stdout, p.stderr))
        self.assertEqual(p.returncode, 2, "ctl: %r %r" % (p.stdout, p.stderr))
        self.assertIn(b"owned by uid %d, not by %s" % (OTHER_UID, USER.encode()), p.stderr)
        os.unlink(sock)
        mine = Listener(self, sock, self.uid, self.gid, b"the user's daemon\nok\n")
        mine.start()
        p, _ = self.ctl(sock)
        self.assertEqual((p.returncode, p.stdout), (0, b"the user's daemon\n"), p.stderr)
        self.assertEqual(mine.heard, [b"stats\n"])

    def test_start_look_not_led_by_a_symlink(self):
        """The user flips the control socket's name, in its own run
        directory, between a dead socket of its own and a symlink to a
        socket anyone may connect to (mode 0666, root's), while serve starts
        again and again. The code before the fix looked at the name (a
        socket), then connected to it by name to see whether a daemon
        answers there: through the symlink, as root (the listener sees uid
        0), when the flip fell between the two. The start now holds what it
        looked at and connects to that: the target never hears from it."""
        rundir = self.user_dir("run")
        target = Listener(self, os.path.join(self.tmp, "target"), mode=0o666)
        target.start()
        conf = self.conf_for(os.path.join(rundir, "control"))
        stopfile = os.path.join(self.tmp, "stop-flipper")
        deadline = time.monotonic() + FLIP_BUDGET
        pair = cpus()
        flipper = subprocess.Popen(
            [user_python(), "-c", FLIPPER, rundir, target.path, stopfile, str(deadline + 10)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            cwd=self.tmp, preexec_fn=as_user(self.uid, self.gid, pair and pair[1]))
        self._cleanups_extra.append(lambda: harness.stop_process(flipper))
        results = []
        try:
            time.sleep(0.2)    # under way
            while (len(results) < FLIP_STARTS and time.monotonic() < deadline
                   and not target.heard):
                results.append(self.start_once(conf, "flip%d" % len(results),
                                               pair and pair[0])[0])
        finally:
            open(stopfile, "w").close()
            out, err = flipper.communicate(timeout=20)
        report = "%d starts: %d up, %d refused; flipper: %s %s" % (
            len(results), results.count("up"), results.count("failed"), out.decode().strip(),
            err.decode()[-1500:])
        self.assertEqual(target.heard, [], "serve's start connected through the user's "
                         "symlink: " + report)
        self.assertEqual(flipper.returncode, 0, report)
        self.assertGreaterEqual(len(results), 20, report)

    def flood(self, args, answer, limit):
        """Root's breakwater (args) against a listener of the user's that
        answers `answer` (bytes) again and again until the client goes, or
        for at most 4 * CTL_TIMEOUT seconds. Returns (status, bytes on
        stdout, stderr, seconds, peak RSS in KiB)."""
        rundir = os.path.join(self.tmp, "run")
        if not os.path.isdir(rundir):
            self.user_dir("run")
        sock = os.path.join(rundir, "flood-%d" % len(os.listdir(rundir)))

        def endless(listener, c):
            # a send buffer that holds tens of replies: on a busy machine
            # every switch between this sender and ctl waits for the
            # scheduler, and with the default buffer (about 200 KiB) the
            # flood would not reach the cap within CONTROL_WAIT
            c.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, 64 << 20)
            c.settimeout(3 * CTL_TIMEOUT * SLOW)
            deadline = time.monotonic() + 4 * CTL_TIMEOUT * SLOW
            while not listener.done and time.monotonic() < deadline:
                c.sendall(answer)
        Listener(self, sock, self.uid, self.gid, endless).start()
        start = time.monotonic()
        # stdout is counted by wc(1): a reader in this process would share
        # the interpreter with the listener and, on a busy machine, slow
        # the flood below what reaches the cap within CONTROL_WAIT
        wc = subprocess.Popen(["wc", "-c"], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        proc = subprocess.Popen([harness.BINARY] + args[:1] + [
            "-c", "/dev/null", "-o", "control_socket=" + sock, "-o", "user=" + USER] + args[1:],
            stdin=subprocess.DEVNULL, stdout=wc.stdin, stderr=subprocess.PIPE)
        wc.stdin.close()
        self._cleanups_extra.append(lambda: harness.stop_process(proc))
        self._cleanups_extra.append(lambda: harness.stop_process(wc))
        timer = threading.Timer(limit, proc.kill)
        timer.start()
        errs = []
        reader = threading.Thread(target=lambda: errs.append(proc.stderr.read()))
        reader.start()
        _, status, usage = os.wait4(proc.pid, 0)
        timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        reader.join(10)
        counted = [int(wc.stdout.read().split()[0])]
        wc.wait(10)
        err = errs[0] if errs else b""
        self.assertEqual(harness.sanitizer_lines(err.decode("utf-8", "replace")), [],
                         err[-4000:])
        return proc.returncode, counted[0], err, time.monotonic() - start, usage.ru_maxrss

    def test_ctl_answer_capped(self):
        """A listener of the user's answers without end, as fast as it
        can. The code before the fix read on until CTL_TIMEOUT (ctl printed
        about 1 GB; `ctl stats --json` kept it all, 2 GB). ctl stops past
        ANSWER_MAX bytes (the longest answer a daemon sends), `ctl stats
        --json` and `stats` past STATS_MAX, and say so."""
        line = b"x" * 1023 + b"\n"
        for args, cap, status in ((["ctl", "stats", "--json"], STATS_MAX, 2),
                                  (["stats", "-n", "1"], STATS_MAX, 1),
                                  (["ctl", "bans"], ANSWER_MAX, 2)):
            what = " ".join(args)
            rc, printed, err, took, rss = self.flood(args, line * 1024, 3 * CTL_TIMEOUT * SLOW)
            print("\n  %s: stopped after %.2f s, %d bytes printed" % (what, took, printed),
                  end=" ")
            self.assertEqual(rc, status, "%s: %r" % (what, err[-2000:]))
            self.assertIn(b"longer than %d bytes" % cap, err, what)
            self.assertNotIn(b"no answer", err, what)
            self.assertLessEqual(printed, cap, what)
            if cap == STATS_MAX:
                self.assertEqual(printed, 0, what)
                self.assertLess(rss, 256 << 10, "%s: peak RSS %d KiB" % (what, rss))

    def test_ctl_stats_json_numbers(self):
        """`ctl stats --json` writes a value as it came only when it is a
        JSON number: a listener of the user's answering `0x1p4` (which
        strtod() reads, and the code before the fix printed as it was:
        invalid JSON) is refused, and nothing is printed; inf and nan are
        null."""
        rundir = self.user_dir("run")
        for answer, status, out in (
                (b"connections 3\nlatency_seconds 1.5e-05\nlatency_max inf\n"
                 b"latency_p99 -nan\nok\n", 0,
                 b'{"connections":3,"latency_seconds":1.5e-05,"latency_max":null,'
                 b'"latency_p99":null}\n'),
                (b"connections 1\nbans 0x1p4\nok\n", 1, b""),
                (b"connections 1\nbans 0x10\nok\n", 1, b""),
                (b"connections 1\nbans infinity\nok\n", 1, b""),
                (b"connections 1\nbans 1.\nok\n", 1, b""),
                (b"connections 1\nbans 007\nok\n", 1, b""),
                (b"connections 1\nbans +1\nok\n", 1, b"")):
            sock = os.path.join(rundir, "json-%d" % len(os.listdir(rundir)))
            Listener(self, sock, self.uid, self.gid, answer).start()
            p, _ = self.ctl(sock, command=("ctl", "stats", "--json"))
            self.assertEqual((p.returncode, p.stdout), (status, out), "%r: %r" % (answer, p.stderr))
            if status:
                self.assertIn(b"not key value lines", p.stderr)

    def conf_for(self, sock):
        conf = self.base_conf(self.dead_backend_address())
        conf.update(user=USER, control_socket=sock)
        return conf


# The helper's messages (src/banproto.h): struct banproto_request and
# struct banproto_reply, native byte order, no padding.
BANPROTO_VERSION = 2
BANPROTO_BAN, BANPROTO_BAN_KILL = 1, 3
REQUEST = struct.Struct("=III16sIII")   # ..., addr, prefix, seconds, seq
REPLY = struct.Struct("=IIIIIIQ256s")   # FW_ERR_MAX = 256
HELD_PORT = 2600                        # watch_ports: the held connection's

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
SYS_PIDFD_GETFD = 438


def pidfd_getfd(pid, fd):
    """A copy of descriptor fd of process pid (pidfd_getfd(2)), or None."""
    pidfd = os.pidfd_open(pid)
    try:
        n = _libc.syscall(ctypes.c_long(SYS_PIDFD_GETFD), ctypes.c_int(pidfd),
                          ctypes.c_int(fd), ctypes.c_uint(0))
        if n < 0 and ctypes.get_errno() == errno.ENOSYS:
            raise unittest.SkipTest("kernel lacks pidfd_getfd(2) (Linux 5.6 or later)")
        return None if n < 0 else int(n)
    finally:
        os.close(pidfd)


def helper_socket(pid):
    """A copy of serve's end of its ban helper socket: the one
    SOCK_SEQPACKET among its descriptors."""
    found = []
    for name in os.listdir("/proc/%d/fd" % pid):
        try:
            if not os.readlink("/proc/%d/fd/%s" % (pid, name)).startswith("socket:"):
                continue
        except OSError:
            continue
        fd = pidfd_getfd(pid, int(name))
        if fd is None:
            continue
        s = socket.socket(fileno=fd)
        if s.family == socket.AF_UNIX and s.type == socket.SOCK_SEQPACKET:
            found.append(s)
        else:
            s.close()
    return found


def ban_request(op, addr, seconds, seq, prefix=32):
    return REQUEST.pack(BANPROTO_VERSION, op, socket.AF_INET,
                        socket.inet_aton(addr) + bytes(12), prefix, seconds, seq)


def parse_reply(data):
    version, seq, applied, failed, killed, kill_failed, _, error = REPLY.unpack(data)
    return {"version": version, "seq": seq, "applied": applied, "failed": failed,
            "killed": killed, "kill_failed": kill_failed,
            "error": error.split(b"\0", 1)[0].decode("utf-8", "replace")}


class ServeHelperKillTest(test_bans.BanTestCase):

    def hold_connection(self, source):
        """A connection from source (in C) to HELD_PORT (in S), accepted;
        returns (client socket, server socket)."""
        server = self.topo.server

        def listen():
            ls = socket.socket()
            ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            ls.bind((server, HELD_PORT))
            ls.listen(4)
            return ls

        def connect():
            c = socket.socket()
            c.bind((source, 0))
            c.settimeout(5)
            c.connect((server, HELD_PORT))
            return c
        ls = self.S.call(listen)
        self._cleanups_extra.append(ls.close)
        c = self.C.call(connect)
        self._cleanups_extra.append(c.close)
        ls.settimeout(5)
        a, _ = ls.accept()
        self._cleanups_extra.append(a.close)
        return c, a

    def still_open(self, sock):
        sock.settimeout(0.5 * SLOW)
        try:
            data = sock.recv(16)
        except socket.timeout:
            return True
        except OSError:
            return False
        return data != b""

    def ask(self, hs, request):
        """Sends one message on the helper socket; returns its reply."""
        hs.send(request)
        hs.settimeout(3 * SLOW)
        data = hs.recv(REPLY.size + 64)
        self.assertNotEqual(data, b"", "the ban helper closed its socket: it has stopped")
        return parse_reply(data)

    def seize_helper(self, d):
        """Stops serve (SIGSTOP: its replies are ours now) and returns a
        copy of its helper socket, drained of what serve had not read."""
        os.kill(d.proc.pid, signal.SIGSTOP)
        found = helper_socket(d.proc.pid)
        self.assertEqual(len(found), 1, "serve's helper sockets: %r" % found)
        hs = found[0]
        self._cleanups_extra.append(hs.close)
        hs.setblocking(False)
        try:
            while hs.recv(4096):
                pass
        except BlockingIOError:
            pass
        return hs

    def test_serve_helper_refuses_ban_kill(self):
        addr = self.topo.spare
        d = self.make_daemon(watch_kill="socket", watch_ports=str(HELD_PORT))
        self.load_rules(d)
        self.start(d)
        c, a = self.hold_connection(addr)
        try:
            hs = self.seize_helper(d)
            replies = [self.ask(hs, ban_request(BANPROTO_BAN_KILL, addr, 30, 0x7f000001 + i))
                       for i in range(3)]
            banned = self.nft4()
            ban = self.ask(hs, ban_request(BANPROTO_BAN, addr, 30, 0x7f000010))
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        for r in replies:
            self.assertEqual((r["version"], r["applied"], r["failed"], r["killed"]),
                             (BANPROTO_VERSION, 0, 1, 0), "reply to BAN_KILL: %r" % r)
            self.assertIn("BAN_KILL refused", r["error"], r)
        self.assertTrue(self.still_open(c), "the held connection was ended (client side)")
        self.assertTrue(self.still_open(a), "the held connection was ended (server side)")
        self.assertTrue([x for x in netns.tcp_connections(self.S, HELD_PORT)
                         if x["peer"] == addr and x["peer_port"] == c.getsockname()[1]],
                        "the held connection is gone from S")
        self.assertNotIn(addr, banned or {}, "a refused BAN_KILL banned nonetheless")
        # the same socket still bans: the refusal is BAN_KILL's alone
        self.assertEqual((ban["seq"], ban["applied"], ban["failed"]), (0x7f000010, 1, 0),
                         "reply to BAN: %r" % ban)
        self.wait_nft(addr)
        line = d.wait_log(r"ban helper: BAN_KILL refused")
        self.assertIn(addr, line)
        refusals = [l for l in d.log().splitlines() if "BAN_KILL refused" in l]
        self.assertEqual(len(refusals), 1, "logged once: %r" % refusals)

    def test_helper_refuses_a_network_over_the_allowlist(self):
        """A compromised serve asks the helper for a /8 that holds an
        allowlisted address: refused (failed = 1, nothing in the sets),
        while a /8 clear of the allowlist goes in."""
        d = self.make_daemon(allowlist=self.topo.spare)
        self.load_rules(d)
        self.start(d)
        try:
            hs = self.seize_helper(d)
            wide = self.ask(hs, ban_request(BANPROTO_BAN, self.topo.listed, 30, 0x7f000030, 8))
            sets = (self.nft4(), netns.nft_set(self.S, test_bans.NFT_TABLE, "banned4net"))
            clear = self.ask(hs, ban_request(BANPROTO_BAN, "192.0.2.1", 30, 0x7f000031, 8))
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        self.assertEqual((wide["applied"], wide["failed"]), (0, 1), "reply: %r" % wide)
        self.assertIn("allowlisted", wide["error"], wide)
        self.assertEqual(sets, ({}, {}), "a network over the allowlist went in")
        self.assertEqual((clear["applied"], clear["failed"]), (1, 0), "reply: %r" % clear)
        wait_until(lambda: "192.0.0.0/8" in (netns.nft_set(self.S, test_bans.NFT_TABLE,
                                                           "banned4net") or {}),
                   1.0 * SLOW, what="192.0.0.0/8 in banned4net")
        self.assertEqual(self.connect(self.topo.spare), "connected")

    def test_empty_message_refused_and_helper_serves_on(self):
        """On SOCK_SEQPACKET a zero-length message reads as recv() = 0, the
        same as the peer's close. The helper tells them apart: an empty
        message is refused as malformed (failed = 1, logged) and the helper
        serves on, so the next ban still goes into the firewall. Before the
        fix it took it for the close and exited: every later ban was lost."""
        addr = self.topo.spare
        d = self.make_daemon()
        self.load_rules(d)
        self.start(d)
        try:
            hs = self.seize_helper(d)
            empty = self.ask(hs, b"")
            ban = self.ask(hs, ban_request(BANPROTO_BAN, addr, 30, 0x7f000020))
        finally:
            os.kill(d.proc.pid, signal.SIGCONT)
        self.assertEqual((empty["version"], empty["applied"], empty["failed"]),
                         (BANPROTO_VERSION, 0, 1), "reply to an empty message: %r" % empty)
        self.assertIn("malformed request: wrong size", empty["error"], empty)
        self.assertEqual((ban["seq"], ban["applied"], ban["failed"]), (0x7f000020, 1, 0),
                         "reply to the ban after it: %r" % ban)
        self.wait_nft(addr)
        d.wait_log(r"ban helper: refused a malformed request: wrong size")
        # serve itself still bans through the helper
        self.refuse_listed(self.topo.listed)
        self.wait_nft(self.topo.listed)
        self.assertNotIn("ban helper is gone", d.log())


if __name__ == "__main__":
    unittest.main()
