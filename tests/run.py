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


def main(argv: list[str]) -> int:
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


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
