"""What test_aarch64_emulated.py compares between x86 and aarch64 (imported on both sides)."""
import json

import mxnet as mx
import numpy as np


def layer_outputs(prefix, x):
    """The outputs of every packed (or binary) layer of a saved model, then the model's output,
    as one flat array: differences show before later signs hide them."""
    symbol = mx.sym.load(prefix + "-symbol.json")
    layers = [n["name"] for n in json.loads(symbol.tojson())["nodes"] if n["op"] in ("QConvolution", "QFullyConnected")]
    internals = symbol.get_internals()
    outputs = [internals[name + "_output"] for name in layers]
    net = mx.gluon.SymbolBlock(mx.sym.Group(outputs + [symbol]), mx.sym.var("data", dtype="float32"))
    net.collect_params().load(prefix + "-0000.params", ignore_extra=True, cast_dtype=True, dtype_source="saved")
    return np.concatenate([out.asnumpy().ravel() for out in net(mx.nd.array(x))])
