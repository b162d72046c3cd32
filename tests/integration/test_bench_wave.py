"""bench/wave, the wave generator, against the real daemon: a tiny bounded
scenario (2 s, at most 200 sessions, listed bots and polite MTAs, two
worker processes) whose --json report must hold sane numbers. Builds nothing: without
build/bench/wave (make bench) the test is skipped. Not a timed test."""

import json
import os
import re
import subprocess

from harness import SLOW, BreakwaterTestCase, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WAVE = os.environ.get("WAVE_BINARY") or os.path.join(ROOT, "build", "bench", "wave")

SESSIONS = 200


class BenchWaveTest(BreakwaterTestCase):
    def setUp(self):
        if not os.access(WAVE, os.X_OK):
            self.skipTest("%s not built (make bench)" % WAVE)
        super().setUp()

    def run_wave(self, d, *args, duration=2):
        series = os.path.join(self.tmp, "series.tsv")
        argv = [WAVE, "-t", "%s:%d" % (d.host, d.port), "-d", str(duration), "-n", str(SESSIONS),
                "--json", "--series", series] + list(args)
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30 * SLOW,
                           universal_newlines=True)
        self.assertEqual(p.returncode, 0, "%s\nstderr: %s" % (argv, p.stderr))
        with open(series) as f:
            lines = [l.split("\t") for l in f.read().splitlines()]
        return json.loads(p.stdout), lines

    def assertLatency(self, lat, low, high):
        self.assertTrue(low <= lat["count"] <= high, (lat, low, high))
        self.assertGreater(lat["p50"], 0, lat)
        self.assertTrue(lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"], lat)
        self.assertLess(lat["max"], 2000 * SLOW, lat)

    def test_listed_and_polite(self):
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        r, series = self.run_wave(d, "-c", "10", "--procs", "2", "--mix", "listed=4,polite=1")
        self.assertEqual(r["all"]["errors"]["total"], 0, r["all"])
        self.assertGreater(r["all"]["started"], 0)
        self.assertLessEqual(r["all"]["started"], SESSIONS)
        self.assertEqual(r["all"]["started"],
                         r["all"]["completed"] + r["all"]["unfinished"], r["all"])
        self.assertTrue(1 <= r["max_open"] <= 10, r["max_open"])
        self.assertLessEqual(r["elapsed_s"], 2.5)

        listed = r["kinds"]["listed"]
        self.assertGreater(listed["completed"], 0, listed)
        rcpt = listed["rcpt_replies"]
        self.assertEqual(rcpt["5xx"], listed["latency_ms"]["rcpt"]["count"], listed)
        self.assertGreaterEqual(rcpt["5xx"], listed["completed"], listed)
        self.assertEqual(rcpt["2xx"] + rcpt["4xx"] + rcpt["other"], 0, listed)
        self.assertLatency(listed["latency_ms"]["greeting"], listed["completed"],
                           listed["started"])
        self.assertLatency(listed["latency_ms"]["rcpt"], rcpt["5xx"], rcpt["5xx"])

        polite = r["kinds"]["polite"]
        self.assertGreater(polite["completed"], 0, polite)
        data = polite["data_replies"]
        self.assertGreaterEqual(data["2xx"], polite["completed"], polite)
        self.assertEqual(data["4xx"] + data["5xx"] + data["other"], 0, polite)
        self.assertLatency(polite["latency_ms"]["data"], data["2xx"], data["2xx"])
        wait_until(lambda: len(sink.messages()) >= data["2xx"], 5 * SLOW,
                   what="%d messages in smtp-sink's dump" % data["2xx"])

        self.assertTrue(r["series"], r)
        self.assertEqual(r["series"][0], 0)
        self.assertEqual([int(s) for s, _ in series], list(range(len(r["series"]))))
        self.assertEqual([int(o) for _, o in series], r["series"])
        self.assertIn("ms_per_1000_sessions", r["cpu"])

    def test_bot_linger(self):
        """--bot-linger 1: listed bots hold their connection a second after
        the 550 before they QUIT (breakwater's session lines say how long
        each lasted); polite MTAs do not wait."""
        sink = self.smtp_sink()
        d = self.start_daemon(sink)
        r, _ = self.run_wave(d, "-c", "10", "--mix", "listed=4,polite=1", "--bot-linger", "1",
                             duration=3)
        self.assertEqual(r["all"]["errors"]["total"], 0, r["all"])
        listed, polite = r["kinds"]["listed"], r["kinds"]["polite"]
        self.assertGreater(listed["completed"], 0, listed)
        self.assertEqual(listed["rcpt_replies"]["5xx"], listed["latency_ms"]["rcpt"]["count"])
        self.assertGreater(polite["completed"], 0, polite)
        durations = {}
        for line in d.log().splitlines():
            m = re.search(r"session client=\S+ verdict=(\w+) .*duration=([\d.]+)", line)
            if m:
                durations.setdefault(m.group(1), []).append(float(m.group(2)))
        # (sessions cut by the end of the run, unfinished, are shorter)
        held = [t for t in durations.get("listed", []) if t >= 1.0]
        self.assertGreaterEqual(len(held), listed["completed"], durations)
        clean = sorted(durations["clean"])
        self.assertLess(clean[len(clean) // 2], 0.5, durations)  # (median: no linger)


if __name__ == "__main__":
    import unittest
    unittest.main()
