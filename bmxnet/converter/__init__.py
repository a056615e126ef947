"""model-converter as a package: pipeline (reading, checking, packing, the ordered PASSES,
writing), the passes (passes, batchnorm_passes, concat_passes), the graph they work on
(graph_nodes; onednn_layouts: MXNet 1.9.1's oneDNN layouts), the checks of untrusted input
(graph_check, op_specs, attr_readers, shape_check) and the files (model_files)."""
from .conversion_error import ConversionError
from .model_files import import_block
from .pipeline import PASSES, ConversionReport, convert, convert_block, convert_graph, default_out_prefix

__all__ = ["ConversionError", "ConversionReport", "PASSES", "convert", "convert_block", "convert_graph",
           "default_out_prefix", "import_block"]
