"""Debian chroots for tests, built once with debootstrap and cached outside
the checkout:

    root = chroot.ensure("courier-bookworm", "bookworm", ["courier-mta"],
                         verify=check_courier)
    chroot.info("courier-bookworm")   # the marker's record, or None

ensure(name, release, packages, verify): `debootstrap --variant=minbase
RELEASE DIR MIRROR` (MIRROR: the Debian mirror of this host's apt sources)
into a temporary folder beside the target CACHE_DIR/NAME, a
usr/sbin/policy-rc.d that exits 101 (no daemon starts during an install),
the host's resolv.conf copied in, then `apt-get install -y
--no-install-recommends PACKAGES` with /proc mounted. That mount, like
every mount made here, lives in a private mount namespace (unshare(1)) and
vanishes with it. verify(folder) then checks the result and returns the
facts to record (e.g. a version); the folder is renamed into place with a
marker file (MARKER, JSON: name, release, packages, build seconds, mirror,
and verify's facts). A target without the marker, or whose marker names
other packages, is removed and rebuilt. A flock on CACHE_DIR/NAME.lock
serialises builders, so concurrent test processes build once; every build
command inherits the lock, so a builder killed mid-build holds it until its
orphaned commands are gone too. The build's output: CACHE_DIR/NAME.build.log.

Users of a cached chroot never change it: they mount an overlayfs on it
(have_overlay()) or copy it. Nothing here touches the host's own packages
beyond installing debootstrap when it is missing. Python 3 standard
library only; building needs root.
"""

import fcntl
import glob
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import tempfile
import time

CACHE_DIR = os.environ.get("BREAKWATER_TEST_CACHE", "/var/cache/breakwater-tests")
MARKER = ".breakwater-chroot-ok"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
BUILD_TIMEOUT = 1800.0          # debootstrap + apt-get install, each
LOCK_TIMEOUT = 3600.0           # another process building the same chroot
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C", "LC_ALL": "C",
       "DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NONINTERACTIVE_SEEN": "true"}

__all__ = ["ensure", "path", "info", "have_overlay", "debian_mirror", "run_logged",
           "mounts_under", "remove_tree", "ChrootError", "CACHE_DIR", "ENV"]


class ChrootError(RuntimeError):
    pass


def path(name):
    return os.path.join(CACHE_DIR, name)


def info(name):
    """The marker's record of a finished chroot, or None."""
    try:
        with open(os.path.join(path(name), MARKER)) as f:
            record = json.load(f)
        return record if record.get("name") == name else None
    except (OSError, ValueError):
        return None


def have_overlay():
    """Whether the kernel has overlayfs (loading the module if need be)."""
    def listed():
        try:
            with open("/proc/filesystems") as f:
                return any(line.split()[-1:] == ["overlay"] for line in f)
        except OSError:
            return False
    if listed():
        return True
    subprocess.run(["modprobe", "overlay"], stdin=subprocess.DEVNULL,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=20)
    return listed()


def _apt_sources():
    """(uri, suites) of every deb entry in this host's apt sources."""
    out = []
    files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*"))
    for source in files:
        try:
            with open(source) as f:
                text = f.read()
        except OSError:
            continue
        if source.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line or line[:1].isspace():
                        continue
                    k, _, v = line.partition(":")
                    fields[k.strip().lower()] = v.split()
                if "deb" in fields.get("types", []) and \
                        fields.get("enabled", ["yes"]) != ["no"]:
                    for uri in fields.get("uris", []):
                        out.append((uri, fields.get("suites", [])))
        elif source.endswith(".list"):
            for line in text.splitlines():
                words = line.split("#", 1)[0].split()
                if words[:1] != ["deb"]:
                    continue
                words = words[1:]
                if words and words[0].startswith("["):   # [options]
                    while words and not words[0].endswith("]"):
                        words = words[1:]
                    words = words[1:]
                if len(words) >= 2:
                    out.append((words[0], [words[1]]))
    return out


def debian_mirror():
    """The Debian mirror apt already uses here: the first source whose URI
    ends in /debian and that serves a plain release suite (not -security,
    -updates); DEFAULT_MIRROR when there is none."""
    for uri, suites in _apt_sources():
        if uri.rstrip("/").endswith("/debian") and any("-" not in s for s in suites):
            return uri.rstrip("/")
    return DEFAULT_MIRROR


def _debootstrap_script(release):
    """The debootstrap script to use for release: its own when this host's
    debootstrap has one, else sid's (a testing release bootstraps like
    unstable)."""
    d = "/usr/share/debootstrap/scripts"
    if os.path.exists(os.path.join(d, release)):
        return None
    if os.path.exists(os.path.join(d, "sid")):
        return os.path.join(d, "sid")
    raise ChrootError("debootstrap has no script for %s nor sid" % release)


def _ensure_debootstrap(log):
    if shutil.which("debootstrap", path=ENV["PATH"]):
        return
    for update in (False, True):
        if update:
            run_logged(["apt-get", "update"], log, timeout=600, check=False)
        if run_logged(["apt-get", "install", "-y", "debootstrap"], log, timeout=600,
                      check=False) == 0:
            return
    raise ChrootError("cannot install debootstrap (see %s)" % log.name)


def run_logged(argv, log, timeout, check=True, env=None, lock=None):
    """argv with output appended to the open file log; bounded; the exit
    code (ChrootError when check and non-zero). lock: a lock file handed
    down to argv: should this process die, the lock stays held until argv
    and everything it started have gone too."""
    log.write("\n$ %s\n" % " ".join(shlex.quote(a) for a in argv))
    log.flush()
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                         env=env or ENV, start_new_session=True,
                         pass_fds=(lock.fileno(),) if lock else ())
    try:
        rc = p.wait(timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(p.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        p.wait()
        raise ChrootError("timed out after %.0fs: %s (log %s)" % (timeout, argv, log.name))
    if check and rc != 0:
        raise ChrootError("exit %d: %s (log %s)" % (rc, " ".join(argv), log.name))
    return rc


def mounts_under(folder):
    """Mount points at or below folder in this mount namespace."""
    folder = os.path.realpath(folder)
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mp = line.split()[4].replace("\\040", " ")
            if mp == folder or mp.startswith(folder + "/"):
                out.append(mp)
    return out


def remove_tree(folder):
    """rm -rf of a chroot folder that is not ours to keep, refusing when
    anything is mounted below it (then it is left alone)."""
    if not os.path.lexists(folder):
        return
    mounted = mounts_under(folder)
    if mounted:
        raise ChrootError("refusing to remove %s: mounted below it: %s" % (folder, mounted))
    subprocess.run(["rm", "-rf", "--one-file-system", folder], stdin=subprocess.DEVNULL,
                   timeout=600, check=True)


# Run in a private mount namespace (unshare --mount): /proc mounted in the
# new root for the install, gone when the namespace goes.
_INSTALL_SH = r"""
set -e
root="$1"
shift
mount -t proc proc "$root/proc"
chroot "$root" apt-get update
chroot "$root" apt-get install -y --no-install-recommends "$@"
chroot "$root" apt-get clean
"""


def _build(name, release, packages, verify, target, log, lock):
    mirror = debian_mirror()
    script = _debootstrap_script(release)
    tmp = tempfile.mkdtemp(prefix=".%s.build-" % name, dir=CACHE_DIR)
    os.chmod(tmp, 0o755)
    t0 = time.monotonic()
    try:
        argv = ["debootstrap", "--variant=minbase", release, tmp, mirror]
        if script:
            argv.append(script)
        run_logged(argv, log, BUILD_TIMEOUT, lock=lock)
        policy = os.path.join(tmp, "usr/sbin/policy-rc.d")
        with open(policy, "w") as f:
            f.write("#!/bin/sh\n# breakwater tests: no daemon starts during installs\nexit 101\n")
        os.chmod(policy, 0o755)
        resolv = os.path.join(tmp, "etc/resolv.conf")
        if os.path.islink(resolv):
            os.unlink(resolv)
        shutil.copyfile("/etc/resolv.conf", resolv)
        if packages:
            run_logged(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                        _INSTALL_SH, "install", tmp] + list(packages), log, BUILD_TIMEOUT,
                       lock=lock)
        if mounts_under(tmp):
            raise ChrootError("a mount leaked below %s" % tmp)
        facts = verify(tmp) if verify else {}
        seconds = time.monotonic() - t0
        record = dict(facts, name=name, release=release, packages=list(packages),
                      seconds=round(seconds, 1), mirror=mirror,
                      debootstrap_script=script or release,
                      built=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
        with open(os.path.join(tmp, MARKER), "w") as f:
            json.dump(record, f)
            f.write("\n")
        log.write("\nbuilt %s in %.1fs: %s\n" % (name, seconds, record))
        log.flush()
        os.rename(tmp, target)
        return record
    except BaseException:
        try:
            remove_tree(tmp)
        except (ChrootError, OSError, subprocess.SubprocessError):
            pass
        raise


def _current(name, packages):
    record = info(name)
    return record is not None and record.get("packages") == list(packages)


def ensure(name, release, packages, verify=None, lock_timeout=LOCK_TIMEOUT):
    """The path of the cached chroot NAME (Debian RELEASE with PACKAGES),
    built first when missing, broken (no marker) or made with other
    packages. verify(folder) -> dict: checks a fresh build (raise to fail
    it) and returns facts for the marker."""
    target = path(name)
    if _current(name, packages):
        return target
    if os.geteuid() != 0:
        raise ChrootError("building the chroot %s needs root" % name)
    os.makedirs(CACHE_DIR, 0o755, exist_ok=True)
    with open(os.path.join(CACHE_DIR, "%s.lock" % name), "a") as lock:
        deadline = time.monotonic() + lock_timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise ChrootError("another process has built %s for over %.0fs"
                                      % (target, lock_timeout))
                time.sleep(1)
        try:
            if _current(name, packages):        # built while we waited
                return target
            with open(os.path.join(CACHE_DIR, "%s.build.log" % name), "w") as log:
                # a broken or outdated target, and builds a killed builder left
                for stale in [target] + glob.glob(os.path.join(CACHE_DIR,
                                                               ".%s.build-*" % name)):
                    if os.path.lexists(stale):
                        log.write("removing %s (no marker, or other packages)\n" % stale)
                        remove_tree(stale)
                _ensure_debootstrap(log)
                _build(name, release, packages, verify, target, log, lock)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return target
