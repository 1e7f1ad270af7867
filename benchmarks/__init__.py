"""Benchmarks printing ratios measured in one run: `python -m benchmarks.NAME --json`."""
