with

source as (

    select * from {{ bronze_relation(source('bronze', 'text_chunks')) }}

),

renamed as (

    select
        {{ surrogate_key(['_source', '_object_key', '_etag', 'chunk_index']) }} as text_chunk_id,
        cast(chunk_index as bigint) as chunk_index,
        "text" as chunk_text,
        cast(char_start as bigint) as char_start,
        cast(char_end as bigint) as char_end,
        _source as source,
        _object_key as object_key,
        _etag as etag,
        _sha256 as sha256,
        cast(_ingested_at as timestamp with time zone) as ingested_at

    from source

),

deduplicated as (

    -- The same version listed under two roots counts once.
    select * from renamed
    qualify row_number() over (partition by text_chunk_id order by ingested_at desc) = 1

)

select * from deduplicated
