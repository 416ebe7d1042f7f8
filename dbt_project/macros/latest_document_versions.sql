{#
    Rows of the latest committed version of each document in a bronze data relation.

    A version is committed once its manifest exists (ingestion writes the data file first and the manifest last),
    so a data file whose manifest never landed — its document failed — is ignored. A re-uploaded document
    replaces every row of its earlier versions.
#}
{% macro latest_document_versions(relation) %}
    select data.*
    from {{ relation }} as data
    where exists (
        select 1
        from {{ bronze_relation(source('bronze', 'documents')) }} as manifest
        where manifest.source = data._source
          and manifest.object_key = data._object_key
          and manifest.etag = data._etag
    )
    qualify dense_rank() over (
        partition by data._source, data._object_key
        order by data._ingested_at desc, data._etag desc
    ) = 1
{% endmacro %}
