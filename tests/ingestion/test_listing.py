"""Listing modes on the local S3 server: incremental listings read only what is new, a full listing recovers
what they miss, and a full listing longer than the tick's budget resumes where it stopped."""

from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from itertools import count

import pytest

from ingestion_project.ingestion import discovery
from ingestion_project.ingestion.discovery import ListingState, discover


@pytest.fixture
def landing(fresh_bucket, s3_client):
    def put(*keys: str, body: bytes = b"id\n1\n") -> None:
        with ThreadPoolExecutor(8) as pool:
            list(pool.map(lambda k: s3_client.put_object(Bucket=fresh_bucket, Key=k, Body=body), keys))

    return fresh_bucket, put


def setup(landing, write_sources, resources_for, **listing):
    bucket, _ = landing
    source = {"name": "events", "type": "s3", "bucket": bucket, "prefix": "events/", "listing": listing}
    resources = resources_for(write_sources([source]))
    ingestion = resources["ingestion"]
    book = resources["ledger"].ledger()
    return lambda states, **kw: discover(ingestion.settings(), ingestion.source_store, book, states, **kw)


def keys_of(found) -> list[str]:
    return sorted(v.ref.key for v in found.new)


def test_incremental_listing_reads_only_keys_after_the_watermark(landing, write_sources, resources_for, s3_env):
    _, put = landing
    put(*(f"events/2026-11-{day:02d}/a.csv" for day in range(1, 21)))
    tick = setup(landing, write_sources, resources_for, mode="incremental", full_every="1d")
    first = tick({})  # no full listing yet: the first tick lists everything
    assert len(first.new) == first.listed["events"] == 20
    assert first.listing["events"].watermark == "events/2026-11-20/a.csv"

    put("events/2026-11-21/a.csv", "events/2026-11-22/a.csv")
    second = tick(first.listing)
    assert second.listed["events"] == 2  # not 22: the 20 known keys are not listed again
    assert keys_of(second) == ["events/2026-11-21/a.csv", "events/2026-11-22/a.csv"]
    assert tick(second.listing).listed["events"] == 0


def test_the_periodic_full_listing_finds_what_incremental_ticks_miss(landing, write_sources, resources_for, s3_env):
    _, put = landing
    put("events/2026-11-01/a.csv", "events/2026-11-05/a.csv")
    tick = setup(landing, write_sources, resources_for, mode="incremental", full_every="1h")
    state = tick({}).listing

    put("events/2026-11-03/late.csv")  # arrives late: sorts before the watermark
    put("events/2026-11-01/a.csv", body=b"id\n2\n")  # an old key overwritten
    put("events/2026-11-06/a.csv")
    incremental = tick(state)
    assert keys_of(incremental) == ["events/2026-11-06/a.csv"]

    # An hour later the full listing is due: it finds the late key and the new version of the old one.
    aged = {
        "events": replace(incremental.listing["events"], full_at=(datetime.now(UTC) - timedelta(hours=2)).isoformat())
    }
    full = tick(aged)
    assert keys_of(full) == ["events/2026-11-01/a.csv", "events/2026-11-03/late.csv"]
    assert full.listed["events"] == 4
    assert tick(full.listing).listed["events"] == 0  # and the next tick is incremental again


def test_a_full_listing_over_the_budget_resumes_next_tick_and_finds_every_key_once(
    landing, write_sources, resources_for, s3_env, monkeypatch
):
    _, put = landing
    keys = [f"events/k{i:03d}.csv" for i in range(35)]
    put(*keys)
    monkeypatch.setattr(discovery, "PAGE_SIZE", 10)
    tick = setup(landing, write_sources, resources_for, mode="full")
    ticks = count()
    # Each clock reading is a minute later: every page overruns the 20 s budget, so each tick lists one page.
    clock = lambda: next(ticks) * 60.0  # noqa: E731

    state, found, rounds = {}, [], 0
    while True:
        rounds += 1
        result = tick(state, clock=clock)
        found += keys_of(result)
        state = result.listing
        if not result.unfinished:
            break
        assert state["events"].in_full and state["events"].resume
        assert rounds < 10
    assert rounds == 4
    assert found == keys
    assert state["events"].full_at is not None and state["events"].resume is None
    assert len(str(state["events"].as_dict())) < 200  # where to resume, not what was listed


def test_a_new_version_of_an_old_key_is_found_by_every_full_listing(landing, write_sources, resources_for, s3_env):
    _, put = landing
    put("events/a.csv", "events/b.csv")
    tick = setup(landing, write_sources, resources_for, mode="full")
    state = tick({}).listing
    put("events/a.csv", body=b"id\n3\n")
    assert keys_of(tick(state)) == ["events/a.csv"]


def test_listing_state_from_a_cursor_of_an_older_version_starts_over():
    assert ListingState.of(None) == ListingState()
    assert ListingState.of({"watermark": "k", "other": 1}) == ListingState(watermark="k")
