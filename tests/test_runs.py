"""Tests for siamlib.runs: finished runs exported to one archive import elsewhere and load
instead of training; a damaged, unsafe or mismatched archive is refused and writes nothing."""

from __future__ import annotations

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
from siamlib.runs import MANIFEST, RunsArchiveError, export_runs, import_runs
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
    return export_runs(tmp_path_factory.mktemp("archive") / "runs.tar.gz", runs_root=root,
                       quiet=True)


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


def contents(archive: Path) -> tuple[dict, dict[str, bytes]]:
    """The manifest and the other files of a tar.gz archive, in order."""
    with tarfile.open(archive) as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}
    return json.loads(files.pop(MANIFEST)), files


def pack(path: Path, manifest: dict, files: dict[str, bytes], extra=()) -> Path:
    """A tar.gz archive: the manifest first, then ``files``, then ``extra`` TarInfo members."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in [(MANIFEST, json.dumps(manifest).encode()), *files.items()]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for info in extra:
            tar.addfile(info, io.BytesIO(b"x" * info.size) if info.isfile() else None)
    return path


def relist(manifest: dict, files: dict[str, bytes]) -> dict:
    """``manifest`` with its file list recomputed from ``files`` (a consistent forgery)."""
    manifest = json.loads(json.dumps(manifest))
    manifest["files"] = [{"path": name, "size": len(data),
                          "sha256": hashlib.sha256(data).hexdigest()}
                         for name, data in files.items()]
    return manifest


# --- export → import → train loads --------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip"])
def test_exported_runs_import_elsewhere_and_train_loads_them_instead_of_training(
    source, target, tmp_path, monkeypatch, suffix
):
    root, run = source
    archive = export_runs(tmp_path / f"runs{suffix}", runs_root=root, quiet=True)
    outcomes = import_runs(archive, runs_root=target, quiet=True)
    assert [(o.run, o.status) for o in outcomes] == [(run.path.name, "imported")]
    assert not [p for p in target.iterdir() if p.name.startswith(".")]  # no staging left

    def must_not_train(*args, **kwargs):
        raise AssertionError("train() fitted a network although the imported run was there")

    monkeypatch.setattr(training, "fit", must_not_train)
    loaded = training.train(run.config, runs_root=target, progress=False)
    assert loaded.path == run_dir(run.config, target)
    np.testing.assert_array_equal(loaded.scores["score"], run.scores["score"])
    for mine, theirs in zip(loaded.model.get_weights(), run.model.get_weights()):
        np.testing.assert_array_equal(mine, theirs)


def test_manifest_lists_each_file_with_size_and_sha256_the_versions_and_each_runs_key(
    source, archive
):
    root, run = source
    manifest, files = contents(archive)
    assert manifest["siamlib"] and manifest["tensorflow"] and manifest["keras"]
    name = run.path.name
    assert set(manifest["runs"]) == {name}  # not the unfinished run, not the partial folder
    assert manifest["runs"][name]["key"] == run.config.key()
    assert manifest["runs"][name]["policy"] == "float32"
    listed = {e["path"]: e for e in manifest["files"]}
    assert set(listed) == set(files) == {f"{name}/{p.name}" for p in run.path.iterdir()}
    for path, data in files.items():
        assert listed[path]["size"] == len(data) == (root / path).stat().st_size
        assert listed[path]["sha256"] == hashlib.sha256(data).hexdigest()


def test_importing_again_skips_the_identical_run(archive, target):
    import_runs(archive, runs_root=target, quiet=True)
    before = snapshot(target)
    [outcome] = import_runs(archive, runs_root=target, quiet=True)
    assert outcome.status == "identical" and "already here, identical" in outcome.message
    assert snapshot(target) == before


def test_a_different_finished_run_of_the_same_key_is_kept_not_overwritten(archive, target):
    [outcome] = import_runs(archive, runs_root=target, quiet=True)
    history = target / outcome.run / "history.csv"
    history.write_text(history.read_text() + "\n")  # "trained here too", slightly different
    before = snapshot(target)
    [outcome] = import_runs(archive, runs_root=target, quiet=True)
    assert outcome.status == "kept" and "not overwritten" in outcome.message
    assert snapshot(target) == before


def test_an_unfinished_folder_of_the_same_name_is_set_aside_as_training_would(archive, target):
    manifest, _ = contents(archive)
    [name] = manifest["runs"]
    (target / name).mkdir()
    (target / name / "history.csv").write_text("interrupted\n")
    [outcome] = import_runs(archive, runs_root=target, quiet=True)
    assert outcome.status == "imported" and "moved to" in outcome.message
    assert (target / name / COMPLETE).is_file()
    [aside] = [p for p in target.iterdir() if p.name.startswith(f"{name}.incomplete-")]
    assert (aside / "history.csv").read_text() == "interrupted\n"


def test_a_run_trained_under_another_keras_imports_with_a_warning(source, tmp_path):
    root, run = source
    other = tmp_path / "other-runs"
    shutil.copytree(run.path, other / run.path.name)
    marker = other / run.path.name / COMPLETE
    marker.write_text(json.dumps({**json.loads(marker.read_text()), "keras": "3.0.0"}))
    archive = export_runs(tmp_path / "old-keras.zip", runs_root=other, quiet=True)
    with pytest.warns(UserWarning, match="trained with Keras 3.0.0"):
        [outcome] = import_runs(archive, runs_root=tmp_path / "student", quiet=True)
    assert outcome.status == "imported"


def test_export_selects_runs_by_name_or_folder_and_refuses_unknown_names(source, tmp_path):
    root, run = source
    for selection in (["shared"], [run.path.name]):
        archive = export_runs(tmp_path / "only.tar.gz", selection, runs_root=root, quiet=True)
        assert list(contents(archive)[0]["runs"]) == [run.path.name]
    with pytest.raises(RunsArchiveError, match="no finished run named 'unfinished'"):
        export_runs(tmp_path / "none.tar.gz", ["unfinished"], runs_root=root, quiet=True)
    with pytest.raises(RunsArchiveError, match="no finished runs"):
        export_runs(tmp_path / "none.tar.gz", runs_root=tmp_path / "empty", quiet=True)
    with pytest.raises(RunsArchiveError, match="must end in"):
        export_runs(tmp_path / "runs.rar", runs_root=root, quiet=True)
    assert not list(tmp_path.glob("none*")) and not list(tmp_path.glob(".*partial"))


def test_export_refuses_a_run_folder_that_does_not_match_its_config(source, tmp_path):
    root, run = source
    other = tmp_path / "other-runs"
    shutil.copytree(run.path, other / "shared-000000000000")
    with pytest.raises(RunsArchiveError, match="does not match its config.json"):
        export_runs(tmp_path / "bad.tar.gz", runs_root=other, quiet=True)
    assert not (tmp_path / "bad.tar.gz").exists()


# --- refusals: nothing is written ---------------------------------------------------------------


def truncated(archive: Path, tmp_path: Path) -> Path:
    data = archive.read_bytes()
    return _write(tmp_path / "cut.tar.gz", data[: len(data) * 2 // 3])


def flipped_byte(archive: Path, tmp_path: Path) -> Path:
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0x01
    return _write(tmp_path / "flipped.tar.gz", bytes(data))


def flipped_byte_zip(archive: Path, tmp_path: Path) -> Path:
    manifest, files = contents(archive)
    path = tmp_path / "flipped.zip"
    with zipfile.ZipFile(path, "w") as out:  # stored: the byte lands in the weights themselves
        out.writestr(MANIFEST, json.dumps(manifest))
        for name, data in files.items():
            out.writestr(name, data)
    data = bytearray(path.read_bytes())
    weights = [n for n in files if n.endswith(".h5")][0]
    start = data.index(files[weights][:64])
    data[start + len(files[weights]) // 2] ^= 0x01
    return _write(path, bytes(data))


def checksum_mismatch(archive: Path, tmp_path: Path) -> Path:
    manifest, files = contents(archive)
    weights = next(e for e in manifest["files"] if e["path"].endswith(".h5"))
    weights["sha256"] = "0" * 64
    return pack(tmp_path / "checksum.tar.gz", manifest, files)


def changed_file(archive: Path, tmp_path: Path) -> Path:
    manifest, files = contents(archive)
    name = next(n for n in files if n.endswith("scores.csv"))
    files[name] = files[name].replace(b"0.", b"1.", 1)  # same size, other content
    return pack(tmp_path / "changed.tar.gz", manifest, files)


def missing_file(archive: Path, tmp_path: Path) -> Path:
    manifest, files = contents(archive)
    del files[next(n for n in files if n.endswith("scores.csv"))]
    return pack(tmp_path / "missing.tar.gz", manifest, files)


def unlisted_file(archive: Path, tmp_path: Path) -> Path:
    manifest, files = contents(archive)
    run = next(iter(manifest["runs"]))
    return pack(tmp_path / "unlisted.tar.gz", manifest, {**files, f"{run}/extra.txt": b"hi"})


def parent_path(archive: Path, tmp_path: Path) -> Path:
    manifest, files = contents(archive)
    files = {**files, "../evil.txt": b"outside"}
    return pack(tmp_path / "parent.tar.gz", relist(manifest, files), files)


def absolute_path(archive: Path, tmp_path: Path) -> Path:
    manifest, files = contents(archive)
    return pack(tmp_path / "absolute.tar.gz", manifest, {**files, "/tmp/evil.txt": b"x"})


def link_member(archive: Path, tmp_path: Path) -> Path:
    manifest, files = contents(archive)
    link = tarfile.TarInfo(f"{next(iter(manifest['runs']))}/passwd")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc/passwd"
    return pack(tmp_path / "link.tar.gz", manifest, files, [link])


def key_mismatch(archive: Path, tmp_path: Path) -> Path:
    """config.json changed (more epochs) and the manifest recomputed to match: the folder's
    name now holds the key of another configuration."""
    manifest, files = contents(archive)
    name = next(n for n in files if n.endswith("config.json"))
    config = json.loads(files[name])
    config["train"]["epochs"] += 1
    files[name] = json.dumps(config).encode()
    return pack(tmp_path / "key.tar.gz", relist(manifest, files), files)


def foreign_data(archive: Path, tmp_path: Path) -> Path:
    """A run trained on an identity folder that this machine does not have."""
    manifest, files = contents(archive)
    name = next(n for n in files if n.endswith("config.json"))
    config = json.loads(files[name])
    config["data"]["source"] = str(tmp_path / "no-such-faces")
    files[name] = json.dumps(config).encode()
    return pack(tmp_path / "foreign.tar.gz", relist(manifest, files), files)


def not_an_archive(archive: Path, tmp_path: Path) -> Path:
    return _write(tmp_path / "runs.tar.gz", b"this is not an archive\n")


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


REFUSALS = {
    truncated: "damaged|incomplete",
    flipped_byte: "damaged|incomplete|SHA-256|not listed|unsafe|first member",
    flipped_byte_zip: "damaged|SHA-256",
    checksum_mismatch: "weights.h5 does not match its SHA-256",
    changed_file: "scores.csv does not match its SHA-256",
    missing_file: "scores.csv listed in its manifest but not in the archive",
    unlisted_file: "extra.txt is not listed in its manifest",
    parent_path: "unsafe member path '../evil.txt'",
    absolute_path: "unsafe member path '/tmp/evil.txt'",
    link_member: "passwd is a link",
    key_mismatch: "does not match its config.json",
    foreign_data: "cache key cannot be checked on this machine",
    not_an_archive: "damaged",
}


@pytest.mark.parametrize("damage", REFUSALS, ids=lambda damage: damage.__name__)
def test_a_damaged_unsafe_or_mismatched_archive_is_refused_and_nothing_is_written(
    archive, target, tmp_path, damage
):
    bad = damage(archive, tmp_path)
    before = snapshot(target)
    with pytest.raises(RunsArchiveError, match=REFUSALS[damage]):
        import_runs(bad, runs_root=target, quiet=True)
    assert snapshot(target) == before
    assert not (target.parent / "evil.txt").exists()


def test_a_refused_import_does_not_even_create_the_runs_folder(archive, tmp_path):
    target = tmp_path / "new" / "runs"
    with pytest.raises(RunsArchiveError):
        import_runs(truncated(archive, tmp_path), runs_root=target, quiet=True)
    assert not (tmp_path / "new").exists()


# --- command line -------------------------------------------------------------------------------


def test_cli_exports_and_imports_and_answers_problems_with_one_line_and_status_2(
    source, tmp_path, capsys
):
    root, run = source
    archive = tmp_path / "cli.tar.gz"
    assert runs.main(["export", str(archive), "--only", "shared", "--runs-dir", str(root)]) == 0
    assert f"exported {run.path.name}" in capsys.readouterr().out
    student = tmp_path / "student"
    assert runs.main(["import", str(archive), "--runs-dir", str(student)]) == 0
    assert f"imported {run.path.name}" in capsys.readouterr().out
    assert runs.main(["import", str(archive), "--runs-dir", str(student)]) == 0
    assert "already here, identical" in capsys.readouterr().out
    for argv in (["import", str(truncated(archive, tmp_path)), "--runs-dir", str(student)],
                 ["import", str(tmp_path / "absent.tar.gz"), "--runs-dir", str(student)],
                 ["export", str(tmp_path / "x.zip"), "--only", "nobody", "--runs-dir", str(root)]):
        assert runs.main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err


def test_python_dash_m_siamlib_runs_exits_2_on_a_damaged_archive(archive, tmp_path):
    environment = {**os.environ, paths.RUNS_DIR_ENV: str(tmp_path / "runs")}
    result = subprocess.run(
        [sys.executable, "-m", "siamlib.runs", "import", str(flipped_byte(archive, tmp_path))],
        cwd=ROOT, env=environment, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert not (tmp_path / "runs").exists()
