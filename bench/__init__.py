"""Benchmarks: `make bench` (= `python -m bench.run_all`) writes bench/RESULTS.md and its plots."""
