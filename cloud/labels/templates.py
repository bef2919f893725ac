"""Label template versions: immutable, numbered per name from 1, one active version per name.

A version is validated (compiled and rendered with its own sample data) when it is created and
again when it is published, so a broken template never reaches a station. Publishing is the
synced write: the new active version and the one it replaces both go to the change log.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import Connection, RowMapping, delete, select, update

from cloud.storage import schema
from cloud.storage.store import ChangeRecord, CloudStore, dumps
from cloud.storage.versions import VersionedNames
from dockside.errors import TemplateError
from dockside.labels import LabelLanguage, validate_template
from dockside.sync import ChangeKind

__all__ = [
    "TemplateVersionIn",
    "check_publishable",
    "create_template_version",
    "get_template_version",
    "list_template_versions",
    "publish_template_version",
    "stored_version",
    "template_change",
    "template_version_body",
]


class TemplateVersionIn(BaseModel):
    """A new version of a label template, with the sample data it must render."""

    model_config = ConfigDict(extra="forbid")

    language: LabelLanguage
    source: Annotated[str, StringConstraints(min_length=1, max_length=64 * 1024)]
    sample_data: Annotated[dict[str, Any], Field(max_length=200)] = {}
    width_dots: Annotated[int, Field(ge=1, le=10_000)] = 812
    height_dots: Annotated[int, Field(ge=1, le=20_000)] = 1218
    dpi: Annotated[int, Field(ge=100, le=600)] = 203


def _validate(
    name: str, language: str, source: str, sample_data: dict[str, Any], width: int, height: int
) -> None:
    try:
        validate_template(language, source, sample_data, width_dots=width, height_dots=height)
    except TemplateError as exc:
        where = ""
        if exc.line is not None and f"line {exc.line}" not in exc.message:
            where = f" (line {exc.line}" + (f", column {exc.column})" if exc.column is not None else ")")
        # The same type (TemplateOverrun stays one), with the template's name in front.
        raise type(exc)(
            f"template {name!r} does not render its sample data{where}: {exc.message}",
            code=exc.code,
            line=exc.line,
            column=exc.column,
        ) from exc


def _body(row: RowMapping) -> dict[str, Any]:
    """A template version's API and sync body."""
    return {
        "name": row["name"],
        "version": row["version"],
        "language": row["language"],
        "source": row["source"],
        "sample_data": json.loads(row["sample_data"]),
        "width_dots": row["width_dots"],
        "height_dots": row["height_dots"],
        "dpi": row["dpi"],
        "created_at": row["created_at"].isoformat(),
        "active": bool(row["active"]),
    }


_VERSIONS = VersionedNames(schema.template_versions, "template", _body)


def template_version_body(row: RowMapping) -> dict[str, Any]:
    """The sync body of a stored template version row."""
    return _body(row)


def create_template_version(
    store: CloudStore, tenant_id: int, name: str, version: TemplateVersionIn
) -> dict[str, Any]:
    """Validate and store the next version of a template (not yet active)."""
    _VERSIONS.check_name(name)
    _validate(
        name,
        version.language.value,
        version.source,
        version.sample_data,
        version.width_dots,
        version.height_dots,
    )
    values = {
        "language": version.language.value,
        "source": version.source,
        "sample_data": dumps(version.sample_data),
        "width_dots": version.width_dots,
        "height_dots": version.height_dots,
        "dpi": version.dpi,
        "active": False,
    }
    return _VERSIONS.create(store, tenant_id, name, values)


def stored_version(conn: Connection, tenant_id: int, name: str, number: int) -> RowMapping:
    """The stored row of one version (NotFound when it does not exist)."""
    return _VERSIONS.row(conn, tenant_id, name, number)


def get_template_version(store: CloudStore, tenant_id: int, name: str, number: int) -> dict[str, Any]:
    """One version of a template."""
    return _VERSIONS.version(store, tenant_id, name, number)


def list_template_versions(store: CloudStore, tenant_id: int, name: str) -> list[dict[str, Any]]:
    """Every version of a template, oldest first."""
    return _VERSIONS.versions(store, tenant_id, name)


def check_publishable(store: CloudStore, tenant_id: int, name: str, number: int) -> RowMapping:
    """The stored version, once it renders its sample data again (TemplateError otherwise)."""
    _VERSIONS.check_name(name)
    with store.read() as conn:
        candidate = _VERSIONS.row(conn, tenant_id, name, number)
    _validate(
        name,
        candidate["language"],
        candidate["source"],
        json.loads(candidate["sample_data"]),
        candidate["width_dots"],
        candidate["height_dots"],
    )
    return candidate


def publish_template_version(store: CloudStore, tenant_id: int, name: str, number: int) -> dict[str, Any]:
    """Make a version the active one of its name everywhere and sync it (and the one it replaces).

    Warehouses that ran a staged version (cloud.labels.rollout) join everyone else on this one.
    """
    check_publishable(store, tenant_id, name, number)
    table = schema.template_versions
    rollouts = schema.template_rollouts
    with store.write() as tx:
        tx.lock_clock()
        row = _VERSIONS.row(tx.conn, tenant_id, name, number)
        staged = tx.conn.execute(
            select(rollouts.c.id, rollouts.c.warehouse_id, rollouts.c.version).where(
                rollouts.c.tenant_id == tenant_id, rollouts.c.name == name
            )
        ).all()
        if row["active"] and not staged:
            return _body(row)
        replaced = (
            tx.conn.execute(
                select(table).where(
                    table.c.tenant_id == tenant_id, table.c.name == name, table.c.active.is_(True)
                )
            )
            .mappings()
            .all()
        )
        records = []
        for rollout in staged:
            if rollout.version != number:
                # That warehouse ran a staged version: it goes inactive there before the new one lands.
                old = _VERSIONS.row(tx.conn, tenant_id, name, rollout.version)
                records.append(_change(tenant_id, {**_body(old), "active": False}, int(rollout.warehouse_id)))
        if staged:
            tx.conn.execute(
                delete(rollouts).where(rollouts.c.tenant_id == tenant_id, rollouts.c.name == name)
            )
        for old in replaced:
            if old["version"] == number:
                continue
            tx.conn.execute(update(table).where(table.c.id == old["id"]).values(active=False))
            records.append(_change(tenant_id, {**_body(old), "active": False}))
        tx.conn.execute(update(table).where(table.c.id == row["id"]).values(active=True, published_at=tx.now))
        body = {**_body(row), "active": True}
        records.append(_change(tenant_id, body))
        tx.append_changes(records)
    return body


def _change(tenant_id: int, body: dict[str, Any], warehouse_id: int | None = None) -> ChangeRecord:
    # Templates belong to the tenant: every agent gets them, unless a staged rollout names one
    # warehouse (warehouse_id).
    key = f"{body['name']}@{body['version']}"
    return ChangeRecord(tenant_id, warehouse_id, ChangeKind.TEMPLATE_VERSION.value, key, dumps(body))


def template_change(tenant_id: int, body: dict[str, Any], warehouse_id: int | None = None) -> ChangeRecord:
    """The change-log record of a template version body, for every warehouse or one."""
    return _change(tenant_id, body, warehouse_id)
