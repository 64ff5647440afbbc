"""siamlib.search: the space, the seeded sampler, pruning, resuming, and two workers on one study.

Trials train tiny networks on the generated faces (``synthetic_faces``); the two-worker tests use
a fake objective in two real processes, once on the default journal file and once on PostgreSQL
(``$SIAMLIB_TEST_POSTGRES_URL``, which ``.ci/run`` sets after starting a server).
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import keras
import optuna
import pytest
from optuna.trial import TrialState
from optuna_integration import KerasPruningCallback
from required import unavailable
from sqlalchemy.engine import make_url
from synthetic_faces import small_run_config, synthetic_workspace

from siamlib import budget, paths, profiles, search
from siamlib.model import build_siamese

POSTGRES_ENV = "SIAMLIB_TEST_POSTGRES_URL"
URL_ENV = "SIAMLIB_OPTUNA_URL"  # the shared study's URL, read from the environment only
POSTGRES_HELP = (f"The shared-study test needs a PostgreSQL server: set {POSTGRES_ENV} to "
                 "postgresql+psycopg://user:password@127.0.0.1:5433/db (.ci/run starts one).")
# A space the generated 48 px faces fit, small enough that a trial trains in seconds.
TINY = search.SearchSpace(image_sizes=(32, 48), width_factors=(0.5, 1.0),
                          depths=(2,), people_per_batch=(4, 6), images_per_person=(2, 3))


@pytest.fixture
def base(tmp_path_factory, tmp_path, monkeypatch):
    """The synthetic run config as a batches-of-people run; image caches and the default study
    storage go to this test's folder."""
    workspace = synthetic_workspace(tmp_path_factory)
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(paths.RUNS_DIR_ENV, str(tmp_path / "runs"))
    config = small_run_config(workspace / "faces", name="tiny")
    return config.replace(data={"generated_pairs": 200},
                          train={"sampling": "identities", "pairs_per_epoch": None,
                                 "images_per_epoch": 48, "batch_size": 8})


def _run_folders(runs: Path) -> list[Path]:
    """Run folders, finished or partial (hidden); lock files beside them are not runs."""
    return sorted(p for p in runs.iterdir() if p.is_dir()) if runs.is_dir() else []


def _states(study):
    return {t.number: t.state for t in study.get_trials(deepcopy=False)}


# --- the space --------------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(profiles.PROFILES))
def test_every_point_of_the_space_is_a_valid_run_config(name):
    base, space = profiles.PROFILES[name].all_pairs, search.SPACE
    choices = [space.face_crops, space.image_sizes, space.width_factors, space.depths,
               space.dropout, space.learning_rate, space.lr_decays, space.people_per_batch,
               space.images_per_person, space.losses]
    for point in itertools.product(*choices):
        params = dict(zip(["face_crop", "image_size", "width_factor", "depth", "dropout",
                           "learning_rate", "lr_decay", "people_per_batch",
                           "images_per_person", "loss"], point))
        config = space.config(base, params, epochs=3, name="trial")  # RunConfig validates
        train, model = config.train, config.model
        assert (train.sampling, train.epochs) == ("identities", 3)
        assert train.batch_size == params["people_per_batch"] * params["images_per_person"]
        assert train.images_per_person == params["images_per_person"]
        assert train.images_per_epoch == base.train.images_per_epoch
        assert config.data.preprocess.image_size == model.image_size == params["image_size"]
        assert config.data.face_crop == params["face_crop"]
        assert len(model.filters) == len(model.kernels) == params["depth"]
        assert model.width == pytest.approx(base.model.width * params["width_factor"])
        assert model.distance == ("l2" if params["loss"] == "contrastive" else "l1")
        assert (train.learning_rate, train.lr_decay) == (params["learning_rate"],
                                                         params["lr_decay"])


def test_the_smallest_and_deepest_networks_of_the_space_build():
    """80 px through all four of Koch's blocks still leaves a feature map to flatten."""
    base = profiles.PROFILES["smoke"].all_pairs
    for size, depth in itertools.product(search.SPACE.image_sizes, search.SPACE.depths):
        params = {"face_crop": "whole", "image_size": size, "width_factor": 1.0, "depth": depth,
                  "dropout": 0.0, "learning_rate": 1e-3, "lr_decay": 1.0,
                  "people_per_batch": 8, "images_per_person": 2, "loss": "bce"}
        model = build_siamese(search.SPACE.config(base, params, 1, "x").model, "float32")
        assert model.output_shape == (None, 1)
        keras.backend.clear_session()


def test_a_depth_beyond_the_base_model_is_refused():
    base = profiles.PROFILES["smoke"].all_pairs
    params = {"depth": 5, "images_per_person": 2, "loss": "bce"}
    with pytest.raises(ValueError, match="depth 5"):
        search.SPACE.config(base, params, 1, "x")


# --- the sampler ------------------------------------------------------------------------------

def _first_params(storage: Path, seed: int, n: int = 3) -> list[dict]:
    study = search.open_study(profiles.PROFILES["smoke"].all_pairs, 1, storage, seed)
    return [search.SPACE.suggest(study.ask()) for _ in range(n)]


def test_the_same_seed_draws_the_same_trials_and_another_seed_others(tmp_path):
    first = _first_params(tmp_path / "a.log", seed=7)
    assert first == _first_params(tmp_path / "b.log", seed=7)
    assert first != _first_params(tmp_path / "c.log", seed=8)
    assert first[0] != first[1]  # each trial number has its own draw


def test_two_workers_with_one_seed_do_not_draw_the_same_configurations(tmp_path):
    """The random numbers of trial n come from (seed, n), not from a shared sequence."""
    base = profiles.PROFILES["smoke"].all_pairs
    one, two = (search.open_study(base, 1, tmp_path / "s.log", seed=0) for _ in range(2))
    drawn = [search.SPACE.suggest(study.ask()) for study in (one, two, one, two)]
    assert len({json.dumps(p, sort_keys=True) for p in drawn}) == 4


# --- the storage ------------------------------------------------------------------------------

def test_the_default_storage_is_a_journal_file_under_data(base, tmp_path):
    study = search.open_study(base, 1)
    assert (tmp_path / "data" / "optuna" / f"{study.study_name}.log").is_file()


def test_another_base_budget_or_space_is_another_study(base, tmp_path):
    """Trials made for another base model, epochs or space are never mixed into a study."""
    opened = [(base, 2, search.SPACE), (base, 3, search.SPACE), (base, 2, TINY),
              (base.replace(name="other"), 2, search.SPACE), (base, 2, search.SPACE)]
    names = [search.open_study(b, e, tmp_path / "s.log", space=s).study_name for b, e, s in opened]
    assert len(set(names)) == 4 and names[0] == names[-1]


# --- notebook 03's plan -----------------------------------------------------------------------

def test_notebook_03_plan_bounds_what_is_unknown_then_lists_the_chosen_seeds(tmp_path):
    smoke, storage = profiles.PROFILES["smoke"], str(tmp_path / "study.log")
    screened = smoke.screening(smoke.all_pairs, 1)
    *known, study_entry, seeds_entry, winner = search.notebook_runs(smoke, 1, 3, storage)
    assert [c.name for c in known[:2]] == ["all_pairs", "koch"]
    assert known[0].key() == smoke.all_pairs.key()  # the named model keeps its full budget
    assert {c.train.epochs for c in known[2:]} == {1}  # ablations and seeds are screened
    # a config under two names would train twice (the run folder is name-key)
    assert len({c.key() for c in known}) == len({f"{c.name}-{c.key()}" for c in known})
    costliest = search.SPACE.costliest(screened, 1)
    assert (study_entry.count, study_entry.like) == (3, costliest)
    assert (seeds_entry.count, seeds_entry.like) == (smoke.seeds, costliest)
    assert winner.count == 1 and winner.like.train.epochs == smoke.all_pairs.train.epochs
    study = search.open_study(screened, 1, storage=storage)  # the default name, as the plan's
    assert study.study_name.startswith("search-all_pairs-")
    for value in (0.7, 0.8, 0.6):  # three finished trials, drawn from the search space
        trial = study.ask()
        search.SPACE.suggest(trial)
        study.tell(trial, value)
    *_, study_entry, seed0, seed1, _ = search.notebook_runs(smoke, 1, 3, storage)
    assert study_entry.count == 0  # the study is finished
    best, other_seed = search.best_runs(study, screened, 2)
    assert [seed0.key(), seed1.key()] == [best.key(), other_seed.key()]
    assert other_seed.replace(name=best.name, train={"seed": 0}) == best
    # seed 0 is the best trial's own run (its name and key), loaded, not trained again
    trial = study.best_trial
    assert seed0.name == f"{study.study_name}-{trial.number:03d}"
    assert seed1.name == f"{seed0.name}-seed1"
    assert seed0 == search.SPACE.config(screened, trial.params, 1, seed0.name)


def test_no_point_of_the_space_costs_more_than_the_costliest():
    base = profiles.PROFILES["cpu"].all_pairs
    costliest = search.SPACE.costliest(base, 4)
    assert costliest.model.width == 2 * base.model.width  # the widest the space allows
    assert costliest.model.image_size == 105
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    for _ in range(200):
        config = search.SPACE.config(base, search.SPACE.suggest(study.ask()), 4, "t")
        assert budget.flops_per_image(config.model) <= budget.flops_per_image(costliest.model)
        assert config.train.batch_size <= costliest.train.batch_size


# --- pruning ----------------------------------------------------------------------------------

def test_a_pruned_trial_leaves_no_run_folder(base, tmp_path, monkeypatch):
    # Any AUC is below 1.5: the first epoch's report prunes the trial, inside model.fit.
    monkeypatch.setattr(search, "PRUNER", optuna.pruners.ThresholdPruner(lower=1.5))
    study = search.optimize(base, 1, 2, tmp_path / "p.log", space=TINY)
    [trial] = study.trials
    assert trial.state == TrialState.PRUNED and list(trial.intermediate_values) == [0]
    assert _run_folders(tmp_path / "runs") == []  # neither a finished nor a partial run


def test_a_trial_whose_run_is_cached_reports_that_run_s_history(base, tmp_path):
    """The same seed draws the same trial in a new study: its run comes from the cache, trains
    nothing, and the trial still records every epoch's validation AUC."""
    runs = tmp_path / "runs"
    first, = search.optimize(base, 1, 2, tmp_path / "one.log", space=TINY).trials
    again, = search.optimize(base, 1, 2, tmp_path / "two.log", space=TINY).trials
    assert again.params == first.params and again.state == TrialState.COMPLETE
    assert again.intermediate_values == first.intermediate_values
    assert len(again.intermediate_values) >= 1 and len(_run_folders(runs)) == 1


# --- resuming ---------------------------------------------------------------------------------

def test_an_interrupted_search_resumes_where_it_stopped(base, tmp_path, monkeypatch):
    storage, runs = tmp_path / "r.log", tmp_path / "runs"
    name = search.optimize(base, 2, 1, storage, space=TINY).study_name
    before = {t.number: t.datetime_complete for t in search.finished(
        search.open_study(base, 1, storage, space=TINY))}
    assert sorted(before) == [0, 1]

    def interrupt(self, epoch, logs=None):  # Ctrl-C in the middle of the third trial's epoch
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(KerasPruningCallback, "on_epoch_end", interrupt)
        with pytest.raises(KeyboardInterrupt):
            search.optimize(base, 4, 1, storage, space=TINY)
    trained = []
    original = search.training.train
    monkeypatch.setattr(search.training, "train",
                        lambda config, *a, **k: trained.append(config.name) or original(
                            config, *a, **k))
    study = search.optimize(base, 4, 1, storage, space=TINY)

    assert _states(study) == {0: TrialState.COMPLETE, 1: TrialState.COMPLETE,
                              2: TrialState.FAIL, 3: TrialState.COMPLETE, 4: TrialState.COMPLETE}
    assert trained == [f"{name}-003", f"{name}-004"]  # the first two were not trained again
    assert {t.number: t.datetime_complete for t in study.trials if t.number < 2} == before
    folders = _run_folders(runs)
    assert [p.name.rsplit("-", 1)[0] for p in folders] == [f"{name}-{n:03d}" for n in (0, 1, 3, 4)]
    assert all((p / "COMPLETE").is_file() for p in folders)  # nothing left of the interrupted


# --- two workers, one study -------------------------------------------------------------------

WORKER = """
import json, sys, time
from pathlib import Path
import dataclasses

import optuna
from siamlib import search
from siamlib.training import RunConfig

storage, base, n_trials, folder = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
study = search.open_study(RunConfig(base), 3, storage)
(folder / f"ready-{sys.argv[5]}").touch()
while not (folder / "go").exists():
    time.sleep(0.05)
ran = []

def objective(trial):
    ran.append(trial.number)
    params = search.SPACE.suggest(trial)
    value = 1.0 - abs(params["dropout"] - 0.25) - 0.1 * (params["loss"] == "contrastive")
    for epoch in range(3):
        trial.report(value - 0.1 * (2 - epoch), epoch)
        if trial.should_prune():
            raise optuna.TrialPruned()
        time.sleep(0.03)
    return value

search.run_trials(study, objective, n_trials)
print("RAN " + json.dumps(ran))
"""


def _two_workers(storage: str, base: str, n_trials: int, folder: Path):
    """Runs two worker processes on the study of a run config named ``base`` at once; returns
    the trial numbers each ran."""
    script = folder / "worker.py"
    script.write_text(WORKER)
    workers = [subprocess.Popen(
        [sys.executable, str(script), storage, base, str(n_trials), str(folder), str(i)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    deadline = time.monotonic() + 300
    while not all((folder / f"ready-{i}").exists() for i in range(2)):
        if any(w.poll() is not None for w in workers) or time.monotonic() > deadline:
            for w in workers:
                w.kill()
            pytest.fail("a worker did not start:\n" + "\n".join(
                w.communicate()[1][-3000:] for w in workers))
        time.sleep(0.1)
    (folder / "go").touch()  # both have imported TensorFlow and opened the study: start together
    ran = []
    for worker in workers:
        out, err = worker.communicate(timeout=300)
        assert worker.returncode == 0, err[-3000:]
        ran.append(json.loads(out.split("RAN ", 1)[1]))
    return ran


def _check_every_trial_recorded_once(study, ran: list[list[int]], n_trials: int):
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    # At least n_trials; a worker that checked while the other's last trial ran adds one more.
    assert n_trials <= len(trials) <= n_trials + 1
    assert sorted(numbers) == list(range(len(trials)))  # none lost, none twice
    assert {t.state for t in trials} <= {TrialState.COMPLETE, TrialState.PRUNED}
    assert all(t.value is not None for t in trials if t.state == TrialState.COMPLETE)
    first, second = ran
    assert first and second, "one worker did all the work: the test tested nothing"
    assert set(first).isdisjoint(second) and sorted(first + second) == sorted(numbers)


def test_two_workers_share_a_study_in_the_default_journal_file(tmp_path, monkeypatch):
    monkeypatch.setenv(paths.DATA_DIR_ENV, str(tmp_path / "data"))
    ran = _two_workers("journal", "fake", 16, tmp_path)
    study = search.open_study(search.training.RunConfig("fake"), 3)
    _check_every_trial_recorded_once(study, ran, 16)


def test_two_workers_share_a_study_on_postgresql(tmp_path, monkeypatch):
    url = os.environ.get(POSTGRES_ENV) or unavailable(POSTGRES_HELP)
    monkeypatch.setenv(URL_ENV, url)  # the workers inherit it
    name = f"shared-{uuid.uuid4().hex[:8]}"  # a study of its own in the test database
    try:
        ran = _two_workers("shared", name, 16, tmp_path)
        study = search.open_study(search.training.RunConfig(name), 3, "shared")
        _check_every_trial_recorded_once(study, ran, 16)
    finally:
        study = search.open_study(search.training.RunConfig(name), 3, "shared")
        optuna.delete_study(study_name=study.study_name, storage=url)


def test_a_wrong_password_is_one_line_naming_the_user_not_the_password(monkeypatch):
    url = os.environ.get(POSTGRES_ENV) or unavailable(POSTGRES_HELP)
    user, password = make_url(url).username, make_url(url).password
    monkeypatch.setenv(URL_ENV, url.replace(f":{password}@", ":wr/ng:pass@"))
    with pytest.raises(search.StorageError) as raised:
        search.open_study(search.training.RunConfig("fake"), 3, "shared")
    message = str(raised.value)
    assert f"{user}:***@" in message and "check the user name and password" in message
    assert "wr/ng" not in message and password not in message and "\n" not in message


def test_a_configuration_the_data_cannot_hold_is_a_failed_trial_and_the_study_goes_on(
        base, tmp_path):
    # Batches of 500 people cannot be drawn from the generated faces: those trials do not run.
    space = dataclasses.replace(TINY, people_per_batch=(4, 500))
    study = search.optimize(base, 3, 1, tmp_path / "f.log", space=space)
    failed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(search.finished(study)) == 3
    assert failed and all(t.params["people_per_batch"] == 500 for t in failed)
    assert all("identity batches of 500 people" in t.user_attrs["infeasible"] for t in failed)
    assert len(_run_folders(tmp_path / "runs")) == 3  # only the feasible trials trained


def test_a_space_the_data_never_fits_stops_with_one_error(base, tmp_path):
    space = dataclasses.replace(TINY, people_per_batch=(500,))
    with pytest.raises(RuntimeError, match="10 trials could not run.*identity batches of 500"):
        search.optimize(base, 1, 1, tmp_path / "n.log", space=space)


# --- the storage: secrets and errors (issue 22, items 5 and 7) --------------------------------

@pytest.mark.parametrize("text, shown", [
    ("postgresql+psycopg://siamlib:pa/ss@db:5432/optuna",  # a "/" in the password
     "postgresql+psycopg://siamlib:***@db:5432/optuna"),
    ("postgresql+psycopg://siamlib:p@ss:w@rd@db/optuna",  # "@" and ":" in it
     "postgresql+psycopg://siamlib:***@db/optuna"),
    ("postgresql+psycopg://siamlib:p%40ss%2Fw%3Ard@db/optuna",  # percent-encoded
     "postgresql+psycopg://siamlib:***@db/optuna"),
    ("postgresql+psycopg://siamlib@db/optuna?sslmode=require&password=pa@ss/w&x=1",
     "postgresql+psycopg://siamlib@db/optuna?sslmode=require&password=***&x=1"),
    ("cannot reach 'postgresql://siamlib:p@ss@db/optuna' now",  # a URL inside a message
     "cannot reach 'postgresql://siamlib:***@db/optuna' now"),
    ("postgresql://siamlib@db/optuna", "postgresql://siamlib@db/optuna"),  # nothing to hide
    ("nosuchdb://somewhere/x", "nosuchdb://somewhere/x"),
])
def test_every_form_of_password_is_masked(text, shown):
    assert search.masked(text) == shown


def test_a_url_given_as_the_storage_is_refused_so_no_notebook_records_it(base):
    """A notebook parameter is written into the executed notebook: the URL must come from
    the environment ("shared"), never from ``storage``."""
    with pytest.raises(search.StorageError) as raised:
        search.open_study(base, 1, "postgresql+psycopg://siamlib:s3cret@db/optuna")
    message = str(raised.value)
    assert URL_ENV in message and "'shared'" in message and "s3cret" not in message


def test_shared_reads_the_database_url_from_the_environment(base, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(URL_ENV, f"sqlite:///{tmp_path / 'shared.db'}")
    name = search.open_study(base, 1, "shared").study_name
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{tmp_path / 'shared.db'}")
    assert study.study_name == name and not (tmp_path / "shared").exists()


def test_shared_without_the_environment_variable_says_how_to_set_it(base, monkeypatch):
    monkeypatch.delenv(URL_ENV, raising=False)
    with pytest.raises(search.StorageError, match=f"{URL_ENV}, which is not set: export"):
        search.open_study(base, 1, "shared")


@pytest.mark.parametrize("url, shown, fix", [
    ("nosuchdb://somewhere/x", "nosuchdb://somewhere/x", "postgresql+psycopg://user:"),
    ("postgresql+psycopg://siamlib:s3cret@127.0.0.1:port/db",
     "postgresql+psycopg://siamlib:***@127.0.0.1:port/db", "postgresql+psycopg://user:"),
    ("postgresql+pg8000://siamlib:s3cret@127.0.0.1:1/db",  # a driver that is not installed
     "postgresql+pg8000://siamlib:***@127.0.0.1:1/db", "pip install"),
    ("postgresql+psycopg://siamlib:s3cret@127.0.0.1:1/db",  # nothing listens on port 1
     "postgresql+psycopg://siamlib:***@127.0.0.1:1/db", "server is running"),
    ("postgresql+psycopg://siamlib:s3c@ret@127.0.0.1:1/db",  # an "@" the URL must encode
     "postgresql+psycopg://siamlib:***@127.0.0.1:1/db", "%40"),
])
def test_each_storage_error_is_one_line_with_the_masked_url_and_the_fix(
        base, monkeypatch, url, shown, fix):
    monkeypatch.setenv(URL_ENV, url)
    with pytest.raises(search.StorageError) as raised:
        search.open_study(base, 1, "shared")
    message = str(raised.value)
    assert shown in message and fix in message and "\n" not in message
    assert "s3c" not in message and "ret@" not in message


def test_a_notebook_shows_a_storage_error_as_one_line(monkeypatch, notebook_shows):
    monkeypatch.delenv(URL_ENV, raising=False)
    shown = notebook_shows("from siamlib import search, training\n"
                           "search.open_study(training.RunConfig('fake'), 1, 'shared')")
    assert shown.startswith("StorageError: ") and URL_ENV in shown
    assert "\n" not in shown and "Traceback" not in shown
