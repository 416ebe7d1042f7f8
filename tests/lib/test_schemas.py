from ingestion_project.lib.schemas import diff, fingerprint

ORDERS = [{"name": "order_id", "type": "string"}, {"name": "amount", "type": "double"}]


def test_the_first_schema_of_a_source_is_marked_first():
    change = diff(None, ORDERS)
    assert change.first and not change.changed
    assert change.describe() == "first schema of the source"


def test_added_removed_and_retyped_columns_are_named():
    drifted = [{"name": "amount", "type": "string"}, {"name": "tip", "type": "double"}]
    change = diff(ORDERS, drifted)
    assert (change.added, change.removed) == (["tip"], ["order_id"])
    assert change.retyped == [{"name": "amount", "from": "double", "to": "string"}]
    assert change.describe() == "+tip; -order_id; amount: double → string"


def test_the_same_columns_are_unchanged_and_order_changes_the_fingerprint_only():
    assert diff(ORDERS, list(ORDERS)).describe() == "unchanged"
    assert fingerprint(ORDERS) == fingerprint(list(ORDERS))
    assert fingerprint(ORDERS) != fingerprint(list(reversed(ORDERS)))
    assert not diff(ORDERS, list(reversed(ORDERS))).changed
