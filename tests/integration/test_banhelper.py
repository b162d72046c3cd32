"""The ban helper, seen by a compromised serve process that holds its
socket (as test_privsep.ServeHelperKillTest plays it: serve stopped with
SIGSTOP, a copy of its helper socket taken with pidfd_getfd(2)).

HelperEmptyMessageTest: on SOCK_SEQPACKET a zero-length message reads as
recv() = 0, the same as the peer's close. The helper tells them apart: an
empty message is refused as malformed (failed = 1 in the reply, logged)
and the helper goes on serving, so the next ban still goes into the
firewall and serve never sees its helper gone. Before the fix the helper
took it for the close and exited: every later ban was lost.
"""

import os
import signal
import unittest

import test_bans
from harness import SLOW
from test_privsep import (BANPROTO_BAN, BANPROTO_VERSION, REPLY, ban_request, helper_socket,
                          parse_reply)


class HelperEmptyMessageTest(test_bans.BanTestCase):

    def ask(self, hs, request):
        """Sends one message on the helper socket; returns its reply."""
        hs.send(request)
        hs.settimeout(3 * SLOW)
        data = hs.recv(REPLY.size + 64)
        self.assertNotEqual(data, b"", "the ban helper closed its socket: it has stopped")
        return parse_reply(data)

    def test_empty_message_refused_and_helper_serves_on(self):
        addr = self.topo.spare
        d = self.make_daemon()
        self.load_rules(d)
        self.start(d)
        os.kill(d.proc.pid, signal.SIGSTOP)   # its replies are ours now
        try:
            found = helper_socket(d.proc.pid)
            self.assertEqual(len(found), 1, "serve's helper sockets: %r" % found)
            hs = found[0]
            self._cleanups_extra.append(hs.close)
            hs.setblocking(False)
            try:
                while hs.recv(4096):
                    pass    # replies serve had not read yet
            except BlockingIOError:
                pass
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
