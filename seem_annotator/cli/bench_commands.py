"""`seem-annotator bench ...`: the project's benchmarks. Each prints a table and writes JSON."""

from __future__ import annotations

import argparse
import importlib

BENCH_MODULES = (
    "seem_annotator.bench.export",  # bench export
    "seem_annotator.bench.model",  # bench model
    "seem_annotator.bench.interactive",  # bench interactive
    "seem_annotator.bench.latency",  # bench latency
    "seem_annotator.bench.annotate",  # bench annotate
    "seem_annotator.bench.video",  # bench video
)


def register(subparsers: argparse._SubParsersAction) -> None:
    bench = subparsers.add_parser("bench", help="run a benchmark (prints figures, writes JSON)")
    bench_sub = bench.add_subparsers(dest="bench", metavar="BENCHMARK")
    for name in BENCH_MODULES:
        importlib.import_module(name).register(bench_sub)
