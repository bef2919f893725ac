"""Benchmarks and the launcher that wires the parts together (for benches, tests and the demo)."""
