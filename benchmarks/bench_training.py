"""Benchmark of the model on this machine: training pairs/s, and one-shot scoring speed.

Training: pairs/s and images/s (tower passes) of Koch et al.'s network (``ModelConfig()``) and
a narrow variant (``width=0.25, dense_units=512``), batch 32, Adam as ``siamlib.training``
compiles it, fed three ways with the same network and batch size:

- ``siamlib``: ``pair_dataset`` over DevTrain (uint8 store, shuffled, scaled per batch);
- ``seed-style float64``: float64 arrays of the pairs' images passed as
  ``model.fit(x=[A, B], y=labels)``, as the student reports did;
- ``identities``: batches of 8 people x 4 images through ``AllPairsTrainer``, which trains on
  all 496 pairs of the 32 images (the ``all_pairs`` model's sampling).

One warm-up step (tracing, thread pools) is run and left out, then a fixed number of steps is
timed: the Koch net trains at a few pairs per second on a CPU, so those are few.

Scoring: 500 20-way one-shot tasks (``siamlib.scoring.one_shot_tasks`` over DevTest's images)
with the untrained narrow and Koch networks (speed does not depend on the weights):

- ``cached``: each unique image through the tower once, then the head per pair
  (``embed`` + ``one_shot_scores``);
- ``per-pair``: the two-tower forward pass, ``model.predict`` on all 500 x 20 image pairs.

Every measurement runs in a fresh Python process. Run::

    SIAMLIB_LFW_SOURCE=/path/to/lfw-a python benchmarks/bench_training.py [--quick]

The tables are printed and written to ``benchmarks/results/bench_training.md``
(``bench_training-quick.md`` with ``--quick``, which finishes in a couple of minutes).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import warnings
from pathlib import Path

from bench_pipeline import (
    IMAGE_SIZE,
    load_average,
    markdown_table,
    peak_rss_mb,
    report,
    run_isolated,
)

BATCH_SIZE = 32
N_WAY = 20
NETS = {
    "koch": ("Koch et al.", {}),
    "narrow": ("narrow (width 0.25, 512 units)", {"width": 0.25, "dense_units": 512}),
}
# (training steps, one-shot tasks) per net; the Koch net trains at ~6-10 pairs/s on 2 cores.
FULL = {"koch": (8, 500), "narrow": (64, 500)}
QUICK = {"koch": (2, 50), "narrow": (8, 50)}
FEEDS = {"siamlib": "siamlib pipeline", "seed": "seed-style float64 arrays",
         "identities": "identity batches, every pair (AllPairsTrainer)"}
PATHS = {"cached": "cached (embed unique images once)", "per-pair": "per-pair two-tower forward"}


def network(net: str):
    import keras

    from siamlib.model import ModelConfig, build_siamese

    keras.utils.set_random_seed(0)  # same weights in every process, so scores can be compared
    config = ModelConfig(**NETS[net][1])
    return config, build_siamese(config)


def load_store(pair_file: str, cache_dir: str):
    from siamlib import data
    from siamlib.images import ImageStore, Preprocess
    from siamlib.pairs import read_pairs

    root = data.fetch(progress=False)
    pairs = read_pairs(root / pair_file, root / data.IMAGES)
    store = ImageStore.load(
        set(pairs["path_a"]) | set(pairs["path_b"]), Preprocess(image_size=IMAGE_SIZE),
        cache_dir, progress=False,
    )
    return pairs, store


def train_child(net: str, feed: str, steps: int, cache_dir: str) -> dict:
    import keras
    import numpy as np

    from siamlib.model import AllPairsTrainer, loss_for
    from siamlib.pairs import pair_people
    from siamlib.pipeline import identity_batch_dataset, pair_dataset
    from siamlib.training import TrainConfig

    pairs, store = load_store("pairsDevTrain.txt", cache_dir)
    config, siamese = network(net)
    model = AllPairsTrainer(siamese) if feed == "identities" else siamese
    model.compile(
        optimizer=keras.optimizers.Adam(TrainConfig().learning_rate),
        loss=loss_for(config),
        metrics=[keras.metrics.BinaryAccuracy(name="accuracy")],
    )
    if feed == "seed":
        # The pairs' images as the reports held them: float64 in [0, 1], one array per side.
        chosen = pairs.sample((steps + 1) * BATCH_SIZE, random_state=0)
        side_a = store.pixels[store.rows(chosen["path_a"])][..., np.newaxis] / 255.0
        side_b = store.pixels[store.rows(chosen["path_b"])][..., np.newaxis] / 255.0
        labels = chosen["label"].to_numpy(np.float32)
        first, rest = slice(0, BATCH_SIZE), slice(BATCH_SIZE, None)
        started = time.perf_counter()
        model.fit(x=[side_a[first], side_b[first]], y=labels[first], batch_size=BATCH_SIZE,
                  epochs=1, verbose=0)
        warmup_s = time.perf_counter() - started
        started = time.perf_counter()
        model.fit(x=[side_a[rest], side_b[rest]], y=labels[rest], batch_size=BATCH_SIZE,
                  epochs=1, shuffle=True, verbose=0)
    else:
        if feed == "siamlib":
            dataset = pair_dataset(store, pairs, BATCH_SIZE, shuffle=True, repeat=True)
        else:
            per_person = TrainConfig().images_per_person
            dataset = identity_batch_dataset(store, pair_people(pairs),
                                             BATCH_SIZE // per_person, per_person)
        started = time.perf_counter()
        model.fit(dataset, steps_per_epoch=1, epochs=1, verbose=0)
        warmup_s = time.perf_counter() - started
        started = time.perf_counter()
        model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0)
    seconds = time.perf_counter() - started
    if feed == "identities":  # every pair of the batch's images
        pairs_per_batch, images_per_batch = BATCH_SIZE * (BATCH_SIZE - 1) // 2, BATCH_SIZE
    else:
        pairs_per_batch, images_per_batch = BATCH_SIZE, 2 * BATCH_SIZE
    return {"parameters": siamese.count_params(), "steps": steps,
            "pairs": steps * pairs_per_batch, "images": steps * images_per_batch,
            "warmup_s": warmup_s, "seconds": seconds}


def score_child(net: str, path: str, num_tasks: int, cache_dir: str) -> dict:
    import numpy as np

    from siamlib.scoring import embed, one_shot_scores, one_shot_tasks

    _, store = load_store("pairsDevTest.txt", cache_dir)
    _, model = network(net)
    tasks = one_shot_tasks(store.names, N_WAY, num_tasks, seed=0)

    def side(rows):
        return store.pixels[rows][..., np.newaxis].astype(np.float32) / 255.0

    # Warm-up: trace the tower, head and full network once, outside the timing.
    embeddings = embed(model, store.pixels[:8])
    one_shot_scores(model, embeddings, np.arange(N_WAY + 1)[np.newaxis] % 8)
    model.predict([side(np.arange(8))] * 2, verbose=0)
    started = time.perf_counter()
    if path == "cached":
        used, inverse = np.unique(tasks, return_inverse=True)
        embeddings = embed(model, store.pixels[used])
        scores = one_shot_scores(model, embeddings, inverse.reshape(tasks.shape))
        images = len(used)
    else:
        probes, candidates = np.repeat(tasks[:, 0], N_WAY), tasks[:, 1:].reshape(-1)
        scores = model.predict([side(probes), side(candidates)], batch_size=256, verbose=0)
        scores = scores.reshape(num_tasks, N_WAY)
        images = 2 * len(probes)
    seconds = time.perf_counter() - started
    np.save(Path(cache_dir) / f"scores-{net}-{path}.npy", scores)
    return {"tasks": num_tasks, "images": images, "seconds": seconds, "peak_mb": peak_rss_mb()}


def child(kind: str, net: str, variant: str, cache_dir: str, quick: bool) -> dict:
    warnings.simplefilter("ignore")  # LFW-a's truncated JPEGs warn once per load
    steps, num_tasks = (QUICK if quick else FULL)[net]
    if kind == "train":
        return train_child(net, variant, steps, cache_dir)
    return score_child(net, variant, num_tasks, cache_dir)


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="few steps and 50 tasks")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, quick=args.quick)))
        return
    load_before = load_average()
    extra = ["--quick"] if args.quick else []
    train_rows, score_rows = [], []
    with tempfile.TemporaryDirectory(prefix="bench-training-") as cache_dir:
        for net, (net_label, _) in NETS.items():
            for feed, feed_label in FEEDS.items():
                result = run_isolated(__file__, ["train", net, feed, cache_dir, *extra])
                print(f"train {net} {feed}: {json.dumps(result)}", flush=True)
                train_rows.append([
                    net_label, f"{result['parameters']:,}", feed_label,
                    f"{result['steps']} x {BATCH_SIZE}",
                    f"{result['warmup_s']:.1f}", f"{result['seconds']:.1f}",
                    f"{result['pairs'] / result['seconds']:,.1f}",
                    f"{result['images'] / result['seconds']:,.1f}",
                ])
        for net in ("narrow", "koch"):
            timings = {}
            for path in PATHS:
                result = run_isolated(__file__, ["score", net, path, cache_dir, *extra])
                print(f"score {net} {path}: {json.dumps(result)}", flush=True)
                timings[path] = result
            cached = np.load(Path(cache_dir) / f"scores-{net}-cached.npy")
            per_pair = np.load(Path(cache_dir) / f"scores-{net}-per-pair.npy")
            agreement = (f"{np.abs(cached - per_pair).max():.1e} "
                         f"(scores span {np.ptp(per_pair):.1e})")
            for path, result in timings.items():
                speedup = timings["per-pair"]["seconds"] / result["seconds"]
                score_rows.append([
                    NETS[net][0], PATHS[path], f"{result['tasks']:,}", f"{result['images']:,}",
                    f"{result['seconds']:.1f}", f"{result['tasks'] / result['seconds']:.1f}",
                    f"{speedup:.1f}x", f"{result['peak_mb']:,.0f}", agreement,
                ])
    sections = [
        "## Training pairs/s (batch 32, after one warm-up step)",
        "",
        markdown_table(
            ["network", "parameters", "feed", "steps x batch", "warm-up s", "timed s",
             "pairs/s", "images/s"],
            train_rows,
        ),
        "",
        f"## {N_WAY}-way one-shot scoring (untrained networks)",
        "",
        markdown_table(
            ["network", "path", "tasks", "images through the tower", "s", "tasks/s",
             "speed-up", "peak RSS MB", "max abs difference, cached vs per-pair"],
            score_rows,
        ),
        "",
        "Training: Adam as siamlib compiles it; the seed-style feed gets float64 arrays of only "
        "the pairs it trains on, so its memory is not comparable here (see bench_pipeline). "
        "A batch is 32 pairs (64 images) for the pair feeds and 32 images (496 pairs) for "
        "identity batches; images/s counts tower passes.",
        "Scoring: `images through the tower` counts tower passes; the per-pair path also "
        "materialises every pair's two images as float32 first, hence its higher peak.",
    ]
    report("bench_training", "Model: training and one-shot scoring speed", args.quick,
           sections, load_before)


if __name__ == "__main__":
    main()
