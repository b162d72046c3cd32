"""Network-namespace helpers for the firewall (ban) integration tests.

Python 3 standard library only; everything here runs as root. Every wait
is bounded. Traffic stays inside namespaces made here (`ip netns add`),
which their owner deletes (Topology.delete, also on failure: register it
with addCleanup or BreakwaterTestCase's _cleanups_extra).

  NetNS(name)               one named namespace: .create(), .delete(),
                            .run(argv) (ip netns exec), .preexec() (a
                            Popen preexec_fn entering it), .call(fn)
                            (fn run in a thread that entered it: sockets it
                            makes stay in the namespace)
  Topology()                server namespace S and client namespace C
                            joined by a veth pair, addresses 10.77.K.0/24:
                            .server (K.1 in S), .listed (K.2), .clean (K.3),
                            .listed2 (K.4) in C
  ns_listening(pid, port)   is port in LISTEN state in pid's namespace
  NsRbldnsd(ns, tmpdir, addresses)  a private rbldnsd in ns serving
                            bl.test (the addresses and 127.0.0.2)
  NsSmtpSink(ns, tmpdir)    Postfix smtp-sink in ns (harness.SmtpSink)
  connect_result(ns, ...)   'connected' / 'timeout' / 'refused' for one
                            TCP connect from ns
  nft_set(ns, table, set)   {address: (timeout, expires)} of an nft set
  ipset_members(ns, name)   {address: timeout} of an ipset
  recent_members(ns, name)  addresses in an xt_recent list of ns
  tcp_connections(ns, port) established connections to a local port
                            (ss -tnp): peer address and port, owner pids
  pid_alive(pid)            running, not a zombie
  NsPostfix(ns, host)       postfix.PrivatePostfix in ns, smtpd on host:25
"""

import ctypes
import itertools
import ipaddress
import json
import os
import re
import socket
import subprocess
import threading
import time

import harness
import postfix

CLONE_NEWNET = 0x40000000
NETNS_DIR = "/var/run/netns"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.setns.argtypes = [ctypes.c_int, ctypes.c_int]
_libc.setns.restype = ctypes.c_int

_counter = itertools.count()


def setns_fd(fd):
    """Moves the calling thread into the network namespace open at fd."""
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


def _ip(args, timeout=10):
    p = subprocess.run(["ip"] + list(args), stdin=subprocess.DEVNULL,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, errors="replace", universal_newlines=True)
    if p.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr.strip()))
    return p.stdout


class NetNS:
    def __init__(self, name):
        self.name = name
        self.path = os.path.join(NETNS_DIR, name)
        self.created = False
        self._fd = None

    def create(self):
        _ip(["netns", "add", self.name])
        self.created = True
        _ip(["-n", self.name, "link", "set", "lo", "up"])
        return self

    def delete(self):
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if self.created:
            self.created = False
            subprocess.run(["ip", "netns", "del", self.name], stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=10)

    def fd(self):
        """A descriptor of the namespace, kept open until delete()."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        return self._fd

    def argv(self, args):
        return ["ip", "netns", "exec", self.name] + list(args)

    def run(self, args, input=None, timeout=15):
        """Runs argv in the namespace; CompletedProcess with text output."""
        return subprocess.run(self.argv(args), input=input,
                              stdin=None if input is not None else subprocess.DEVNULL,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              timeout=timeout, errors="replace", universal_newlines=True)

    def check(self, args, input=None, timeout=15):
        p = self.run(args, input=input, timeout=timeout)
        if p.returncode != 0:
            raise AssertionError("in netns %s: %s exited %d: %s%s"
                                 % (self.name, " ".join(args), p.returncode,
                                    p.stderr.strip(), p.stdout.strip()))
        return p.stdout

    def preexec(self):
        """A Popen preexec_fn that moves the child into this namespace.
        The descriptor is opened here, in the parent, so that the child
        does nothing but one system call between fork and exec."""
        fd = self.fd()

        def enter():
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                os._exit(127)
        return enter

    def call(self, fn, *args, timeout=30, **kw):
        """fn(*args, **kw) in a new thread that entered the namespace;
        returns its value or raises its exception."""
        out = {}
        fd = self.fd()

        def run():
            try:
                setns_fd(fd)
                out["value"] = fn(*args, **kw)
            except BaseException as e:  # handed to the caller
                out["error"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join(timeout)
        if t.is_alive():
            raise AssertionError("netns %s: call of %r still running after %.0fs"
                                 % (self.name, fn, timeout))
        if "error" in out:
            raise out["error"]
        return out.get("value")


class Topology:
    """Server namespace S and client namespace C joined by a veth pair.
    S: 10.77.K.1/24; C: 10.77.K.2 (listed), .3 (clean), .4 (listed too),
    .5 (spare), all /24."""

    def __init__(self, k=None):
        n = next(_counter)
        self.k = k if k is not None else (os.getpid() + n) % 250 + 1
        tag = "%d-%d" % (os.getpid(), n)
        self.s = NetNS("bwt-s-" + tag)
        self.c = NetNS("bwt-c-" + tag)
        net = "10.77.%d." % self.k
        self.server = net + "1"
        self.listed = net + "2"
        self.clean = net + "3"
        self.listed2 = net + "4"
        self.spare = net + "5"

    def create(self):
        try:
            self.s.create()
            self.c.create()
            _ip(["-n", self.s.name, "link", "add", "veth0", "type", "veth",
                 "peer", "name", "veth1", "netns", self.c.name])
            _ip(["-n", self.s.name, "addr", "add", self.server + "/24", "dev", "veth0"])
            for a in (self.listed, self.clean, self.listed2, self.spare):
                _ip(["-n", self.c.name, "addr", "add", a + "/24", "dev", "veth1"])
            _ip(["-n", self.s.name, "link", "set", "veth0", "up"])
            _ip(["-n", self.c.name, "link", "set", "veth1", "up"])
        except BaseException:
            self.delete()
            raise
        return self

    def delete(self):
        # the veth pair goes with either namespace
        self.c.delete()
        self.s.delete()


# --------------------------------------------------------------------------
# Processes in a namespace

def ns_listening(pid, port, proto="tcp"):
    """True when port is in LISTEN state in the network namespace of pid."""
    for name in (proto, proto + "6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if len(parts) > 3 and parts[3] == "0A" and \
                            int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except (OSError, StopIteration, ValueError):
            pass
    return False


class NsRbldnsd:
    """A private rbldnsd in a namespace, serving bl.test (ip4set): the
    given addresses and the RFC 5782 test point 127.0.0.2."""

    def __init__(self, ns, tmpdir, addresses, port=5353, zone="bl.test"):
        self.ns = ns
        self.dir = os.path.join(tmpdir, "rbldnsd-" + ns.name)
        self.errpath = os.path.join(tmpdir, "rbldnsd-%s.err" % ns.name)
        self.addresses = list(addresses)
        self.port = port
        self.zone = zone
        self.proc = None

    @property
    def resolver(self):
        return "127.0.0.1:%d" % self.port

    def start(self, timeout=None):
        os.makedirs(self.dir, exist_ok=True)
        os.chmod(self.dir, 0o755)
        path = os.path.join(self.dir, "bl.zone")
        with open(path, "w") as f:
            f.write(":127.0.0.2:Listed, see http://example.invalid/$\n")
            for a in self.addresses + ["127.0.0.2"]:
                f.write(a + "\n")
        os.chmod(path, 0o644)
        err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(
            self.ns.argv(["rbldnsd", "-n", "-u", "rbldns", "-w", self.dir,
                          "-b", "127.0.0.1/%d" % self.port,
                          "%s:ip4set:bl.zone" % self.zone]),
            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        limit = timeout or 5 * harness.SLOW
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.proc.poll() is None:
            # harness.dig from a thread inside the namespace: its dig runs there
            if self.ns.call(harness.dig, self.port, "2.0.0.127." + self.zone, timeout=10) \
                    == ["127.0.0.2"]:
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("rbldnsd did not start in %s: %s"
                           % (self.ns.name, open(self.errpath).read()))

    def stop(self):
        harness.stop_process(self.proc)
        self.proc = None


class NsSmtpSink(harness.SmtpSink):
    """harness.SmtpSink (Postfix smtp-sink with -d) inside a namespace."""

    def __init__(self, ns, tmpdir, port=2526):
        super().__init__(tmpdir, "127.0.0.1")
        self.ns = ns
        self.port = port

    def start(self, timeout=None):
        os.makedirs(self.dumpdir, exist_ok=True)
        os.chmod(self.dumpdir, 0o777)
        err = open(self.errpath, "wb")
        self.proc = subprocess.Popen(
            self.ns.argv(["smtp-sink", "-u", "nobody", "-d", self.dumpdir + "/msg.",
                          self.address, "1000"]),
            stdin=subprocess.DEVNULL, stdout=err, stderr=err)
        err.close()
        limit = timeout or 5 * harness.SLOW
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and self.proc.poll() is None:
            if ns_listening(self.proc.pid, self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError("smtp-sink did not start in %s: %s"
                           % (self.ns.name, open(self.errpath).read()))


# --------------------------------------------------------------------------
# Clients

def _connect(source, host, port, timeout):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind((source, 0))
        s.settimeout(timeout)
        s.connect((host, port))
        return "connected"
    except socket.timeout:
        return "timeout"
    except ConnectionRefusedError:
        return "refused"
    except OSError as e:
        return "error: %s" % e
    finally:
        s.close()


def connect_result(ns, source, host, port, timeout=1.0):
    """One TCP connect from source (in ns) to host:port: 'connected',
    'timeout' (SYN dropped), 'refused' or 'error: ...'."""
    return ns.call(_connect, source, host, port, timeout, timeout=timeout + 10)


def smtp_client(ns, source, host, port, timeout=5.0):
    """A harness.SMTPClient whose socket lives in ns."""
    return ns.call(lambda: harness.SMTPClient(host, port, source=source, timeout=timeout),
                   timeout=timeout + 10)


# --------------------------------------------------------------------------
# Firewall state

def nft_set(ns, table, name):
    """{address or "network/len": (timeout, expires)} in whole seconds, of
    an nft set; None when the set (or its table) does not exist."""
    p = ns.run(["nft", "-j", "list", "set"] + table.split() + [name], timeout=10)
    if p.returncode != 0:
        return None
    out = {}
    for item in json.loads(p.stdout).get("nftables", []):
        s = item.get("set")
        if not s:
            continue
        for e in s.get("elem", []):
            if isinstance(e, dict) and "elem" in e:
                e = e["elem"]
                out[_nft_element(e["val"])] = (e.get("timeout"), e.get("expires"))
            else:
                out[_nft_element(e)] = (None, None)
    return out


def _nft_element(val):
    """An element's key as text: "ADDR", or "ADDR/LEN" for a network of an
    interval set (nft -j writes {"prefix": {"addr": ..., "len": ...}})."""
    if isinstance(val, dict) and "prefix" in val:
        return "%s/%d" % (val["prefix"]["addr"], val["prefix"]["len"])
    return val


def ipset_members(ns, name):
    """{address: timeout} of an ipset; None when it does not exist."""
    p = ns.run(["ipset", "list", name, "-output", "save"], timeout=10)
    if p.returncode != 0:
        return None
    out = {}
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] == "add" and parts[1] == name:
            t = None
            if "timeout" in parts:
                t = int(parts[parts.index("timeout") + 1])
            out[parts[2]] = t
    return out


def recent_members(ns, name):
    """Addresses in xt_recent list name of namespace ns, in their short form
    (the list writes IPv6 in full); None when the list does not exist."""
    p = ns.run(["cat", "/proc/net/xt_recent/" + name], timeout=10)
    if p.returncode != 0:
        return None
    return [ipaddress.ip_address(line.split()[0][4:]).compressed
            for line in p.stdout.splitlines() if line.startswith("src=")]


# --------------------------------------------------------------------------
# A private Postfix in a namespace

def tcp_connections(ns, port):
    """Established TCP connections to local port in ns, from `ss -tnp`:
    a list of dicts {local, peer (address), peer_port, pids}."""
    p = ns.run(["ss", "-Htnp", "state", "established", "( sport = :%d )" % port],
               timeout=10)
    out = []
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) < 4:
            continue
        peer_host, peer_port = harness.hostport(parts[3])
        out.append({"local": parts[2], "peer": peer_host.strip("[]"),
                    "peer_port": peer_port,
                    "pids": [int(x) for x in re.findall(r"pid=(\d+)", line)],
                    "line": line})
    return out


def pid_alive(pid):
    """Running (a zombie counts as gone)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


class NsPostfix(postfix.PrivatePostfix):
    """postfix.PrivatePostfix run in namespace ns, its smtpd listening on
    host:port (no PROXY protocol) instead of 127.0.0.1. Its commands run
    through `ip netns exec`, so the master and every daemon it starts live
    in ns. extra_main as for PrivatePostfix (e.g. max_use = 1: an smtpd
    process exits after its one session instead of waiting for the next)."""

    def __init__(self, ns, host, port=25, **kw):
        kw.setdefault("proxy_protocol", "")
        super().__init__(port=port, **kw)
        self.ns = ns
        self.host = host

    @property
    def address(self):
        return (self.host, self.port)

    def main_cf(self):
        text = super().main_cf()
        old = "inet_interfaces = 127.0.0.1\n"
        if old not in text:
            raise postfix.PostfixError("main.cf template changed: no %r" % old)
        return text.replace(old, "inet_interfaces = %s\n" % self.host)

    def master_cf(self):
        text = super().master_cf()
        old = "127.0.0.1:%d inet" % self.port
        if old not in text:
            raise postfix.PostfixError("master.cf template changed: no %r" % old)
        return text.replace(old, "%s:%d inet" % (self.host, self.port))

    def _postfix(self, *args, timeout=None):
        argv = self.ns.argv([postfix.POSTFIX, "-c", self.config_dir] + list(args))
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C"}
        rc, out = postfix._run_on_pty(argv, timeout or self.start_timeout, env=env)
        self.log_text += "$ %s\n%s" % (" ".join(argv), out)
        return rc, out

    def _listening(self, port):
        pid = self.master_pid()
        return pid is not None and ns_listening(pid, port)
