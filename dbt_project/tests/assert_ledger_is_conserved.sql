-- Every document version the ledger discovered is in exactly one state: the sources that are not balanced
-- (fct_ingestion_conservation.is_balanced), or where a version has more than one ledger row (one row in SUCCESS and
-- one in an unknown state would still add up).

select * from {{ ref('fct_ingestion_conservation') }}
where not is_balanced or duplicated_version_count > 0
