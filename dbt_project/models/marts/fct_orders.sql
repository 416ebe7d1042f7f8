{#
    Incremental on the order: a build recomputes only the orders of documents that have a version it has not
    seen — those in the new version, and those of the versions it replaces — from the current version of every
    document. An order that no current version holds any more comes out as a placeholder (no etag): the
    delete+insert removes its old row and the post-hook the placeholder.
#}
{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        unique_key='order_id',
        post_hook="delete from {{ this }} where etag is null"
    )
}}

with

document_versions as (

    select * from {{ ref('fct_document_versions') }}

),

orders as (

    select * from {{ ref('stg_bronze__orders') }}

),

{% if is_incremental() %}

changed_documents as (

    select distinct source, object_key
    from document_versions
    where bronze_dataset = 'tables/orders'
        and loaded_at > (select coalesce(max(loaded_at), '-infinity') from {{ this }})

),

affected_orders as (

    select distinct orders.order_id
    from orders
    inner join changed_documents
        using (source, object_key)

),

{% endif %}

current_orders as (

    select
        orders.*,
        document_versions.bucket as document_bucket,
        document_versions.last_modified_at as document_modified_at,
        document_versions.discovery_seq as document_discovery_seq

    from orders
    inner join document_versions
        on orders.document_version_id = document_versions.document_version_id
    where document_versions.is_latest_version
        -- A version with a value that did not type is held back whole (fct_rejected_rows shows it).
        and not coalesce(orders.is_rejected_version, false)
        {%- if is_incremental() %}
        and orders.order_id in (select order_id from affected_orders)
        {%- endif %}

),

deduplicated as (

    -- An order present in several current documents: the row of the latest document (by its own order, as
    -- fct_document_versions decides it) wins.
    select * from current_orders
    qualify row_number() over (
        partition by order_id
        order by
            {{ latest_first('document_bucket', 'document_modified_at', 'document_discovery_seq') }},
            object_key desc,
            source_row_number desc
    ) = 1

),

final as (

    select
        order_id,
        customer_id,
        order_date,
        status,
        amount,
        currency,
        status not in ('cancelled', 'returned') as is_revenue_eligible,
        source,
        object_key,
        etag,
        ingested_at,
        loaded_at

    from deduplicated

    {%- if is_incremental() %}

    union all by name

    select order_id
    from affected_orders
    where order_id not in (select order_id from deduplicated)
    {%- endif %}

)

select * from final
