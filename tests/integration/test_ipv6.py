"""IPv6 clients on ::1: nibble-format DNSBL names, listed and clean."""

import unittest

from harness import (BreakwaterTestCase, backend_greeting, engine_greeting,
                     free_port, rejected_dialogue, send_message)


class IPv6Test(BreakwaterTestCase):
    def dual_listen(self):
        return "127.0.0.1:%d, [::1]:%d" % (free_port("127.0.0.1"), free_port("::1"))

    def v6_client(self, d):
        host, port = d.listen_addresses()[1]
        self.assertEqual(host, "::1")
        return self.client(d, "::1", host=host, port=port)

    def test_ipv6_listed(self):
        backend = self.recording_backend()
        d = self.start_daemon(backend, listen=self.dual_listen(),
                              opts={"dnsbl_sites": "bl6.test"})
        c = self.v6_client(d)
        engine_greeting(self, c)
        rejected_dialogue(self, c, "::1", ["bl6.test"])
        s = self.assertSession(d, c, "listed", ["bl6.test"])
        self.assertEqual(s.get("addr"), "::1", s["line"])
        self.assertEqual(backend.count(), 0)
        # the IPv4 listener of the same daemon: not in bl6.test
        c4 = self.client(d, "127.66.1.1")
        self.assertEqual(c4.read_reply().lines[0], "220 recorder.test ESMTP recorder")

    def test_ipv6_clean_relayed(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, listen=self.dual_listen(),
                              opts={"dnsbl_sites": "bl.test, bl2.test"})
        c = self.v6_client(d)
        backend_greeting(self, c)
        body = [b"Message-ID: <v6-1@clean.example>", b"", b"over IPv6 \xe9"]
        send_message(self, c, body)
        m = sink.wait_message(b"<v6-1@clean.example>")
        self.assertIn(b"\n".join(body) + b"\n", m)
        s = self.assertSession(d, c, "clean", [])
        self.assertEqual(s.get("addr"), "::1", s["line"])

    def test_ipv6_denylist(self):
        backend = self.recording_backend()
        d = self.start_daemon(backend, listen=self.dual_listen(),
                              opts={"dnsbl_sites": "bl.test", "denylist": "2001:db8::/32, ::1/128"})
        c = self.v6_client(d)
        engine_greeting(self, c)
        rejected_dialogue(self, c, "::1")
        self.assertSession(d, c, "denylisted")

    def test_ipv6_allowlist(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, listen=self.dual_listen(),
                              opts={"dnsbl_sites": "bl6.test", "allowlist": "::1"})
        c = self.v6_client(d)
        backend_greeting(self, c)
        self.quit(c)
        self.assertSession(d, c, "allowlisted")


if __name__ == "__main__":
    unittest.main()
