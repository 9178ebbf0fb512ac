"""Benchmarks that replay recorded data through the engine."""
