#!/usr/bin/env python3
"""Runs breakwater's integration tests (tests/integration/test_*.py).

    python3 tests/integration/run.py --binary PATH [--sanitized] [-k PATTERN] [-v]

--sanitized: the binary is built with ASan+UBSan; the daemon runs with
ASAN_OPTIONS/UBSAN_OPTIONS set and a test fails when the daemon's stderr
holds a sanitizer report. -k PATTERN runs only tests whose name contains
PATTERN (as unittest -k; may be repeated). The last line is
"integration: N passed, M failed[, K skipped]"; the exit status is non-zero
when any test failed.
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

# A hung test must not hang CI: the suite is meant to take well under
# three minutes; dump every thread's stack and exit after this.
WATCHDOG_SECONDS = 300


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

    faulthandler.dump_traceback_later(WATCHDOG_SECONDS, exit=True)

    loader = unittest.TestLoader()
    if args.patterns:
        loader.testNamePatterns = ["*%s*" % p for p in args.patterns]
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)

    start = time.monotonic()
    runner = unittest.TextTestRunner(stream=sys.stdout, verbosity=2, buffer=False)
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
    skipped_ids = {test_id(t) for t, _ in result.skipped} - failed_ids
    failed = len(failed_ids)
    skipped = len(skipped_ids)
    passed = max(0, result.testsRun - failed - skipped)
    if result.testsRun == 0:
        failed += 1  # nothing ran: that is a failure of the suite itself
        print("run.py: no tests matched", file=sys.stderr)
    line = "integration: %d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print("(%.1fs%s)" % (time.monotonic() - start, ", sanitized" if args.sanitized else ""))
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
