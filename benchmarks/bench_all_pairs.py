"""Where the named model's training minutes go: the input pipeline or the tower.

For the ``cpu`` profile's ``all_pairs`` recipe (batches of 8 people x 4 photos, augmented,
every pair of a batch trained at one tower pass per image), images/s measured four ways:

- **pipeline, augmented** and **pipeline, plain**: ``training.training_stream`` alone, batches
  pulled and dropped (no network);
- **tower alone**: training steps on one cached batch, so no pipeline work at all;
- **whole step**: the real stream feeding the real step, what a run pays.

for Koch et al.'s stem (10x10 conv at stride 1, then a 2x2 max-pool) and a strided stem (the
same conv at stride 2, no pool: a quarter of its multiply-adds, and no 96x96 map to normalise,
activate and pool), each at the profile's width. If "whole step" is near "tower alone", speed
comes from a cheaper tower, not from the pipeline.

The machines here are shared: each figure is the median of ``REPEATS`` timings in one fresh
process, and the page records the load before and after. Run::

    SIAMLIB_LFW_SOURCE=/path/to/lfw-a python benchmarks/bench_all_pairs.py [--quick]

The table is printed and written to ``benchmarks/results/bench_all_pairs.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings

from bench_pipeline import load_average, markdown_table, report, run_isolated

REPEATS = 3
STEPS = {"full": 40, "quick": 8}  # batches of 32 images per timing
TOWERS = {"Koch's stem": {"strided_stem": False}, "strided stem": {"strided_stem": True}}
WAYS = ("pipeline, augmented", "pipeline, plain", "tower alone", "whole step")


def child(tower: str, way: str, steps: int) -> dict:
    warnings.simplefilter("ignore")  # LFW-a's truncated JPEG warns once per load
    from siamlib import budget, profiles, training
    from siamlib.splits import load_splits

    config = profiles.PROFILES["cpu"].all_pairs.replace(model=TOWERS[tower])
    if way == "pipeline, plain":
        config = config.replace(train={"augment": None})
    dataset, _ = training.training_stream(config, load_splits(config.data, progress=False))
    if way.startswith("pipeline"):
        batches = iter(dataset)
        next(batches)  # warm-up: builds the pipeline

        def timed():
            for _ in range(steps):
                next(batches)
    else:
        model = training.compiled_model(config)
        feed = dataset.take(1).cache().repeat() if way == "tower alone" else dataset
        model.fit(feed, epochs=1, steps_per_epoch=2, verbose=0)  # warm-up: tracing

        def timed():
            model.fit(feed, epochs=1, steps_per_epoch=steps, verbose=0)
    seconds = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        timed()
        seconds.append(time.perf_counter() - started)
    images = steps * config.train.batch_size
    return {"images_per_s": [images / s for s in seconds],
            "gflops_per_image": budget.flops_per_image(config.model) / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"{STEPS['quick']} steps a timing")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    steps = STEPS["quick" if args.quick else "full"]
    if args.child:
        print(json.dumps(child(*args.child, steps)))
        return
    load_before, rows = load_average(), []
    extra = ["--quick"] if args.quick else []
    for tower in TOWERS:
        for way in WAYS:
            result = run_isolated(__file__, [tower, way, *extra])
            print(f"{tower}, {way}: {json.dumps(result)}", flush=True)
            rates = result["images_per_s"]
            rows.append([tower, f"{result['gflops_per_image']:.3f}", way,
                         f"{statistics.median(rates):,.0f}",
                         f"{min(rates):,.0f}-{max(rates):,.0f}"])
    table = markdown_table(["tower", "GFLOPs/image (forward)", "measured", "images/s (median)",
                            f"range of {REPEATS}"], rows)
    report("bench_all_pairs", "all_pairs' training speed: pipeline against tower", args.quick,
           [f"`cpu` profile's all_pairs recipe, batches of 32, {steps} steps a timing.", "",
            table], load_before)


if __name__ == "__main__":
    main()
