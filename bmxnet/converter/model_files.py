"""The converter's files: reading a model's symbol and params with bounded memory, refusing
output paths that would overwrite an input or cannot be written, and writing the packed pair
as one change. Every problem is a ConversionError naming the file and the cause."""
import errno
import json
import os

import mxnet as mx

from .. import ndarray_file
from .conversion_error import ConversionError, mxnet_message
from ..fileio import read_regular_file, remove_leftovers, replace_together

MAX_SYMBOL_BYTES = 64 << 20  # the largest zoo model's symbol has about 2 MB
MAX_PARAMS_BYTES = 4 << 30  # read whole into memory; MeliusNet-59's float params have 70 MB


def path_text(path, what):
    """`path` as a str; ConversionError for anything that cannot name a file."""
    try:
        path = os.fspath(path)
    except TypeError:
        raise ConversionError("%s %r is not a file path" % (what, path)) from None
    if not isinstance(path, str) or not path or "\0" in path:
        raise ConversionError("%s %r is not a file path" % (what, path))
    return path


def read_symbol(path):
    """The parsed JSON of a symbol file."""
    try:
        raw = read_regular_file(path, limit=MAX_SYMBOL_BYTES)
    except ValueError as error:
        raise ConversionError(str(error)) from None
    try:
        return json.loads(raw.decode("utf-8"))
    except RecursionError:
        raise ConversionError("%s: not a symbol file (JSON nested too deeply)" % path) from None
    except (ValueError, UnicodeDecodeError) as error:
        raise ConversionError("%s: not JSON (%s)" % (path, str(error).splitlines()[0])) from None


def read_params(path):
    """{name: numpy array} of a params file."""
    try:
        return ndarray_file.load(path, limit=MAX_PARAMS_BYTES)
    except ValueError as error:
        raise ConversionError(str(error)) from None


def _identity(path):
    """(device, inode) of the file at `path`, or None."""
    try:
        info = os.stat(path)
    except (OSError, ValueError):
        return None
    return info.st_dev, info.st_ino


def _name_limit(directory):
    """The longest file name the nearest existing ancestor of `directory` allows."""
    while directory and not os.path.isdir(directory):
        directory = os.path.dirname(directory)
    try:
        return os.pathconf(directory or ".", "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_output_paths(outputs, inputs):
    """ConversionError unless every output path can take a new file without touching an
    input: not an input (also through '..', symbolic and hard links), not a directory or a
    read-only file, names the file system allows."""
    taken = {os.path.realpath(path): path for path in inputs}
    identities = {_identity(path): path for path in inputs if _identity(path) is not None}
    for path in outputs:
        same = taken.get(os.path.realpath(path)) or identities.get(_identity(path))
        if same is not None:
            raise ConversionError("%s: would overwrite the input %s; model-converter never overwrites its "
                                  "input (choose another -o/--out-prefix)" % (path, same))
        if os.path.isdir(path):
            raise ConversionError("%s: cannot write (%s)" % (path, os.strerror(errno.EISDIR)))
        if os.path.lexists(path) and not os.path.islink(path) and not os.lstat(path).st_mode & 0o222:
            raise ConversionError("%s: cannot write (the file is read-only)" % path)
        directory, name = os.path.split(os.path.abspath(path))
        if len(os.fsencode(name)) > _name_limit(directory) or len(os.fsencode(os.path.abspath(path))) >= 4096:
            raise ConversionError("%s: cannot write (%s)" % (path, os.strerror(errno.ENAMETOOLONG)))
        parent = directory
        while not os.path.lexists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent):
            raise ConversionError("%s: cannot write (%s is not a directory)" % (path, parent))
    if len({os.path.realpath(path) for path in outputs}) != len(outputs):
        raise ConversionError("%s: the outputs are one file" % outputs[0])


def write_model(symbol_path, params_path, graph, params):
    """Writes the symbol JSON and the params (numpy arrays, saved with their dtypes) as one
    change: both files are new, or both are as they were."""
    text = json.dumps(graph, indent=2, ensure_ascii=False)  # MXNet's JSON reader takes no \u escapes
    arrays = {key: mx.nd.array(value, dtype=value.dtype) for key, value in params.items()}
    try:
        for directory in {os.path.dirname(os.path.abspath(path)) for path in (symbol_path, params_path)}:
            if os.path.isdir(directory):
                remove_leftovers(directory)  # of converters killed while writing here
        replace_together([(params_path, lambda temp: mx.nd.save(temp, arrays)),
                          (symbol_path, lambda temp: _write_text(temp, text))])
    except OSError as error:
        raise ConversionError("%s: cannot write (%s)" % (error.filename or symbol_path,
                                                          error.strerror or error)) from None
    except mx.base.MXNetError as error:
        raise ConversionError("%s: cannot write (%s)" % (params_path, mxnet_message(error))) from None


def _write_text(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)



def import_block(symbol_file, params_file, input_names=("data",), ctx=None):
    """A model's files (packed or not) as a SymbolBlock, like SymbolBlock.imports but with the
    inputs declared float32: MXNet then infers every type and does not warn that it "cannot
    decide" them (it warns so for every model it imports). The block is hybridized with
    static_alloc and static_shape, the setting in which MXNet keeps each node's state from
    call to call (a packed convolution's masks and prepared weights, docs/architecture.md)."""
    inputs = [mx.sym.var(name, dtype="float32") for name in input_names]
    block = mx.gluon.SymbolBlock(mx.sym.load(symbol_file), inputs)
    block.collect_params().load(params_file, ctx=ctx, cast_dtype=True, dtype_source="saved")
    block.hybridize(static_alloc=True, static_shape=True)
    return block
