"""contrib/grafana-dashboard.json: valid JSON in Grafana's import format
whose every query names only metrics (and labels) that a running
breakwater serves at /metrics."""

import json
import os
import re

from harness import BreakwaterTestCase
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
        d = self.start_daemon(self.smtp_sink())
        served = {name for name, _ in scrape(d)}
        labels = {k for _, ls in scrape(d) for k, _ in ls}
        for e in exprs:
            for name in re.findall(r"\b((?:breakwater|process)_[a-z_]+)", e):
                self.assertIn(name, served, "%r in %r is not served" % (name, e))
            for by in re.findall(r"by \(([^)]*)\)", e):
                for label in (x.strip() for x in by.split(",")):
                    self.assertIn(label, labels | {"le"}, "label %r of %r" % (label, e))
