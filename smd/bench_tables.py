"""The README's results tables from `bmxnet-bench --json` files.

    python -m smd.bench_tables bench1.json [bench2.json ...]

With several runs of the same version, each row is that of the run whose ratio is the
median (the lower one of an even count): a row's figures come from one run, and one noisy run
on a shared machine does not set the table.
"""
import argparse
import json
import statistics
import sys


def _load(path):
    with open(path, encoding="utf-8") as f:
        run = json.load(f)
    if not isinstance(run, dict) or not run.get("layers") or not run.get("models"):
        raise ValueError("%s: not a bmxnet-bench --json file with the layers and models sections" % path)
    return run


def _median_row(runs, section, key, ratio):
    """The row matching `key` of the run whose `ratio` is the median over the runs."""
    rows = [row for run in runs for row in run[section]
            if (row.get("layer"), row.get("model"), row.get("batch")) == key]
    if len(rows) != len(runs):
        raise ValueError("row %s is not in every run" % (key,))
    middle = statistics.median_low(row[ratio] for row in rows)
    return runs[[row[ratio] for row in rows].index(middle)], next(row for row in rows if row[ratio] == middle)


def layer_table(runs):
    lines = ["| layer, batch 1 | MXNet float conv, ms | packed, ms | speed-up |", "|---|---|---|---|"]
    for row in runs[0]["layers"]:
        _, median = _median_row(runs, "layers", (row["layer"], None, None), "speedup")
        lines.append("| %s | %.2f | %.2f | **%.1f×** |" % (
            row["layer"], median["float_ms"], median["packed_ms"], median["speedup"]))
    return lines


def model_table(runs):
    lines = ["| model, 224×224 | GluonCV float resnet18_v1, ms | packed, ms | speed-up |", "|---|---|---|---|"]
    for row in runs[0]["models"]:
        if not row["model"].endswith("(packed)"):
            continue
        run, median = _median_row(runs, "models", (None, row["model"], row["batch"]), "vs_resnet18_v1")
        reference = next(other for other in run["models"]
                         if other["model"] == "resnet18_v1 (float, GluonCV)" and other["batch"] == row["batch"])
        lines.append("| %s packed, batch %d | %.1f | %.1f | **%.2f×** |" % (
            row["model"].split()[0], row["batch"], reference["ms"], median["ms"], median["vs_resnet18_v1"]))
    return lines


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="bmxnet-bench --json files of one version on one machine")
    args = parser.parse_args(argv)
    try:
        runs = [_load(path) for path in args.runs]
        machines = {(run.get("cpu"), run.get("kernels"), run.get("threads")) for run in runs}
        if len(machines) != 1:
            raise ValueError("the runs come from different machines or settings: %s" % sorted(machines, key=str))
        tables = layer_table(runs) + [""] + model_table(runs)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print("bench_tables: error: %s" % error, file=sys.stderr)
        return 1
    cpu, kernels, threads = machines.pop()
    print("<!-- %s, kernels %s, %s threads, median of %d run(s) -->" % (cpu, kernels, threads, len(runs)))
    print("\n".join(tables))
    return 0


if __name__ == "__main__":
    sys.exit(main())
