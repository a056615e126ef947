"""Reads MXNet NDArray files (.params) in pure Python, checking every size against the file.

mx.nd.load trusts the header: a truncated or bit-flipped file can make it allocate
absurd amounts of memory. This reader turns any damage into a one-line ValueError; it reads
only regular files, and the arrays it returns share the one buffer the file was read into
(memory: the file's size).
Format (MXNet 1.x): u64 magic 0x112, u64 reserved, u64 count, `count` arrays, u64 count,
`count` names. Array: u32 magic (V2 0xF993FAC9 / V3 0xF993FACA), i32 storage type,
u32 ndim, i64 dims[ndim], then (ndim > 0) i32 device type, i32 device id, i32 dtype, data.
"""
import struct

import numpy as np

from .fileio import read_regular_file

LIST_MAGIC = 0x112
ARRAY_MAGICS = (0xF993FAC9, 0xF993FACA)
DTYPES = {0: np.float32, 1: np.float64, 2: np.float16, 3: np.uint8, 4: np.int32, 5: np.int8,
          6: np.int64}
MAX_NDIM = 32
MAX_DIM_SIZE = 2 ** 31 - 1


class _Reader:
    def __init__(self, raw, path):
        self.raw, self.path, self.at = raw, path, 0

    def take(self, size, what):
        if size < 0 or self.at + size > len(self.raw):
            raise ValueError("%s: truncated or corrupt params file (%s at byte %d needs %d bytes, "
                             "%d left)" % (self.path, what, self.at, size, len(self.raw) - self.at))
        chunk = self.raw[self.at:self.at + size]
        self.at += size
        return chunk

    def unpack(self, fmt, what):
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt), what))


def _read_array(reader, index):
    magic, storage = reader.unpack("Ii", "array %d header" % index)
    if magic not in ARRAY_MAGICS:
        raise ValueError("%s: array %d has a bad magic number 0x%08x" % (reader.path, index, magic))
    if storage != 0:
        raise ValueError("%s: array %d is sparse (storage type %d); only dense arrays are supported"
                         % (reader.path, index, storage))
    (ndim,) = reader.unpack("i", "array %d ndim" % index)
    if ndim <= 0:
        return np.zeros((0,), np.float32)
    if ndim > MAX_NDIM:
        raise ValueError("%s: array %d claims %d dimensions" % (reader.path, index, ndim))
    shape = reader.unpack("%dq" % ndim, "array %d shape" % index)
    if any(d < 0 or d > MAX_DIM_SIZE for d in shape):
        raise ValueError("%s: corrupt params file (array %d has the shape %s)" % (reader.path, index, shape))
    _device_type, _device_id, dtype_flag = reader.unpack("iii", "array %d context" % index)
    if dtype_flag not in DTYPES:
        raise ValueError("%s: array %d has unknown dtype code %d" % (reader.path, index, dtype_flag))
    dtype = np.dtype(DTYPES[dtype_flag])
    count = 1
    for size in shape:  # Python integers: a corrupt shape cannot overflow
        count *= size
    data = reader.take(count * dtype.itemsize, "array %d data" % index)
    return np.frombuffer(data, dtype=dtype.newbyteorder("<")).reshape(shape)


def load(path, limit=None):
    """dict name -> numpy array of an MXNet NDArray file (of at most `limit` bytes);
    ValueError if it is damaged."""
    raw = read_regular_file(path, limit)
    reader = _Reader(memoryview(raw), path)
    magic, _reserved = reader.unpack("QQ", "file header")
    if magic != LIST_MAGIC:
        raise ValueError("%s: not an MXNet params file (magic 0x%x)" % (path, magic))
    (count,) = reader.unpack("Q", "array count")
    if count > len(raw) // 16:
        raise ValueError("%s: corrupt params file (claims %d arrays)" % (path, count))
    arrays = [_read_array(reader, i) for i in range(count)]
    (name_count,) = reader.unpack("Q", "name count")
    if name_count != count:
        raise ValueError("%s: corrupt params file (%d arrays but %d names)" % (path, count, name_count))
    names = []
    for i in range(name_count):
        (length,) = reader.unpack("Q", "name %d length" % i)
        try:
            names.append(bytes(reader.take(length, "name %d" % i)).decode("utf-8"))
        except UnicodeDecodeError:
            raise ValueError("%s: corrupt params file (name %d is not text)" % (path, i)) from None
    if reader.at != len(raw):
        raise ValueError("%s: corrupt params file (%d unexpected bytes at the end)"
                         % (path, len(raw) - reader.at))
    if len(set(names)) != len(names):
        raise ValueError("%s: corrupt params file (repeated parameter names)" % path)
    return dict(zip(names, arrays))
