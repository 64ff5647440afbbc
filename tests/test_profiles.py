import pytest

from siamlib import profiles
from siamlib.model import ModelConfig


def test_auto_follows_the_environment_then_the_hardware(monkeypatch):
    monkeypatch.setenv(profiles.PROFILE_ENV, "smoke")
    assert profiles.resolve("auto").name == "smoke"
    monkeypatch.delenv(profiles.PROFILE_ENV)
    monkeypatch.setattr(profiles, "has_gpu", lambda: True)
    assert profiles.resolve("auto").name == "gpu"
    monkeypatch.setattr(profiles, "has_gpu", lambda: False)
    assert profiles.resolve("auto").name == "cpu"


def test_unknown_profile_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown profile 'fast'; choose one of"):
        profiles.resolve("fast")


def test_gpu_profile_trains_the_paper_network_as_the_paper_did():
    koch = profiles.PROFILES["gpu"].koch
    assert koch.model == ModelConfig()
    assert (koch.train.optimizer, koch.train.lr_decay, koch.train.momentum) == ("sgd", 0.99, 0.5)


def test_every_profile_names_the_same_runs_on_the_same_people():
    for profile in profiles.PROFILES.values():
        assert (profile.koch.name, profile.improved.name) == ("koch", "improved")
        assert profile.koch.data.split_seed == profile.improved.data.split_seed
        assert profile.koch.data.val_fraction == profile.improved.data.val_fraction


def test_selection_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("SIAMLIB_DATA_DIR", str(tmp_path))
    smoke = profiles.PROFILES["smoke"]
    assert profiles.selected(smoke) == smoke.improved  # nothing chosen yet
    chosen = smoke.koch.replace(name="selected", train={"epochs": 7})
    profiles.save_selected(smoke, chosen)
    assert profiles.selected(smoke) == chosen
    assert (tmp_path / "results" / "smoke" / "selected_run.json").is_file()
