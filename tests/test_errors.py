"""Bad parameters and shapes give an MXNetError naming the problem, never a crash."""
import os
import re
import subprocess
import sys

import mxnet as mx
import numpy as np
import pytest
from mxnet.base import MXNetError

X = mx.nd.ones((2, 4, 6, 6))
W = mx.nd.ones((8, 4, 3, 3))
CONV = dict(kernel=(3, 3), num_filter=8)


@pytest.mark.parametrize("call,message", [
    (lambda: mx.nd.QActivation(X, act_bit=0), "act_bit='0': must be in"),
    (lambda: mx.nd.QActivation(X, act_bit=33), "act_bit='33'"),
    (lambda: mx.nd.QActivation(X, method="tanh"), "method='tanh': expected one of ste, approx_sign, swish_sign"),
    (lambda: mx.nd.QActivation(X, clip=-1), "clip='-1': must be > 0"),
    (lambda: mx.nd.QActivation(X, clip="abc"), "clip='abc': expected a finite number"),
    (lambda: mx.nd.QActivation(X, backward_only="maybe"), "backward_only='maybe'"),
    (lambda: mx.nd.QActivation(X, act_bits=2), "unknown parameter 'act_bits'"),
    (lambda: mx.nd.QConvolution(X, W, num_filter=8), "missing required parameter 'kernel'"),
    (lambda: mx.nd.QConvolution(X, W, kernel=(3, 3)), "missing required parameter 'num_filter'"),
    (lambda: mx.nd.QConvolution(X, W, kernel=(3, 3, 3), num_filter=8), "kernel='(3, 3, 3)': expected 2 values"),
    (lambda: mx.nd.QConvolution(X, W, stride=(0, 1), **CONV), "stride='(0, 1)': values must be in [1, 2147483647]"),
    (lambda: mx.nd.QConvolution(X, W, weight_bit=0, **CONV), "weight_bit='0'"),
    (lambda: mx.nd.QConvolution(X, W, scaling="l2", **CONV), "scaling='l2': expected one of none, xnor"),
    (lambda: mx.nd.QConvolution(X, W, pad_value=1, **CONV), "pad_value='1': expected 0 or -1"),
    (lambda: mx.nd.QConvolution(X, W, layout="NHWC", **CONV), "layout='NHWC': only NCHW"),
    (lambda: mx.nd.QConvolution(X, W, kernel=(3, 3), num_filter=8, num_group=3), "num_filter='8': must be divisible by num_group=3"),
    (lambda: mx.nd.QConvolution(mx.nd.ones((2, 5, 6, 6)), mx.nd.ones((8, 2, 3, 3)), kernel=(3, 3), num_filter=8, num_group=2), "input channels 5 not divisible by num_group=2"),
    (lambda: mx.nd.QConvolution(X, mx.nd.ones((8, 3, 3, 3)), **CONV), "weight has shape (8, 3, 3, 3), expected (8, 4, 3, 3)"),
    (lambda: mx.nd.QConvolution(X, W, mx.nd.ones((7,)), no_bias=False, **CONV), "bias has shape (7,), expected (8,)"),
    (lambda: mx.nd.QConvolution(mx.nd.ones((4, 6, 6)), W, **CONV), "data must be 4-D NCHW, got shape (4, 6, 6)"),
    (lambda: mx.nd.QConvolution(mx.nd.ones((1, 4, 2, 2)), W, **CONV), "does not fit the padded input"),
    (lambda: mx.nd.QConvolution(X.astype("float64"), W.astype("float64"), **CONV), "must be float32"),
    (lambda: mx.nd.QFullyConnected(X, mx.nd.ones((3, 10)), num_hidden=3), "weight has shape (3, 10), expected (3, 144)"),
    (lambda: mx.nd.QFullyConnected(X, mx.nd.ones((3, 144))), "missing required parameter 'num_hidden'"),
    (lambda: mx.nd.QFullyConnected(X, mx.nd.ones((3, 144)), num_hidden=0), "num_hidden='0'"),
    (lambda: mx.nd.QFullyConnected(X, mx.nd.ones((3, 144)), num_hidden=3, flatten="yes"), "flatten='yes'"),
])
def test_bad_parameters_raise_mxnet_error_with_message(call, message):
    with pytest.raises(MXNetError, match=re.escape(message)):
        call().wait_to_read()


def test_error_message_holds_only_the_latest_problem():
    for bits in (0, 40):
        with pytest.raises(MXNetError) as info:
            mx.nd.QActivation(X, act_bit=bits).wait_to_read()
    assert "act_bit='40'" in str(info.value) and "act_bit='0'" not in str(info.value)


def test_symbol_with_bad_parameter_fails_when_built():
    with pytest.raises(MXNetError, match="weight_bit='99'"):
        mx.sym.QConvolution(mx.sym.var("data"), mx.sym.var("w"), kernel=(3, 3), num_filter=8,
                            weight_bit=99)


def test_symbol_with_mismatched_shapes_fails_at_shape_inference():
    sym = mx.sym.QConvolution(mx.sym.var("data"), mx.sym.var("w"), kernel=(3, 3), num_filter=8)
    with pytest.raises(MXNetError, match=re.escape("weight has shape (8, 2, 3, 3), expected (8, 4, 3, 3)")):
        sym.infer_shape(data=(1, 4, 6, 6), w=(8, 2, 3, 3))


def run_python(code, **env):
    environment = dict(os.environ, **env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=environment, timeout=120)


def test_missing_library_gives_import_error_with_rebuild_hint(tmp_path):
    result = run_python("import bmxnet", BMXNET_LIBRARY=str(tmp_path / "libbmxnet.so"))
    assert result.returncode != 0
    assert "ImportError: bmxnet: compiled library not found" in result.stderr
    assert "make build" in result.stderr


def test_library_built_for_other_mxnet_gives_import_error(monkeypatch):
    from bmxnet import _library
    monkeypatch.setattr(mx, "__version__", "1.8.0")
    with pytest.raises(ImportError, match="built for MXNet 1.9.1 but MXNet 1.8.0 is installed"):
        _library._check_built_for_this_mxnet(_library.library_path())


def test_foreign_file_as_library_gives_import_error(tmp_path):
    fake = tmp_path / "libbmxnet.so"
    fake.write_bytes(b"not a shared library")
    result = run_python("import bmxnet", BMXNET_LIBRARY=str(fake))
    assert result.returncode != 0 and "not a shared library (no ELF header)" in result.stderr


def test_import_twice_loads_library_once():
    result = run_python("import bmxnet, importlib, bmxnet._library as l; p = l.load(); "
                        "importlib.reload(bmxnet); assert l.load() == p; print('ok')")
    assert result.returncode == 0 and "ok" in result.stdout, result.stderr


ISA_PROBE = """
import bmxnet, mxnet as mx, numpy as np
from bmxnet import packing
rng = np.random.RandomState(0)
x = mx.nd.array(rng.uniform(-2, 2, (3, 1001))); x[0, :3] = mx.nd.array([0, -0.0, 1]); x.attach_grad()
with mx.autograd.record():
    y = mx.nd.QActivation(x, act_bit=1, clip=1.2)
y.backward(mx.nd.array(rng.normal(size=(3, 1001))))
images = mx.nd.array(rng.uniform(-1, 1, (2, 70, 9, 11)))
w = rng.uniform(-1, 1, (66, 70, 3, 3)).astype(np.float32)
conv = mx.nd.QConvolution(images, mx.nd.array(packing.pack_conv_weight(w), dtype="int64"), kernel=(3, 3),
                          pad=(1, 1), num_filter=66, binarized_weights_only=True)
wd = rng.uniform(-1, 1, (5, 700)).astype(np.float32)
dense = mx.nd.QFullyConnected(images.reshape((2, -1))[:, :700], mx.nd.array(packing.pack_dense_weight(wd), dtype="int64"),
                              num_hidden=5, binarized_weights_only=True)
np.savez("OUT", y=y.asnumpy(), grad=x.grad.asnumpy(), conv=conv.asnumpy(), dense=dense.asnumpy())
print(bmxnet.active_isa())
"""


# indirect: conftest's isa fixture skips a path the CPU lacks
@pytest.mark.parametrize("isa", ["avx2", "avx512", "neon"], indirect=True)
def test_each_kernel_path_gives_the_portable_results(isa, tmp_path):
    """BMXNET_ISA forces a path (never above what the CPU has): quantizers and packed layers."""
    results = {}
    for forced in (isa, "portable"):
        out = str(tmp_path / (forced + ".npz"))
        result = run_python(ISA_PROBE.replace("OUT", out), BMXNET_ISA=forced)
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == forced, "BMXNET_ISA=%s did not force that path" % forced
        results[forced] = np.load(out)
    for name in ("y", "grad", "conv", "dense"):
        np.testing.assert_array_equal(results[isa][name], results["portable"][name], err_msg=name)
