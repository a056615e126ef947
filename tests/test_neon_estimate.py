"""smd/neon_estimate.py: finding a kernel's hot loop in GCC's aarch64 assembly, and a whole
run where the cross compiler and llvm-mca are installed."""
import subprocess
import sys

import pytest

from smd import neon_estimate

ASSEMBLY = """\
_Z6Kernelv:
.LFB1:
\tmov\tx3, 0
.L4:
\tldr\tq0, [x0, x3]
\tcnt\tv0.16b, v0.16b
\tadd\tv1.16b, v1.16b, v0.16b
\tcmp\tx4, x3
\tbne\t.L4
.L3:
\tuaddlp\tv1.8h, v1.16b
\tadd\tx3, x3, 1
\tcbnz\tx5, .L3
.L5:
\tldr\tq2, [x1]
\t.p2align 3
.L6:
\tcnt\tv2.16b, v2.16b
\tcnt\tv3.16b, v3.16b
\tb.ne\t.L6
\tsubs\tx2, x2, 1
\tb.gt\t.L5
\tret
\t.size\t_Z6Kernelv, .-_Z6Kernelv
_Z5Otherv:
\tret
"""


def test_the_hot_loop_is_the_innermost_with_the_most_marker_instructions():
    body = neon_estimate.function_body(ASSEMBLY, "Kernel")
    assert body[-1].strip() == "ret"  # stops at .size
    # .L5 holds .L6, so it is not innermost; .L3 has no cnt; .L4 has one, .L6 two
    assert neon_estimate.hot_loop(body, "cnt") == ["cnt\tv2.16b, v2.16b", "cnt\tv3.16b, v3.16b", "b.ne\t.L6"]
    assert neon_estimate.hot_loop(body, "ldr") == ["ldr\tq0, [x0, x3]", "cnt\tv0.16b, v0.16b",
                                                   "add\tv1.16b, v1.16b, v0.16b", "cmp\tx4, x3", "bne\t.L4"]


def test_missing_function_or_loop_is_named():
    with pytest.raises(LookupError, match="Missing"):
        neon_estimate.function_body(ASSEMBLY, "Missing")
    with pytest.raises(LookupError, match="fmla"):
        neon_estimate.hot_loop(neon_estimate.function_body(ASSEMBLY, "Kernel"), "fmla")


@pytest.mark.skipif(neon_estimate.compiler_path() is None or neon_estimate.llvm_mca_path() is None,
                    reason="needs the aarch64 cross compiler and llvm-mca")
def test_estimates_every_loop_on_both_cores():
    rows = neon_estimate.estimate(neon_estimate.compiler_path(), neon_estimate.llvm_mca_path())
    assert len(rows) == len(neon_estimate.LOOPS) * len(neon_estimate.CORES)
    for row in rows:
        assert row["instructions"] > 3 and row["cycles_per_iteration"] > 0 and row["per_cycle"] > 0
    conv = [r for r in rows if r["loop"].startswith("conv tile, inside")]
    assert all(r["unit"] == "bMAC" and r["ratio"] > 1 for r in conv)
    out = subprocess.run([sys.executable, "-m", "smd.neon_estimate"], capture_output=True, text=True)
    assert out.returncode == 0 and "estimates, not measurements" in out.stdout
