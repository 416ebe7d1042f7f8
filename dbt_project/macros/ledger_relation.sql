{#
    Renders a `ledger` source as a relation expression for a `from` clause: the table itself when the warehouse
    has it, or else an empty relation typed from the columns declared on the source.

    The `ingestion_ledger` asset snapshots the processed-files ledger and the dead-letter queue into the
    warehouse right before a build; a fresh warehouse, or a build run without it, has no `ledger` tables yet and
    must still build. The table is looked up at execution time, so the next build reads it as soon as it exists.
#}
{% macro ledger_relation(source_relation) %}
    {%- if not execute -%}
        {{ return(source_relation) }}
    {%- endif -%}

    {%- set existing = adapter.get_relation(
        database=source_relation.database,
        schema=source_relation.schema,
        identifier=source_relation.identifier
    ) -%}
    {%- if existing is not none -%}
        {{ return(source_relation) }}
    {%- endif -%}
    {{ return(empty_source_relation(source_node(source_relation))) }}
{% endmacro %}
