"""Tests for siamlib.runs: finished runs exported to one archive import elsewhere and load
instead of training; a damaged, unsafe or foreign archive is refused and writes nothing; a run
that cannot be shared or used here is left out with a reason; a full or read-only place is one
line naming it."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from synthetic_faces import small_run_config, write_face_folder

from siamlib import paths, runs, training
from siamlib.runs import RunsArchiveError, export_runs, import_runs
from siamlib.training import COMPLETE, run_dir

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> tuple[Path, training.Run]:
    """A runs folder holding one real finished run (one short epoch of the small network),
    an unfinished run folder and a leftover partial folder, neither of which may be shared."""
    workspace = tmp_path_factory.mktemp("share")
    faces = write_face_folder(workspace / "faces", num_people=12, images_per_person=4)
    config = small_run_config(faces, name="shared").replace(
        train={"epochs": 1, "pairs_per_epoch": 64})
    root = workspace / "runs"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(paths.DATA_DIR_ENV, str(workspace / "data"))
        run = training.train(config, runs_root=root, progress=False)
    (root / "unfinished-0123456789ab").mkdir()
    (root / "unfinished-0123456789ab" / "config.json").write_text("{}")
    (root / ".shared-x.1.partial").mkdir()
    return root, run


@pytest.fixture(scope="module")
def archive(source, tmp_path_factory) -> Path:
    root, _ = source
    return export_runs(tmp_path_factory.mktemp("archive") / "runs.tar.gz", runs_root=root)


@pytest.fixture
def target(tmp_path) -> Path:
    """A student's runs folder that already holds something of its own."""
    root = tmp_path / "student-runs"
    (root / "mine-aaaaaaaaaaaa").mkdir(parents=True)
    (root / "mine-aaaaaaaaaaaa" / "notes.txt").write_text("my own run\n")
    return root


def snapshot(root: Path) -> dict[str, str] | None:
    """Every path under ``root`` (hidden ones too) with its content hash; None if no folder."""
    if not root.exists():
        return None
    return {p.relative_to(root).as_posix(): "dir" if p.is_dir()
            else hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*")}


def contents(archive: Path) -> dict[str, bytes]:
    """The files of a tar.gz archive, in order."""
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}


def pack(path: Path, files: dict[str, bytes], extra=()) -> Path:
    """A tar.gz archive of ``files``, then ``extra`` TarInfo members."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def consistently(files: dict[str, bytes], path: str, data: bytes) -> dict[str, bytes]:
    """``files`` with ``path`` replaced by ``data`` and its run's COMPLETE checksum updated
    to match (a change that checksums alone cannot see)."""
    run, name = path.split("/", 1)
    marker = json.loads(files[f"{run}/{COMPLETE}"])
    marker["files"][name] = sha256(data)
    return {**files, path: data, f"{run}/{COMPLETE}": json.dumps(marker).encode()}


def clone(run: Path, root: Path, name: str, source: str | None = None,
          folder: str | None = None) -> Path:
    """A copy of the run folder ``run`` under ``root`` named ``name`` (the key ignores names, so
    the copy is a consistent finished run), optionally trained on another data ``source``."""
    config = json.loads((run / "config.json").read_text())
    config["name"] = name
    config["data"]["source"] = source or config["data"]["source"]
    copy = root / (folder or f"{name}-{training.RunConfig.from_dict(config).key()}")
    shutil.copytree(run, copy)
    data = json.dumps(config).encode()
    (copy / "config.json").write_bytes(data)
    marker = json.loads((copy / COMPLETE).read_text())
    marker["files"]["config.json"] = sha256(data)
    (copy / COMPLETE).write_text(json.dumps(marker))
    return copy


# --- export → import → train loads --------------------------------------------------------------


def test_exported_runs_import_elsewhere_and_train_loads_them_instead_of_training(
    source, target, tmp_path, monkeypatch
):
    root, run = source
    archive = export_runs(tmp_path / "runs.tar.gz", runs_root=root)
    assert import_runs(archive, runs_root=target) == {run.path.name: "imported"}
    assert not [p for p in target.iterdir() if p.name.startswith(".")]  # no staging left

    def must_not_train(*args, **kwargs):
        raise AssertionError("train() fitted a network although the imported run was there")

    monkeypatch.setattr(training, "fit", must_not_train)
    loaded = training.train(run.config, runs_root=target, progress=False)
    assert loaded.path == run_dir(run.config, target)
    np.testing.assert_array_equal(loaded.scores["score"], run.scores["score"])
    for mine, theirs in zip(loaded.model.get_weights(), run.model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_the_archive_holds_each_finished_run_folder_as_it_is(source, archive):
    root, run = source
    files = contents(archive)  # not the unfinished run, not the partial folder
    assert set(files) == {f"{run.path.name}/{p.name}" for p in run.path.iterdir()}
    for path, data in files.items():
        assert data == (root / path).read_bytes()


def test_importing_again_skips_the_identical_run(archive, target, capsys):
    import_runs(archive, runs_root=target)
    before = snapshot(target)
    assert list(import_runs(archive, runs_root=target).values()) == ["identical"]
    assert "already here, identical" in capsys.readouterr().out
    assert snapshot(target) == before


def test_a_different_finished_run_of_the_same_key_is_kept_not_overwritten(archive, target,
                                                                          capsys):
    [name] = import_runs(archive, runs_root=target)
    run = target / name
    clone(run, target, "again", folder="copy")  # "trained here too":
    shutil.rmtree(run)  # a finished, undamaged run of the same key with other files
    (target / "copy").rename(run)
    before = snapshot(target)
    assert import_runs(archive, runs_root=target) == {name: "kept"}
    assert "not overwritten" in capsys.readouterr().out
    assert snapshot(target) == before


def test_a_damaged_local_run_is_set_aside_and_replaced_by_the_archives(archive, target, capsys):
    [name] = import_runs(archive, runs_root=target)
    weights = target / name / "model.weights.h5"
    good = weights.read_bytes()
    weights.write_bytes(b"")  # a disk that filled up while saving
    capsys.readouterr()
    assert import_runs(archive, runs_root=target) == {name: "imported"}
    assert "damaged" in capsys.readouterr().out
    assert weights.read_bytes() == good and not training.run_problems(weights.parent)
    [aside] = [p for p in target.iterdir() if p.name.startswith(f"{name}.damaged-")]
    assert (aside / "model.weights.h5").read_bytes() == b""


def test_an_unfinished_folder_of_the_same_name_is_set_aside_as_training_would(archive, target,
                                                                              capsys):
    [name] = {path.split("/")[0] for path in contents(archive)}
    (target / name).mkdir()
    (target / name / "history.csv").write_text("interrupted\n")
    assert import_runs(archive, runs_root=target) == {name: "imported"}
    assert "moved to" in capsys.readouterr().out
    assert (target / name / COMPLETE).is_file()
    [aside] = [p for p in target.iterdir() if p.name.startswith(f"{name}.incomplete-")]
    assert (aside / "history.csv").read_text() == "interrupted\n"


def test_a_run_trained_under_another_keras_imports_with_a_warning(source, tmp_path):
    root, run = source
    other = tmp_path / "other-runs"
    shutil.copytree(run.path, other / run.path.name)
    marker = other / run.path.name / COMPLETE
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "keras": "3.0.0"}))
    archive = export_runs(tmp_path / "old-keras.tar.gz", runs_root=other)
    with pytest.warns(UserWarning, match="trained with Keras 3.0.0"):
        outcomes = import_runs(archive, runs_root=tmp_path / "student")
    assert outcomes == {run.path.name: "imported"}


def test_a_run_whose_data_folder_is_not_here_is_left_out_and_the_rest_imported(
    source, tmp_path
):
    root, run = source
    other = tmp_path / "other-runs"
    shutil.copytree(run.path, other / run.path.name)
    faces = write_face_folder(tmp_path / "faces", num_people=2, images_per_person=2)
    elsewhere = clone(run.path, other, "elsewhere", source=str(faces))
    archive = export_runs(tmp_path / "two.tar.gz", runs_root=other)
    shutil.rmtree(faces)  # the instructor's identity folder, absent on the student's machine
    student = tmp_path / "student"
    with pytest.warns(UserWarning, match=f"{elsewhere.name}.*identity folder {faces}"):
        outcomes = import_runs(archive, runs_root=student)
    assert outcomes == {run.path.name: "imported"}
    assert sorted(p.name for p in student.iterdir()) == [run.path.name]


# --- export: what is shared, what is left out ---------------------------------------------------


def test_export_refuses_an_empty_runs_folder_and_another_format(source, tmp_path):
    root, _ = source
    with pytest.raises(RunsArchiveError, match="no finished runs"):
        export_runs(tmp_path / "none.tar.gz", runs_root=tmp_path / "empty")
    for other in ("none.zip", "none.tgz", "none.rar"):
        with pytest.raises(RunsArchiveError, match=r"must end in \.tar\.gz"):
            export_runs(tmp_path / other, runs_root=root)
    assert not list(tmp_path.glob("none*")) and not list(tmp_path.glob(".*"))


def break_weights(folder: Path) -> None:
    (folder / "model.weights.h5").write_bytes(b"")


def forget_checksums(folder: Path) -> None:
    marker = json.loads((folder / COMPLETE).read_text())
    del marker["files"]
    (folder / COMPLETE).write_text(json.dumps(marker))


def misname(folder: Path) -> None:
    folder.rename(folder.with_name("broken-000000000000"))


UNSHAREABLE = {
    break_weights: r"model.weights.h5 \(content changed",
    forget_checksums: "records no checksums",
    misname: "not the cache key of its config.json",
}


@pytest.mark.parametrize("damage", UNSHAREABLE, ids=lambda damage: damage.__name__)
def test_export_leaves_out_a_run_it_cannot_vouch_for_and_says_why(source, tmp_path, damage):
    root, run = source
    other = tmp_path / "other-runs"
    shutil.copytree(run.path, other / run.path.name)
    damage(clone(run.path, other, "broken"))
    with pytest.warns(UserWarning, match=f"skipped broken-.*{UNSHAREABLE[damage]}"):
        archive = export_runs(tmp_path / "runs.tar.gz", runs_root=other)
    assert {path.split("/")[0] for path in contents(archive)} == {run.path.name}
    shutil.rmtree(other / run.path.name)  # nothing left that can be shared: no archive at all
    with pytest.warns(UserWarning), pytest.raises(RunsArchiveError, match="nothing to export"):
        export_runs(tmp_path / "none.tar.gz", runs_root=other)
    assert not (tmp_path / "none.tar.gz").exists()


def test_export_ignores_folders_set_aside_by_training_or_import(source, tmp_path):
    root, run = source
    other = tmp_path / "other-runs"
    shutil.copytree(run.path, other / run.path.name)
    shutil.copytree(run.path, other / f"{run.path.name}.damaged-1767225600")
    shutil.copytree(run.path, other / f".{run.path.name}.1234.partial")
    archive = export_runs(tmp_path / "runs.tar.gz", runs_root=other)
    assert {path.split("/")[0] for path in contents(archive)} == {run.path.name}


# --- import refusals: nothing is written --------------------------------------------------------


def run_of(files: dict[str, bytes]) -> str:
    return next(iter(files)).split("/")[0]


def truncated(archive: Path, tmp_path: Path) -> Path:
    data = archive.read_bytes()
    return _write(tmp_path / "cut.tar.gz", data[: len(data) * 2 // 3])


def flipped_byte(archive: Path, tmp_path: Path) -> Path:
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    return _write(tmp_path / "flipped.tar.gz", bytes(data))


def checksum_mismatch(archive: Path, tmp_path: Path) -> Path:
    files = contents(archive)
    marker_path = f"{run_of(files)}/{COMPLETE}"
    marker = json.loads(files[marker_path])
    marker["files"]["model.weights.h5"] = "0" * 64
    return pack(tmp_path / "checksum.tar.gz", {**files, marker_path: json.dumps(marker).encode()})


def changed_file(archive: Path, tmp_path: Path) -> Path:
    files = contents(archive)
    name = next(n for n in files if n.endswith("scores.csv"))
    files[name] = files[name].replace(b"0.", b"1.", 1)  # same size, other content
    return pack(tmp_path / "changed.tar.gz", files)


def missing_file(archive: Path, tmp_path: Path) -> Path:
    files = contents(archive)
    del files[next(n for n in files if n.endswith("scores.csv"))]
    return pack(tmp_path / "missing.tar.gz", files)


def unlisted_file(archive: Path, tmp_path: Path) -> Path:
    files = contents(archive)
    return pack(tmp_path / "unlisted.tar.gz", {**files, f"{run_of(files)}/extra.txt": b"hi"})


def no_checksums(archive: Path, tmp_path: Path) -> Path:
    files = contents(archive)
    marker_path = f"{run_of(files)}/{COMPLETE}"
    marker = json.loads(files[marker_path])
    del marker["files"]
    return pack(tmp_path / "old.tar.gz", {**files, marker_path: json.dumps(marker).encode()})


def unfinished_run(archive: Path, tmp_path: Path) -> Path:
    files = contents(archive)
    del files[f"{run_of(files)}/{COMPLETE}"]
    return pack(tmp_path / "unfinished.tar.gz", files)


def parent_path(archive: Path, tmp_path: Path) -> Path:
    return pack(tmp_path / "parent.tar.gz", {**contents(archive), "../evil.txt": b"outside"})


def zip_archive(archive: Path, tmp_path: Path) -> Path:
    path = tmp_path / "runs.zip"  # runs archives are .tar.gz only
    with zipfile.ZipFile(path, "w") as out:
        for name, data in contents(archive).items():
            out.writestr(name, data)
    return path


def absolute_path(archive: Path, tmp_path: Path) -> Path:
    return pack(tmp_path / "absolute.tar.gz", {**contents(archive), "/tmp/evil.txt": b"x"})


def link_member(archive: Path, tmp_path: Path) -> Path:
    files = contents(archive)
    link = tarfile.TarInfo(f"{run_of(files)}/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return pack(tmp_path / "link.tar.gz", files, [link])


def relative_link(archive: Path, tmp_path: Path) -> Path:
    files = contents(archive)
    link = tarfile.TarInfo(f"{run_of(files)}/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "scores.csv"
    return pack(tmp_path / "relative-link.tar.gz", files, [link])


def key_mismatch(archive: Path, tmp_path: Path) -> Path:
    """config.json changed (more epochs) and its checksum recorded to match: the folder's name
    now holds the key of another configuration."""
    files = contents(archive)
    name = next(n for n in files if n.endswith("config.json"))
    config = json.loads(files[name])
    config["train"]["epochs"] += 1
    return pack(tmp_path / "key.tar.gz", consistently(files, name, json.dumps(config).encode()))


def foreign(archive: Path, tmp_path: Path) -> Path:
    return pack(tmp_path / "photos.tar.gz", {"holiday/beach.jpg": b"\xff\xd8 not a run"})


def empty(archive: Path, tmp_path: Path) -> Path:
    return pack(tmp_path / "empty.tar.gz", {})


def not_an_archive(archive: Path, tmp_path: Path) -> Path:
    return _write(tmp_path / "runs.tar.gz", b"this is not an archive\n")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


REFUSALS = {
    truncated: "damaged",
    flipped_byte: "damaged",
    checksum_mismatch: r"damaged: model.weights.h5 \(content changed",
    changed_file: r"damaged: scores.csv \(content changed",
    missing_file: r"damaged: scores.csv \(missing\)",
    unlisted_file: r"extra.txt \(not in its COMPLETE checksums\)",
    no_checksums: "records no checksums",
    unfinished_run: "no COMPLETE marker: not a finished run",
    parent_path: "unsafe member.*evil.txt",
    zip_archive: "damaged or not an archive",
    absolute_path: "not a runs archive: tmp",
    link_member: "unsafe member.*passwd.*absolute",
    relative_link: r"passwd \(not in its COMPLETE checksums\)",
    key_mismatch: "not the cache key of its config.json",
    foreign: "not a runs archive: holiday",
    empty: "holds no runs",
    not_an_archive: "damaged or not an archive",
}


@pytest.mark.parametrize("damage", REFUSALS, ids=lambda damage: damage.__name__)
def test_a_damaged_unsafe_or_foreign_archive_is_refused_and_nothing_is_written(
    archive, target, tmp_path, damage
):
    bad = damage(archive, tmp_path)
    before = snapshot(target)
    with pytest.raises(RunsArchiveError, match=REFUSALS[damage]) as refusal:
        import_runs(bad, runs_root=target)
    assert "nothing was imported" in str(refusal.value) and "\n" not in str(refusal.value)
    assert snapshot(target) == before
    assert not (target.parent / "evil.txt").exists()


def test_a_refused_import_does_not_even_create_the_runs_folder(archive, tmp_path):
    target = tmp_path / "new" / "runs"
    with pytest.raises(RunsArchiveError):
        import_runs(truncated(archive, tmp_path), runs_root=target)
    assert not (tmp_path / "new").exists()


# --- a full or read-only place --------------------------------------------------------------------


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_an_import_onto_a_full_disk_says_so_and_writes_nothing(archive, target, monkeypatch):
    monkeypatch.setattr(tarfile, "copyfileobj", disk_full)
    before = snapshot(target)
    with pytest.raises(RunsArchiveError, match=f"{target}: the disk is full") as refusal:
        import_runs(archive, runs_root=target)
    assert "damaged" not in str(refusal.value)
    assert snapshot(target) == before


def test_an_import_into_a_read_only_folder_names_it_and_the_fix(archive, target, monkeypatch):
    def read_only(path, *args, **kwargs):
        raise PermissionError(errno.EROFS, os.strerror(errno.EROFS), str(path))

    monkeypatch.setattr(os, "mkdir", read_only)
    with pytest.raises(RunsArchiveError, match=f"{target}: read-only file system; choose another "
                                               r"runs folder \(--runs-dir\)"):
        import_runs(archive, runs_root=target)


# --- command line -------------------------------------------------------------------------------


def test_cli_exports_and_imports_and_answers_problems_with_one_line_and_status_2(
    source, tmp_path, capsys, monkeypatch
):
    root, run = source
    archive = tmp_path / "cli.tar.gz"
    assert runs.main(["export", str(archive), "--runs-dir", str(root)]) == 0
    assert f"exported {run.path.name}" in capsys.readouterr().out
    student = tmp_path / "student"
    assert runs.main(["import", str(archive), "--runs-dir", str(student)]) == 0
    assert f"imported {run.path.name}" in capsys.readouterr().out
    assert runs.main(["import", str(archive), "--runs-dir", str(student)]) == 0
    assert "already here, identical" in capsys.readouterr().out
    for argv in (["import", str(truncated(archive, tmp_path)), "--runs-dir", str(student)],
                 ["import", str(tmp_path / "absent.tar.gz"), "--runs-dir", str(student)],
                 ["export", str(tmp_path / "x.zip"), "--runs-dir", str(root)]):
        assert runs.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
    monkeypatch.setattr(tarfile, "copyfileobj", disk_full)
    full = tmp_path / "usb" / "runs.tar.gz"
    assert runs.main(["export", str(full), "--runs-dir", str(root)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {full}: the disk is full; free some space or choose another place\n"
    assert os.listdir(full.parent) == []  # no half-written archive left behind


def test_python_dash_m_siamlib_runs_exits_2_on_a_damaged_archive(archive, tmp_path):
    environment = {**os.environ, paths.RUNS_DIR_ENV: str(tmp_path / "runs")}
    result = subprocess.run(
        [sys.executable, "-m", "siamlib.runs", "import", str(flipped_byte(archive, tmp_path))],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "runs").exists()
