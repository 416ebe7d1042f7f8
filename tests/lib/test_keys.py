import hashlib
import os
import random

import dagster as dg
import pytest

from ingestion_project.lib.keys import DocumentRef, escape_key, key_bytes, key_hash, shown_key, unescape_key

ODD_KEYS = [
    "orders/2026-11-01.csv",
    "with space/and  double  space.csv",
    "unicode/ünïcødé – 東京 🚀.md",
    "dots/a...b/....c/.....",
    "traversal/../../etc/passwd",
    "../escape.csv",
    "s3://bucket/key.csv",
    "control/\x00\x01\x07\x08\t\n\x0b\x0c\r\x1b\x7f\x85.csv",
    "percent/100%25 real %.csv",
    "list,and[range]|pipe.csv",
    "/leading/slash",
    "trailing/",
    "é" * 512,  # 1,024 UTF-8 bytes, the S3 maximum
    "\x00" * 1024,
]


@pytest.mark.parametrize("key", ODD_KEYS)
def test_odd_s3_keys_round_trip_exactly(key):
    ref = DocumentRef("orders", "landing-bucket", key)
    assert DocumentRef.from_partition_key(ref.partition_key) == ref
    assert unescape_key(escape_key(key)) == key


@pytest.mark.parametrize("key", ODD_KEYS)
def test_escaped_keys_avoid_what_dagster_forbids(key):
    partition_key = DocumentRef("orders", "landing", key).partition_key
    for forbidden in ["...", "\a", "\b", "\f", "\n", "\r", "\t", "\v", "\0"]:
        assert forbidden not in partition_key


def test_ordinary_keys_stay_readable():
    assert DocumentRef("orders", "landing", "orders/ü 1.csv").partition_key == "orders:landing/orders/ü 1.csv"
    assert DocumentRef("notes", "", "2026/a.md").partition_key == "notes:/2026/a.md"


def test_local_source_keys_have_an_empty_bucket():
    ref = DocumentRef.from_partition_key("notes:/a/b.md")
    assert (ref.source, ref.bucket, ref.key) == ("notes", "", "a/b.md")


def test_escaping_is_stable():
    key = "a...b %,x"
    assert escape_key(key) == escape_key(key) == "a..%2Eb %25%2Cx"


@pytest.mark.parametrize("text", ["no-colon", "Orders:landing/x", "orders:landing-no-slash", ":b/k"])
def test_malformed_partition_keys_are_rejected(text):
    with pytest.raises(ValueError, match="not a document partition key"):
        DocumentRef.from_partition_key(text)


def _random_key(rng: random.Random) -> str:
    chars = []
    while True:
        code = rng.choice([rng.randrange(0, 0x80), rng.randrange(0x80, 0xD800), rng.randrange(0xE000, 0x110000)])
        candidate = "".join(chars) + chr(code)
        if len(candidate.encode("utf-8")) > 1024 or (chars and rng.random() < 0.02):
            return "".join(chars) or "k"
        chars.append(chr(code) if rng.random() > 0.2 else rng.choice("./%. "))


def test_random_legal_keys_round_trip_through_a_dagster_instance():
    rng = random.Random(20261122)
    refs = [DocumentRef("src", "bucket", _random_key(rng)) for _ in range(300)]
    partitions = dg.DynamicPartitionsDefinition(name="documents")
    with dg.DagsterInstance.ephemeral() as instance:
        instance.add_dynamic_partitions(partitions.name, [r.partition_key for r in refs])
        stored = instance.get_dynamic_partitions(partitions.name)
    assert {DocumentRef.from_partition_key(k) for k in stored} == set(refs)


# A local file name that is not UTF-8, as os.listdir hands it to Python (surrogateescape).
UNDECODABLE = os.fsdecode(b"caf\xe9-\xff.csv")


def test_a_key_that_is_not_utf8_has_a_valid_partition_key_that_maps_back_to_the_same_bytes():
    ref = DocumentRef("inbox", "", f"in/{UNDECODABLE}")
    assert ref.partition_key == "inbox:/in/caf%E9-%FF.csv"
    ref.partition_key.encode("utf-8")  # valid UTF-8: Dagster, its storage and the UI can carry it
    back = DocumentRef.from_partition_key(ref.partition_key)
    assert back == ref
    assert key_bytes(back.key) == b"in/caf\xe9-\xff.csv" == os.fsencode(back.key)


def test_a_key_that_is_not_utf8_is_shown_readably_and_hashed_by_its_raw_bytes():
    assert shown_key(UNDECODABLE) == "caf\\xe9-\\xff.csv"
    assert shown_key("ünï 東京.csv") == "ünï 東京.csv"
    raw = hashlib.sha256(b"inbox\0\0caf\xe9-\xff.csv").hexdigest()
    assert key_hash("inbox", "", UNDECODABLE) == raw
    # The readable form is text of its own: it never stands for the undecodable name.
    assert key_hash("inbox", "", shown_key(UNDECODABLE)) != raw
    assert key_hash("s", "b", "a.csv") == hashlib.sha256(b"s\0b\0a.csv").hexdigest()


def test_a_literal_percent_sequence_in_a_name_never_collides_with_an_escaped_byte():
    literal = DocumentRef("inbox", "", "caf%E9-%FF.csv")
    undecodable = DocumentRef("inbox", "", UNDECODABLE)
    assert literal.partition_key != undecodable.partition_key
    assert DocumentRef.from_partition_key(literal.partition_key) == literal


def test_a_ledger_row_rebuilds_the_exact_key_from_its_partition_key():
    ref = DocumentRef("inbox", "", UNDECODABLE)
    row = {"source": "inbox", "bucket": "", "object_key": ref.shown_key, "partition_key": ref.partition_key}
    assert DocumentRef.of_row(row) == ref
    # A row whose partition key is not a document's (a database extraction) keeps its object_key.
    table = {"source": "shop", "bucket": "db", "object_key": "public.orders", "partition_key": "shop.orders"}
    assert DocumentRef.of_row(table) == DocumentRef("shop", "db", "public.orders")
