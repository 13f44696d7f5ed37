"""asv benchmarks for qops; see docs/benchmarks.md for how to run them."""
