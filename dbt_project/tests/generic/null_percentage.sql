{#
    The percentage of rows whose column is null, rounded up to a whole percent, as the test's failure count
    (`fail_calc`; dbt counts failures in integers), so that `warn_if` and `error_if` thresholds read as percentages:
    e.g. warn above 0 %, fail above 5 %. No row (a pass) when nothing is null.
#}
{% test null_percentage(model, column_name) %}

{{ config(fail_calc='cast(ceil(coalesce(max(null_percent), 0)) as integer)') }}

select
    round(100.0 * count(*) filter (where {{ column_name }} is null) / count(*), 2) as null_percent,
    count(*) filter (where {{ column_name }} is null) as null_rows,
    count(*) as total_rows
from {{ model }}
having count(*) filter (where {{ column_name }} is null) > 0

{% endtest %}
