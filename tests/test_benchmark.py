"""smd/benchmark.py (bmxnet-bench): runs, prints the table, writes JSON; never asserts timings."""
import json
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def run(*args):
    return subprocess.run([sys.executable, "-m", "smd.benchmark"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=600)


def test_layer_section_writes_a_row_per_shape(tmp_path):
    out = str(tmp_path / "bench.json")
    result = run("--sections", "layers", "--repeat", "1", "--warmup", "0", "--threads", "1", "--json", out,
                 "--omp-wait-policy", "active")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "3x3 64ch 56x56" in result.stdout and "speedup" in result.stdout
    assert "OMP_WAIT_POLICY active" in result.stdout
    report = json.load(open(out))
    assert report["threads"] == 1 and report["kernels"] in ("portable", "avx2", "avx512")
    assert report["omp_wait_policy"] == "active"
    assert [row["layer"] for row in report["layers"]][:4] == [
        "3x3 64ch 56x56", "3x3 128ch 28x28", "3x3 256ch 14x14", "3x3 512ch 7x7"]
    for row in report["layers"]:
        assert row["float_ms"] > 0 and row["packed_ms"] > 0
        assert abs(row["speedup"] - row["float_ms"] / row["packed_ms"]) < 1e-6


def test_unknown_section_is_one_line_error():
    result = run("--sections", "layers,nonsense")
    assert result.returncode != 0 and "unknown section(s) nonsense" in result.stderr


def test_lce_compare_says_what_it_needs_without_larq():
    """smd/lce_compare.py runs in a TensorFlow + LCE environment; here it must say so."""
    result = subprocess.run([sys.executable, os.path.join(ROOT, "smd", "lce_compare.py"), "--repeat", "1"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "needs tensorflow, larq and larq-compute-engine" in result.stderr


def test_cpu_description_names_x86_and_arm_cores(tmp_path):
    from smd.benchmark import cpu_description
    x86 = tmp_path / "x86"
    x86.write_text("processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 fma popcnt avx512f\n")
    assert cpu_description(str(x86), str(tmp_path / "none")) == ("AMD EPYC 9R14", ["avx2", "fma", "popcnt", "avx512f"])
    pi = tmp_path / "pi"
    pi.write_text("processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"
                  "CPU implementer\t: 0x41\nCPU part\t: 0xd08\n")
    board = tmp_path / "model"
    board.write_bytes(b"Raspberry Pi 4 Model B Rev 1.4\0")
    assert cpu_description(str(pi), str(board)) == ("Raspberry Pi 4 Model B Rev 1.4, Cortex-A72", ["asimd"])
    assert cpu_description(str(pi), str(tmp_path / "none"))[0] == "Cortex-A72"


def test_gpu_context_says_what_it_needs_in_one_line():
    """Without a GPU (this machine, the CPU wheel of MXNet), --ctx gpu stops before timing."""
    result = run("--ctx", "gpu", "--sections", "layers", "--repeat", "1")
    if "MXNet sees no GPU" not in result.stderr:
        import mxnet as mx
        assert mx.context.num_gpus() > 0, result.stderr[-2000:]
        return
    assert result.returncode == 1 and result.stderr.count("\n") == 1
    assert run("--ctx", "gpu", "--sections", "training").returncode == 2


def test_gpu_check_names_the_gpus_or_why_there_are_none(tmp_path):
    import subprocess as sp
    from smd.gpu_check import visible_gpus

    def listing(stdout, stderr=""):
        return lambda *args, **kwargs: sp.CompletedProcess(args, 0 if stdout else 9, stdout, stderr)
    assert visible_gpus(listing("GPU 0: NVIDIA H200 (UUID: GPU-1)\n"), lambda _: "/usr/bin/nvidia-smi") == \
        (["GPU 0: NVIDIA H200 (UUID: GPU-1)"], "")
    gpus, why = visible_gpus(listing("", "NVIDIA-SMI has failed because it couldn't communicate with the driver"),
                             lambda _: "/usr/bin/nvidia-smi")
    assert gpus == [] and why.startswith("nvidia-smi lists no GPU (NVIDIA-SMI has failed")
    (tmp_path / "0000:01:00.0").mkdir()
    assert visible_gpus(which=lambda _: None, proc=str(tmp_path)) == (["GPU at PCI 0000:01:00.0"], "")
    assert visible_gpus(which=lambda _: None, proc=str(tmp_path / "none"))[1].startswith("no NVIDIA driver")
