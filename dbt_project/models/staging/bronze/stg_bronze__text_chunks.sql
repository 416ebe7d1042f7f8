{{ config(materialized='incremental', incremental_strategy='append') }}

{%- set files = new_bronze_versions('text', this if is_incremental() else none) %}

with

documents as (

    select * from {{ ref('stg_bronze__documents') }}

),

source as (

    -- Only the data files of versions no earlier build has read.
    select * from {{ bronze_files(source('bronze', 'text_chunks'), files) }}

),

renamed as (

    select
        {{ surrogate_key(['source._source', 'source._object_key', 'source._etag', 'source.chunk_index']) }}
            as text_chunk_id,
        documents.document_version_id,
        cast(source.chunk_index as bigint) as chunk_index,
        source."text" as chunk_text,
        cast(source.char_start as bigint) as char_start,
        cast(source.char_end as bigint) as char_end,
        source._source as source,
        source._object_key as object_key,
        source._etag as etag,
        source._sha256 as sha256,
        cast(source._ingested_at as timestamp with time zone) as ingested_at,
        documents.loaded_at

    from source
    inner join documents
        on source._bronze_file = documents.data_path

)

select * from renamed
