{#
    Typing what a document holds without failing the build. Without a schema contract a column may hold text that
    does not read as its declared type (`12.50 EUR` for an amount): `cast` would fail every build, so staging
    types with `typed_value` (null where the value is empty or does not type) and keeps what did not type in
    `rejected_values`, and the marts hold back every row of a document version that has one (see
    fct_rejected_rows).
#}


{# The bronze value as `data_type`; null when it is null, empty (or only spaces), or does not read as that type. #}
{% macro typed_value(expression, data_type) -%}
    try_cast(nullif(trim(cast({{ expression }} as varchar)), '') as {{ data_type }})
{%- endmacro %}


{#
    A JSON list of `{"column", "value"}` for the values of the row that are present but do not type, as the
    document had them; null when every value typed. `columns` maps a staging column name to
    `[expression, data_type]`.
#}
{% macro rejected_values(columns) -%}
    {%- set checks = [] -%}
    {%- for name, (expression, data_type) in columns.items() -%}
        {%- set text = "nullif(trim(cast(" ~ expression ~ " as varchar)), '')" -%}
        {%- do checks.append(
            "case when " ~ text ~ " is not null and " ~ typed_value(expression, data_type) ~ " is null"
            ~ " then {'column': " ~ sql_string(name) ~ ", 'value': " ~ text ~ "} end"
        ) -%}
    {%- endfor -%}
    nullif(to_json(list_filter([{{ checks | join(', ') }}], lambda entry: entry is not null)), '[]')
{%- endmacro %}
