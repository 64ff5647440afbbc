"""Benchmark of the data layer: how fast pairs reach the network, and at what memory cost.

One DevTrain epoch (2,200 pairs) at 105x105 in batches of 128, fed five ways:

- ``siamlib cold``: ``read_pairs`` on DevTrain, ``ImageStore.load`` decoding its unique images
  into one uint8 array (empty image cache), then ``pair_dataset(shuffle=True)``;
- ``siamlib warm``: the same, with the decoded images read back from the on-disk cache;
- ``siamlib warm + Augment()``: the same pipeline with the default training-time jitter;
- ``seed-style float64``: what the student reports did: every pair's two images decoded into
  a float64 array of shape (2200, 2, 105, 105, 1) / 255, batched with
  ``tf.data.Dataset.from_tensor_slices``;
- ``unrestricted sampler``: ``sampled_pair_dataset`` over every image of DevTrain's people,
  as many pairs as one DevTrain epoch (cold, then warm cache).

Each variant runs in a fresh Python process, so one variant's memory high-water mark cannot
hide another's; it reports its own peak resident memory (``ru_maxrss``) and the peak right
after importing TensorFlow and siamlib, which every variant pays alike.

Run (the data set comes from ``siamlib.data.fetch``, i.e. ``$SIAMLIB_LFW_SOURCE``)::

    SIAMLIB_LFW_SOURCE=/path/to/lfw-a python benchmarks/bench_pipeline.py [--quick]

The table is printed and written to ``benchmarks/results/bench_pipeline.md``
(``bench_pipeline-quick.md`` with ``--quick``). Timings are wall-clock on a machine that may
be shared: the load average before and after is part of the output.

This file also holds the helpers that ``bench_training.py`` shares (machine description,
isolated runs, markdown tables).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
IMAGE_SIZE = 105
BATCH_SIZE = 128
QUICK_EVERY = 8  # --quick keeps every 8th DevTrain pair (275 pairs, still half same/half not)

VARIANTS = {
    "siamlib-cold": "siamlib, cold (decode once into uint8)",
    "siamlib-warm": "siamlib, warm (uint8 image cache on disk)",
    "siamlib-augment": "siamlib, warm + Augment()",
    "seed-float64": "seed-style float64 arrays",
    "sampler-cold": "unrestricted sampler, cold",
    "sampler-warm": "unrestricted sampler, warm",
}


# --- helpers shared with bench_training.py ------------------------------------------------------


def peak_rss_mb() -> float:
    """This process's resident-memory high-water mark (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def load_average() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def machine_lines() -> list[str]:
    """Versions, device, cores and memory: what a reader needs to compare the figures."""
    from siamlib.device import cpu_model, device_report

    cpu = cpu_model()
    memory_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    nproc = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    python = platform.python_version()
    return [
        device_report(),
        f"CPU: {cpu}; `nproc` = {nproc}; {memory_gb:.0f} GiB RAM; Python {python}",
    ]


def run_isolated(script: str, args: list[str]) -> dict:
    """Run ``script --child ARGS`` in a fresh interpreter; its last stdout line is a JSON result."""
    result = subprocess.run(
        [sys.executable, script, "--child", *args], capture_output=True, text=True
    )
    if result.returncode != 0:
        sys.stderr.write(result.stdout[-3000:] + result.stderr[-3000:])
        raise RuntimeError(f"{Path(script).name} {' '.join(args)} failed ({result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def report(name: str, title: str, quick: bool, sections: list[str], load_before: str) -> str:
    """Assemble, print and save the results page ``results/<name>[-quick].md``."""
    lines = [f"# {title}{' (--quick)' if quick else ''}", ""]
    lines += [f"- {line}" for line in machine_lines()]
    lines += [
        f"- Load before: `{load_before}`",
        f"- Load after: `{load_average()}`",
        f"- Finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}",
        "",
        *sections,
    ]
    text = "\n".join(lines).rstrip() + "\n"
    RESULTS_DIR.mkdir(exist_ok=True)
    path = RESULTS_DIR / f"{name}{'-quick' if quick else ''}.md"
    path.write_text(text)
    print(text)
    print(f"written to {path}")
    return text


# --- one variant, in its own process -----------------------------------------------------------


def dev_train_pairs(quick: bool):
    """DevTrain's pairs and the images folder, fetched (or found) by siamlib.data."""
    from siamlib import data
    from siamlib.pairs import read_pairs

    root = data.fetch(progress=False)
    pairs = read_pairs(root / "pairsDevTrain.txt", root / data.IMAGES)
    return (pairs.iloc[::QUICK_EVERY].reset_index(drop=True) if quick else pairs), root


def seed_style_arrays(pairs, preprocess):
    """Every pair's two images decoded separately into one float64 array, as the reports did."""
    import numpy as np

    from siamlib.images import decode_gray

    x = np.empty((len(pairs), 2, IMAGE_SIZE, IMAGE_SIZE, 1), dtype=np.float64)
    for i, (path_a, path_b) in enumerate(zip(pairs["path_a"], pairs["path_b"])):
        x[i, 0, ..., 0] = decode_gray(path_a, preprocess) / 255.0
        x[i, 1, ..., 0] = decode_gray(path_b, preprocess) / 255.0
    return x


def child(variant: str, cache_dir: str, quick: bool) -> dict:
    import numpy as np
    import tensorflow as tf

    from siamlib.images import ImageStore, Preprocess
    from siamlib.pairs import identity_images, pair_people
    from siamlib.pipeline import Augment, pair_dataset, sampled_pair_dataset

    warnings.simplefilter("ignore")  # LFW-a's truncated JPEGs warn once per load
    import_mb = peak_rss_mb()
    pairs, root = dev_train_pairs(quick)
    preprocess = Preprocess(image_size=IMAGE_SIZE)
    started = time.perf_counter()
    if variant == "seed-float64":
        x = seed_style_arrays(pairs, preprocess)
        labels = pairs["label"].to_numpy(np.float32)
        dataset = tf.data.Dataset.from_tensor_slices(((x[:, 0], x[:, 1]), labels))
        dataset = dataset.batch(BATCH_SIZE)
    elif variant.startswith("siamlib"):
        store = ImageStore.load(
            set(pairs["path_a"]) | set(pairs["path_b"]), preprocess, cache_dir, progress=False
        )
        augment = Augment() if variant == "siamlib-augment" else None
        dataset = pair_dataset(store, pairs, BATCH_SIZE, shuffle=True, augment=augment)
    else:
        people = pair_people(pairs)
        images = identity_images(root / "images")
        store = ImageStore.load(
            images.loc[images["name"].isin(people), "path"], preprocess, cache_dir, progress=False
        )
        batches = math.ceil(len(pairs) / BATCH_SIZE)
        dataset = sampled_pair_dataset(store, people, BATCH_SIZE).take(batches)
    load_s = time.perf_counter() - started
    started = time.perf_counter()
    delivered = 0
    for _, label in dataset:
        delivered += int(label.shape[0])
    epoch_s = time.perf_counter() - started
    return {
        "variant": variant,
        "pairs": delivered,
        "load_s": load_s,
        "epoch_s": epoch_s,
        "peak_mb": peak_rss_mb(),
        "import_mb": import_mb,
    }


# --- the benchmark --------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"every {QUICK_EVERY}th pair only")
    parser.add_argument("--child", nargs=2, metavar=("VARIANT", "CACHE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, quick=args.quick)))
        return
    load_before = load_average()
    rows = []
    # Cold variants run first and fill the (temporary) image cache that warm variants read.
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as cache_dir:
        for variant, label in VARIANTS.items():
            extra = ["--quick"] if args.quick else []
            result = run_isolated(__file__, [variant, cache_dir, *extra])
            print(f"{label}: {json.dumps(result)}", flush=True)
            rows.append([
                label,
                f"{result['pairs']:,}",
                f"{result['load_s']:.1f}",
                f"{result['epoch_s']:.2f}",
                f"{result['pairs'] / result['epoch_s']:,.0f}",
                f"{result['peak_mb']:,.0f}",
                f"{result['peak_mb'] - result['import_mb']:,.0f}",
            ])
    table = markdown_table(
        ["variant", "pairs", "load s", "epoch s", "pairs/s", "peak RSS MB",
         "peak above imports MB"],
        rows,
    )
    notes = [
        "One DevTrain epoch at 105x105, batch 128, one fresh process per variant.",
        "`load s`: reading pairs and decoding (cold) or reading the uint8 cache (warm), or "
        "decoding every pair's two images into float64 arrays (seed-style). `epoch s`: iterating "
        "every batch once. `peak above imports MB`: high-water RSS minus the high-water mark "
        "right after importing TensorFlow and siamlib.",
        "The sampler's store holds every image of DevTrain's people, not only the pairs' images.",
    ]
    report("bench_pipeline", "Data layer: pairs/s and peak memory", args.quick,
           [table, "", *notes], load_before)


if __name__ == "__main__":
    main()
