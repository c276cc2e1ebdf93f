"""Time to test one live window against the training reference.

A 10,000-row window against a 100,000-row reference with 100 columns (70 numeric, 20 categorical, 10
numeric with few values), with the ``auto`` rule (Wasserstein and Jensen-Shannon at this size) and with
each forced method; once building the :class:`Reference` inside the call, once reusing a prebuilt one
(what a running monitor does).

    python benchmarks/drift.py [--rows 10000] [--reference 100000] [--columns 100] [--repeat 5]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import numpy as np
import pandas as pd

from darkfab.monitor import Reference, detect_drift


def make_frame(rows: int, columns: int, seed: int, shift: float = 0.0) -> tuple[pd.DataFrame, dict[str, str]]:
    rng = np.random.default_rng(seed)
    n_cat = columns // 5
    n_few = columns // 10
    n_num = columns - n_cat - n_few
    data: dict[str, np.ndarray] = {}
    types: dict[str, str] = {}
    for i in range(n_num):
        data[f"num{i}"] = rng.normal(shift, 1.0 + i % 3, size=rows)
        types[f"num{i}"] = "numeric"
    for i in range(n_few):
        data[f"few{i}"] = rng.integers(0, 4, size=rows).astype(float)
        types[f"few{i}"] = "numeric"
    letters = np.array([f"c{k}" for k in range(12)], dtype=object)
    for i in range(n_cat):
        data[f"cat{i}"] = letters[rng.integers(0, 8 + i % 5, size=rows)]
        types[f"cat{i}"] = "categorical"
    return pd.DataFrame(data), types


def timed(fn, repeat: int) -> float:  # noqa: ANN001 - any callable
    fn()  # warm-up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--reference", type=int, default=100_000)
    parser.add_argument("--columns", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    reference, types = make_frame(args.reference, args.columns, seed=0)
    window, _ = make_frame(args.rows, args.columns, seed=1, shift=0.05)
    t0 = time.perf_counter()
    prebuilt = Reference(reference, types)
    build_s = time.perf_counter() - t0

    print(
        f"drift: {args.rows:,}-row window vs {args.reference:,}-row reference, {args.columns} columns; "
        f"{platform.processor() or platform.machine()}, python {platform.python_version()}"
    )
    print(f"building the Reference once: {build_s * 1000:.0f} ms")
    print(f"{'method':<14} {'no Reference (ms)':>18} {'with Reference (ms)':>20} {'drifted':>8}")
    for method in ("auto", "ks", "chi2", "wasserstein", "jensenshannon", "psi"):
        cold = timed(lambda m=method: detect_drift(reference, window, feature_types=types, method=m), args.repeat)
        warm = timed(lambda m=method: detect_drift(prebuilt, window, method=m), args.repeat)
        report = detect_drift(prebuilt, window, method=method)
        drifted = sum(c.drifted for c in report.columns)
        print(f"{method:<14} {cold * 1000:>18.1f} {warm * 1000:>20.1f} {drifted:>8}")


if __name__ == "__main__":
    main()
