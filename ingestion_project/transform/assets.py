"""The warehouse dbt models as Dagster assets downstream of `raw_documents`; dbt tests become checks."""

import functools
import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import dagster as dg
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets
from pydantic import Field

from ingestion_project.config import Settings, bronze_roots
from ingestion_project.core.automation import STAGED_MANIFESTS_CONDITION, WAREHOUSE_MODEL_CONDITION
from ingestion_project.core.keys import (
    DBT_SOURCE_PREFIX,
    INGESTION_LEDGER,
    RAW_DOCUMENTS,
    WAREHOUSE_POOL,
    database_asset_keys,
    table_asset_key,
)
from ingestion_project.transform.project import ensure_warehouse_dir, prepared_dbt_project, prune_invocation_targets

BRONZE_SOURCE = "bronze"
LEDGER_SOURCE = "ledger"
# Each dbt source is one Dagster asset: the tables under it are written together by that asset.
SOURCE_ASSET_KEYS = {BRONZE_SOURCE: RAW_DOCUMENTS, LEDGER_SOURCE: INGESTION_LEDGER}
WAREHOUSE_GROUP = "warehouse"


class WarehouseTranslator(DagsterDbtTranslator):
    """`bronze` dbt sources are the Parquet of `raw_documents`, `ledger` sources the `ingestion_ledger` snapshot;
    a dbt source named after a database source of the sources file (e.g. `shop`) holds its tables, each the asset
    `database/<source>/<table>`.

    Every model is in the `warehouse` group and built by declarative automation (ingestion_project.core.automation).
    """

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> dg.AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            name = dbt_resource_props["source_name"]
            if name in SOURCE_ASSET_KEYS:
                return SOURCE_ASSET_KEYS[name]
            if name.startswith(DBT_SOURCE_PREFIX):
                return table_asset_key(name.removeprefix(DBT_SOURCE_PREFIX), dbt_resource_props["name"])
        return super().get_asset_key(dbt_resource_props)

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        return WAREHOUSE_GROUP

    def get_automation_condition(self, dbt_resource_props: Mapping[str, Any]) -> dg.AutomationCondition | None:
        if dbt_resource_props.get("name") == STAGED_MANIFESTS.path[-1]:
            return STAGED_MANIFESTS_CONDITION
        return WAREHOUSE_MODEL_CONDITION


class WarehouseBuildConfig(dg.Config):
    """Run config of a warehouse build."""

    bronze_roots: list[str] | None = Field(
        default=None, description="Bronze roots to read (URIs or local paths); by default the sources file's."
    )
    full_refresh: bool = Field(
        default=False,
        description=(
            "Rebuild the incremental models from all of bronze (`dbt build --full-refresh`) instead of reading only "
            "what is new: after bronze was rewritten or removed by hand, or a model's logic changed."
        ),
    )


def dbt_build_args(roots: Sequence[str], *, full_refresh: bool = False) -> list[str]:
    """The `dbt build` arguments that read bronze from `roots` (all of it again with ``full_refresh``)."""
    return ["build", "--vars", json.dumps({"bronze_roots": list(roots)}), *(["--full-refresh"] if full_refresh else [])]


@functools.cache
def define_warehouse_dbt_assets() -> dg.AssetsDefinition:
    """The dbt models as one multi-asset, read from the manifest (prepared first if out of date).

    Built when the warehouse definitions are, not at import: reading the manifest takes a parsed project.
    """
    project = prepared_dbt_project()

    @dbt_assets(
        manifest=project.manifest_path,
        project=project,
        pool=WAREHOUSE_POOL,
        dagster_dbt_translator=WarehouseTranslator(
            settings=DagsterDbtTranslatorSettings(enable_duplicate_source_asset_keys=True)
        ),
    )
    def warehouse_dbt_assets(context: dg.AssetExecutionContext, dbt: DbtCliResource, config: WarehouseBuildConfig):
        """dbt build of the staging tables and marts: incremental, over what is new under every bronze root."""
        roots = config.bronze_roots if config.bronze_roots is not None else bronze_roots()
        ensure_warehouse_dir()
        try:
            yield from dbt.cli(dbt_build_args(roots, full_refresh=config.full_refresh), context=context).stream()
            yield from source_freshness(context, dbt, roots)
        finally:
            removed = prune_invocation_targets(Path(project.project_dir) / "target")
            if removed:
                context.log.debug(f"Removed the dbt target directories of {len(removed)} older invocation(s)")

    return warehouse_dbt_assets


# The staged manifests: the documents' and the database extractions' alike (both write manifests under bronze).
STAGED_MANIFESTS = dg.AssetKey("stg_bronze__documents")


def warehouse_dbt_assets_for(settings: Settings) -> dg.AssetsDefinition:
    """The dbt models, with the staged manifests also downstream of the database tables of ``settings``: dbt reads
    them all from one `bronze.documents` source, which stands for `raw_documents` alone."""
    assets = define_warehouse_dbt_assets()
    tables = database_asset_keys(settings)
    if not tables:
        return assets
    return assets.map_asset_specs(
        lambda spec: spec.replace_attributes(deps=[*spec.deps, *tables]) if spec.key == STAGED_MANIFESTS else spec
    )


FRESHNESS_STATUS = {"pass": "fresh", "warn": "late (warn_after)", "error": "late (error_after)"}


def source_freshness(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, roots: Sequence[str]
) -> Iterator[dg.AssetObservation]:
    """`dbt source freshness` after the build, each source's result an observation of the asset behind it.

    Stale sources do not fail the build (dbt exits non-zero for them): they are logged as warnings and shown on
    the source's asset (`raw_documents`, `ingestion_ledger`) with how old its newest row is.
    """
    project = prepared_dbt_project()
    target = Path(project.project_dir) / "target" / f"freshness-{context.run.run_id[:8]}"
    args = ["source", "freshness", "--vars", json.dumps({"bronze_roots": list(roots)})]
    invocation = dbt.cli(args, raise_on_error=False, manifest=project.manifest_path, target_path=target)
    invocation.wait()
    try:
        results = invocation.get_artifact("sources.json")["results"]
    except FileNotFoundError:
        context.log.warning(f"dbt source freshness wrote no results: {invocation.get_error()}")
        return
    translator = WarehouseTranslator()
    nodes = invocation.get_artifact("manifest.json")["sources"]
    for result in results:
        node = nodes[result["unique_id"]]
        status = FRESHNESS_STATUS.get(result["status"], result["status"])
        name = f"{node['source_name']}.{node['name']}"
        if result["status"] != "pass":
            context.log.warning(f"dbt source {name} is {status}: {result.get('error') or result.get('message') or ''}")
        yield dg.AssetObservation(
            asset_key=translator.get_asset_key(node),
            metadata={
                "dbt_source": name,
                "freshness": status,
                "max_loaded_at": str(result.get("max_loaded_at") or ""),
                "age_seconds": dg.MetadataValue.float(float(result.get("max_loaded_at_time_ago_in_s") or 0)),
            },
        )


def __getattr__(name: str) -> dg.AssetsDefinition:
    # `from ingestion_project.transform.assets import warehouse_dbt_assets` (the tests) builds on first use.
    if name == "warehouse_dbt_assets":
        return define_warehouse_dbt_assets()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
