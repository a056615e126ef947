"""The operators under random shapes, attributes and values (tests/fuzz_operators.py): no
crash, one-line errors, and results equal to independent computations; fixed seed."""
import json
import os
import subprocess
import sys

CASES, SECONDS = 1500, 240  # the cases take ~10 s here; the time limit only stops a runaway


def test_operator_fuzz_runs_without_crash_or_mismatch(tmp_path):
    log = tmp_path / "cases.log"
    script = os.path.join(os.path.dirname(__file__), "fuzz_operators.py")
    result = subprocess.run([sys.executable, script, "20", str(CASES), str(SECONDS), str(log)],
                            capture_output=True, text=True, timeout=SECONDS + 120)
    last_case = log.read_text().splitlines()[-1] if log.exists() else "none"
    assert result.returncode == 0, "last case: %s\n%s" % (last_case, result.stderr[-3000:])
    counts = json.loads(result.stdout.strip().splitlines()[-1])
    assert counts["cases"] >= 1000, counts
    assert counts["results"] > counts["cases"] // 2 and counts["errors"] > counts["cases"] // 10, counts
