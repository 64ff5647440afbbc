"""Tests for siamlib.data on a tiny generated LFW: 5 people, 11 images, View-1 pair files.

Downloads go to a real HTTP server on 127.0.0.1 only; nothing else is ever contacted.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import http.server
import io
import json
import os
import pickle
import shutil
import subprocess
import sys
import threading
import zipfile
from collections import Counter
from pathlib import Path

import pooch
import pytest
from PIL import Image

from siamlib import data
from siamlib.data import DataError, DatasetSpec, RemoteFile, fetch, verify

IMAGES_PER_PERSON = {"Ann_Lee": 4, "Bo_Chan": 2, "Cy_Dahl": 1, "Di_Eze": 3, "Ed_Fox": 1}
TRUNCATED_IMAGE = "Di_Eze/Di_Eze_0002.jpg"  # LFW-a has truncated JPEGs too; they must pass
# Tab-separated like the real files, and one space-separated file, which View 1 parsers accept.
PAIR_FILES = {
    "pairsDevTrain.txt": (
        "2\nAnn_Lee\t1\t2\nDi_Eze\t1\t3\nAnn_Lee\t3\tBo_Chan\t1\nCy_Dahl\t1\tEd_Fox\t1\n"
    ),
    "pairsDevTest.txt": "1\nBo_Chan 1 2\nDi_Eze 2 Ed_Fox 1\n",
}
NUM_PAIRS = 6


def _jpeg(seed: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), color=seed * 20 % 256).save(buffer, format="JPEG")
    return buffer.getvalue()


def _image_files() -> dict[str, bytes]:
    """Relative path under the folder of person folders -> JPEG bytes."""
    files = {}
    for person, count in IMAGES_PER_PERSON.items():
        for number in range(1, count + 1):
            files[f"{person}/{person}_{number:04d}.jpg"] = _jpeg(len(files))
    files[TRUNCATED_IMAGE] = files[TRUNCATED_IMAGE][:-40]
    return files


def _zip_members(prefix: str) -> dict[str, bytes]:
    """The images as a zip would hold them: ``lfw2/`` (LFW-a), ``lfw2/lfw2/`` (course copies)."""
    return {prefix + name: content for name, content in _image_files().items()}


def _write_zip(path: Path, files: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclasses.dataclass(frozen=True)
class FakeLfw:
    spec: DatasetSpec
    served: Path  # lfw2.zip (lfw2/<Name>/...) and the pair files: a source and the HTTP mirror
    people: Path  # a folder of person folders, with the pair files beside it


@pytest.fixture(scope="session")
def fake(tmp_path_factory) -> FakeLfw:
    """Built once; tests must copy before changing anything in it."""
    root = tmp_path_factory.mktemp("fake-lfw").resolve()
    served = root / "served"
    served.mkdir()
    _write_zip(served / "lfw2.zip", _zip_members("lfw2/"))
    people = root / "people"
    for name, content in _image_files().items():
        (people / "lfw2" / name).parent.mkdir(parents=True, exist_ok=True)
        (people / "lfw2" / name).write_bytes(content)
    for name, text in PAIR_FILES.items():
        (served / name).write_text(text)
        (people / name).write_text(text)
    spec = DatasetSpec(
        name="fake-lfw",
        archive=RemoteFile("lfw2.zip", _sha256(served / "lfw2.zip")),
        pair_files=tuple(RemoteFile(name, _sha256(served / name)) for name in PAIR_FILES),
        num_people=len(IMAGES_PER_PERSON),
        num_images=sum(IMAGES_PER_PERSON.values()),
    )
    return FakeLfw(spec, served, people)


@pytest.fixture(autouse=True)
def no_source_from_environment(monkeypatch):
    monkeypatch.delenv(data.SOURCE_ENV, raising=False)


@pytest.fixture
def source_dir(tmp_path, fake) -> Path:
    """A private copy of the served folder, for tests that damage it."""
    return Path(shutil.copytree(fake.served, tmp_path / "source"))


def _marker(folder: Path) -> dict:
    return json.loads((folder / ".complete").read_text())


def _assert_finished(folder: Path, fake: FakeLfw) -> None:
    assert folder.name == fake.spec.name
    assert (folder / "images" / "Ann_Lee" / "Ann_Lee_0004.jpg").is_file()
    assert sorted(p.name for p in (folder / "images").iterdir()) == sorted(IMAGES_PER_PERSON)
    assert all((folder / name).read_text() == text for name, text in PAIR_FILES.items())
    marker = json.loads((folder / ".complete").read_text())
    assert (marker["people"], marker["images"], marker["pairs"]) == (5, 11, NUM_PAIRS)
    assert not list(folder.parent.glob(".tmp-*"))


# --- local sources ------------------------------------------------------------------------------


@pytest.mark.parametrize("prefix", ["lfw2/", "lfw2/lfw2/", ""])
def test_fetch_from_a_zip_puts_person_folders_under_images(tmp_path, fake, prefix):
    tmp_path = tmp_path.resolve()
    zip_path = _write_zip(tmp_path / "lfw2.zip", _zip_members(prefix))
    for name in PAIR_FILES:
        shutil.copy(fake.served / name, tmp_path)
    folder = fetch(zip_path, data_dir=tmp_path / "data", spec=fake.spec, progress=False)
    assert folder == tmp_path / "data" / "fake-lfw"
    _assert_finished(folder, fake)
    assert _marker(folder)["source"] == str(zip_path)


def test_fetch_from_a_folder_holding_the_zip_and_pair_files(tmp_path, fake):
    folder = fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    _assert_finished(folder, fake)


def test_stray_pictures_and_macos_metadata_do_not_hide_the_person_folders(tmp_path, fake):
    members = {
        **_zip_members("lfw2/lfw2/"),
        "lfw2/cover.jpg": _jpeg(1),
        "lfw2/extras/logo.jpg": _jpeg(2),
        **{f"__MACOSX/lfw2/lfw2/{name}": b"\0" for name in _image_files()},
    }
    zip_path = _write_zip(tmp_path / "course.zip", members)
    for name in PAIR_FILES:
        shutil.copy(fake.served / name, tmp_path)
    _assert_finished(fetch(zip_path, data_dir=tmp_path / "d", spec=fake.spec, progress=False), fake)


def test_fetch_from_a_folder_of_person_folders_copies_it(tmp_path, fake):
    folder = fetch(fake.people, data_dir=tmp_path, spec=fake.spec, progress=False)
    _assert_finished(folder, fake)
    assert (fake.people / "lfw2" / "Ann_Lee" / "Ann_Lee_0001.jpg").is_file()


def test_the_source_comes_from_the_environment_when_not_given(tmp_path, fake, monkeypatch):
    monkeypatch.setenv(data.SOURCE_ENV, str(fake.served))
    folder = fetch(data_dir=tmp_path, spec=fake.spec, progress=False)
    assert _marker(folder)["source"] == str(fake.served / "lfw2.zip")


def test_truncated_jpegs_are_not_decoded_and_pass(tmp_path, fake):
    folder = fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    with pytest.raises(OSError):
        Image.open(folder / "images" / TRUNCATED_IMAGE).load()
    assert verify(folder, fake.spec)["images"] == 11


def test_a_finished_dataset_makes_fetch_return_at_once(tmp_path, fake, monkeypatch):
    folder = fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    marker_time = (folder / ".complete").stat().st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("a finished data set was built again")

    monkeypatch.setattr(data, "_build", must_not_run)
    assert fetch("/does/not/matter", data_dir=tmp_path, spec=fake.spec) == folder
    assert (folder / ".complete").stat().st_mtime_ns == marker_time


def test_leftover_staging_folders_are_removed_and_never_taken_as_finished(tmp_path, fake):
    leftover = tmp_path / ".tmp-fake-lfw-deadbeef"
    shutil.copytree(fake.people / "lfw2", leftover / "images")
    (leftover / ".complete").write_text("{}")
    folder = fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    assert not leftover.exists()
    _assert_finished(folder, fake)


def test_an_incomplete_folder_without_marker_is_reported_and_kept(tmp_path, fake):
    users_copy = tmp_path / "fake-lfw" / "images"
    shutil.copytree(fake.people / "lfw2" / "Ann_Lee", users_copy / "Ann_Lee")
    with pytest.raises(DataError, match="Nothing was deleted") as error:
        fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    assert "expected 5 people, found 1" in str(error.value)
    assert (users_copy / "Ann_Lee" / "Ann_Lee_0001.jpg").is_file()
    assert not (tmp_path / "fake-lfw" / ".complete").exists()


def test_a_complete_folder_without_marker_is_accepted_as_it_is(tmp_path, fake):
    users_copy = tmp_path / "fake-lfw"
    shutil.copytree(fake.people / "lfw2", users_copy / "images")
    for name in PAIR_FILES:
        shutil.copy(fake.served / name, users_copy)
    assert fetch(data_dir=tmp_path, spec=fake.spec, progress=False) == users_copy
    assert not (users_copy / ".complete").exists()  # nothing written: never fetch's to delete


def test_a_truncated_zip_is_reported_as_damaged(source_dir, tmp_path, fake):
    zip_path = source_dir / "lfw2.zip"
    zip_path.write_bytes(zip_path.read_bytes()[:-200])
    with pytest.raises(DataError, match=r"zip .*lfw2\.zip is damaged"):
        fetch(source_dir, data_dir=tmp_path / "data", spec=fake.spec, progress=False)
    # Nothing but the lock file, which stays (deleting it would race a waiting process).
    assert [p.name for p in (tmp_path / "data").iterdir()] == [".fake-lfw.lock"]


def test_a_zip_with_corrupt_member_bytes_is_reported_as_damaged(source_dir, tmp_path, fake):
    zip_path = source_dir / "lfw2.zip"
    content = bytearray(zip_path.read_bytes())
    content[200:210] = bytes(10)  # inside the first member's data: its CRC no longer matches
    zip_path.write_bytes(bytes(content))
    with pytest.raises(DataError, match="damaged"):
        fetch(source_dir, data_dir=tmp_path / "data", spec=fake.spec, progress=False)


def test_a_zip_member_named_to_escape_stays_inside_the_data_folder(tmp_path, fake):
    """Zip slip: zipfile drops ``..`` from member names, so ``../../x`` lands inside, skipped."""
    evil = _write_zip(tmp_path / "evil.zip",
                      {**_zip_members("lfw2/"), "lfw2/../../escaped.jpg": _jpeg(1)})
    for name in PAIR_FILES:
        shutil.copy(fake.served / name, tmp_path)
    folder = fetch(evil, data_dir=tmp_path / "a" / "b", spec=fake.spec, progress=False)
    assert list(tmp_path.rglob("escaped.jpg")) == [folder / "images" / "escaped.jpg"]
    assert verify(folder, fake.spec)["other_files"] == 1


def test_an_image_named_by_a_pair_file_but_missing_is_named(tmp_path, fake):
    files = _zip_members("lfw2/")
    del files["lfw2/Di_Eze/Di_Eze_0003.jpg"]
    _write_zip(tmp_path / "lfw2.zip", files)
    for name in PAIR_FILES:
        shutil.copy(fake.served / name, tmp_path)
    with pytest.raises(DataError) as error:
        fetch(tmp_path, data_dir=tmp_path / "data", spec=fake.spec, progress=False)
    message = str(error.value)
    assert "1 image(s) named in pairsDevTrain.txt missing: images/Di_Eze/Di_Eze_0003.jpg" in message
    assert "expected 11 images, found 10" in message
    assert not (tmp_path / "data" / "fake-lfw").exists()


def test_a_folder_without_person_folders_is_refused(tmp_path, fake):
    (tmp_path / "stray.jpg").write_bytes(_jpeg(1))
    (tmp_path / "notes.txt").write_text("no faces here")
    with pytest.raises(DataError, match="neither lfw2.zip nor person folders"):
        fetch(tmp_path, data_dir=tmp_path / "data", spec=fake.spec, progress=False)


def test_a_source_that_does_not_exist_is_refused(tmp_path, fake):
    with pytest.raises(DataError, match="does not exist"):
        fetch(tmp_path / "nowhere", data_dir=tmp_path, spec=fake.spec, progress=False)


# --- verify -------------------------------------------------------------------------------------


def test_verify_counts_stray_files_without_complaining(tmp_path, fake):
    folder = fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    (folder / "images" / ".DS_Store").write_bytes(b"\0")
    (folder / "images" / "Bo_Chan" / "notes.txt").write_text("x")
    (folder / "images" / ".ipynb_checkpoints").mkdir()
    counts = verify(folder, fake.spec)
    assert counts == {"people": 5, "images": 11, "other_files": 3, "pairs": NUM_PAIRS}


def test_verify_reports_every_problem_at_once(tmp_path, fake):
    folder = fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    shutil.rmtree(folder / "images" / "Ann_Lee")
    (folder / "pairsDevTest.txt").write_text("1\nBo_Chan 1\n")
    with pytest.raises(DataError) as error:
        verify(folder, fake.spec)
    message = str(error.value)
    assert "expected 5 people, found 4" in message
    assert "expected 11 images, found 7" in message
    assert "3 image(s) named in pairsDevTrain.txt missing: images/Ann_Lee/Ann_Lee_0001.jpg;" \
        in message
    assert f"pair file pairsDevTest.txt cannot be used: {folder / 'pairsDevTest.txt'} is not " \
        "the original pairsDevTest.txt" in message
    assert "Run python -m siamlib.data fetch [--source PATH]." in message


# --- downloads ----------------------------------------------------------------------------------


class Mirror:
    """Serves the fake files at /good/<name>, wrong bytes at /bad/, an HTML page at /html/."""

    def __init__(self, served: Path):
        self.requests: Counter[str] = Counter()
        mirror = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                mirror.requests[self.path] += 1
                kind, _, name = self.path.strip("/").partition("/")
                if kind == "good" and (served / name).is_file():
                    self._reply(200, "application/octet-stream", (served / name).read_bytes())
                elif kind == "bad":
                    self._reply(200, "application/zip", b"not the file you want")
                elif kind == "html":
                    self._reply(200, "text/html; charset=utf-8", b"<html>quota exceeded</html>")
                else:
                    self._reply(404, "text/plain", b"not found")

            def _reply(self, status, content_type, body):
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.thread.start()

    def spec_with(self, spec: DatasetSpec, *kinds: str) -> DatasetSpec:
        """The spec with every file's addresses pointing at this server's ``kinds`` in turn."""
        def served(remote: RemoteFile) -> RemoteFile:
            return dataclasses.replace(
                remote, urls=tuple(f"{self.base}/{k}/{remote.name}" for k in kinds))

        return dataclasses.replace(spec, archive=served(spec.archive),
                                   pair_files=tuple(map(served, spec.pair_files)))

    def close(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()


@pytest.fixture
def mirror(fake, monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")  # a proxy from the environment must not take it
    monkeypatch.setenv("no_proxy", "127.0.0.1")
    server = Mirror(fake.served)
    yield server
    server.close()


def test_a_dead_mirror_is_reported_and_the_next_one_used(tmp_path, fake, mirror, capsys):
    spec = mirror.spec_with(fake.spec, "missing", "good")
    folder = fetch(data_dir=tmp_path, spec=spec, progress=False)
    _assert_finished(folder, fake)
    assert f"{mirror.base}/missing/lfw2.zip: 404 Client Error: Not Found" in capsys.readouterr().err
    assert sorted((tmp_path / "downloads").iterdir()) == [
        tmp_path / "downloads" / name for name in sorted(["lfw2.zip", *PAIR_FILES])
    ]


def test_wrong_bytes_and_html_pages_are_skipped(tmp_path, fake, mirror, capsys):
    spec = mirror.spec_with(fake.spec, "bad", "html", "good")
    _assert_finished(fetch(data_dir=tmp_path, spec=spec, progress=False), fake)
    reported = capsys.readouterr().err
    assert "bad/lfw2.zip: checksum mismatch" in reported
    assert "html/lfw2.zip: checksum mismatch (a wrong file, or a quota or sign-in page)" \
        in reported
    assert sorted(p.name for p in (tmp_path / "downloads").iterdir()) == sorted(
        ["lfw2.zip", *PAIR_FILES])  # nothing half-downloaded left behind


def test_a_url_source_is_tried_before_the_registry(tmp_path, fake, mirror):
    spec = mirror.spec_with(fake.spec, "missing")
    fetch(f"{mirror.base}/good/", data_dir=tmp_path, spec=spec, progress=False)
    assert mirror.requests[f"/good/{spec.archive.name}"] == 1
    assert mirror.requests[f"/missing/{spec.archive.name}"] == 0


def test_when_no_mirror_works_one_error_lists_them_and_says_what_to_do(tmp_path, fake, mirror):
    spec = mirror.spec_with(fake.spec, "missing", "bad")
    with pytest.raises(DataError) as error:
        fetch(data_dir=tmp_path, spec=spec, progress=False)
    message = str(error.value)
    assert f"{mirror.base}/missing/pairsDevTrain.txt: 404 Client Error" in message
    assert f"{mirror.base}/bad/pairsDevTrain.txt: checksum mismatch" in message
    assert f"Could not download pairsDevTrain.txt:\n  - {mirror.base}/missing/" in message
    assert f"Download it by hand from {mirror.base}/missing/" in message
    assert "python -m siamlib.data fetch --source FOLDER" in message
    assert data.SOURCE_ENV in message
    assert not (tmp_path / "fake-lfw").exists()


def test_downloads_are_reused_when_their_checksum_matches(tmp_path, fake, mirror):
    spec = mirror.spec_with(fake.spec, "good")
    folder = fetch(data_dir=tmp_path, spec=spec, progress=False)
    shutil.rmtree(folder)
    (tmp_path / "downloads" / "pairsDevTest.txt").write_text("tampered")
    fetch(data_dir=tmp_path, spec=spec, progress=False)
    assert mirror.requests["/good/lfw2.zip"] == 1
    assert mirror.requests["/good/pairsDevTrain.txt"] == 1
    assert mirror.requests["/good/pairsDevTest.txt"] == 2


def test_pair_files_missing_beside_a_zip_are_downloaded(tmp_path, fake, mirror):
    zip_path = _write_zip(tmp_path / "course-copy.zip", _zip_members("lfw2/lfw2/"))
    spec = mirror.spec_with(fake.spec, "good")
    _assert_finished(fetch(zip_path, data_dir=tmp_path / "data", spec=spec, progress=False), fake)
    assert mirror.requests["/good/lfw2.zip"] == 0


# --- command line -------------------------------------------------------------------------------


def test_cli_fetch_and_verify_print_one_line(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setattr(data, "LFW_A", fake.spec)
    args = ["--data-dir", str(tmp_path)]
    assert data.main(["fetch", "--source", str(fake.served), *args]) == 0
    assert data.main(["verify", *args]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    assert all(": 5 people, 11 images, 6 pairs" in line for line in lines)


def test_cli_verify_without_data_says_to_fetch(tmp_path, capsys):
    assert data.main(["verify", "--data-dir", str(tmp_path)]) == 2
    assert "Run python -m siamlib.data fetch" in capsys.readouterr().err


def test_cli_bad_source_exits_2_with_a_message_and_no_traceback(tmp_path):
    importable = {**os.environ, "PYTHONPATH": str(Path(data.__file__).parents[1])}
    result = subprocess.run(
        [sys.executable, "-m", "siamlib.data", "fetch", "--source", str(tmp_path / "nowhere")]
        + ["--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env=importable,
    )
    assert result.returncode == 2
    assert f"error: The source {tmp_path / 'nowhere'} does not exist" in result.stderr
    assert "Traceback" not in result.stderr


# --- a registry that gained a pair file (View 2's pairs.txt) ------------------------------------


VIEW2 = "2\t1\nAnn_Lee\t1\t4\nAnn_Lee\t2\tCy_Dahl\t1\nDi_Eze\t1\t2\nBo_Chan\t2\tEd_Fox\t1\n"


def test_a_finished_folder_gains_a_pair_file_added_to_the_registry(tmp_path, fake, mirror):
    old = mirror.spec_with(fake.spec, "good")
    folder = fetch(data_dir=tmp_path, spec=old, progress=False)
    (fake.served / "pairs.txt").write_text(VIEW2)
    try:
        view2 = RemoteFile("pairs.txt", hashlib.sha256(VIEW2.encode()).hexdigest())
        new = mirror.spec_with(
            dataclasses.replace(fake.spec, pair_files=(*fake.spec.pair_files, view2)), "good")
        assert fetch(data_dir=tmp_path, spec=new, progress=False) == folder
    finally:
        (fake.served / "pairs.txt").unlink()
    assert (folder / "pairs.txt").read_text() == VIEW2
    assert _marker(folder)["pairs"] == NUM_PAIRS + 4
    assert mirror.requests["/good/lfw2.zip"] == 1  # rebuilt from the cached, checked download
    assert not list(folder.glob(".tmp-*"))


# --- a damaged finished folder: every fetch checks it, and rebuilds it from its source ----------


def _damage(folder: Path, how: str) -> list[str]:
    """Damage a finished folder the way users do; returns the damaged files (relative)."""
    if how == "images folder gone":
        shutil.rmtree(folder / "images")
        return [f"images/{name}" for name in _image_files()]
    (folder / "images" / "Ann_Lee" / "Ann_Lee_0002.jpg").unlink()
    return ["images/Ann_Lee/Ann_Lee_0002.jpg"]


@pytest.mark.parametrize("how", ["deleted", "images folder gone"])
def test_fetch_takes_damaged_images_again_from_the_source_it_was_made_from(
    source_dir, tmp_path, fake, how, capsys
):
    folder = fetch(source_dir, data_dir=tmp_path / "data", spec=fake.spec, progress=False)
    damaged = _damage(folder, how)
    with pytest.raises(DataError, match="is not a complete copy"):
        verify(folder, fake.spec)
    assert fetch(data_dir=tmp_path / "data", spec=fake.spec, progress=False) == folder
    for name in damaged:
        assert (folder / name).read_bytes() == _image_files()[name.removeprefix("images/")]
    assert f"{folder} needs repair; taking it again from its source" in capsys.readouterr().err
    assert _marker(folder)["source"] == str(source_dir / "lfw2.zip")
    assert verify(folder, fake.spec)["images"] == 11
    assert not list(folder.parent.glob(".tmp-*"))


def test_damage_with_no_source_left_names_the_files_and_what_to_do(source_dir, tmp_path, fake,
                                                                   capsys):
    folder = fetch(source_dir, data_dir=tmp_path / "data", spec=fake.spec, progress=False)
    shutil.rmtree(source_dir)
    _damage(folder, "deleted")
    with pytest.raises(DataError, match="python -m siamlib.data fetch --source FOLDER"):
        fetch(data_dir=tmp_path / "data", spec=fake.spec, progress=False)
    assert "needs repair" in capsys.readouterr().err
    assert folder.is_dir()  # kept as it was until a rebuild succeeds
    # ... and given a source, it repairs
    fetch(fake.served, data_dir=tmp_path / "data", spec=fake.spec, progress=False)
    assert verify(folder, fake.spec)["images"] == 11


def test_cli_verify_exits_2_naming_the_missing_image(source_dir, tmp_path, fake, monkeypatch,
                                                    capsys):
    monkeypatch.setattr(data, "LFW_A", fake.spec)
    data.main(["fetch", "--source", str(source_dir), "--data-dir", str(tmp_path)])
    _damage(tmp_path / "fake-lfw", "deleted")
    assert data.main(["verify", "--data-dir", str(tmp_path)]) == 2
    assert "missing: images/Ann_Lee/Ann_Lee_0002.jpg" in capsys.readouterr().err


# --- two processes, one data folder -------------------------------------------------------------

_FETCH_IN_CHILD = """
import json, pickle, sys, time
from pathlib import Path
from siamlib import data
spec_pickle, source, data_dir, me, log = sys.argv[1:]
spec = pickle.loads(bytes.fromhex(spec_pickle))
real_staged = data.files.staged  # once per data set built
def slow_staged(*args, **kwargs):
    with open(log, "a") as out:
        out.write(me + "\\n")
    time.sleep(1.0)  # long enough for the other process to arrive while this one works
    return real_staged(*args, **kwargs)
data.files.staged = slow_staged
Path(log).with_name(f"ready-{me}").touch()
deadline = time.time() + 120
while len(list(Path(log).parent.glob("ready-*"))) < 2 and time.time() < deadline:
    time.sleep(0.01)
print(json.dumps(str(data.fetch(source, data_dir, spec, progress=False))))
"""


def test_two_processes_fetching_into_one_folder_build_it_once_and_both_succeed(tmp_path, fake):
    data_dir, log = tmp_path / "data", tmp_path / "assembled.log"
    env = {**os.environ, "PYTHONPATH": str(Path(data.__file__).parents[1])}
    children = [
        subprocess.Popen(
            [sys.executable, "-c", _FETCH_IN_CHILD, pickle.dumps(fake.spec).hex(), str(fake.served),
             str(data_dir), str(me), str(log)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )
        for me in (1, 2)
    ]
    results = [child.communicate(timeout=180) for child in children]
    assert [child.returncode for child in children] == [0, 0], results
    assert {json.loads(out) for out, _ in results} == {str(data_dir / "fake-lfw")}
    assert len(log.read_text().split()) == 1  # the second waited, then reused the first's work
    assert any("Another process is fetching fake-lfw" in err for _, err in results)
    _assert_finished(data_dir / "fake-lfw", fake)


# --- a full disk, a read-only folder ------------------------------------------------------------


def test_a_full_disk_during_fetch_is_one_error_exit_2_and_leaves_nothing(
    tmp_path, fake, monkeypatch, capsys
):
    """The disk fills while extracting (simulated: the copy raises ENOSPC)."""
    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", disk_full)
    monkeypatch.setattr(data, "LFW_A", fake.spec)
    args = ["fetch", "--source", str(fake.served), "--data-dir", str(tmp_path)]
    assert data.main(args) == 2
    err = capsys.readouterr().err
    assert f"error: The disk holding {tmp_path} is full" in err
    assert "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == [".fake-lfw.lock"]  # no staging, no .part


def test_a_full_disk_while_downloading_leaves_nothing_half_written(tmp_path, fake, mirror,
                                                                   monkeypatch):
    def fills_the_disk(self, url, output_file, *args, **kwargs):
        Path(output_file).write_bytes(b"the first bytes")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(pooch.HTTPDownloader, "__call__", fills_the_disk)
    with pytest.raises(DataError, match="is full"):
        fetch(data_dir=tmp_path, spec=mirror.spec_with(fake.spec, "good"), progress=False)
    assert list((tmp_path / "downloads").iterdir()) == []
    assert not (tmp_path / "fake-lfw").exists()


def test_a_read_only_data_folder_with_the_data_in_it_is_usable(tmp_path, fake, refuse_writes):
    """Read-only is simulated (refuse_writes): tests run as root, where chmod stops nothing."""
    folder = fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    refuse_writes(tmp_path)
    assert fetch(data_dir=tmp_path, spec=fake.spec, progress=False) == folder
    assert verify(folder, fake.spec)["images"] == 11


def test_a_read_only_folder_without_the_data_is_one_clear_error(tmp_path, fake, refuse_writes):
    """Read-only is simulated (refuse_writes): tests run as root, where chmod stops nothing."""
    refuse_writes(tmp_path)
    with pytest.raises(DataError, match=r"is not writable .* set \$SIAMLIB_DATA_DIR"):
        fetch(fake.served, data_dir=tmp_path / "data", spec=fake.spec, progress=False)


def test_cli_fetch_into_a_read_only_folder_is_one_line_naming_it_and_the_fix(
    tmp_path, fake, refuse_writes, monkeypatch, capsys
):
    """Issue 22, item 7: one line, no traceback, the folder and how to choose another."""
    monkeypatch.setattr(data, "LFW_A", fake.spec)
    refuse_writes(tmp_path)
    assert data.main(["fetch", "--source", str(fake.served), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith(f"error: {tmp_path} is not writable") and "SIAMLIB_DATA_DIR" in err


# --- issue 22, item 2: the pair files are the registry's, to the byte ---------------------------


def test_an_edited_pair_file_in_the_source_is_refused_with_one_message(source_dir, tmp_path, fake):
    (source_dir / "pairsDevTest.txt").write_text("1\nBo_Chan 2 1\nDi_Eze 2 Ed_Fox 1\n")
    with pytest.raises(DataError) as error:
        fetch(source_dir, data_dir=tmp_path / "data", spec=fake.spec, progress=False)
    assert str(error.value).startswith(
        f"{source_dir / 'pairsDevTest.txt'} is not the original pairsDevTest.txt (sha256 ")
    assert not (tmp_path / "data" / "fake-lfw").exists()


def test_an_edited_pair_file_in_the_data_set_is_refused_and_fetch_restores_the_original(
    source_dir, tmp_path, fake, monkeypatch, capsys
):
    monkeypatch.setattr(data, "LFW_A", fake.spec)
    args = ["--data-dir", str(tmp_path)]
    assert data.main(["fetch", "--source", str(source_dir), *args]) == 0
    edited = tmp_path / "fake-lfw" / "pairsDevTrain.txt"
    edited.write_text(PAIR_FILES["pairsDevTrain.txt"].replace("Ann_Lee\t3", "Ann_Lee\t4"))
    capsys.readouterr()
    assert data.main(["verify", *args]) == 2
    err = capsys.readouterr().err
    assert f"{edited} is not the original pairsDevTrain.txt" in err and "Traceback" not in err
    assert data.main(["fetch", "--source", str(source_dir), *args]) == 0
    assert edited.read_text() == PAIR_FILES["pairsDevTrain.txt"]
    assert data.main(["verify", *args]) == 0


def test_a_pair_file_with_a_byte_order_mark_is_fetched(source_dir, tmp_path, fake):
    text = (source_dir / "pairsDevTest.txt").read_bytes()
    (source_dir / "pairsDevTest.txt").write_bytes(b"\xef\xbb\xbf" + text)
    spec = dataclasses.replace(fake.spec, pair_files=tuple(
        RemoteFile(f.name, _sha256(source_dir / f.name)) for f in fake.spec.pair_files))
    folder = fetch(source_dir, data_dir=tmp_path, spec=spec, progress=False)
    assert _marker(folder)["pairs"] == NUM_PAIRS


@pytest.mark.parametrize("garbage", [b"\x00\xff garbage", b"[1, 2]", b"{\"people\": "])
def test_a_garbage_marker_counts_as_none_and_the_folder_is_never_deleted(tmp_path, fake, garbage):
    folder = fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    (folder / ".complete").write_bytes(garbage)
    assert fetch(data_dir=tmp_path, spec=fake.spec, progress=False) == folder  # complete: used
    shutil.rmtree(folder / "images" / "Ann_Lee")
    with pytest.raises(DataError, match="(?s)expected 5 people, found 4.*Nothing was deleted"):
        fetch(fake.served, data_dir=tmp_path, spec=fake.spec, progress=False)
    assert (folder / "images" / "Bo_Chan" / "Bo_Chan_0001.jpg").is_file()
