"""Larq Compute Engine on the layer shapes of bmxnet-bench, for a side-by-side comparison.

Runs in its own Python environment (TensorFlow, larq and larq-compute-engine; they are not
dependencies of bmxnet):

    python -m venv /tmp/lce
    /tmp/lce/bin/pip install "tensorflow-cpu==2.15.*" larq larq-compute-engine larq-zoo
    /tmp/lce/bin/python smd/lce_compare.py --threads 2 --json lce.json

Each layer is a Keras model whose output is --copies copies of the same larq QuantConv2D
(ste_sign on input and kernel, zero padding as bmxnet's default), converted by LCE to a
TFLite flatbuffer with its LceQuantize + LceBconv2d ops and run by LCE's interpreter with
--threads threads: the time per copy is the median over --repeat invocations, the same
protocol as bmxnet-bench's layer rows (which pack the float input too). The models are
larq-zoo's BinaryResNetE18 and MeliusNet22 (224x224, batch 1, random weights), as
bmxnet-bench's packed resnete18 and meliusnet22.
"""
import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from benchmark import LAYERS  # noqa: E402  (the shapes bmxnet-bench times)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--threads", type=int, default=os.cpu_count())
    p.add_argument("--repeat", type=int, default=30)
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--copies", type=int, default=10)
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--no-models", action="store_true", help="layers only (no larq-zoo needed)")
    return p.parse_args(argv)


def layer_model(cin, cout, size, k, stride, pad, copies):
    import larq as lq
    import tensorflow as tf
    x = tf.keras.Input((size, size, cin), batch_size=1)
    outputs = [lq.layers.QuantConv2D(cout, k, strides=stride, padding="same" if pad else "valid",
                                     input_quantizer="ste_sign", kernel_quantizer="ste_sign",
                                     kernel_constraint="weight_clip", use_bias=False)(x)
               for _ in range(copies)]
    return tf.keras.Model(x, outputs)


def median_ms(interpreter, x, repeat, warmup):
    import numpy as np
    for _ in range(warmup):
        interpreter.predict(x)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        interpreter.predict(x)
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def time_models(lce, np, args):
    import larq_zoo as lqz
    rows = []
    x = np.random.RandomState(0).uniform(-1, 1, (1, 224, 224, 3)).astype(np.float32)
    print("%-24s %10s" % ("model, batch 1", "lce_ms"))
    for name, build in (("BinaryResNetE18", lqz.literature.BinaryResNetE18),
                        ("MeliusNet22", lqz.literature.MeliusNet22)):
        model = build(weights=None, input_shape=(224, 224, 3))
        interpreter = lce.testing.Interpreter(lce.convert_keras_model(model), num_threads=args.threads)
        ms = median_ms(interpreter, x, max(3, args.repeat // 3), 2)
        rows.append(dict(model=name, lce_ms=ms))
        print("%-24s %10.2f" % (name, ms))
    return rows


def main(argv=None):
    args = parse_args(argv)
    try:
        import larq_compute_engine as lce
        import numpy as np
    except ImportError as error:
        sys.exit("lce_compare: needs tensorflow, larq and larq-compute-engine in this Python (%s); "
                 "see the top of smd/lce_compare.py" % error)
    rows = []
    print("%-24s %10s" % ("layer", "lce_ms"))
    for name, cin, cout, size, k, stride, pad in LAYERS:
        model = layer_model(cin, cout, size, k, stride, pad, args.copies)
        interpreter = lce.testing.Interpreter(lce.convert_keras_model(model), num_threads=args.threads)
        x = np.random.RandomState(0).uniform(-1, 1, (1, size, size, cin)).astype(np.float32)
        ms = median_ms(interpreter, x, args.repeat, args.warmup) / args.copies
        rows.append(dict(layer=name, lce_ms=ms))
        print("%-24s %10.3f" % (name, ms))
    models = [] if args.no_models else time_models(lce, np, args)
    if args.json:
        directory = os.path.dirname(os.path.abspath(args.json))
        with tempfile.NamedTemporaryFile("w", dir=directory, delete=False, suffix=".tmp") as f:
            json.dump(dict(threads=args.threads, lce_version=lce.__version__, layers=rows, models=models), f,
                      indent=1)
        os.replace(f.name, args.json)


if __name__ == "__main__":
    main()
