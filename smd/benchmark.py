"""bmxnet-bench: packed binary layers and models against MXNet's float operators.

Everything runs in one process with the same shapes and the same thread count, and every
row is the median of --repeat timed runs after --warmup untimed ones; the variants of a layer
or model are timed in turn, in three blocks each (interleaved_medians):

  layers    3x3 convs of ResNet-18 (batch 1) plus a strided and a 1x1 one: packed
            QConvolution vs Convolution (float, oneDNN); a run is one forward of a
            graph with --copies copies of the layer, which MXNet executes as one engine
            operation as it does a network's layers (time per copy)
  models    packed resnete18 / meliusnet22 / binary_densenet28 vs the same models
            float-simulated and vs GluonCV's float resnet18_v1 (224x224, batch 1 and 8;
            random weights and trained-looking BatchNorm statistics)
  training  one step (forward, backward, update) of binary resnete18 vs float resnet18_v1
  memory    peak resident memory of packed vs float resnet18_v1 inference (subprocesses)

    bmxnet-bench --sections layers --threads 2 --json bench.json
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time

# name, channels in, channels out, size, kernel, stride, pad
LAYERS = [("3x3 64ch 56x56", 64, 64, 56, 3, 1, 1), ("3x3 128ch 28x28", 128, 128, 28, 3, 1, 1),
          ("3x3 256ch 14x14", 256, 256, 14, 3, 1, 1), ("3x3 512ch 7x7", 512, 512, 7, 3, 1, 1),
          ("3x3 s2 128->256ch 28x28", 128, 256, 28, 3, 2, 1), ("1x1 256ch 14x14", 256, 256, 14, 1, 1, 0)]
SECTIONS = ("layers", "models", "training", "memory")


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sections", default=",".join(SECTIONS), help="comma-separated subset of " + ",".join(SECTIONS))
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="threads of MXNet and of bmxnet")
    p.add_argument("--repeat", type=int, default=30, help="timed runs per row (layers; models use a third)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--copies", type=int, default=10,
                   help="copies of each layer per timed graph run: timing single imperative calls "
                        "would time MXNet's thread hand-over (tens of microseconds), not the operator")
    p.add_argument("--omp-wait-policy", choices=("inherit", "active", "passive"), default="inherit",
                   help="OMP_WAIT_POLICY for MXNet's OpenMP threads (oneDNN float ops): 'active' keeps them "
                        "spinning between parallel regions, which speeds up MXNet's short float layers "
                        "(docs/performance.md); 'inherit' leaves the environment's (libgomp's default)")
    p.add_argument("--ctx", choices=("cpu", "gpu"), default="cpu",
                   help="where layers and models run: gpu times the packed CUDA kernels against MXNet's "
                        "cuDNN convolution and resnet18_v1 on the first GPU (training and memory stay cpu)")
    p.add_argument("--train-batch", type=int, default=8)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--memory-probe", help=argparse.SUPPRESS)  # internal: one memory measurement
    args = p.parse_args(argv)
    args.sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        p.error("unknown section(s) %s; choose from %s" % (", ".join(unknown), ", ".join(SECTIONS)))
    if args.ctx == "gpu" and set(args.sections) - {"layers", "models"}:
        p.error("--ctx gpu times the layers and models sections only")
    if args.threads < 1 or args.repeat < 1 or args.copies < 1 or args.warmup < 0:
        p.error("--threads, --repeat and --copies must be positive, --warmup not negative")
    return args


def set_threads(threads, wait_policy="inherit"):
    """Before mxnet is imported: its OpenMP pool (oneDNN) and bmxnet's kernels use `threads`,
    and OpenMP waits as `wait_policy` says (see --omp-wait-policy)."""
    for name in ("OMP_NUM_THREADS", "BMXNET_NUM_THREADS"):
        os.environ[name] = str(threads)
    if wait_policy != "inherit":
        os.environ["OMP_WAIT_POLICY"] = wait_policy


TIMING_BLOCKS = 3


def interleaved_medians(runs, repeat, warmup, blocks=TIMING_BLOCKS):
    """Median seconds of each of `runs` over `repeat` timed calls, taken in `blocks` rounds
    that time every run in turn: a slow spell of the machine then falls on a minority of one
    side's calls, not on all of them. Each round's first call of a run is untimed: the first
    call after another model or layer pays for waking threads."""
    import numpy as np
    for run in runs:
        for _ in range(warmup):
            run()
    times = [[] for _ in runs]
    for block in range(blocks):
        for run, taken in zip(runs, times):
            run()
            for _ in range(repeat * (block + 1) // blocks - repeat * block // blocks):
                start = time.perf_counter()
                run()
                taken.append(time.perf_counter() - start)
    return [float(np.median(taken)) for taken in times]


# Arm's part numbers (/proc/cpuinfo "CPU part") of the cores of common boards.
ARM_CORES = {"0xd03": "Cortex-A53", "0xd04": "Cortex-A35", "0xd05": "Cortex-A55", "0xd07": "Cortex-A57",
             "0xd08": "Cortex-A72", "0xd09": "Cortex-A73", "0xd0a": "Cortex-A75", "0xd0b": "Cortex-A76",
             "0xd0c": "Neoverse N1", "0xd0d": "Cortex-A77", "0xd40": "Neoverse V1", "0xd41": "Cortex-A78",
             "0xd49": "Neoverse N2", "0xd4f": "Neoverse V2"}


def cpu_description(cpuinfo="/proc/cpuinfo", board="/proc/device-tree/model"):
    """(model name, the instruction-set flags that matter here) from /proc/cpuinfo; on ARM the
    core's name from its part number, and the board's from the device tree (a Raspberry Pi's)."""
    fields = {}
    try:
        with open(cpuinfo) as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    flags = (fields.get("flags") or fields.get("Features", "")).split()
    wanted = ("avx2", "fma", "popcnt", "avx512f", "avx512bw", "avx512_vpopcntdq", "asimd", "asimddp", "sve")
    model = fields.get("model name")
    if model is None and "CPU part" in fields:
        model = ARM_CORES.get(fields["CPU part"].lower(), "Arm core " + fields["CPU part"])
        try:
            with open(board, "rb") as f:
                model = f.read(200).rstrip(b"\0").decode("ascii", "replace") + ", " + model
        except OSError:
            pass
    return model or platform.processor() or "unknown CPU", [f for f in wanted if f in flags]


# ---------------------------------------------------------------------------- layers
def context(args):
    """The context --ctx names (mx.gpu(0) only where MXNet sees a GPU and bmxnet has its kernels)."""
    import mxnet as mx
    import bmxnet
    if getattr(args, "ctx", "cpu") == "cpu":
        return mx.cpu()
    if mx.context.num_gpus() == 0 or not bmxnet.cuda_kernels():
        raise SystemExit("bmxnet-bench: --ctx gpu: %s" % ("MXNet sees no GPU (a CUDA build of MXNet, such as "
                                                          "mxnet-cu112, and a GPU are needed)" if mx.context.num_gpus() == 0
                                                          else "this build of bmxnet has no CUDA kernels"))
    return mx.gpu(0)


def _layer_run(op, x, weight, attrs, copies):
    """One forward of a bound graph holding `copies` copies of op(x, weight), on x's context."""
    import mxnet as mx
    data, w = mx.sym.var("data"), mx.sym.var("weight")
    graph = mx.sym.Group([op(data, w, **attrs) for _ in range(copies)])
    executor = graph.bind(x.context, {"data": x, "weight": weight}, grad_req="null")

    def run():
        executor.forward(is_train=False)
        mx.nd.waitall()
    return run


def bench_layers(args):
    import mxnet as mx
    import numpy as np
    from bmxnet import packing

    rng = np.random.RandomState(0)
    rows = []
    ctx = context(args)
    for name, cin, cout, size, k, stride, pad in LAYERS:
        x = mx.nd.array(rng.uniform(-1, 1, (1, cin, size, size)), ctx=ctx)
        w = rng.uniform(-1, 1, (cout, cin, k, k)).astype(np.float32)
        w_float = mx.nd.array(np.sign(w) + (w == 0), ctx=ctx)
        w_packed = mx.nd.array(packing.pack_conv_weight(w), dtype="int64", ctx=ctx)
        attrs = dict(kernel=(k, k), stride=(stride, stride), pad=(pad, pad), num_filter=cout, no_bias=True)
        runs = [_layer_run(mx.sym.Convolution, x, w_float, attrs, args.copies),
                _layer_run(mx.sym.QConvolution, x, w_packed, dict(attrs, binarized_weights_only=True), args.copies)]
        float_s, packed_s = (seconds / args.copies for seconds in interleaved_medians(runs, args.repeat, args.warmup))
        rows.append(dict(layer=name, float_ms=float_s * 1e3, packed_ms=packed_s * 1e3, speedup=float_s / packed_s))
    return rows


# ---------------------------------------------------------------------------- models
def _zoo_block(name, **options):
    """A zoo model with random weights and trained-looking BatchNorm statistics: fresh ones
    (the identity) fold into sign thresholds under either of MXNet's BatchNorm formulas, so
    they would hide a BatchNorm the converter cannot fold in a trained model."""
    import mxnet as mx
    import numpy as np
    import bmxnet
    net = bmxnet.model_zoo.get_model(name, **options)
    net.initialize(mx.init.Xavier(magnitude=2))
    net(mx.nd.zeros((1, 3, 32, 32)))  # shapes the parameters
    rng = np.random.RandomState(0)
    for param_name, param in net.collect_params().items():
        if param_name.endswith(("gamma", "running_var")):
            param.set_data(mx.nd.array(rng.uniform(0.5, 2, param.shape)))
        elif param_name.endswith(("beta", "running_mean")):
            param.set_data(mx.nd.array(rng.normal(scale=0.5, size=param.shape)))
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def _float_resnet18(ctx=None):
    import mxnet as mx
    from gluoncv.model_zoo import get_model
    net = get_model("resnet18_v1", pretrained=False)
    net.initialize(mx.init.Xavier(magnitude=2), ctx=ctx)
    net.hybridize(static_alloc=True, static_shape=True)
    return net


def _packed(net):
    import mxnet as mx
    from bmxnet.converter import convert_block
    net(mx.nd.zeros((1, 3, 224, 224)))  # export needs one run
    block, _ = convert_block(net)
    block.hybridize(static_alloc=True, static_shape=True)
    return block


def bench_models(args):
    import mxnet as mx
    rows = []
    repeat = max(3, args.repeat // 3)
    ctx = context(args)
    reference = _float_resnet18(ctx)
    models = {}
    for name in ("resnete18", "meliusnet22", "binary_densenet28"):
        simulated = _zoo_block(name)  # made and converted on the cpu, then moved
        models[name] = simulated, _packed(simulated)
        for net in models[name] if ctx != mx.cpu() else ():
            net.collect_params().reset_ctx(ctx)
    for batch in (1, 8):
        x = mx.nd.random.uniform(-1, 1, (batch, 3, 224, 224), ctx=ctx)
        nets = [reference] + [net for pair in models.values() for net in pair]
        seconds = interleaved_medians([lambda net=net: net(x).wait_to_read() for net in nets], repeat, args.warmup)
        float_s = seconds[0]
        rows.append(dict(model="resnet18_v1 (float, GluonCV)", batch=batch, ms=float_s * 1e3,
                         vs_resnet18_v1=1.0))
        for index, name in enumerate(models):
            simulated_s, packed_s = seconds[1 + 2 * index], seconds[2 + 2 * index]
            rows.append(dict(model=name + " (float-simulated)", batch=batch, ms=simulated_s * 1e3,
                             vs_resnet18_v1=float_s / simulated_s))
            rows.append(dict(model=name + " (packed)", batch=batch, ms=packed_s * 1e3,
                             vs_resnet18_v1=float_s / packed_s, vs_simulated=simulated_s / packed_s))
    return rows


# ---------------------------------------------------------------------------- training
def bench_training(args):
    import mxnet as mx
    from mxnet import autograd, gluon
    rows = []
    shape = (args.train_batch, 3, 224, 224)
    x = mx.nd.random.uniform(-1, 1, shape)
    y = mx.nd.array([i % 10 for i in range(args.train_batch)])
    loss_fn = gluon.loss.SoftmaxCrossEntropyLoss()
    times = {}
    for label, make in (("resnet18_v1 (float)", _float_resnet18), ("resnete18 (binary)", lambda: _zoo_block("resnete18"))):
        net = make()
        trainer = gluon.Trainer(net.collect_params(), "adam", {"learning_rate": 1e-4})

        def step():
            with autograd.record():
                loss = loss_fn(net(x), y)
            loss.backward()
            trainer.step(args.train_batch)
            mx.nd.waitall()
        times[label] = interleaved_medians([step], max(3, args.repeat // 10), 1, blocks=1)[0]
    base = times["resnet18_v1 (float)"]
    for label, seconds in times.items():
        rows.append(dict(model=label, batch=args.train_batch, step_ms=seconds * 1e3, vs_float=seconds / base))
    return rows


# ---------------------------------------------------------------------------- memory
def memory_probe(prefix):
    """Runs in a fresh process: peak RSS (MiB) after loading PREFIX (or nothing, for the
    baseline of mxnet + bmxnet) and five batch-1 inferences."""
    import mxnet as mx
    import bmxnet
    if prefix != "none":
        net = bmxnet.import_block(prefix + "-symbol.json", prefix + "-0000.params")
        x = mx.nd.random.uniform(-1, 1, (1, 3, 224, 224))
        for _ in range(5):
            net(x).wait_to_read()
    # VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork + exec
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:")) / 1024.0


def bench_memory(args):
    """Both models are loaded from their files, each in its own process."""
    import shutil
    import tempfile
    import mxnet as mx
    from bmxnet.converter import convert
    directory = tempfile.mkdtemp(prefix="bmxnet-bench-")
    try:
        shape = (1, 3, 224, 224)
        prefixes = {"none": "none"}
        reference = _float_resnet18()
        reference(mx.nd.zeros(shape))
        reference.export(os.path.join(directory, "float"))
        prefixes["resnet18_v1 (float)"] = os.path.join(directory, "float")
        binary = _zoo_block("resnete18")
        binary(mx.nd.zeros(shape))
        binary.export(os.path.join(directory, "binary"))
        symbol_file, _, _ = convert(os.path.join(directory, "binary-symbol.json"),
                                    os.path.join(directory, "binary-0000.params"))
        prefixes["resnete18 (packed)"] = symbol_file[:-len("-symbol.json")]
        peaks = {}
        for label, prefix in prefixes.items():
            out = subprocess.run([sys.executable, "-m", "smd.benchmark", "--memory-probe", prefix,
                                  "--threads", str(args.threads)], capture_output=True, text=True,
                                 cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
            if out.returncode != 0:
                raise RuntimeError("memory probe of %s failed: %s" % (label, out.stderr.strip()[-300:]))
            peaks[label] = float(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    base = peaks.pop("none")
    float_peak = peaks["resnet18_v1 (float)"]
    return [dict(model=label, peak_mib=peak, above_import_mib=peak - base,
                 vs_float=(peak - base) / (float_peak - base)) for label, peak in peaks.items()]


# ---------------------------------------------------------------------------- output
def print_table(title, rows):
    if not rows:
        return
    print("\n" + title)
    columns = list(rows[0].keys())
    for row in rows[1:]:
        columns += [c for c in row if c not in columns]
    cells = [[_cell(c, row.get(c)) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for r in cells:
        print("  ".join(v.ljust(w) for v, w in zip(r, widths)))


def _cell(column, value):
    if value is None:
        return ""
    if isinstance(value, float):
        ratio = column == "speedup" or column.startswith("vs_")
        return "%.2fx" % value if ratio else "%.2f" % value
    return str(value)


def main(argv=None):
    args = parse_args(argv)
    set_threads(args.threads, args.omp_wait_policy)
    if args.memory_probe:
        print(memory_probe(args.memory_probe))
        return 0
    import bmxnet
    model, flags = cpu_description()
    results = dict(cpu=model, flags=flags, threads=args.threads, kernels=bmxnet.active_isa(), ctx=args.ctx,
                   mxnet=__import__("mxnet").__version__, omp_wait_policy=os.environ.get("OMP_WAIT_POLICY", "default"))
    print("CPU: %s (%s), %d threads, bmxnet kernels: %s, OMP_WAIT_POLICY %s"
          % (model, " ".join(flags), args.threads, results["kernels"], results["omp_wait_policy"]))
    for section in args.sections:
        rows = globals()["bench_" + section](args)
        results[section] = rows
        print_table(section, rows)
    if args.json:
        from bmxnet.fileio import atomic_write
        atomic_write(args.json, lambda temp: open(temp, "w").write(json.dumps(results, indent=2)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
