"""smd/bench_tables.py: the README's tables as medians over bmxnet-bench --json runs."""
import json

from smd import bench_tables


def bench_run(path, scale, cpu="AMD EPYC"):
    run = {"cpu": cpu, "kernels": "avx2", "threads": 2,
           "layers": [{"layer": "3x3 64ch 56x56", "float_ms": 2.0 * scale, "packed_ms": 0.25, "speedup": 8.0 * scale}],
           "models": [{"model": "resnet18_v1 (float, GluonCV)", "batch": 1, "ms": 25.0 * scale, "vs_resnet18_v1": 1.0},
                      {"model": "resnete18 (float-simulated)", "batch": 1, "ms": 70.0, "vs_resnet18_v1": 0.36},
                      {"model": "resnete18 (packed)", "batch": 1, "ms": 5.0, "vs_resnet18_v1": 5.0 * scale}]}
    path.write_text(json.dumps(run))
    return str(path)


def test_each_row_is_that_of_the_run_with_the_median_ratio(tmp_path, capsys):
    runs = [bench_run(tmp_path / ("%d.json" % i), scale) for i, scale in enumerate((1.0, 3.0, 1.2))]
    assert bench_tables.main(runs) == 0
    out = capsys.readouterr().out
    assert "median of 3 run(s)" in out
    assert "| 3x3 64ch 56x56 | 2.40 | 0.25 | **9.6×** |" in out
    assert "| resnete18 packed, batch 1 | 30.0 | 5.0 | **6.00×** |" in out
    assert bench_tables.main(runs[:2]) == 0  # an even count: the lower median
    assert "| 3x3 64ch 56x56 | 2.00 | 0.25 | **8.0×** |" in capsys.readouterr().out
    assert "float-simulated" not in out


def test_runs_of_other_machines_are_refused_in_one_line(tmp_path, capsys):
    runs = [bench_run(tmp_path / "a.json", 1.0), bench_run(tmp_path / "b.json", 1.0, cpu="Intel Xeon")]
    assert bench_tables.main(runs) == 1
    err = capsys.readouterr().err
    assert err.startswith("bench_tables: error: the runs come from different machines") and err.count("\n") == 1


def test_a_file_without_the_sections_is_refused(tmp_path, capsys):
    path = tmp_path / "layers_only.json"
    path.write_text(json.dumps({"cpu": "x", "layers": [{"layer": "l"}]}))
    assert bench_tables.main([str(path)]) == 1
    assert "not a bmxnet-bench --json file" in capsys.readouterr().err
