"""What judging apart costs: wall time of a trivial script trial and of a script model's sealed-test prediction.

Run: ``.venv/bin/python benchmarks/sandbox_split.py [--trials 8]``. Each trial trains the smallest script
(a class prior) on 300 digits rows through the real LocalExecutor (one worker) at the strongest sandbox
level here, then the gate's PredictJob scores its artifact. Since the train/judge split a script trial
starts two fresh confined interpreters (train, judge) and a PredictJob one; before it, the worker forked
one child for each. Compare with an older checkout by running this file with that checkout's ``src`` first
on ``PYTHONPATH``. Built-in trainers are not affected (they run and are measured in the worker).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers.scripts import prior_job  # noqa: E402

from darkfab.execute import Limits, LocalExecutor, PredictJob  # noqa: E402
from darkfab.execute._sandbox import available_level  # noqa: E402
from darkfab.testing.executor_contract import digits_payload, drain  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    ex = LocalExecutor()
    ex.start(digits_payload(rows=300, latency_rows=20), workers=1, limits=Limits(timeout_s=120.0, memory_mb=None))
    train_s: list[float] = []
    predict_s: list[float] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for i in range(args.trials + 1):  # the first one warms the worker up and is not counted
                t0 = time.perf_counter()
                ex.submit(prior_job(Path(folder), trial_id=i))
                done = drain(ex, within_s=300)[f"good{i}"]
                t1 = time.perf_counter()
                assert done.ok, done.error
                ex.submit(PredictJob(f"p{i}", done.output.artifact, "test"))
                assert drain(ex, within_s=300)[f"p{i}"].ok
                t2 = time.perf_counter()
                if i:
                    train_s.append(t1 - t0)
                    predict_s.append(t2 - t1)
    finally:
        ex.close()
    print(f"darkfab from {sys.modules['darkfab'].__file__}; sandbox level {available_level()}")
    print(f"script trial (train + judge): median {statistics.median(train_s):.2f} s, min {min(train_s):.2f} s")
    print(f"sealed-test PredictJob: median {statistics.median(predict_s):.2f} s, min {min(predict_s):.2f} s")


if __name__ == "__main__":
    main()
