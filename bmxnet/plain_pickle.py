"""Reads pickles of plain data (dicts, lists, numbers, bytes) and numeric numpy arrays without
running any code from the file: what the CIFAR python batches are.

pickle.load calls whatever callable a file names, so a crafted "dataset" can run a shell
command. This unpickler resolves only the names numpy's array pickles use, and to stand-ins
of its own: numpy's C code never sees the file's dtype or array state (whose flags could
otherwise make numpy treat bytes as object pointers); arrays are rebuilt with np.frombuffer
from a checked shape, plain dtype and byte count.
"""
import io
import pickle

import numpy as np

from .fileio import read_regular_file

PLAIN_KINDS = "biuf"  # bool, signed, unsigned, float: no objects, strings or structured types


def _text(value):
    return value.decode("ascii") if isinstance(value, bytes) else value


class _NdarrayType:
    """Stands for numpy.ndarray, the only array class a pickle may name."""


class _Dtype:
    """Stands for numpy.dtype(spec); only plain numeric dtypes are accepted."""

    def __init__(self, spec, align=False, copy=False):
        spec = _text(spec)
        if not isinstance(spec, str):
            raise pickle.UnpicklingError("dtype %r is not a plain numeric type" % (spec,))
        try:
            self.dtype = np.dtype(spec)
        except TypeError:
            raise pickle.UnpicklingError("unknown dtype %r" % spec) from None
        if self.dtype.kind not in PLAIN_KINDS or self.dtype.fields or self.dtype.subdtype:
            raise pickle.UnpicklingError("dtype %r is not a plain numeric type" % spec)

    def __setstate__(self, state):
        # numpy's dtype state: (version, byte order, subarray, names, fields, itemsize, alignment, flags)
        if not isinstance(state, tuple) or len(state) < 5 or any(part is not None for part in state[2:5]):
            raise pickle.UnpicklingError("dtype state of a structured or unusual type")
        order = _text(state[1])
        if order not in ("<", ">", "|", "="):
            raise pickle.UnpicklingError("dtype byte order %r" % (order,))
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


def _array(raw, dtype, shape, fortran=False):
    """A numpy array (own copy) of raw bytes after checking type, shape and size."""
    if not isinstance(dtype, _Dtype) or not isinstance(raw, (bytes, bytearray)):
        raise pickle.UnpicklingError("array without a plain dtype and byte data")
    if not isinstance(shape, tuple) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise pickle.UnpicklingError("array shape %r" % (shape,))
    if int(np.prod(shape, dtype=object)) * dtype.dtype.itemsize != len(raw):
        raise pickle.UnpicklingError("array of shape %s has %d bytes of data" % (shape, len(raw)))
    array = np.frombuffer(bytes(raw), dtype=dtype.dtype)
    return array.reshape(shape, order="F" if fortran else "C").copy()


class _ReconstructedArray:
    """Stands for numpy.core.multiarray._reconstruct(ndarray, (0,), typecode): an empty array
    that the pickle then fills with __setstate__; `.array` holds the result."""

    def __init__(self, subtype, shape, typecode=None):
        if subtype is not _NdarrayType or shape not in ((0,), 0):
            raise pickle.UnpicklingError("array reconstruction other than numpy's own")
        self.array = None

    def __setstate__(self, state):
        if isinstance(state, tuple) and len(state) == 5:
            state = state[1:]  # version 1 leads with its version number
        if not isinstance(state, tuple) or len(state) != 4:
            raise pickle.UnpicklingError("array state of unknown layout")
        shape, dtype, fortran, raw = state
        self.array = _array(raw, dtype, shape, bool(fortran))


def _from_buffer(buffer, dtype, shape, order="C"):
    """Stands for numpy.core.numeric._frombuffer (numpy's pickles of protocol 5)."""
    return _array(buffer, dtype, shape, _text(order) == "F")


def _latin1(text, encoding="latin1"):
    """Stands for _codecs.encode, which Python 3 pickles of protocol 2 use for bytes."""
    if not isinstance(text, str) or _text(encoding).lower() not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("_codecs.encode other than of text to latin-1")
    return text.encode("latin-1")


_ALLOWED = {
    ("numpy", "ndarray"): _NdarrayType,
    ("numpy", "dtype"): _Dtype,
    ("numpy.core.multiarray", "_reconstruct"): _ReconstructedArray,
    ("numpy._core.multiarray", "_reconstruct"): _ReconstructedArray,
    ("numpy.core.numeric", "_frombuffer"): _from_buffer,
    ("numpy._core.numeric", "_frombuffer"): _from_buffer,
    ("_codecs", "encode"): _latin1,
}


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        """The stand-in for one of numpy's pickling names; anything else is refused."""
        allowed = _ALLOWED.get((module, name))
        if allowed is None:
            raise pickle.UnpicklingError("refuses to call %s.%s (only plain data and numeric arrays are read)"
                                         % (module, name))
        return allowed


def _replace_stand_ins(value):
    if isinstance(value, _ReconstructedArray):
        if value.array is None:
            raise pickle.UnpicklingError("array without data")
        return value.array
    if isinstance(value, (_Dtype, _NdarrayType)) or any(value is v for v in _ALLOWED.values()):
        raise pickle.UnpicklingError("a bare numpy type or function where data was expected")
    if isinstance(value, dict):
        return {_replace_stand_ins(k): _replace_stand_ins(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_replace_stand_ins(v) for v in value)
    return value


def load(path, max_bytes):
    """The plain data of a pickle file (bytes for Python 2 strings); ValueError naming the file
    if it is larger than max_bytes, damaged, or names anything but numpy's array pickling."""
    raw = read_regular_file(path, max_bytes)  # a FIFO or device would block or never end
    try:
        value = _PlainUnpickler(io.BytesIO(raw), encoding="bytes").load()
        return _replace_stand_ins(value)
    except RecursionError:
        raise ValueError("%s: nested too deeply" % path) from None
    except Exception as error:  # a damaged pickle raises many kinds; none may escape as a traceback
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise ValueError("%s: not a plain-data pickle (%s)" % (path, reason)) from None
