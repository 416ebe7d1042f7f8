{#
    Order-by terms that put an object's current version first. In a bucket, by LastModified: the server sets it
    when an upload completes, so a later upload of a key is never older (ties within its one-second precision fall
    to discovery). In a local folder (bucket ''), by discovery alone: an mtime is whatever the writer set (`cp -p`,
    `touch`, a skewed clock), while the ledger discovers a path's versions one after another as they appear.
    The mtime decides only between local manifests written before they carried `discovery_seq`.
#}
{% macro latest_first(bucket, last_modified_at, discovery_seq) -%}
    case when {{ bucket }} <> '' then {{ last_modified_at }} end desc nulls last,
    {{ discovery_seq }} desc nulls last,
    {{ last_modified_at }} desc nulls last
{%- endmacro %}
