import textwrap

import pytest

from ingestion_project.config import ConfigError, load_settings, parse_size


def write(tmp_path, text: str):
    path = tmp_path / "sources.yaml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


VALID = """
    bronze:
      s3: {bucket: bronze, prefix: lake/bronze}
      local_dir: bronze-local
    sources:
      - {name: orders, type: s3, bucket: landing, prefix: orders/, include: ["*.csv"], max_object_size: 5MiB}
      - {name: archive, type: s3, bucket: archive-2026, include: ["exports/*.json"]}
      - {name: inbox, type: local, path: inbox, exclude: ["*.tmp"]}
"""


def test_shipped_sources_file_is_valid():
    settings = load_settings()
    assert {s.name for s in settings.sources} >= {"orders", "customers", "notes"}


def test_several_buckets_and_a_local_folder_load(tmp_path):
    settings = load_settings(write(tmp_path, VALID))
    assert [s.name for s in settings.sources] == ["orders", "archive", "inbox"]
    assert settings.source("orders").max_object_bytes == 5 * 2**20
    assert settings.source("inbox").path == (tmp_path / "inbox").resolve()
    assert settings.bronze_roots() == ["s3://bronze/lake/bronze", str((tmp_path / "bronze-local").resolve())]


def test_sources_file_can_be_chosen_by_env(tmp_path, monkeypatch):
    monkeypatch.setenv("INGESTION_SOURCES_FILE", str(write(tmp_path, VALID)))
    assert load_settings().source("archive").bucket == "archive-2026"


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("orders/a.csv", True),
        ("orders/2026/11/a.csv", True),  # a pattern without '/' matches the file name at any depth
        ("orders/a.json", False),
        ("orders/", False),  # folder marker
    ],
)
def test_name_globs_match_file_names(tmp_path, key, expected):
    assert load_settings(write(tmp_path, VALID)).source("orders").matches(key) is expected


def test_path_globs_match_the_key_below_the_prefix(tmp_path):
    settings = load_settings(write(tmp_path, VALID))
    assert settings.source("archive").matches("exports/x.json")
    assert not settings.source("archive").matches("imports/x.json")
    assert not settings.source("inbox").matches("sub/part.tmp")


@pytest.mark.parametrize(
    ("source_yaml", "message"),
    [
        (
            "{name: orders, type: s3, bucket: landing, colour: blue}",
            "source 'orders': field 'colour': unknown field",
        ),
        ("{name: orders, type: s3}", "source 'orders': field 'bucket': Field required"),
        (
            "{name: orders, type: s3, bucket: Bad_Bucket}",
            "source 'orders': field 'bucket': 'Bad_Bucket' is not",
        ),
        (
            "{name: orders, type: s3, bucket: b1b, include: ['[abc']}",
            "source 'orders': field 'include': glob '[abc'",
        ),
        ("{name: orders, type: s3, bucket: b1b, include: ['']}", "source 'orders': field 'include"),
        ("{name: orders, type: s3, bucket: b1b, max_object_size: 10 parsecs}", "'10 parsecs' is not a size"),
        ("{name: orders, type: ftp, bucket: b1b}", "source 'orders': field 'type'"),
        ("{name: Orders!, type: s3, bucket: b1b}", "source 'Orders!': field 'name'"),
    ],
)
def test_invalid_source_names_the_source_and_field(tmp_path, source_yaml, message):
    path = write(tmp_path, f"bronze: {{s3: {{bucket: bronze}}}}\nsources:\n  - {source_yaml}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_duplicate_source_names_are_rejected(tmp_path):
    text = "bronze: {s3: {bucket: bronze}}\nsources:\n" + "  - {name: a, type: s3, bucket: bbb}\n" * 2
    with pytest.raises(ConfigError, match="repeated: a"):
        load_settings(write(tmp_path, text))


def test_s3_source_without_bronze_bucket_is_rejected(tmp_path):
    with pytest.raises(ConfigError, match="source 'a' is on S3 but bronze.s3 is not configured"):
        load_settings(write(tmp_path, "sources:\n  - {name: a, type: s3, bucket: bbb}\n"))


@pytest.mark.parametrize("text", ["sources: [", "- just a list", ""])
def test_unreadable_files_get_a_clear_error(tmp_path, text):
    with pytest.raises(ConfigError, match="sources.yaml: "):
        load_settings(write(tmp_path, text))


def test_missing_file_names_the_path(tmp_path):
    with pytest.raises(ConfigError, match="cannot read the sources file"):
        load_settings(tmp_path / "nope.yaml")


@pytest.mark.parametrize(("text", "size"), [(123, 123), ("10MiB", 10 * 2**20), ("1.5 KB", 1500), ("2gb", 2 * 10**9)])
def test_sizes_parse(text, size):
    assert parse_size(text) == size
