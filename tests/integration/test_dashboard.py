"""contrib/grafana-dashboard.json: valid JSON in Grafana's import format
whose every query names only metrics (and labels) that a running
breakwater serves at /metrics (in a fleet: a local redis-server, so that
the fleet's metrics are served too)."""

import json
import os
import re
import shutil
import subprocess

import harness
from harness import BreakwaterTestCase, free_port, wait_until
from test_metrics import scrape

DASHBOARD = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                         "contrib", "grafana-dashboard.json")


class DashboardTest(BreakwaterTestCase):

    def test_queries_name_served_metrics(self):
        with open(DASHBOARD) as f:
            dash = json.load(f)
        self.assertEqual(dash["__inputs"][0]["pluginId"], "prometheus")
        exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
        self.assertGreaterEqual(len(exprs), 10)
        if shutil.which("redis-server") is None:
            self.skipTest("redis-server missing (package redis-server, in TEST_PACKAGES)")
        port = free_port()
        redis = subprocess.Popen(["redis-server", "--bind", "127.0.0.1", "--port", str(port),
                                  "--save", "", "--appendonly", "no"],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        self._cleanups_extra.append(lambda: harness.stop_process(redis))
        wait_until(lambda: port in harness.listening_ports(), 10, what="redis-server")
        d = self.start_daemon(self.smtp_sink(), conf_extra={
            "fleet_redis": "redis://127.0.0.1:%d" % port, "fleet_host_id": "dashboard"})
        served = {name for name, _ in scrape(d)}
        labels = {k for _, ls in scrape(d) for k, _ in ls}
        for e in exprs:
            for name in re.findall(r"\b((?:breakwater|process)_[a-z_]+)", e):
                self.assertIn(name, served, "%r in %r is not served" % (name, e))
            for by in re.findall(r"by \(([^)]*)\)", e):
                for label in (x.strip() for x in by.split(",")):
                    self.assertIn(label, labels | {"le"}, "label %r of %r" % (label, e))
