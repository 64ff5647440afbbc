"""siamlib.files: hashing, the lock, and building aside before moving into place."""

import multiprocessing
import time

import pytest

from siamlib import files


def test_short_hash_names_a_value_not_its_key_order():
    assert files.short_hash({"a": 1, "b": [2, 3]}) == files.short_hash({"b": [2, 3], "a": 1})
    assert files.short_hash({"a": 1}) != files.short_hash({"a": 2})
    assert len(files.short_hash("x")) == 12


def test_damaged_names_missing_and_changed_files_and_nothing_else(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "weights").write_bytes(b"w" * 10)
    (tmp_path / "sub" / "scores.csv").write_text("1,0.5\n")
    (tmp_path / "history.csv").write_text("epoch\n")
    recorded = files.checksums(tmp_path)
    assert set(recorded) == {"weights", "sub/scores.csv", "history.csv"}
    assert files.damaged(tmp_path, recorded) == []

    (tmp_path / "weights").write_bytes(b"")  # same name, 0 bytes
    (tmp_path / "history.csv").unlink()
    problems = files.damaged(tmp_path, recorded)
    assert problems == ["history.csv (missing)", "weights (content changed: sha256 differs)"]


def test_staged_moves_a_finished_folder_into_place(tmp_path):
    target = tmp_path / "run"
    with files.staged(target) as building:
        (building / "COMPLETE").write_text("{}")
        assert not target.exists()  # nobody sees it before the block ends
    assert (target / "COMPLETE").read_text() == "{}"
    assert [p.name for p in tmp_path.iterdir()] == ["run"]


def test_staged_leaves_nothing_behind_when_the_work_fails(tmp_path):
    target = tmp_path / "run"
    with pytest.raises(RuntimeError, match="killed"), files.staged(target) as building:
        (building / "model.weights.h5").write_bytes(b"half")
        raise RuntimeError("killed half way")
    assert list(tmp_path.iterdir()) == []


def test_staged_file_is_replaced_atomically(tmp_path):
    target = tmp_path / "cache.npy"
    target.write_bytes(b"old")
    with files.staged(target, folder=False) as building:
        building.write_bytes(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["cache.npy"]


def _hold(lock_file, seconds, started):
    with files.waiting_lock(lock_file, "holding the test lock"):
        started.set()
        time.sleep(seconds)


def test_a_second_process_waits_for_the_lock_and_says_so(tmp_path, capfd):
    lock_file = tmp_path / ".run.lock"
    started = multiprocessing.Event()
    holder = multiprocessing.get_context("fork").Process(target=_hold,
                                                         args=(lock_file, 1.0, started))
    holder.start()
    assert started.wait(30)
    waited_from = time.monotonic()
    with files.waiting_lock(lock_file, "training run-x"):
        waited = time.monotonic() - waited_from
    holder.join(30)
    assert waited > 0.3
    assert "Another process is training run-x; waiting" in capfd.readouterr().err
