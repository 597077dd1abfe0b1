"""Benchmark suite of ferjax: see benchmarks/run.py."""
