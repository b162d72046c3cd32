"""metrics_listen: Prometheus text at /metrics (parsed with the real
prometheus_client parser), summed over workers; `ctl stats` keys and the
`stats` command."""

import socket
import sys
import unittest
import urllib.error
import urllib.request

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:  # a python3 other than Debian's: use the Debian package
    sys.path.append("/usr/lib/python3/dist-packages")
    from prometheus_client.parser import text_string_to_metric_families

from harness import (SLOW, BreakwaterTestCase, backend_greeting, engine_greeting,
                     free_port, hostport, rejected_dialogue, send_message, wait_until)


def metrics_url(d, path="/metrics"):
    host, port = hostport(d.conf["metrics_listen"])
    return "http://%s:%d%s" % (host, port, path)


def scrape(d):
    """{(name, frozenset(labels.items())): value} of every sample."""
    with urllib.request.urlopen(metrics_url(d), timeout=5 * SLOW) as r:
        assert r.status == 200
        ctype = r.headers["Content-Type"]
        assert ctype.startswith("text/plain; version=0.0.4"), ctype
        text = r.read().decode()
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def value(samples, name, **labels):
    return samples[(name, frozenset(labels.items()))]


class MetricsTest(BreakwaterTestCase):
    def test_sessions_bytes_and_queries(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        for a in ("127.66.50.1", "127.66.50.2"):
            c = self.client(d, a)
            engine_greeting(self, c)
            rejected_dialogue(self, c, a)
            self.assertSession(d, c, "listed", ["bl.test"])
        c = self.client(d, "127.1.50.1")
        backend_greeting(self, c)
        send_message(self, c, [b"Subject: metrics", b"", b"hello"])  # ends with QUIT
        c.close()
        self.assertSession(d, c, "clean")
        m = scrape(d)
        self.assertEqual(value(m, "breakwater_sessions_total", verdict="listed"), 2)
        self.assertEqual(value(m, "breakwater_sessions_total", verdict="clean"), 1)
        self.assertEqual(value(m, "breakwater_connections_accepted_total"), 3)
        self.assertGreater(value(m, "breakwater_relayed_bytes_total", direction="to_backend"), 0)
        self.assertGreater(value(m, "breakwater_relayed_bytes_total", direction="to_client"), 0)
        self.assertEqual(value(m, "breakwater_dnsbl_queries_total", list="bl.test",
                               result="listed"), 2)
        self.assertEqual(value(m, "breakwater_dnsbl_queries_total", list="bl.test",
                               result="clean"), 1)
        self.assertEqual(value(m, "breakwater_dnsbl_answer_duration_seconds_count",
                               list="bl.test"), 3)
        self.assertEqual(value(m, "breakwater_verdict_cache_lookups_total", result="miss"), 3)
        self.assertGreaterEqual(value(m, "breakwater_verdict_cache_entries"), 3)
        self.assertGreater(value(m, "process_open_fds"), 3)
        self.assertGreater(value(m, "process_resident_memory_bytes"), 100000)
        self.assertGreater(value(m, "process_start_time_seconds"), 1.6e9)
        self.assertIn(("process_cpu_seconds_total", frozenset()), m)
        for state in ("dnsbl", "reject", "relay"):
            self.assertEqual(value(m, "breakwater_connections", state=state), 0)
        self.assertEqual(value(m, "breakwater_bans_total", backend="none",
                               result="requested"), 0)

    def test_open_connections_by_state(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        c = self.client(d, "127.66.51.1")
        engine_greeting(self, c)
        m = scrape(d)
        self.assertEqual(value(m, "breakwater_connections", state="reject"), 1)
        r = self.client(d, "127.1.51.1")
        backend_greeting(self, r)
        m = scrape(d)
        self.assertEqual(value(m, "breakwater_connections", state="relay"), 1)
        self.quit(c)
        self.quit(r)
        self.assertSession(d, c, "listed")
        self.assertSession(d, r, "clean")
        m = scrape(d)
        self.assertEqual(value(m, "breakwater_connections", state="reject"), 0)
        self.assertEqual(value(m, "breakwater_connections", state="relay"), 0)

    def test_refused_per_ip(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"max_connections_per_ip": "1"})
        c = self.client(d, "127.1.52.1")
        backend_greeting(self, c)
        c2 = self.client(d, "127.1.52.1")
        self.assertEqual(c2.read_reply().code, 421)
        wait_until(lambda: value(scrape(d), "breakwater_connections_refused_total",
                                 reason="per_ip") == 1, 3 * SLOW, what="a per_ip refusal")

    def test_backend_down(self):
        d = self.start_daemon()   # nothing listens at the backend
        c = self.client(d, "127.1.53.1")
        self.assertEqual(c.read_reply().code, 421)
        c.close()
        self.assertSession(d, c, "backend-down")
        m = scrape(d)
        self.assertEqual(value(m, "breakwater_backend_connect_failures_total"), 1)
        self.assertEqual(value(m, "breakwater_connections_refused_total",
                               reason="backend_down"), 1)

    def test_workers_are_summed(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink, opts={"workers": "2"})
        sources = ["127.66.54.%d" % a for a in range(1, 9)]  # steered to both workers
        for a in sources:
            c = self.client(d, a)
            engine_greeting(self, c)
            rejected_dialogue(self, c, a)
            self.assertSession(d, c, "listed")
        for _ in range(4):  # whichever worker answers, the sum is the same
            m = scrape(d)
            self.assertEqual(value(m, "breakwater_sessions_total", verdict="listed"), 8)

    def test_other_path_is_404(self):
        d = self.start_daemon(self.smtp_sink())
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(metrics_url(d, "/other"), timeout=5 * SLOW)
        self.assertEqual(e.exception.code, 404)

    def test_empty_metrics_listen_is_off(self):
        port = free_port()
        d = self.start_daemon(self.smtp_sink(), opts={"metrics_listen": ""},
                              conf_extra={"metrics_listen": "127.0.0.1:%d" % port})
        c = self.client(d, "127.1.55.1")
        backend_greeting(self, c)
        s = socket.socket()
        self.addCleanup(s.close)
        with self.assertRaises(ConnectionRefusedError):
            s.connect(("127.0.0.1", port))

    def test_ctl_stats_keys(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        c = self.client(d, "127.66.56.1")
        engine_greeting(self, c)
        p = self.run_bw(["ctl", "-c", d.confpath, "stats"])
        self.assertEqual(p.returncode, 0, p.stderr)
        stats = dict(line.split(" ", 1) for line in p.stdout.splitlines())
        for key in ("connections", "connections_dnsbl", "connections_reject",
                    "connections_relay", "connections_accepted_total",
                    "connections_refused_total", "sessions_listed_total",
                    "sessions_clean_total", "bans_requested"):
            self.assertIn(key, stats)
        self.assertEqual(stats["connections"], "1")
        self.assertEqual(stats["connections_reject"], "1")
        self.assertEqual(stats["connections_accepted_total"], "1")

    def test_stats_command(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        held = []
        for a in range(1, 4):
            c = self.client(d, "127.1.57.%d" % a)
            backend_greeting(self, c)
            held.append(c)
        p = self.run_bw(["stats", "-c", d.confpath, "-i", "1", "-n", "3"], timeout=20 * SLOW)
        self.assertEqual(p.returncode, 0, p.stderr)
        lines = p.stdout.splitlines()
        self.assertEqual(len(lines), 3, p.stdout)
        for line in lines:
            self.assertIn("connections=3 ", line)
            self.assertIn("relay=3 ", line)
            for field in ("new/s=", "rejects/s=", "relays/s=", "bans/s="):
                self.assertIn(field, line)
        p = self.run_bw(["stats", "-c", d.confpath, "-i", "x"])
        self.assertEqual(p.returncode, 2)

    def test_json_and_a_count_that_rises_and_falls(self):
        """stats --json during a small wave: the connection count goes up as
        clients arrive and down as they leave; ctl stats --json is one
        object with the same keys as the lines."""
        import json
        import subprocess
        import time
        import harness
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        p = subprocess.Popen([harness.BINARY, "stats", "-c", d.confpath, "-i", "0.25", "-n", "12",
                              "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self._cleanups_extra.append(lambda: harness.stop_process(p))
        held = []
        for a in range(1, 6):          # the wave rises ...
            c = self.client(d, "127.1.58.%d" % a)
            backend_greeting(self, c)
            held.append(c)
            time.sleep(0.25)
        for c in held:                 # ... and falls
            c.close()
        out, err = p.communicate(timeout=20 * SLOW)
        self.assertEqual(p.returncode, 0, err)
        counts = [json.loads(line)["connections"] for line in out.decode().splitlines()]
        self.assertEqual(len(counts), 12, out)
        top = max(counts)
        self.assertGreaterEqual(top, 4, counts)
        self.assertLess(counts[0], top, counts)
        self.assertEqual(counts[-1], 0, counts)
        q = self.run_bw(["ctl", "-c", d.confpath, "stats", "--json"])
        self.assertEqual(q.returncode, 0, q.stderr)
        snapshot = json.loads(q.stdout)
        lines = self.run_bw(["ctl", "-c", d.confpath, "stats"]).stdout.splitlines()
        self.assertEqual(set(snapshot), {l.split(" ", 1)[0] for l in lines})
        self.assertEqual(snapshot["connections"], 0)


if __name__ == "__main__":
    unittest.main()
