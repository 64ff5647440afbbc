"""Notebook 02's Keras cells are siamlib's network, losses and all-pairs step: built and compared.

Notebook 02 writes Koch et al.'s network out for the student: the tower, the weighted-L1 head,
the two losses and the all-pairs training step; and the named all_pairs model's tower (Koch's
blocks with batch norm and a strided stem) and its distance head. siamlib.model and
siamlib.training hold the code the workbook trains with. Neither is generated from the other;
this module proves they are the same thing instead.

**Which cells.** Every code cell of the notebook whose first line starts with ``MARKER``
(``# Network, as siamlib builds it``). They are run here, in notebook order, in one fresh
namespace and nothing else of the notebook, so they must import what they use and must not
read notebook variables (``koch_config`` and the like). ``DEFINED`` lists the names they
must define. Mark a new cell the same way to bring it under this test; a marked cell that
loses its marker makes ``test_the_notebook_marks_its_network_cells`` fail.

**What is compared**, for the Koch config of every profile and the paper's own (and the
all_pairs config of every profile, for the tower, head and outputs):

- the tower, head and whole network, operation by operation: the same layer classes, names
  and full Keras configs (filters, kernel sizes, activations, initialisers, L2 penalties) in
  the same order, and the same non-layer operations (subtract, absolute value; siamlib's
  float32 casts are left out: the notebook's network is float32 throughout);
- the parameter count (38,951,745 for the paper's network);
- the outputs: siamlib's network given random weights, the notebook's given the same ones,
  the same random faces give the same embeddings and scores;
- the losses, against siamlib's and against values computed by hand, label 1 = same person;
- the all-pairs step: the same pairs as ``model.pair_weights`` keeps (no photo paired with
  itself), the same loss as ``model.AllPairsTrainer`` and the same weights after one step.

``test_a_changed_notebook_cell_is_caught`` edits the cells (a kernel size, a missing ReLU, the
head's distance, the contrastive labels, the self-pair rule, the pair weighting, the variables
a step trains) and checks that each edit fails the comparison: these tests can fail.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import keras
import numpy as np
import pytest

from siamlib import SAME, profiles
from siamlib.model import (
    AllPairsTrainer,
    ModelConfig,
    build_siamese,
    contrastive_loss,
    head_of,
    loss_for,
    pair_weights,
    tower_of,
)

NOTEBOOK = Path(__file__).parent.parent / "notebooks" / "02_architecture.ipynb"
MARKER = "# Network, as siamlib builds it"
DEFINED = ("koch_tower", "weighted_l1_head", "siamese_network", "binary_cross_entropy",
           "contrastive_loss", "batch_pairs", "all_pairs_loss", "all_pairs_step",
           "all_pairs_tower", "distance_head")
PAPER = ModelConfig()
SMOKE = profiles.PROFILES["smoke"].koch.model  # width 1/8, 128 units: milliseconds per pass
# The paper's network, and Koch's network as each profile trains it ("gpu" trains the paper's).
KOCH_CONFIGS = {"paper": PAPER} | {name: profile.koch.model
                                   for name, profile in profiles.PROFILES.items()
                                   if profile.koch.model != PAPER}
ALL_PAIRS_CONFIGS = {name: profile.all_pairs.model for name, profile in profiles.PROFILES.items()}
# A batch of P = 3 people x K = 4 photos; person 2 has 3 photos, person 1 only 2, so rows repeat.
PERSON_IDS = np.repeat(np.array([0, 1, 2], np.int32), 4)
PHOTO_ROWS = np.array([0, 1, 2, 3, 4, 5, 4, 5, 6, 7, 8, 6], np.int32)


def marked_cells(notebook: Path = NOTEBOOK) -> list[str]:
    """The source of every code cell whose first line starts with MARKER, in notebook order."""
    cells = json.loads(notebook.read_text(encoding="utf-8"))["cells"]
    sources = ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "code"]
    return [source for source in sources if source.lstrip().startswith(MARKER)]


def notebook_code(edit: tuple[str, str] | None = None) -> dict:
    """Run the marked cells in one fresh namespace and return it.

    ``edit`` = (old, new) replaces the one occurrence of ``old`` in the cells by ``new`` first.
    """
    sources = marked_cells()
    if edit is not None:
        old, new = edit
        hits = sum(source.count(old) for source in sources)
        assert hits == 1, f"the edit expects {old!r} once in the marked cells, found {hits}"
        sources = [source.replace(old, new) for source in sources]
    namespace = {"__name__": "notebook_02"}
    for source in sources:
        exec(compile(source, str(NOTEBOOK), "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def notebook() -> dict:
    return notebook_code()


# --- comparisons, shared by the tests and by the edited-notebook test --------------------------


def operations(network: keras.Model) -> list:
    """Each operation of a functional model, in order: a sub-model as its own list, a layer as
    (class, full config, parameter count), any other operation as its class name."""
    described = []
    for operation in network.operations:
        kind = type(operation).__name__
        if isinstance(operation, keras.Model):
            described.append((operation.name, operations(operation)))
        elif isinstance(operation, keras.layers.Layer):
            described.append((kind, operation.get_config(), operation.count_params()))
        elif kind != "Cast":  # siamlib casts the embeddings to float32 (float16 on a GPU)
            described.append(kind)
    return described


def random_weights(network: keras.Model, seed: int) -> list[np.ndarray]:
    """Weights of the network's shapes, He-scaled so activations neither die nor saturate:
    outputs that spread out, so any difference in the computation shows. Vectors (biases,
    batch norm's scales, shifts, means and variances) are drawn positive: a variance must be."""
    rng = np.random.default_rng(seed)
    return [(rng.normal(0.0, np.sqrt(2.0 / np.prod(w.shape[:-1])), w.shape) if len(w.shape) > 1
             else rng.uniform(0.05, 0.3, w.shape)).astype(np.float32)
            for w in network.get_weights()]


def faces(n: int, config: ModelConfig, seed: int) -> np.ndarray:
    """Random blocky images (15 x 15 random tiles): coarse enough that the tower, which
    pools pixel noise away, gives each one its own embedding."""
    size, tiles = config.image_size, 15
    coarse = np.random.default_rng(seed).random((n, tiles, tiles, 1), dtype=np.float32)
    tile = -(-size // tiles)
    return np.repeat(np.repeat(coarse, tile, axis=1), tile, axis=2)[:, :size, :size]


def network(nb: dict, config: ModelConfig) -> keras.Model:
    """The notebook's network for ``config``: Koch's, or all_pairs' for a contrastive config."""
    if config.loss == "contrastive":
        return nb["siamese_network"](config, nb["all_pairs_tower"], nb["distance_head"])
    return nb["siamese_network"](config)


def check_layers(nb: dict, config: ModelConfig) -> None:
    ours, siamlibs = network(nb, config), build_siamese(config, policy="float32")
    assert operations(ours) == operations(siamlibs)
    assert ours.count_params() == siamlibs.count_params()


def check_outputs(nb: dict, config: ModelConfig) -> None:
    ours, siamlibs = network(nb, config), build_siamese(config, policy="float32")
    siamlibs.set_weights(random_weights(siamlibs, seed=0))
    ours.set_weights(siamlibs.get_weights())  # raises if the weight shapes differ
    a, b = faces(6, config, seed=1), faces(6, config, seed=2)
    ours_scores, siamlib_scores = np.asarray(ours([a, b])), np.asarray(siamlibs([a, b]))
    # Scores that differ from pair to pair by far more than the tolerance below: a change in
    # the computation would show (the distance head's random-weight scores sit close to 1).
    assert siamlib_scores.std() > 5e-4, "scores do not spread: the comparison would not tell"
    np.testing.assert_allclose(np.asarray(tower_of(ours)(a)), np.asarray(tower_of(siamlibs)(a)),
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours_scores, siamlib_scores, rtol=1e-5, atol=1e-6)


def check_losses(nb: dict) -> None:
    same = np.array([1, 0, 1, 0, 1, 0], np.float32)
    score = np.array([0.9, 0.2, 0.3, 0.6, 0.999, 0.5], np.float32)
    by_hand = -np.mean(np.log([0.9, 0.8, 0.3, 0.4, 0.999, 0.5]))
    ours = float(np.mean(nb["binary_cross_entropy"](same, score)))
    siamlibs = float(loss_for(SMOKE)(same, score))
    assert ours == pytest.approx(by_hand, rel=1e-5) and siamlibs == pytest.approx(by_hand, rel=1e-5)

    distance = np.array([0.5, 0.2, 0.0, 1.5, 2.0, 0.0], np.float32)
    for margin, per_pair in ((1.0, [0.25, 0.64, 0.0, 0.0, 4.0, 1.0]),
                             (2.0, [0.25, 3.24, 0.0, 0.25, 4.0, 4.0])):
        ours = float(np.mean(nb["contrastive_loss"](same, distance, margin=margin)))
        # siamlib's loss reads the score 1 / (1 + d) of its contrastive head.
        siamlibs = float(contrastive_loss(margin)(same, 1.0 / (1.0 + distance)))
        assert ours == pytest.approx(np.mean(per_pair), rel=1e-5)
        assert siamlibs == pytest.approx(np.mean(per_pair), rel=1e-5)


def check_pairs(nb: dict) -> None:
    first, second, same = (np.asarray(t) for t in nb["batch_pairs"](PERSON_IDS, PHOTO_ROWS))
    s_first, s_second, s_same, weight = (np.asarray(t)
                                         for t in pair_weights(PERSON_IDS, PHOTO_ROWS))
    kept = weight > 0
    assert sorted(zip(first, second, same)) == sorted(zip(s_first[kept], s_second[kept],
                                                          s_same[kept]))
    assert (first < second).all() and (PHOTO_ROWS[first] != PHOTO_ROWS[second]).all()
    # Person 0: 6 pairs; person 1 (2 photos twice): 6 less 2 self pairs; person 2: 6 less 1.
    assert int(same.sum()) == 6 + 4 + 5 and int((1 - same).sum()) == 3 * 4 * 4


def check_step(nb: dict, config: ModelConfig = SMOKE) -> None:
    """One step of the notebook's all_pairs_step and of siamlib's AllPairsTrainer, from the same
    weights with the same optimiser: the same loss, then the same weights."""
    siamese = build_siamese(config, policy="float32")
    siamese.set_weights(random_weights(siamese, seed=3))
    ours = nb["siamese_network"](config)
    ours.set_weights(siamese.get_weights())
    images = faces(len(PERSON_IDS), config, seed=4)
    before = siamese.get_weights()

    trainer = AllPairsTrainer(siamese)
    trainer.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5), loss=loss_for(config))
    logs = trainer.train_on_batch(images, (PERSON_IDS, PHOTO_ROWS), return_dict=True)
    loss = nb["all_pairs_step"](tower_of(ours), head_of(ours),
                                keras.optimizers.SGD(0.1, momentum=0.5),
                                images, PERSON_IDS, PHOTO_ROWS)

    assert float(loss) == pytest.approx(logs["loss"], rel=1e-5)
    moved = max(np.abs(a - b).max() for a, b in zip(siamese.get_weights(), before))
    assert moved > 1e-3, "the step barely moved the weights: the comparison would not tell"
    for theirs, mine in zip(siamese.get_weights(), ours.get_weights(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-4, atol=1e-6)


# --- the tests -------------------------------------------------------------------------------


def test_the_notebook_marks_its_network_cells(notebook):
    sources = marked_cells()
    assert len(sources) >= 5, f"only {len(sources)} cells start with {MARKER!r}"
    assert all(len(source.splitlines()) <= 40 for source in sources), "keep the cells short"
    missing = [name for name in DEFINED if not callable(notebook.get(name))]
    assert not missing, f"the marked cells no longer define {missing}"


@pytest.mark.parametrize("config", KOCH_CONFIGS.values(), ids=KOCH_CONFIGS.keys())
def test_same_layers_configs_and_parameters_as_siamlib(notebook, config):
    check_layers(notebook, config)


def test_the_papers_network_has_38951745_parameters(notebook):
    assert notebook["siamese_network"](PAPER).count_params() == 38_951_745


@pytest.mark.parametrize("config", [SMOKE, profiles.PROFILES["cpu"].koch.model],
                         ids=["smoke", "cpu"])
def test_same_outputs_as_siamlib_with_the_same_weights(notebook, config):
    check_outputs(notebook, config)


@pytest.mark.parametrize("config", ALL_PAIRS_CONFIGS.values(), ids=ALL_PAIRS_CONFIGS.keys())
def test_the_all_pairs_network_has_siamlibs_layers(notebook, config):
    check_layers(notebook, config)


@pytest.mark.parametrize("profile", ["smoke", "cpu"])
def test_the_all_pairs_network_gives_siamlibs_outputs(notebook, profile):
    check_outputs(notebook, ALL_PAIRS_CONFIGS[profile])


def test_the_notebooks_towers_refuse_configs_they_do_not_write_out(notebook):
    for variant in (profiles.PROFILES["smoke"].all_pairs.model, ModelConfig(kernels=(9, 7, 4, 4))):
        with pytest.raises(ValueError, match="Koch's layout"):
            notebook["koch_tower"](variant)
    all_pairs = profiles.PROFILES["smoke"].all_pairs.model
    for variant in (PAPER, dataclasses.replace(all_pairs, strided_stem=False)):
        with pytest.raises(ValueError, match="all_pairs layout"):
            notebook["all_pairs_tower"](variant)


def test_same_losses_as_siamlib_label_1_is_same_person(notebook):
    check_losses(notebook)
    assert SAME == 1
    bce, contrastive = notebook["binary_cross_entropy"], notebook["contrastive_loss"]
    same, different = np.float32(SAME), np.float32(1 - SAME)
    assert float(bce(same, np.float32(0.99))) < float(bce(same, np.float32(0.01)))
    assert float(contrastive(same, np.float32(0.0))) == 0.0  # same pairs pulled together
    assert float(contrastive(different, np.float32(0.0))) == 1.0  # different pairs pushed apart


def test_all_pairs_are_siamlibs_pairs_without_self_pairs(notebook):
    check_pairs(notebook)


def test_one_all_pairs_step_is_siamlibs_step(notebook):
    check_step(notebook)


def check_tower(nb: dict) -> None:
    check_layers(nb, SMOKE)


def check_scores(nb: dict) -> None:
    check_outputs(nb, SMOKE)


def check_all_pairs(nb: dict) -> None:
    check_layers(nb, ALL_PAIRS_CONFIGS["smoke"])
    check_outputs(nb, ALL_PAIRS_CONFIGS["smoke"])


# (what changes, the text in the marked cells, what it becomes, the check that must fail)
EDITS = [
    ("first kernel 10 -> 9", "conv_relu(image, 64, 10, 1", "conv_relu(image, 64, 9, 1",
     check_tower),
    ("no ReLU after conv 3", "x = conv_relu(x, 128, 4, 3, config)",
     "x = layers.Conv2D(round(128 * config.width), 4, kernel_initializer=conv_init, "
     "bias_initializer=bias_init, kernel_regularizer=keras.regularizers.L2(config.l2), "
     "name='conv3')(x)", check_tower),
    ("squared difference in the head", "ops.abs(embedding_a - embedding_b)",
     "ops.square(embedding_a - embedding_b)", check_scores),
    ("contrastive labels flipped", "return same * distance**2 + (1 - same)",
     "return (1 - same) * distance**2 + same", check_losses),
    ("stem at stride 1", "conv_bn_relu(image, 64, 10, 1, config, stride=2)",
     "conv_bn_relu(image, 64, 10, 1, config, stride=1)", check_all_pairs),
    ("no batch norm in a block", "x = layers.BatchNormalization(name=f\"bn{block}\")(x)",
     "x = x", check_all_pairs),
    ("embeddings not normalised", "a, b = ops.normalize(embedding_a), ops.normalize(embedding_b)",
     "a, b = embedding_a, embedding_b", check_all_pairs),
    ("self pairs kept", "first, second = first[distinct], second[distinct]", "pass",
     check_pairs),
    ("plain mean over all pairs",
     "0.5 * ops.mean(losses[same == 1]) + 0.5 * ops.mean(losses[same == 0])",
     "ops.mean(losses)", check_step),
    ("head left out of the step",
     "variables = tower.trainable_variables + head.trainable_variables",
     "variables = tower.trainable_variables", check_step),
]


@pytest.mark.parametrize(("old", "new", "check"), [edit[1:] for edit in EDITS],
                         ids=[edit[0] for edit in EDITS])
def test_a_changed_notebook_cell_is_caught(old, new, check):
    edited = notebook_code((old, new))  # outside pytest.raises: a missing `old` is an error
    with pytest.raises(AssertionError):
        check(edited)
