"""bmxnet: binary and low-bit neural networks for MXNet 1.9 / Gluon.

Importing the package registers the operators ``QActivation``, ``QConvolution``,
``QFullyConnected``, ``ChannelConcat``, ``PlainPooling`` and ``PlainBatchNorm`` with MXNet, so
they exist as ``mx.nd.*``, ``mx.sym.*`` and ``F.*``.
"""
from . import _library

_library.load()

from . import quantizers  # noqa: E402  (needs the operators registered)
from . import nn  # noqa: E402
from . import datasets, model_zoo, optimizer, stats  # noqa: E402  (optimizer registers "radam")
from ._library import active_isa, cuda_kernels, num_threads  # noqa: E402
from .converter import ConversionError, convert, convert_block, import_block  # noqa: E402

model_zoo.register_with_gluoncv()

__version__ = "0.1.0"
__all__ = ["nn", "quantizers", "datasets", "model_zoo", "optimizer", "stats", "active_isa", "cuda_kernels", "num_threads", "convert",
           "convert_block", "import_block", "ConversionError", "__version__"]
