"""Where the time of a packed zoo model goes: each operator type's time against its own bound.

    python -m smd.profile_packed --models resnete18,meliusnet22,binary_densenet28 --threads 2

Each model is the one bmxnet-bench times (224x224, random weights, trained-looking BatchNorm
statistics), converted by model-converter. Its operators' times come from MXNet's profiler,
the median of three blocks of --runs inferences, with bulk execution off (so each operator is
timed alone; the sum is a little above the model's time in bmxnet-bench). Each operator type's bound is the larger of:
- compute: binary MACs (packed layers) at the packed kernel's peak, float MACs (MXNet's
  Convolution / FullyConnected) at oneDNN's, both measured in this process on
  bmxnet-bench's layer shapes (the best rate of any);
- memory: the bytes its nodes read and write at this machine's copy bandwidth (one 256 MiB
  array copied; a lower bound, since small tensors stay in cache).
"time / bound" is how far an operator type is from what this machine could do for it.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark import LAYERS, _packed, _zoo_block, bench_layers, set_threads  # noqa: E402

MODELS = ("resnete18", "meliusnet22", "binary_densenet28")
BYTES = {"float32": 4, "int64": 8}


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS))
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args(argv)
    args.models = [m for m in args.models.split(",") if m]
    unknown = sorted(set(args.models) - set(MODELS))
    if unknown:
        p.error("unknown model(s) %s; known: %s" % (", ".join(unknown), ", ".join(MODELS)))
    return args


def machine_peaks(repeat=10):
    """(binary MACs/s of the packed kernel, float MACs/s of oneDNN, copy bytes/s): the best
    rate over bmxnet-bench's layer rows, and a 256 MiB copy."""
    import mxnet as mx
    rows = bench_layers(argparse.Namespace(repeat=repeat, warmup=2, copies=10, ctx="cpu"))
    binary, floating = 0.0, 0.0
    for (_, cin, cout, size, k, stride, pad), row in zip(LAYERS, rows):
        out = (size + 2 * pad - k) // stride + 1
        macs = cout * cin * k * k * out * out
        floating, binary = max(floating, 1e3 * macs / row["float_ms"]), max(binary, 1e3 * macs / row["packed_ms"])
    source = mx.nd.ones((64 << 20,))
    target = mx.nd.zeros((64 << 20,))
    copies = []
    for _ in range(5):
        start = time.perf_counter()
        source.copyto(target)
        target.wait_to_read()
        copies.append(time.perf_counter() - start)
    return binary, floating, 2 * source.size * 4 / min(copies)


def node_bytes(symbol, shape):
    """Bytes each node of the packed graph reads and writes, by node name."""
    import numpy as np
    internals = symbol.get_internals()
    arg_shapes, out_shapes, aux_shapes = internals.infer_shape(data=shape)
    arg_types, out_types, aux_types = internals.infer_type(data="float32")
    sizes = {}
    for names, shapes, types in ((internals.list_arguments(), arg_shapes, arg_types),
                                 (internals.list_outputs(), out_shapes, out_types),
                                 (internals.list_auxiliary_states(), aux_shapes, aux_types)):
        for name, dims, dtype in zip(names, shapes, types):
            count = 1
            for d in dims:
                count *= d
            sizes[name] = count * BYTES.get(np.dtype(dtype).name, 4)
    graph = json.loads(symbol.tojson())
    nodes, result = graph["nodes"], {}
    for node in nodes:
        if node["op"] == "null":
            continue
        inputs = 0
        for entry in node["inputs"]:
            source = nodes[entry[0]]
            inputs += sizes.get(source["name"] if source["op"] == "null" else "%s_output" % source["name"], 0)
        result[node["name"]] = (node["op"], inputs + sizes.get(node["name"] + "_output", 0))
    return result


def operator_times(block, x, runs, blocks=3):
    """ms per inference by operator type, from MXNet's profiler: the median over `blocks`
    blocks of `runs` inferences (a shared machine's slow spells last seconds)."""
    import statistics
    import mxnet as mx
    for _ in range(3):
        block(x).wait_to_read()
    mx.profiler.set_config(profile_all=True, aggregate_stats=True,
                           filename=os.path.join(tempfile.gettempdir(), "bmxnet-profile.json"))
    per_block = []
    for _ in range(blocks):
        mx.profiler.set_state("run")
        for _ in range(runs):
            block(x).wait_to_read()
        mx.nd.waitall()
        mx.profiler.set_state("stop")
        stats = json.loads(mx.profiler.dumps(reset=True, format="json"))
        per_block.append({name: entry["Total"] / runs for name, entry in stats["Time"].get("operator", {}).items()})
    return {name: statistics.median(times.get(name, 0.0) for times in per_block) for name in per_block[0]}


def profile(name, args, peaks):
    import mxnet as mx
    from bmxnet import stats
    shape = (args.batch, 3, 224, 224)
    net = _zoo_block(name)
    summary = stats.summary(net, shape)
    block = _packed(net)
    binary_peak, float_peak, bandwidth = peaks
    macs = {"QConvolution": 0, "QFullyConnected": 0, "Convolution": 0, "FullyConnected": 0}
    for row in summary.rows:
        op = row["op"]
        macs[op] = macs.get(op, 0) + (row["binary_macs"] if row["binary_macs"] else row["float_macs"])
    moved, counts = {}, {}
    for op, size in node_bytes(block(mx.sym.var("data")), shape).values():
        moved[op] = moved.get(op, 0) + size
        counts[op] = counts.get(op, 0) + 1
    times = operator_times(block, mx.nd.random.uniform(-1, 1, shape), args.runs)
    rows = []
    for op, ms in sorted(times.items(), key=lambda kv: -kv[1]):
        if op not in counts:
            continue  # the engine's own entries (WaitForVar, DeleteVariable)
        peak = binary_peak if op.startswith("Q") and op != "QActivation" else float_peak
        compute_ms = 1e3 * macs.get(op, 0) / peak
        memory_ms = 1e3 * moved.get(op, 0) / bandwidth
        bound = max(compute_ms, memory_ms)
        rows.append(dict(op=op, nodes=counts[op], ms=ms, bound_ms=bound,
                         limit="compute" if compute_ms >= memory_ms else "memory",
                         macs=macs.get(op, 0), bytes=moved.get(op, 0)))
    return dict(model=name, batch=args.batch, total_ms=sum(r["ms"] for r in rows), ops=summary.ops, operators=rows)


def print_profile(result):
    print("\n%s, batch %d: %.2f ms over its operators (OPs %.3g)" % (
        result["model"], result["batch"], result["total_ms"], result["ops"]))
    print("%-18s %6s %9s %7s %9s %8s %12s" % ("operator", "nodes", "ms", "share", "bound_ms", "limit", "time/bound"))
    for row in result["operators"]:
        ratio = row["ms"] / row["bound_ms"] if row["bound_ms"] > 0 else float("inf")
        print("%-18s %6d %9.3f %6.1f%% %9.3f %8s %11.1fx" % (
            row["op"], row["nodes"], row["ms"], 100 * row["ms"] / result["total_ms"], row["bound_ms"],
            row["limit"], ratio))


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads)
    os.environ["MXNET_EXEC_BULK_EXEC_INFERENCE"] = "0"  # before mxnet: time the operators one by one
    import bmxnet  # noqa: F401  (the operators)
    peaks = machine_peaks()
    print("peaks: packed kernel %.1f G binary MACs/s, oneDNN %.1f G float MACs/s, copy %.1f GB/s, %d threads"
          % (peaks[0] / 1e9, peaks[1] / 1e9, peaks[2] / 1e9, args.threads))
    results = [profile(name, args, peaks) for name in args.models]
    for result in results:
        print_profile(result)
    if args.json:
        directory = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
            json.dump(dict(threads=args.threads, peaks=dict(binary_macs_per_s=peaks[0], float_macs_per_s=peaks[1],
                                                            copy_bytes_per_s=peaks[2]), models=results), f, indent=1)
        os.replace(f.name, args.json)


if __name__ == "__main__":
    main()
