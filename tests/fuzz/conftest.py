"""Fuzz-run bookkeeping: prints the cases tried per target at the end of the run (and writes them as JSON to the file
named by FASTNN_FUZZ_REPORT). A crash aborts the process, so a completed run means zero crashes."""
from __future__ import annotations

import json
import os

from fastnn.testing import fuzz


def pytest_terminal_summary(terminalreporter):
    if not fuzz.COUNTS:
        return
    total = sum(fuzz.COUNTS.values())
    terminalreporter.write_sep("-", f"fuzz ({fuzz.PROFILE} profile): {total} cases over {len(fuzz.COUNTS)} targets "
                                    f"({sum(fuzz.RAISED.values())} raised as documented), 0 crashes")
    report = os.environ.get("FASTNN_FUZZ_REPORT")
    if report:
        with open(report, "w") as f:
            json.dump({"profile": fuzz.PROFILE, "total": total, "raised": sum(fuzz.RAISED.values()),
                       "targets": {k: [v, fuzz.RAISED[k]] for k, v in sorted(fuzz.COUNTS.items())}}, f, indent=1)
