"""Quality gates as asset checks: one per source with `quality:` rules, on raw_documents.

The rules are enforced at ingestion (a breaking document never lands; its dead letter names the rule). The check
shows, per source, whether documents are being held back by them right now: it fails (a warning) while the source
has open quality dead letters, naming the documents and the rules they broke. It runs with the hourly source
checks (job `check_source_freshness`) and from the asset's Checks tab.
"""

from collections import Counter

import dagster as dg

from ingestion_project.config import Settings
from ingestion_project.core.resources import LedgerResource
from ingestion_project.ingestion.assets import raw_documents
from ingestion_project.lib.quality import QualityRules

QUALITY = "quality"


def quality_check_name(source: str) -> str:
    return f"{source}_meets_quality_rules"


def quality_checks(settings: Settings) -> list[dg.AssetChecksDefinition]:
    return [_check(source.name, source.quality.rules()) for source in settings.sources if source.quality.rules().active]


def _rule_of(message: str) -> str:
    # QualityError messages begin "quality rule <rule>: ...".
    return message.removeprefix("quality rule ").split(":", 1)[0] if message.startswith("quality rule ") else "?"


def _check(source: str, rules: QualityRules) -> dg.AssetChecksDefinition:
    declared = {
        "required_columns": list(rules.required_columns),
        "not_null": list(rules.not_null),
        "unique": [list(key) for key in rules.unique],
        "accepted_values": {k: list(v) for k, v in rules.accepted_values.items()},
        "ranges": {k: list(v) for k, v in rules.ranges.items()},
        "min_rows": rules.min_rows,
    }

    @dg.asset_check(
        asset=raw_documents,
        name=quality_check_name(source),
        description=f"No document of {source} is held back by its quality rules (open quality dead letters).",
    )
    def meets_quality_rules(ledger: LedgerResource) -> dg.AssetCheckResult:
        letters = [
            letter
            for letter in ledger.ledger().open_dead_letters(limit=10_000, source=source)
            if letter["error_class"] == QUALITY
        ]
        by_rule = Counter(_rule_of(letter["error_message"] or "") for letter in letters)
        return dg.AssetCheckResult(
            passed=not letters,
            severity=dg.AssetCheckSeverity.WARN,
            description=(
                f"{len(letters)} document(s) of {source} broke a quality rule: "
                + ", ".join(f"{rule} ×{count}" for rule, count in by_rule.most_common())
                if letters
                else f"Every document of {source} met its quality rules."
            ),
            metadata={
                "rules": dg.MetadataValue.json({k: v for k, v in declared.items() if v}),
                "held_back": dg.MetadataValue.int(len(letters)),
                "by_rule": dg.MetadataValue.json(dict(by_rule)),
                "documents": dg.MetadataValue.json(
                    {letter["partition_key"]: letter["error_message"] for letter in letters[:20]}
                ),
            },
        )

    return meets_quality_rules
