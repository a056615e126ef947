"""Standalone tools: model-converter (and, later, kernel benchmarks)."""
