"""Benchmarks: the real `motcua run` process against a local fake Bot API server.

Run them all with `python -m benchmarks.run` (see the README's Performance section).
"""
