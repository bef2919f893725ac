"""The one read of an order's row (with its warehouse code) and its warehouse-scope check."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from cloud.orders.order_rows import order_change, order_in_scope, order_row
from cloud.storage import schema
from dockside.errors import NotFound
from dockside.sync import ChangeKind
from tests.cloud.conftest import RunningCloud, order


@pytest.fixture
def two_warehouses(cloud: RunningCloud) -> tuple[RunningCloud, int]:
    cloud.put_warehouse("WH1")
    cloud.put_warehouse("WH2")
    cloud.ingest(order("R-1"), order("R-2", warehouse="WH2"))
    with cloud.store.read() as conn:
        tenant_id = int(
            conn.execute(
                select(schema.orders.c.tenant_id).where(schema.orders.c.order_ref == "R-1")
            ).scalar_one()
        )
    return cloud, tenant_id


def test_the_row_carries_the_order_and_its_warehouse_code(two_warehouses: tuple[RunningCloud, int]) -> None:
    cloud, tenant_id = two_warehouses
    with cloud.store.read() as conn:
        row = order_in_scope(conn, tenant_id, "R-2", {"WH2"})
        assert (row.order_ref, row.code, row.state) == ("R-2", "WH2", "created")
        assert row.tenant_id == tenant_id
        assert '"order_ref":"R-2"' in row.body.replace(" ", "")
        assert order_in_scope(conn, tenant_id, "R-1", None).code == "WH1"
    change = order_change(row, "{}")
    assert (change.tenant_id, change.warehouse_id, change.kind, change.key, change.body) == (
        tenant_id,
        int(row.warehouse_id),
        ChangeKind.ORDER.value,
        "R-2",
        "{}",
    )


@pytest.mark.parametrize(
    ("ref", "scope"),
    [
        ("R-2", {"WH1"}),  # another warehouse's order is answered as missing
        ("R-2", set()),
        ("NOPE", None),
        ("r-1", None),  # references are exact, not case-folded
        ("R-1' OR '1'='1", None),
        ("x" * 500, None),
    ],
)
def test_a_missing_or_out_of_scope_order_is_not_found(
    two_warehouses: tuple[RunningCloud, int], ref: str, scope: set[str] | None
) -> None:
    cloud, tenant_id = two_warehouses
    with cloud.store.read() as conn:
        with pytest.raises(NotFound) as raised:
            order_in_scope(conn, tenant_id, ref, scope, fix="check the reference")
        assert str(raised.value).endswith(": check the reference")
        assert len(str(raised.value)) < 200  # a hostile reference is cut, not echoed whole
        if scope is None:
            assert order_row(conn, tenant_id, ref) is None


def test_another_tenants_order_is_not_found(two_warehouses: tuple[RunningCloud, int]) -> None:
    cloud, tenant_id = two_warehouses
    with cloud.store.read() as conn:
        assert order_row(conn, tenant_id + 1, "R-1") is None
        with pytest.raises(NotFound):
            order_in_scope(conn, tenant_id + 1, "R-1", None)
