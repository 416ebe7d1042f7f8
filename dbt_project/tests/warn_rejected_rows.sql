{{ config(severity='warn') }}

-- Values that did not type: their document versions are held back from the marts until a corrected version lands.
-- A warning, never a failed build: see fct_rejected_rows.

select * from {{ ref('fct_rejected_rows') }}
