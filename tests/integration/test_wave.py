"""A small spam wave: hundreds of listed clients and some clean ones at
once, all answered correctly by the one event loop; and SMTP input cut
into the smallest pieces."""

import resource
import selectors
import socket
import time
import unittest

from harness import (SLOW, BreakwaterTestCase, engine_greeting, Reply)

PIPELINE = b"EHLO wave.test\r\nMAIL FROM:<a@wave.example>\r\nRCPT TO:<b@example.org>\r\nQUIT\r\n"


class WaveClient:
    """Non-blocking: connect, read the greeting, send PIPELINE, collect
    replies until the server closes."""

    def __init__(self, sel, host, port, source):
        self.source = source
        self.sock = socket.socket()
        self.sock.bind((source, 0))
        self.sock.setblocking(False)
        self.sock.connect_ex((host, port))
        self.buf = b""
        self.sent = False
        self.closed = False
        self.error = None
        sel.register(self.sock, selectors.EVENT_READ, self)

    def replies(self):
        out, lines = [], []
        for raw in self.buf.split(b"\r\n"):
            if not raw:
                continue
            text = raw.decode("latin-1")
            lines.append(text)
            if len(text) < 4 or text[3] == " ":
                out.append(Reply(lines))
                lines = []
        return out

    def on_read(self, sel):
        try:
            data = self.sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError) as e:
            self.error = repr(e)
            data = b""
        except BlockingIOError:
            return
        if not data:
            self.closed = True
            sel.unregister(self.sock)
            self.sock.close()
            return
        self.buf += data
        if not self.sent and b"\r\n" in self.buf:
            self.sent = True
            try:
                self.sock.sendall(PIPELINE)
            except OSError as e:
                self.error = repr(e)


class WaveTest(BreakwaterTestCase):
    def test_wave(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        sel = selectors.DefaultSelector()
        n_listed = 1500 if resource.getrlimit(resource.RLIMIT_NOFILE)[0] > 2000 else 400
        listed = [WaveClient(sel, d.host, d.port, "127.66.%d.%d" % (20 + i // 200, 1 + i % 200))
                  for i in range(n_listed)]
        clean = [WaveClient(sel, d.host, d.port, "127.1.%d.%d" % (20 + i // 200, 1 + i % 200))
                 for i in range(90)]
        deadline = time.monotonic() + 20 * SLOW
        while time.monotonic() < deadline and sel.get_map():
            for key, _ in sel.select(0.2):
                key.data.on_read(sel)
        sel.close()
        stuck = [c.source for c in listed + clean if not c.closed]
        self.assertFalse(stuck, "%d sessions not finished, e.g. %s" % (len(stuck), stuck[:5]))
        for c in listed:
            codes = [r.code for r in c.replies()]
            self.assertEqual(codes, [220, 250, 250, 550, 221],
                             "listed %s got %r (%s)" % (c.source, c.buf[-300:], c.error))
            self.assertTrue(c.replies()[0].text.startswith("220 bw.test ESMTP"))
            self.assertIn(c.source, c.replies()[3].text)
        for c in clean:
            codes = [r.code for r in c.replies()]
            self.assertEqual(codes, [220, 250, 250, 250, 221],
                             "clean %s got %r (%s)" % (c.source, c.buf[-300:], c.error))
            self.assertEqual(c.replies()[0].text, "220 smtp-sink ESMTP")
        # one log line per session, with the right verdict
        deadline = time.monotonic() + 5 * SLOW
        while time.monotonic() < deadline:
            sessions = d.sessions()
            if len(sessions) >= len(listed) + len(clean):
                break
            time.sleep(0.1)
        verdicts = {}
        for s in sessions:
            verdicts[s.get("verdict")] = verdicts.get(s.get("verdict"), 0) + 1
        self.assertEqual(verdicts, {"listed": len(listed), "clean": len(clean)})

    def test_input_in_one_byte_pieces(self):
        backend = self.recording_backend()
        d = self.start_daemon(backend)
        c = self.client(d, "127.66.1.30")
        c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        engine_greeting(self, c)
        for b in b"EHLO bytes.test\r\nMAIL FROM:<a@spam.example>\r\nRCPT TO:<b@example.org>\r\n":
            c.send(bytes([b]))
            time.sleep(0.001)
        r = c.read_reply()
        self.assertReply(r, 250)
        self.assertGreaterEqual(len(r.lines), 2)
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.read_reply(), 550, "127.66.1.30")
        self.quit(c)

    def test_eof_after_pipelined_commands(self):
        # Commands that arrived before the client's FIN are still answered:
        # a false positive must learn why it was refused.
        backend = self.recording_backend()
        d = self.start_daemon(backend)
        c = self.client(d, "127.66.1.31")
        engine_greeting(self, c)
        c.send(b"MAIL FROM:<a@spam.example>\r\nRCPT TO:<b@example.org>\r\n")
        c.shutdown_write()
        self.assertReply(c.read_reply(), 250)
        self.assertReply(c.read_reply(), 550, "5.7.1", "127.66.1.31")
        self.assertClosed(c)
        self.assertSession(d, c, "listed")


if __name__ == "__main__":
    unittest.main()
