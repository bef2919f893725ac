"""schemathesis against the cloud's own OpenAPI spec: no server error, no response breaking the spec.

Every operation of the running cloud's /openapi.json is called with generated requests (valid
and invalid ones) as an admin over real HTTP. The run is bounded and deterministic
(derandomized, a few examples per operation) so it stays well under a minute in CI.
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.cloud.conftest import STATION, TEMPLATE, RunningCloud, order

EXAMPLES_PER_OPERATION = 8


def test_no_operation_answers_a_server_error_or_breaks_the_spec(cloud: RunningCloud) -> None:
    # Some data to find, so reads reach their found branches as well as their 404s.
    cloud.put_warehouse("WH1")
    cloud.api.post("/api/v1/warehouses/WH1/stations", json=STATION)
    cloud.api.post("/api/v1/templates/t1/versions", json=TEMPLATE)
    cloud.ingest(order("R1"))
    spec = cloud.api.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(spec)
    base_url = f"http://{cloud.http_address}"
    headers = {"Authorization": f"Bearer {cloud.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) > 20
    failures: list[str] = []
    statuses: list[int] = []

    for operation in operations:
        _fuzz(operation, base_url, headers, failures, statuses)
    assert not failures, "\n\n".join(failures)
    # The run really called the API, with accepted and refused requests alike.
    assert len(statuses) >= 2 * len(operations)
    assert any(status < 300 for status in statuses)
    assert any(400 <= status < 500 for status in statuses)


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/orders/%00",
        "/api/v1/orders/A%0D%0AB",
        "/api/v1/templates/%1B/versions",
        "/api/v1/warehouses/" + "W" * 5000,
    ],
)
def test_hostile_paths_are_client_errors(cloud: RunningCloud, path: str) -> None:
    response = cloud.api.get(path)
    assert response.status_code in (404, 422)
    assert response.json()["error"]["message"]


def _fuzz(
    operation: Any, base_url: str, headers: dict[str, str], failures: list[str], statuses: list[int]
) -> None:
    """Call one operation with generated requests; note its first failure in `failures`."""
    label = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def call(case: Any) -> None:
        response = case.call(base_url=base_url, headers=headers, timeout=30)
        statuses.append(response.status_code)
        try:
            case.validate_response(response, checks=[not_a_server_error, response_schema_conformance])
        except Exception as exc:
            failures.append(f"{label}: {str(exc)[:600]}")
            raise

    try:
        call()
    except Exception as exc:
        if not failures or not failures[-1].startswith(label):
            failures.append(f"{label}: could not run: {exc!r}"[:600])
