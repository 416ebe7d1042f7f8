{#
    Rows of the latest committed version of each document in a bronze data relation, with the document's
    `_document_modified_at` and `_document_discovery_seq` beside them.

    A version is committed once its manifest exists (ingestion writes the data file first and the manifest last),
    so a data file whose manifest never landed — its document failed — is ignored. The latest version is the
    latest by the object's own order: its LastModified, then its discovery order; never by when ingestion
    finished, so a large old version that lands after a corrected new one does not replace it.
#}
{% macro latest_document_versions(relation) %}
    select
        data.*,
        manifest.last_modified_at as _document_modified_at,
        manifest.discovery_seq as _document_discovery_seq
    from {{ relation }} as data
    inner join {{ ref('stg_bronze__documents') }} as manifest
        on manifest.source = data._source
        and manifest.object_key = data._object_key
        and manifest.etag = data._etag
    qualify dense_rank() over (
        partition by data._source, data._object_key
        order by manifest.last_modified_at desc nulls last, manifest.discovery_seq desc nulls last, data._etag desc
    ) = 1
{% endmacro %}
