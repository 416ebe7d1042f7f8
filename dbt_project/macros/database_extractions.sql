{#
    Data files of the extractions of one table of a database source that have rows, from the newest full
    extraction on (a full extraction is a snapshot of the whole table; incremental ones add to it). Extraction ids
    (the `etag`) begin with when the extraction started, so they sort in the order extractions ran.
#}
{% macro database_extraction_files(source_name, ledger_key) %}
    {%- if not execute -%}
        {{ return([]) }}
    {%- endif -%}
    {%- set query -%}
        with extractions as (
            select etag, data_path, record_count
            from {{ ref('stg_bronze__documents') }}
            where source = {{ sql_string(source_name) }} and object_key = {{ sql_string(ledger_key) }}
        )
        select data_path
        from extractions
        where record_count > 0
            and etag >= coalesce((select max(etag) from extractions where etag like '%-full-%'), '')
        order by etag
    {%- endset -%}
    {{ return(run_query(query).columns[0].values() | list) }}
{% endmacro %}
