#!/usr/bin/env python3
"""Runs breakwater's integration tests (tests/integration/test_*.py).

    python3 tests/integration/run.py --binary PATH [--sanitized] [-k PATTERN] [-v]

--sanitized: the binary is built with ASan+UBSan; the daemon runs with
ASAN_OPTIONS/UBSAN_OPTIONS set and a test fails when the daemon's stderr
holds a sanitizer report. -k PATTERN runs only tests whose name contains
PATTERN (as unittest -k; may be repeated). The last line is
"integration: N passed, M failed[, K skipped]"; the exit status is non-zero
when any test failed.

Skips: every skipped test is listed with its reason, and a skip in
setUpClass or setUpModule counts each test it skipped. A skip fails the run
unless the environment explains it: "needs root ..." when not run as root,
or "kernel lacks ..." (a feature of a newer kernel). Anything else (a
package missing, a tool not built) means `make test` did not set up what
its tests need.
"""

import argparse
import faulthandler
import os
import resource
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import harness  # noqa: E402

# A hung test must not hang CI: dump every thread's stack and exit when one
# test (with its class's setup) runs longer than this.
WATCHDOG_SECONDS = 240

# Reasons of skips the environment explains (see the top of this file).
ROOT_SKIP, KERNEL_SKIP = "needs root", "kernel lacks"


class WatchdogResult(unittest.TextTestResult):
    """Re-arms the watchdog at every test."""

    def startTest(self, test):
        faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
        super().startTest(test)


def tests_by_scope(suite, counts=None):
    """{"module": n, "module.Class": n}: how many tests each module and
    class holds, to count what a skip in setUpModule or setUpClass skipped."""
    counts = {} if counts is None else counts
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            tests_by_scope(t, counts)
        elif isinstance(t, unittest.TestCase) and type(t).__name__ != "_FailedTest":
            cls = type(t)
            for scope in (cls.__module__, "%s.%s" % (cls.__module__, cls.__qualname__)):
                counts[scope] = counts.get(scope, 0) + 1
    return counts


def skip_weight(test, counts):
    """How many tests a skip record stands for: 1, or all of a class's or
    module's when setUpClass or setUpModule skipped ("setUpClass (m.C)")."""
    desc = str(test)
    for hook in ("setUpClass (", "setUpModule ("):
        if desc.startswith(hook):
            return counts.get(desc[len(hook):].rstrip(")"), 1)
    return 1


def skip_explained(reason):
    return reason.startswith(KERNEL_SKIP) or (reason.startswith(ROOT_SKIP)
                                               and os.geteuid() != 0)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the breakwater binary")
    ap.add_argument("--sanitized", action="store_true",
                    help="binary built with ASan+UBSan: check its stderr")
    ap.add_argument("-k", dest="patterns", action="append", default=[],
                    help="only tests whose name contains PATTERN")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args()

    if not os.access(args.binary, os.X_OK):
        print("run.py: %s: not an executable file" % args.binary, file=sys.stderr)
        print("integration: 0 passed, 1 failed")
        return 1
    harness.configure(binary=args.binary, sanitized=args.sanitized)
    # Many client sockets in one test: use the whole open-file allowance.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY
                                                    else 65536, hard))

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = ["*%s*" % p for p in args.patterns]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    counts = tests_by_scope(suite)

    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)
    start = time.monotonic()
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, buffer=False,
                                     resultclass=WatchdogResult)
    try:
        result = runner.run(suite)
    finally:
        harness.shutdown_shared()
    faulthandler.cancel_dump_traceback_later()

    # Count tests, not failure records (a test with failing subTests or a
    # failing cleanup has several).
    def test_id(t):
        return getattr(t, "test_case", t).id()
    failed_ids = {test_id(t) for t, _ in result.failures + result.errors}
    failed_ids |= {test_id(t) for t in result.unexpectedSuccesses}
    skips = {}   # id -> (weight, reason), each test or setup once
    for t, reason in result.skipped:
        if test_id(t) not in failed_ids:
            skips[test_id(t)] = (skip_weight(t, counts), reason)
    skipped = sum(w for w, _ in skips.values())
    unexplained = sum(w for w, r in skips.values() if not skip_explained(r))
    # a skip in a class or module setup never reached testsRun
    setup_skips = sum(w for i, (w, _) in skips.items() if i.startswith("setUp"))
    failed = len(failed_ids) + unexplained
    passed = max(0, result.testsRun + setup_skips - len(failed_ids) - skipped)
    for i, (w, reason) in sorted(skips.items()):
        print("skipped%s: %s%s: %s" % ("" if skip_explained(reason) else " (not explained "
                                       "by the environment: counted as failed)", i,
                                       " (%d tests)" % w if w > 1 else "", reason))
    if result.testsRun + setup_skips == 0:
        failed += 1  # nothing ran: that is a failure of the suite itself
        print("run.py: no tests matched", file=sys.stderr)
    line = "integration: %d passed, %d failed" % (passed, failed)
    if skipped - unexplained:
        line += ", %d skipped" % (skipped - unexplained)
    print("(%.1fs%s)" % (time.monotonic() - start, ", sanitized" if args.sanitized else ""))
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
