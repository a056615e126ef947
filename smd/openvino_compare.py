"""OpenVINO's binary convolution on the layer shapes and models of bmxnet-bench, side by side.

Runs in its own Python environment (openvino is not a dependency of bmxnet):

    python -m venv /tmp/ov && /tmp/ov/bin/pip install openvino numpy
    .venv/bin/bmxnet-bench --sections layers,models --threads 2 --json bench.json
    /tmp/ov/bin/python smd/openvino_compare.py --threads 2 --bench bench.json --json openvino.json

Layers: each row is one OpenVINO model of --copies BinaryConvolutions (u1 weights,
xnor-popcount, zero padding) of one float input, each binarizing the input itself with a
two-level FakeQuantize, as each copy in bmxnet-bench's packed rows packs its input; the time
per copy is the median over --repeat synchronous inferences after --warmup. Before timing,
every layer model is checked against a numpy binary convolution. Its outputs are NHWC,
OpenVINO's layout inside its networks (bmxnet's is NCHW); "conv only" is OpenVINO's own
profile of its BinaryConvolution nodes, without the binarization in front. Models: bmxnet's resnete18,
meliusnet22 and binary_densenet28 built from OpenVINO operations (smd/openvino_graphs.py), at
batch 1 and 8; --profile-models adds OpenVINO's own time by node type at batch 1.
OpenVINO runs with INFERENCE_NUM_THREADS=--threads, one stream, the latency hint and f32
precision. With --bench, each row also shows bmxnet's packed time from that bmxnet-bench
--json file (run it on the same machine just before) and bmxnet's speed-up over OpenVINO.
"""
import argparse
import json
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import openvino_graphs  # noqa: E402
from benchmark import LAYERS  # noqa: E402  (the shapes bmxnet-bench times; it imports mxnet only when run)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--copies", type=int, default=10)
    p.add_argument("--bench", help="a bmxnet-bench --json file of this machine, shown beside OpenVINO")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--no-models", action="store_true", help="layers only")
    p.add_argument("--profile-models", action="store_true",
                   help="also OpenVINO's own time by node type of each model at batch 1 (PERF_COUNT), to set "
                        "beside smd/profile_packed.py's table")
    return p.parse_args(argv)


def compile_model(core, model, threads, profile=False):
    """One stream of `threads` threads, the latency hint, f32 (and PERF_COUNT when profiling)."""
    return core.compile_model(model, "CPU", {"INFERENCE_NUM_THREADS": threads, "NUM_STREAMS": 1,
                                             "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32",
                                             "PERF_COUNT": profile})


def infer_request(compiled, x):
    import openvino as ov
    request = compiled.create_infer_request()
    request.set_input_tensor(ov.Tensor(x))
    return request


def median_ms(compiled, x, repeat, warmup):
    request = infer_request(compiled, x)
    for _ in range(warmup):
        request.infer()
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        request.infer()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def check_layer(core, row, threads):
    """The layer model's first copy against numpy, on a small batch of this layer's shape."""
    name, cin, cout, size, kernel, stride, pad = row
    rng = np.random.RandomState(1)
    model, weight = openvino_graphs.layer_model(cin, cout, size, kernel, stride, pad, 1, rng)
    x = rng.uniform(-1, 1, (1, cin, size, size)).astype(np.float32)
    got = compile_model(core, model, threads)(x)[0]
    expected = openvino_graphs.reference_binary_conv(x, weight, stride, pad).transpose(0, 2, 3, 1)
    if not np.array_equal(got, expected):
        raise SystemExit("openvino_compare: OpenVINO's %s differs from the numpy binary convolution by up to %g; "
                         "its timing would not be of the same function" % (name, np.abs(got - expected).max()))


def node_type_ms(core, model, x, threads, runs):
    """OpenVINO's own time of each node type of `model` (PERF_COUNT), the median over runs
    of each type's total per inference."""
    request = infer_request(compile_model(core, model, threads, profile=True), x)
    request.infer()
    per_run = []
    for _ in range(runs):
        request.infer()
        per_run.append(type_totals(request.profiling_info))
    return {kind: float(np.median([totals.get(kind, 0.0) for totals in per_run])) for kind in per_run[0]}


def type_totals(profiling_info):
    """{node type: ms} summed over one inference's profiling entries."""
    totals = {}
    for info in profiling_info:
        totals[info.node_type] = totals.get(info.node_type, 0.0) + info.real_time.total_seconds() * 1e3
    return totals


def convolution_ms(core, model, x, threads, runs):
    """OpenVINO's own time of its BinaryConvolution nodes: the convolution without the
    binarization and layout changes around it."""
    return node_type_ms(core, model, x, threads, runs).get("BinaryConvolution", 0.0)


def time_layers(core, args):
    rows = []
    for row in LAYERS:
        check_layer(core, row, args.threads)
        name, cin, cout, size, kernel, stride, pad = row
        rng = np.random.RandomState(0)
        model, _ = openvino_graphs.layer_model(cin, cout, size, kernel, stride, pad, args.copies, rng)
        x = rng.uniform(-1, 1, (1, cin, size, size)).astype(np.float32)
        ms = median_ms(compile_model(core, model, args.threads), x, args.repeat, args.warmup) / args.copies
        conv_ms = convolution_ms(core, model, x, args.threads, args.repeat) / args.copies
        rows.append(dict(layer=name, openvino_ms=ms, openvino_conv_only_ms=conv_ms))
    return rows


def time_models(core, args):
    rows = []
    for batch in (1, 8):
        for name, build in openvino_graphs.MODELS.items():
            rng = np.random.RandomState(0)
            model = build(batch, rng)
            x = rng.uniform(-1, 1, (batch, 3, 224, 224)).astype(np.float32)
            row = dict(model=name, batch=batch,
                       openvino_ms=median_ms(compile_model(core, model, args.threads), x, max(3, args.repeat // 3), 2))
            if args.profile_models and batch == 1:
                row["node_type_ms"] = node_type_ms(core, model, x, args.threads, max(3, args.repeat // 3))
            rows.append(row)
    return rows


def print_model_profiles(models):
    """Each profiled model's time by OpenVINO node type, largest first."""
    for row in models:
        if "node_type_ms" in row:
            parts = sorted(row["node_type_ms"].items(), key=lambda kv: -kv[1])
            print("%s batch %d, OpenVINO's profile (ms): %s" % (row["model"], row["batch"], ", ".join(
                "%s %.3f" % (kind, ms) for kind, ms in parts if ms >= 0.0005)))


def read_bench(path, threads):
    """bmxnet-bench's packed times by layer and by (model, batch)."""
    try:
        with open(path, encoding="utf-8") as f:
            bench = json.load(f)
        if bench.get("threads") != threads:
            raise ValueError("it ran with %s threads, this run with %d" % (bench.get("threads"), threads))
        packed = {row["layer"]: row["packed_ms"] for row in bench.get("layers", [])}
        for row in bench.get("models", []):
            if row["model"].endswith("(packed)"):
                packed[(row["model"].split()[0], row["batch"])] = row["ms"]
        return bench.get("cpu"), packed
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as error:
        raise SystemExit("openvino_compare: --bench %s: %s" % (path, error)) from None


def print_rows(rows, packed):
    print("%-28s %11s %13s %10s %15s" % ("row", "openvino_ms", "(conv only)", "bmxnet_ms", "bmxnet_speedup"))
    for row in rows:
        key = row.get("layer") or (row["model"], row["batch"])
        label = row.get("layer") or "%s batch %d" % key
        bmxnet = packed.get(key)
        if bmxnet is not None:
            row["bmxnet_ms"], row["bmxnet_speedup"] = bmxnet, row["openvino_ms"] / bmxnet
        conv = row.get("openvino_conv_only_ms")
        print("%-28s %11.3f %13s %10s %15s" % (label, row["openvino_ms"], "%.3f" % conv if conv else "",
                                               "%.3f" % bmxnet if bmxnet else "-",
                                               "%.2fx" % row["bmxnet_speedup"] if bmxnet else "-"))


def main(argv=None):
    args = parse_args(argv)
    try:
        import openvino as ov
    except ImportError as error:
        sys.exit("openvino_compare: needs openvino in this Python (%s); see the top of smd/openvino_compare.py"
                 % error)
    cpu, packed = read_bench(args.bench, args.threads) if args.bench else (None, {})
    core = ov.Core()
    device = core.get_property("CPU", "FULL_DEVICE_NAME")
    print("OpenVINO %s on %s, %d threads%s" % (ov.__version__, device, args.threads,
                                               ", bmxnet from %s (%s)" % (args.bench, cpu) if args.bench else ""))
    layers = time_layers(core, args)
    models = [] if args.no_models else time_models(core, args)
    print_rows(layers + models, packed)
    print_model_profiles(models)
    if args.json:
        directory = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
            json.dump(dict(threads=args.threads, openvino_version=ov.__version__, cpu=device,
                           machine=platform.machine(), bench=args.bench, layers=layers, models=models), f, indent=1)
        os.replace(f.name, args.json)


if __name__ == "__main__":
    main()
