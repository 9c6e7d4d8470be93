{# No row of the model has this condition true (a generic "expression is false"). #}
{% test no_rows_where(model, condition, column_name=none) %}
    select *
    from {{ model }}
    where {{ condition }}
{% endtest %}

{#
    No row belongs to a customer who may not be marketed to. `customer_column`
    names the model's customer id column; `hashed` says it holds the SHA-256
    of the id (external_id hashes) rather than the id itself.
#}
{% test no_opted_out_customers(model, customer_column, hashed=false) %}
    select model_rows.*
    from {{ model }} as model_rows
    inner join {{ ref('int_customers_normalized') }} as customers
        on {% if hashed %}customers.external_id_sha256{% else %}customers.customer_id{% endif %}
            = model_rows.{{ customer_column }}
    where not customers.is_marketing_allowed
{% endtest %}
