"""Run pytest and say plainly what was skipped; "no tests ran" is a failure, never green."""

from __future__ import annotations

import sys

import pytest


class _Count:
    def __init__(self) -> None:
        self.passed = 0
        self.skipped: list[str] = []

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.when == "call" and report.passed:
            self.passed += 1
        if report.skipped:
            reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
            self.skipped.append(f"{report.nodeid}: {reason}")


def _workers(argv: list[str]) -> list[str]:
    """Spread the run over worker processes unless told otherwise (`-n 0`, or SECUREMSG_TEST_WORKERS=0).

    Most tests wait on sockets, timers and subprocesses rather than the CPU, so even a two-core machine
    gains from four workers. Tests on the shared Redis server stay together on one worker (their pub/sub
    channel is the same for every database), see tests/conftest.py.
    """
    import os

    if any(a == "-n" or a.startswith(("-n", "--numprocesses")) for a in argv) or "no:xdist" in argv:
        return argv
    n = os.environ.get("SECUREMSG_TEST_WORKERS", "4")
    if n in ("", "0"):
        return argv
    return ["-n", n, "--dist", "loadgroup", *argv]


def main(argv: list[str]) -> int:
    argv = _workers(argv)
    count = _Count()
    code = int(pytest.main(argv, plugins=[count]))
    if count.skipped:
        reasons: dict[str, int] = {}
        for line in count.skipped:
            reason = line.split(": ", 1)[1]
            reasons[reason] = reasons.get(reason, 0) + 1
        print(f"\nSkipped {len(count.skipped)} tests:")
        for reason, n in sorted(reasons.items(), key=lambda kv: -kv[1]):
            print(f"  {n:4d} × {reason}")
    if code == pytest.ExitCode.NO_TESTS_COLLECTED or count.passed == 0:
        print("no test ran: that is a failure", file=sys.stderr)
        return 1
    return code


def _exit(code: int) -> None:
    """Exit even if a thread outlived the run: name it, then leave without waiting for it.

    A non-daemon thread still alive here (a leaked SQLite connection's worker, say) would make the
    interpreter wait forever after the summary; CI once sat there until its time ran out.
    """
    import os
    import threading

    stuck = [
        t for t in threading.enumerate() if t is not threading.main_thread() and not t.daemon and t.is_alive()
    ]
    if stuck:
        print(f"\n{len(stuck)} thread(s) still running after the tests: {', '.join(t.name for t in stuck)}")
        if code == 0:
            code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    _exit(main(sys.argv[1:]))
