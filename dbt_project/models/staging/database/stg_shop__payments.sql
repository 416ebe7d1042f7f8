{#
    The current rows of the shop database's payments table: every extraction since the newest full one, and of
    each payment (its primary key, id) the row of the newest extraction — an update after the watermark lands
    again, a watermark reset or a watermark_lag reads rows again: each payment is one row all the same. A table,
    rebuilt from those extractions each build.
#}
{%- set files = database_extraction_files('shop', 'public.payments') %}

with

extractions as (

    select * from {{ ref('stg_bronze__documents') }}
    where source = 'shop'

),

source as (

    select * from {{ bronze_files(source('database_shop', 'payments'), files) }}

),

ranked as (

    select
        extractions.document_version_id,
        cast(source.id as bigint) as payment_id,
        trim(cast(source.order_id as varchar)) as order_id,
        cast(source.amount as decimal(12, 2)) as amount,
        lower(trim(cast(source.status as varchar))) as status,
        cast(source.updated_at as timestamp with time zone) as updated_at,
        source._etag as extraction_id,
        cast(source._ingested_at as timestamp with time zone) as extracted_at,
        -- Values the extraction could not type (NaN in a numeric column), as JSON; their column is NULL.
        source._rescued_data as rescued_data,
        row_number() over (
            partition by source.id order by source._etag desc, source._row_number desc
        ) as newest_first

    from source
    inner join extractions
        on source._bronze_file = extractions.data_path

)

select * exclude (newest_first) from ranked
where newest_first = 1
