"""Local folder sources: exactly the listed file, never through a link, and every rewrite seen as a new version."""

import os
import shutil
import threading

import pytest

from ingestion_project.lib.errors import ExternalError, SupersededError
from ingestion_project.lib.object_store import LocalObjectStore


class Sink(bytearray):
    def write(self, data: bytes) -> None:
        self.extend(data)


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / "inbox"
    (folder / "in").mkdir(parents=True)
    (tmp_path / "secret.csv").write_text("secret,data\n1,2\n")
    return folder


def download(store: LocalObjectStore, key: str, etag: str) -> bytes:
    sink = Sink()
    store.download(key, sink, etag=etag, max_bytes=1 << 20)
    return bytes(sink)


def test_listed_file_is_read_exactly(root):
    (root / "in" / "a.csv").write_text("id\n1\n")
    store = LocalObjectStore(root)
    [info] = store.list_objects()
    assert download(store, "in/a.csv", info.etag) == b"id\n1\n"


def test_file_swapped_for_a_link_after_listing_is_never_read(root):
    (root / "in" / "a.csv").write_text("id\n1\n")
    store = LocalObjectStore(root)
    [info] = store.list_objects()
    (root / "in" / "a.csv").unlink()
    (root / "in" / "a.csv").symlink_to(root.parent / "secret.csv")
    with pytest.raises(ExternalError, match="symbolic link"):
        download(store, "in/a.csv", info.etag)


def test_folder_swapped_for_a_link_after_listing_is_never_followed(root):
    (root / "in" / "a.csv").write_text("id\n1\n")
    store = LocalObjectStore(root)
    [info] = store.list_objects()
    outside = root.parent / "outside"
    outside.mkdir()
    shutil.copy(root / "in" / "a.csv", outside / "a.csv")  # same name and content, outside the root
    shutil.rmtree(root / "in")
    (root / "in").symlink_to(outside, target_is_directory=True)
    with pytest.raises(ExternalError, match="symbolic link"):
        download(store, "in/a.csv", info.etag)


def test_links_race_against_reads_and_never_leak_outside_bytes(root):
    # A writer flips the path between a file and a link to a file outside the root while a reader downloads it.
    path = root / "in" / "a.csv"
    path.write_text("inside\n")
    store = LocalObjectStore(root)
    stop = threading.Event()

    def flip() -> None:
        for _ in range(20_000):
            if stop.is_set():
                return
            link = root / "in" / ".flip"
            link.unlink(missing_ok=True)
            link.symlink_to(root.parent / "secret.csv")
            os.replace(link, path)
            fresh = root / "in" / ".fresh"
            fresh.write_text("inside\n")
            os.replace(fresh, path)

    flipper = threading.Thread(target=flip)
    flipper.start()
    outcomes = set()
    try:
        for _ in range(2_000):
            try:
                etag = store.head("in/a.csv").etag
                data = download(store, "in/a.csv", etag)
            except (ExternalError, SupersededError) as e:
                outcomes.add(type(e).__name__)
                continue
            assert data == b"inside\n"
            outcomes.add("read")
    finally:
        stop.set()
        flipper.join(timeout=30)
    assert "read" in outcomes


def test_same_size_copy_with_preserved_mtime_is_a_new_version(root):
    path = root / "in" / "a.csv"
    path.write_text("id\n1\n")
    store = LocalObjectStore(root)
    [before] = store.list_objects()
    replacement = root.parent / "b.csv"
    replacement.write_text("id\n2\n")
    stat = path.stat()
    os.utime(replacement, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    shutil.copy2(replacement, path)  # cp -p: same size, same mtime, other content
    assert path.stat().st_mtime_ns == stat.st_mtime_ns
    [after] = store.list_objects()
    assert after.etag != before.etag
    with pytest.raises(SupersededError):
        download(store, "in/a.csv", before.etag)
    assert download(store, "in/a.csv", after.etag) == b"id\n2\n"


def test_fifo_in_place_of_a_file_is_refused_without_blocking(root):
    (root / "in" / "a.csv").write_text("id\n1\n")
    store = LocalObjectStore(root)
    [info] = store.list_objects()
    (root / "in" / "a.csv").unlink()
    os.mkfifo(root / "in" / "a.csv")
    with pytest.raises(ExternalError, match="no longer a regular file"):
        download(store, "in/a.csv", info.etag)


def test_listing_is_in_key_order_and_resumes_after_a_key(root):
    for key in ("b.csv", "a-c.csv", "a/b.csv", "a/a/z.csv", "a0.csv", "c/d/e.csv"):
        (root / key).parent.mkdir(parents=True, exist_ok=True)
        (root / key).write_text("x\n1\n")
    (root / "in").rmdir()
    store = LocalObjectStore(root)
    keys = [info.key for info in store.list_objects()]
    assert keys == sorted(keys) == ["a-c.csv", "a/a/z.csv", "a/b.csv", "a0.csv", "b.csv", "c/d/e.csv"]
    assert [info.key for info in store.list_objects(start_after="a/a/z.csv")] == keys[2:]
    assert [info.key for info in store.list_objects(prefix="a/")] == ["a/a/z.csv", "a/b.csv"]


def test_a_file_that_vanishes_while_listed_is_passed_over(root):
    for name in ("a.csv", "b.csv", "c.csv"):
        (root / "in" / name).write_text("x\n1\n")
    store = LocalObjectStore(root)
    listing = store.list_objects()
    first = next(listing)
    (root / "in" / "b.csv").unlink()  # gone between the folder's scan and its stat
    rest = [info.key for info in listing]
    assert first.key == "in/a.csv" and rest == ["in/c.csv"]


def test_a_name_that_is_not_utf8_is_listed_and_read_as_exactly_that_file(root):
    raw = b"caf\xe9-\xff.csv"
    with open(os.path.join(os.fsencode(root / "in"), raw), "wb") as f:
        f.write(b"id\n1\n")
    store = LocalObjectStore(root)
    [info] = store.list_objects()
    assert os.fsencode(info.key) == b"in/" + raw
    assert store.head(info.key) == info
    assert download(store, info.key, info.etag) == b"id\n1\n"
    assert store.uri(info.key).endswith("in/caf\\xe9-\\xff.csv")  # valid text for messages and the ledger
    store.uri(info.key).encode("utf-8")


def test_a_users_file_named_like_a_scratch_file_is_listed(root):
    (root / "in" / ".tmp-report.csv").write_text("id\n1\n")
    (root / "in" / ".tmp-x").write_text("id\n1\n")
    assert [info.key for info in LocalObjectStore(root).list_objects()] == ["in/.tmp-report.csv", "in/.tmp-x"]


def test_atomic_writes_put_their_scratch_files_outside_the_root(root, monkeypatch):
    store = LocalObjectStore(root)
    seen = []
    real_replace = os.replace

    def spying_replace(src, dst):
        seen.append((os.path.dirname(src), sorted(os.listdir(root / "out"))))
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", spying_replace)
    store.write_atomic("out/a.json", b"{}", "application/json")
    [(scratch, beside_target)] = seen
    assert scratch == str(root.parent / ".inbox.scratch")  # a sibling: the same file system, so the rename is atomic
    assert beside_target == []  # nothing half-written was ever in the root
    assert (root / "out" / "a.json").read_bytes() == b"{}"
    assert os.listdir(scratch) == []
    assert [info.key for info in store.list_objects()] == ["out/a.json"]


def test_a_failed_atomic_write_leaves_nothing_behind(root):
    store = LocalObjectStore(root)

    def fail(_file):
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        store._replace("out/b.json", fail)
    assert os.listdir(store.scratch) == [] and not (root / "out" / "b.json").exists()


def test_where_the_roots_parent_is_not_writable_a_write_still_lands(root, monkeypatch):
    store = LocalObjectStore(root)
    real_mkdir = type(store.scratch).mkdir

    def refuse(self, *args, **kwargs):
        if self == store.scratch:
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(type(store.scratch), "mkdir", refuse)
    store.write_atomic("out/c.json", b"{}", "application/json")
    assert (root / "out" / "c.json").read_bytes() == b"{}"
    assert sorted(os.listdir(root / "out")) == ["c.json"]
