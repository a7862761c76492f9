"""Benchmarks: real server processes and real clients on 127.0.0.1 (see docs/performance.md)."""
