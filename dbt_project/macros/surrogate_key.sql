{#
    md5 of the columns joined with '|' (nulls as empty strings): a stable surrogate key without dbt_utils.
#}
{% macro surrogate_key(column_names) -%}
    md5(concat_ws('|'
        {%- for column_name in column_names -%}
        , coalesce(cast({{ column_name }} as varchar), '')
        {%- endfor -%}
    ))
{%- endmacro %}
