"""Random operator calls (python tests/fuzz_operators.py SEED CASES SECONDS LOG): random
shapes, attributes and values, a fifth of them with one hostile attribute. Each call must
either fail with an MXNetError (one line naming the operator when it is ours) or give the
values of an independent computation: MXNet's own Convolution / Pooling / concat / BatchNorm
on the quantized values, and the packed layers bit for bit against the float-simulated ones.
Writes each case to LOG before running it, so that a crash names its case; prints the counts
as JSON. Run by tests/test_fuzz_operators.py in a child process."""
import json
import sys
import time

import mxnet as mx
import numpy as np

import bmxnet  # noqa: F401  (registers the operators)
from bmxnet import packing

HOSTILE = [0, -1, 2**31 - 1, 2**31, 2**32 + 1, 2**61, 2**64, "abc", "", "(1, 2, 3)", "nan", "1e40", "(-5, 2)",
           "True", "[", "((3))", "0x10"]


class Mismatch(AssertionError):
    pass


def values(rng, shape, special=True):
    """Uniform values with, at times, zeros, signed zeros, infinities and NaN."""
    x = rng.uniform(-1.5, 1.5, shape).astype(np.float32)
    if special and x.size and rng.rand() < 0.3:
        flat = x.reshape(-1)
        picks = rng.randint(0, flat.size, max(1, flat.size // 10))
        flat[picks] = rng.choice(np.array([0.0, -0.0, np.inf, -np.inf, np.nan], np.float32), picks.size)
    return x


def hostile(rng, attrs, keys):
    """attrs with one key (or an unknown one) set to a hostile value."""
    attrs = dict(attrs)
    key = keys[rng.randint(len(keys))] if rng.rand() < 0.9 else "no_such_parameter"
    attrs[key] = HOSTILE[rng.randint(len(HOSTILE))]
    return attrs


def same(a, b, what):
    if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True):
        raise Mismatch("%s: %s" % (what, "shapes %s %s" % (a.shape, b.shape) if a.shape != b.shape else
                                   "max difference %g" % np.nanmax(np.abs(a - b))))


def conv_case(rng, attack):
    groups = rng.choice([1, 1, 2, 3])
    channels = groups * rng.randint(1, 50)
    filters = groups * rng.randint(1, 5)
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    attrs = dict(kernel=kernel, num_filter=filters, num_group=groups, stride=tuple(rng.randint(1, 3, 2)),
                 pad=tuple(rng.randint(0, 3, 2)), dilate=tuple(rng.randint(1, 3, 2)),
                 no_bias=bool(rng.rand() < 0.5), scaling=str(rng.choice(["none", "xnor"])),
                 pad_value=int(rng.choice([0, -1])), act_bit=int(rng.choice([1, 1, 1, 2])), weight_bit=1)
    x = values(rng, (rng.randint(0, 3), channels, rng.randint(1, 10), rng.randint(1, 10)))
    w = values(rng, (filters, channels // groups) + kernel, special=False)
    bias = values(rng, (filters,), special=False)
    if attack:
        attrs = hostile(rng, attrs, list(attrs) + ["binarized_weights_only", "residual", "residual_offset",
                                                   "data_threshold", "data_pieces", "packed_channels", "layout"])
    inputs = [x, w] + ([] if attrs.get("no_bias") is True else [bias])
    out = mx.nd.QConvolution(*[mx.nd.array(v) for v in inputs], **attrs).asnumpy()
    if attack or attrs["act_bit"] != 1:
        return out.shape
    # independent: MXNet's Convolution on the +-1 values (exact integers), scale and bias after
    signs = [mx.nd.array(np.where(v >= 0, 1, -1).astype(np.float32)) for v in (x, w)]
    if attrs["pad_value"] == 0 and x.shape[0]:
        sums = mx.nd.Convolution(*signs, kernel=kernel, num_filter=filters, num_group=groups, stride=attrs["stride"],
                                 pad=attrs["pad"], dilate=attrs["dilate"], no_bias=True).asnumpy()
        same(out, finish(sums, w, bias, attrs), "QConvolution against MXNet's Convolution")
    # packed, with the data in pieces cut anywhere along the channels and a residual added
    cuts = sorted(rng.choice(np.arange(1, channels), min(channels - 1, rng.randint(0, 3)), replace=False))
    pieces = np.split(x, cuts, axis=1)
    residual = values(rng, out.shape, special=False)
    packed = [pieces[0], packing.pack_conv_weight(w)]
    if attrs["scaling"] == "xnor":
        packed.append(packing.xnor_scale(w))
    if not attrs["no_bias"]:
        packed.append(bias)
    packed += [residual] + pieces[1:]
    result = mx.nd.QConvolution(*[mx.nd.array(v, dtype=v.dtype) for v in packed], binarized_weights_only=True,
                                packed_channels=channels // groups, residual=True, data_pieces=len(pieces), **attrs)
    same(result.asnumpy(), (out + residual).astype(np.float32), "packed QConvolution against float-simulated")
    return out.shape


def finish(sums, w, bias, attrs):
    """The packed kernels' finish: times the xnor scale, plus the bias, each rounded."""
    shape = (1, -1) + (1,) * (sums.ndim - 2)
    if attrs["scaling"] == "xnor":
        sums = (sums * packing.xnor_scale(w).reshape(shape)).astype(np.float32)
    return sums if attrs["no_bias"] else (sums + bias.reshape(shape)).astype(np.float32)


def dense_case(rng, attack):
    features, hidden = rng.randint(1, 150), rng.randint(1, 6)
    attrs = dict(num_hidden=hidden, no_bias=bool(rng.rand() < 0.5), scaling=str(rng.choice(["none", "xnor"])))
    x, w, bias = values(rng, (rng.randint(0, 4), features)), values(rng, (hidden, features), False), values(rng, (hidden,), False)
    if attack:
        attrs = hostile(rng, attrs, list(attrs) + ["flatten", "act_bit", "weight_bit"])
    inputs = [x, w] + ([] if attrs.get("no_bias") is True else [bias])
    out = mx.nd.QFullyConnected(*[mx.nd.array(v) for v in inputs], **attrs).asnumpy()
    if attack:
        return out.shape
    sums = np.where(x >= 0, 1, -1).astype(np.float32) @ np.where(w >= 0, 1, -1).astype(np.float32).T
    same(out, finish(sums, w, bias, attrs), "QFullyConnected against numpy")
    packed = [mx.nd.array(x), mx.nd.array(packing.pack_dense_weight(w), dtype="int64")]
    if attrs["scaling"] == "xnor":
        packed.append(mx.nd.array(packing.xnor_scale(w)))
    if not attrs["no_bias"]:
        packed.append(mx.nd.array(bias))
    result = mx.nd.QFullyConnected(*packed, binarized_weights_only=True, packed_features=features, **attrs)
    same(result.asnumpy(), out, "packed QFullyConnected against float-simulated")
    return out.shape


def activation_case(rng, attack):
    attrs = dict(act_bit=int(rng.choice([1, 2, 4, 32])), method=str(rng.choice(["ste", "approx_sign", "swish_sign"])))
    x = values(rng, tuple(rng.randint(1, 6, rng.randint(1, 4))))  # MXNet cannot attach a gradient to an empty array
    if attack:
        attrs = hostile(rng, attrs, list(attrs) + ["clip", "beta", "backward_only"])
    data = mx.nd.array(x)
    data.attach_grad()
    with mx.autograd.record():
        out = mx.nd.QActivation(data, **attrs)
    out.backward(mx.nd.ones_like(out))
    return out.shape


def pooling_case(rng, attack):
    kernel = (rng.randint(1, 4), rng.randint(1, 4))
    attrs = dict(kernel=kernel, stride=tuple(rng.randint(1, 3, 2)), pad=tuple(rng.randint(0, k) for k in kernel),
                 pool_type=str(rng.choice(["max", "avg"])), pooling_convention=str(rng.choice(["valid", "full"])),
                 count_include_pad=bool(rng.rand() < 0.5), global_pool=bool(rng.rand() < 0.1))
    x = values(rng, (rng.randint(0, 3), rng.randint(1, 5), rng.randint(3, 9), rng.randint(3, 9)), special=False)
    if attack:
        attrs = hostile(rng, attrs, list(attrs))
    out = mx.nd.PlainPooling(mx.nd.array(x), **attrs).asnumpy()
    if not attack and x.shape[0]:
        same(out, mx.nd.Pooling(mx.nd.array(x), **attrs).asnumpy(), "PlainPooling against Pooling")
    return out.shape


def concat_case(rng, attack):
    pieces = [values(rng, (2, rng.randint(1, 5), 3, 2)) for _ in range(rng.randint(1, 4))]
    attrs = dict(num_args=len(pieces))
    if attack:
        attrs = hostile(rng, attrs, ["num_args", "take_channels"])
    out = mx.nd.ChannelConcat(*[mx.nd.array(p) for p in pieces], **attrs).asnumpy()
    if not attack:
        same(out, np.concatenate(pieces, axis=1), "ChannelConcat against numpy")
    return out.shape


def batchnorm_case(rng, attack):
    x = values(rng, (rng.randint(1, 3), rng.randint(1, 9), rng.randint(1, 5), rng.randint(1, 5)), special=False)
    channels = x.shape[1]
    stats = [values(rng, (channels,), False), values(rng, (channels,), False), values(rng, (channels,), False),
             rng.uniform(0.1, 2, channels).astype(np.float32)]
    attrs = dict(eps=float(rng.choice([1e-3, 1e-5])), fix_gamma=bool(rng.rand() < 0.5))
    if attack:
        attrs = hostile(rng, attrs, list(attrs) + ["blocked", "channels_last", "act_type"])
    out = mx.nd.PlainBatchNorm(*[mx.nd.array(v) for v in [x] + stats], **attrs).asnumpy()
    if not attack:  # MXNet hands an NDArray of its own to oneDNN plain: the unblocked formula
        expected = mx.nd.BatchNorm(*[mx.nd.array(v) for v in [x] + stats], use_global_stats=True, **attrs).asnumpy()
        same(out, expected, "PlainBatchNorm against BatchNorm")
    return out.shape


CASES = [conv_case, conv_case, dense_case, activation_case, pooling_case, concat_case, batchnorm_case]


def main(seed, count, seconds, log_path):
    rng = np.random.RandomState(seed)
    counts = {"cases": 0, "results": 0, "errors": 0}
    start = time.time()
    with open(log_path, "w") as log:
        while counts["cases"] < count and time.time() - start < seconds:
            case = CASES[rng.randint(len(CASES))]
            case_seed = rng.randint(2**31)
            attack = rng.rand() < 0.2
            log.write("%d %s seed=%d attack=%s\n" % (counts["cases"], case.__name__, case_seed, attack))
            log.flush()
            counts["cases"] += 1
            try:
                case(np.random.RandomState(case_seed), attack)
                counts["results"] += 1
            except mx.base.MXNetError as error:
                counts["errors"] += 1
                text = str(error)
                if "Extension Traceback" in text:  # ours: the last line names the operator
                    last = [line.strip() for line in text.splitlines() if line.strip()][-1]
                    if not last.startswith("[0] ") or not (last[4:].startswith(("Q", "Plain", "ChannelConcat",
                                                                                 "bmxnet"))):
                        raise Mismatch("%s seed=%d: unclear error %r" % (case.__name__, case_seed, last))
            except Mismatch as error:
                raise Mismatch("%s seed=%d attack=%s: %s" % (case.__name__, case_seed, attack, error)) from None
    counts["seconds"] = round(time.time() - start, 1)
    print(json.dumps(counts))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4])
