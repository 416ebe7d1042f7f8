import textwrap

import pytest

from ingestion_project.config import ConfigError, load_settings, parse_size
from ingestion_project.lib.limits import DocumentLimits


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
        ("{name: orders, type: s3, bucket: b1b, limits: {columns: 0}}", "source 'orders': field 'limits.columns'"),
        ("{name: orders, type: s3, bucket: b1b, limits: {line_length: 1 mile}}", "field 'limits.line_length'"),
        ("{name: orders, type: s3, bucket: b1b, limits: {rowz: 5}}", "field 'limits.rowz': unknown field"),
        ("{name: orders, type: s3, bucket: b1b, listing: {mode: sometimes}}", "field 'listing.mode'"),
        ("{name: orders, type: s3, bucket: b1b, listing: {full_every: soon}}", "'soon' is not a duration"),
        ("{name: Orders!, type: s3, bucket: b1b}", "source 'Orders!': field 'name'"),
        ("{name: orders, type: s3, bucket: b1b, schema: {mode: rescue}}", "mode rescue needs the columns it expects"),
        ("{name: orders, type: s3, bucket: b1b, schema: {mode: strict}}", "field 'schema.mode'"),
        ("{name: orders, type: s3, bucket: b1b, schema: {columns: {amount: money}}}", "'money' is not a column type"),
        ("{name: orders, type: s3, bucket: b1b, schema: {columns: {_rescued_data: string}}}", "is reserved"),
        ("{name: orders, type: s3, bucket: b1b, schema: {columns: {a: string, A: int}}}", "declared twice"),
    ],
)
def test_invalid_source_names_the_source_and_field(tmp_path, source_yaml, message):
    path = write(tmp_path, f"bronze: {{s3: {{bucket: bronze}}}}\nsources:\n  - {source_yaml}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert message in str(error.value)
    assert str(path) in str(error.value)


def test_a_schema_contract_is_read_per_source(tmp_path):
    path = write(
        tmp_path,
        """
        bronze: {s3: {bucket: bronze}}
        sources:
          - name: orders
            type: s3
            bucket: landing
            schema: {mode: rescue, columns: {order_id: string, amount: "decimal(12,2)", note: }}
          - {name: other, type: s3, bucket: landing}
        """,
    )
    settings = load_settings(path)
    contract = settings.source("orders").schema_.contract()
    assert (str(contract.mode), dict(contract.columns)) == (
        "rescue",
        {"order_id": "string", "amount": "decimal(12,2)", "note": None},
    )
    assert not settings.source("other").schema_.contract().active  # no contract: documents land as they came


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


def test_run_model_settings_default_to_the_documented_values(tmp_path):
    settings = load_settings(write(tmp_path, VALID))
    assert (settings.lease_seconds, settings.max_runs_per_tick, settings.max_in_run_backoff_seconds) == (60, 8, 10)
    for source in settings.sources:
        assert (source.batch_size.documents, source.batch_size.max_bytes) == (500, 256 * 2**20)
        assert source.max_attempts == 3


def test_batch_size_and_run_limits_are_read_per_source_and_for_the_file(tmp_path):
    text = """
        bronze: {s3: {bucket: bronze}}
        lease_seconds: 30
        max_runs_per_tick: 2
        sources:
          - {name: big, type: s3, bucket: bbb, batch_size: {documents: 1000, bytes: 1GiB}, max_attempts: 5}
          - {name: small, type: s3, bucket: ccc, batch_size: {documents: 10}}
    """
    settings = load_settings(write(tmp_path, text))
    assert (settings.lease_seconds, settings.max_runs_per_tick) == (30, 2)
    big, small = settings.source("big"), settings.source("small")
    assert (big.batch_size.documents, big.batch_size.max_bytes, big.max_attempts) == (1000, 2**30, 5)
    assert (small.batch_size.documents, small.batch_size.max_bytes) == (10, 256 * 2**20)


@pytest.mark.parametrize(
    ("top_level", "source_fields", "message"),
    [
        ("", "batch_size: {documents: 0}", "source 'a': field 'batch_size.documents'"),
        ("", "batch_size: {bytes: lots}", "'lots' is not a size"),
        ("", "max_attempts: 0", "source 'a': field 'max_attempts'"),
        # Replaced by leases: a file still setting it is told so rather than silently ignored.
        ("processing_timeout_seconds: 600", "", "field 'processing_timeout_seconds': unknown field"),
    ],
)
def test_invalid_run_model_settings_name_the_field(tmp_path, top_level, source_fields, message):
    source = "{name: a, type: s3, bucket: bbb" + (f", {source_fields}" if source_fields else "") + "}"
    path = write(tmp_path, f"bronze: {{s3: {{bucket: bronze}}}}\n{top_level}\nsources:\n  - {source}\n")
    with pytest.raises(ConfigError) as error:
        load_settings(path)
    assert message in str(error.value)


def test_limits_default_and_are_set_per_source(tmp_path):
    path = write(
        tmp_path,
        """
        bronze: {s3: {bucket: bronze}}
        run_memory_limit: 2GiB
        sources:
          - {name: plain, type: s3, bucket: landing}
          - name: big
            type: s3
            bucket: landing
            limits: {object_size: 4GiB, rows: 1000, line_length: 1MiB, nesting_depth: 8}
        """,
    )
    settings = load_settings(path)
    assert settings.run_memory_bytes == 2 * 2**30
    plain, big = (settings.source(name).document_limits() for name in ("plain", "big"))
    assert plain == DocumentLimits()
    assert (big.object_bytes, big.rows, big.line_bytes, big.nesting_depth) == (4 * 2**30, 1000, 2**20, 8)
    assert (big.columns, big.decompressed_bytes) == (DocumentLimits().columns, DocumentLimits().decompressed_bytes)


def test_source_level_sizes_of_earlier_versions_still_set_the_limits(tmp_path):
    settings = load_settings(write(tmp_path, VALID))
    assert settings.source("orders").document_limits().object_bytes == 5 * 2**20
    assert settings.source("orders").max_object_bytes == 5 * 2**20


DATABASES = """
    bronze: {s3: {bucket: bronze}}
    sources:
      - {name: orders, type: s3, bucket: landing}
    databases:
      - name: shop
        type: postgres
        url_env: SHOP_DATABASE_URL
        tables:
          - {name: payments, table: public.payments, load: incremental, watermark: updated_at}
          - {name: big_orders, query: "select * from orders where amount > 100"}
"""


def test_database_sources_are_read_with_their_tables(tmp_path, monkeypatch):
    settings = load_settings(write(tmp_path, DATABASES))
    shop = settings.database("shop")
    assert [(t.name, t.label, t.load) for t in shop.tables] == [
        ("payments", "public.payments", "incremental"),
        ("big_orders", "query:big_orders", "full"),
    ]
    assert settings.any_source("shop") is shop and settings.has_database("shop") and not settings.has_source("shop")
    assert settings.bronze_roots() == ["s3://bronze/bronze"]
    monkeypatch.delenv("SHOP_DATABASE_URL", raising=False)
    with pytest.raises(ConfigError, match="the environment variable SHOP_DATABASE_URL is not set"):
        shop.url()
    monkeypatch.setenv("SHOP_DATABASE_URL", "postgresql://u@127.0.0.1/shop")
    assert shop.url() == "postgresql://u@127.0.0.1/shop"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ("{name: t, load: incremental}", "an incremental load needs its watermark column"),
        ("{name: t, table: a, query: 'select 1'}", "give a table or a query, not both"),
        ("{name: t, table: 'a; drop table b'}", "is not a [schema.]table name"),
        ("{name: t, load: sometimes}", "field 'tables.0.load'"),
    ],
)
def test_invalid_database_tables_name_the_source_and_field(tmp_path, table, message):
    text = DATABASES.split("        tables:")[0] + f"        tables: [{table}]\n"
    with pytest.raises(ConfigError) as error:
        load_settings(write(tmp_path, text))
    assert "source 'shop'" in str(error.value) and message in str(error.value)


def test_a_database_source_cannot_share_a_file_sources_name(tmp_path):
    text = DATABASES.replace("name: shop", "name: orders")
    with pytest.raises(ConfigError, match="source names must be unique; repeated: orders"):
        load_settings(write(tmp_path, text))
