{#
    The graph node of the source a `source()` relation points at; fails unless exactly one source matches.
#}
{% macro source_node(source_relation) %}
    {%- set nodes = graph.sources.values()
        | selectattr('relation_name', 'equalto', source_relation.render())
        | list -%}
    {%- if nodes | length != 1 -%}
        {{ exceptions.raise_compiler_error("expected a source() relation, got " ~ source_relation.render()) }}
    {%- endif -%}
    {{ return(nodes[0]) }}
{% endmacro %}


{#
    An empty relation typed from the columns declared on a source node: what a model reads while the data behind
    the source does not exist yet, so that it still builds with the right schema.
#}
{% macro empty_source_relation(node) %}
    {%- for column in node.columns.values() if not column.data_type -%}
        {{ exceptions.raise_compiler_error(
            "source " ~ node.source_name ~ "." ~ node.name ~ ": column " ~ column.name ~ " needs a data_type"
        ) }}
    {%- endfor -%}
    (
        select
            {%- for column in node.columns.values() %}
            cast(null as {{ column.data_type }}) as {{ adapter.quote(column.name) }}{{ "," if not loop.last }}
            {%- endfor %}
        where false
    )
{%- endmacro %}
