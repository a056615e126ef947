"""Command-line tools: model-converter, bmxnet-stats, bmxnet-bench, bmxnet-arm-setup, and the
comparisons with other engines and estimates (lce_compare, neon_estimate, cuda_bench.cu)."""
