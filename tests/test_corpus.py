"""Every document of the bad-input corpus through the real `ingest_document`, from a local folder to local bronze."""

import hashlib

import pyarrow.parquet as pq
import pytest

from ingestion_project.config import LocalSourceConfig, parse_size
from ingestion_project.ingestion.documents import IngestedDocument, ingest_document
from ingestion_project.lib import errors
from ingestion_project.lib.bronze import BronzeVersion
from ingestion_project.lib.bronze_commit import BronzeRoot
from ingestion_project.lib.keys import DocumentRef
from ingestion_project.lib.object_store import LocalObjectStore
from ingestion_project.lib.versions import DocumentVersion
from tests.corpus import (
    CASES,
    CORPUS_SOURCE,
    DUPLICATE_CASES,
    FORMULA_CELLS,
    LONG_KEY_FLAT,
    LONG_KEY_NESTED,
    MAX_DECOMPRESSED_BYTES,
    MAX_OBJECT_BYTES,
    Case,
)

BY_NAME = {case.name: case for case in CASES}
ISSUE_LIST = {
    "empty",
    "header_only_csv",
    "ragged_csv",
    "invalid_utf8",
    "utf16_with_bom",
    "json_syntax_error",
    "ndjson_one_bad_line",
    "single_huge_line",
    "gzip_bomb",
    "over_size_limit",
    "binary_png_named_csv",
    "truncated_parquet",
    *DUPLICATE_CASES,
    "formula_cells",
    "hostile_key_parent_traversal",
    "hostile_key_control_chars_and_dots",
    "hostile_key_1024_bytes_flat",
    "hostile_key_s3_uri",
}


def local_params(cases: list[Case]) -> list:
    return [
        pytest.param(case, id=case.name, marks=[pytest.mark.xfail(strict=True, reason=case.known_bug)])
        if case.known_bug
        else pytest.param(case, id=case.name)
        for case in cases
        if not case.s3_only
    ]


class Landing:
    """A source folder and a bronze folder under tmp_path, with the corpus source's limits."""

    def __init__(self, root):
        self.source_dir = root / "source"
        self.bronze_dir = root / "bronze"
        self.source_dir.mkdir()
        self.store = LocalObjectStore(self.source_dir)
        self.config = LocalSourceConfig(**CORPUS_SOURCE, type="local", path=self.source_dir)

    def put(self, case: Case):
        path = self.source_dir / case.key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(case.body)
        return path

    def ref(self, case: Case) -> DocumentRef:
        return DocumentRef(self.config.name, self.store.bucket, case.key)

    def pin(self, case: Case) -> DocumentVersion:
        """The version the discovery sensor would pin: the object as listed."""
        [info] = [info for info in self.store.list_objects() if info.key == case.key]
        return DocumentVersion(self.ref(case), info.etag, info.version_id, info.size, info.last_modified)

    def ingest(self, case: Case) -> IngestedDocument:
        bronze = BronzeRoot(LocalObjectStore(self.bronze_dir))
        # No ledger here: the commit is recorded by accepting it.
        document, _ = ingest_document(
            self.pin(case), self.config, self.store, bronze, attempt="corpus", record=lambda document: True
        )
        return document

    def manifest(self, case: Case, document: IngestedDocument) -> dict:
        assert document.bronze.manifest_key.startswith(
            BronzeVersion(self.ref(case), document.version.etag, document.is_text).attempt_prefixes()[0]
        )
        [row] = pq.read_table(self.bronze_dir / document.bronze.manifest_key).to_pylist()
        return row

    def bronze_files(self) -> list:
        return [path for path in self.bronze_dir.rglob("*") if path.is_file()] if self.bronze_dir.exists() else []


@pytest.fixture
def landing(tmp_path) -> Landing:
    return Landing(tmp_path)


def test_corpus_covers_the_issue_list_with_unique_names():
    assert len(BY_NAME) == len(CASES)
    assert not ISSUE_LIST - set(BY_NAME)
    kinds = {"hostile_key" if n.startswith("hostile_key_") else "dup" if n in DUPLICATE_CASES else n for n in BY_NAME}
    assert len(kinds) >= 15
    assert len(LONG_KEY_FLAT.encode()) == len(LONG_KEY_NESTED.encode()) == 1024
    assert len([c for c in CASES if c.name.startswith("hostile_key_") and not c.s3_only]) >= 2
    assert (parse_size(CORPUS_SOURCE["max_object_size"]), parse_size(CORPUS_SOURCE["max_decompressed_size"])) == (
        MAX_OBJECT_BYTES,
        MAX_DECOMPRESSED_BYTES,
    )
    assert [c.name for c in CASES if len(c.body) > MAX_OBJECT_BYTES] == ["over_size_limit"]
    for case in CASES:
        assert (case.expect == "FAILED") == (case.error_class is not None) == (case.message is not None), case.name
        assert case.error_class is None or issubclass(getattr(errors, case.error_class), errors.DocumentError)


@pytest.mark.parametrize("case", local_params(CASES))
def test_corpus_document_meets_its_expected_fate_and_source_is_untouched(case: Case, landing: Landing):
    path = landing.put(case)
    # The sensor would offer it: the include globs match and the folder lists the key exactly as written.
    assert landing.config.matches(case.key)
    assert [info.key for info in landing.store.list_objects()] == [case.key]
    before = landing.store.head(case.key)

    if case.expect == "SUCCESS":
        document = landing.ingest(case)
        row = landing.manifest(case, document)
        assert (row["object_key"], row["format"], row["record_count"]) == (case.key, case.format, case.records)
        assert row["etag"] == document.version.etag == before.etag  # exactly the pinned version landed
        assert row["sha256"] == hashlib.sha256(case.body).hexdigest() == document.sha256
        assert row["size_bytes"] == len(case.body)
        assert pq.read_table(row["bronze_path"]).num_rows == case.records
    else:
        with pytest.raises(errors.DocumentError) as raised:
            landing.ingest(case)
        assert type(raised.value) is getattr(errors, case.error_class)
        assert case.message in str(raised.value)
        assert landing.bronze_files() == []

    assert path.read_bytes() == case.body
    assert landing.store.head(case.key) == before


def test_duplicate_content_under_two_keys_lands_twice_with_one_sha256(landing: Landing):
    first, second = (BY_NAME[name] for name in DUPLICATE_CASES)
    assert first.body == second.body and first.key != second.key
    documents = []
    for case in (first, second):
        landing.put(case)
        documents.append(landing.ingest(case))
    manifests = [landing.manifest(case, document) for case, document in zip((first, second), documents, strict=True)]
    assert manifests[0]["sha256"] == manifests[1]["sha256"] == hashlib.sha256(first.body).hexdigest()
    assert manifests[0]["bronze_path"] != manifests[1]["bronze_path"]


@pytest.mark.parametrize(
    ("name", "column", "values"),
    [
        ("formula_cells", "formula", list(FORMULA_CELLS)),
        ("utf16_with_bom", "name", ["Zoë", "Jürgen"]),
    ],
)
def test_cell_values_land_verbatim(name: str, column: str, values: list[str], landing: Landing):
    case = BY_NAME[name]
    landing.put(case)
    document = landing.ingest(case)
    assert pq.read_table(document.bronze_path).column(column).to_pylist() == values
