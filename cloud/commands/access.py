"""`dockside-cloud` commands for credentials: tenants, API tokens, users, and the secret key.

Run on the server by someone who can read the database, so they act as a tenant-wide admin.
Every change is audited with the actor `cli:<os user>` (the login name of whoever runs it).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import click
from sqlalchemy import select

from cloud.access import principals as access
from cloud.access import users
from cloud.access.principals import Role
from cloud.records import audit
from cloud.storage import schema, sealed_secrets
from cloud.storage.schema import DEFAULT_TENANT
from cloud.storage.store import DEFAULT_DATABASE_URL, CloudStore, utcnow
from dockside.errors import DocksideError

__all__ = ["ACCESS_COMMANDS", "database_url_option", "parse_duration"]

database_url_option = click.option(
    "--database-url",
    envvar="DOCKSIDE_DATABASE_URL",
    default=DEFAULT_DATABASE_URL,
    show_default=True,
    show_envvar=True,
    help="Where the cloud keeps its data: sqlite:///PATH or postgresql://USER@HOST:PORT/DB.",
)
_DURATION = re.compile(r"^\s*(\d{1,7})\s*([smhd]?)\s*$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> timedelta:
    """'90d', '12h', '30m', '3600s' or '3600' as a duration; ValueError otherwise."""
    match = _DURATION.match(text.lower())
    if match is None:
        raise ValueError(f"{text!r} is not a duration: write it like 90d, 12h, 30m or 3600s")
    return timedelta(seconds=int(match.group(1)) * _UNITS[match.group(2)])


@contextmanager
def _opened(database_url: str, *, sealing: bool = False) -> Iterator[CloudStore]:
    """The store (with the secret key ready when `sealing`), every DocksideError a clean CLI error."""
    try:
        if sealing:
            sealed_secrets.ensure_key(database_url)
        store = CloudStore.open(database_url)
    except DocksideError as exc:
        raise click.ClickException(exc.message) from None
    try:
        yield store
    except DocksideError as exc:
        raise click.ClickException(exc.message) from None
    finally:
        store.close()


_ROLE = click.Choice([role.value for role in Role])


@click.command("create-token")
@click.option(
    "--role",
    type=_ROLE,
    default=Role.ADMIN.value,
    show_default=True,
    help="What the token may do: admin (everything), editor (templates, rulesets, stations), "
    "viewer (read only), integration (ingest and read orders).",
)
@click.option("--name", required=True, help="Who or what the token is for, e.g. 'demo' or 'oms-integration'.")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True, help="The tenant the token acts for.")
@click.option(
    "--warehouse",
    "warehouses",
    multiple=True,
    help="Limit the token to this warehouse (repeat for several); without it, the whole tenant.",
)
@click.option(
    "--expires-in",
    help="End the token on its own after this long: 90d, 12h, 30m or seconds; without it, until revoked.",
)
@database_url_option
def create_token_command(
    role: str, name: str, tenant: str, warehouses: tuple[str, ...], expires_in: str | None, database_url: str
) -> None:
    """Print a new bearer token for the admin API (stored hashed; shown only this once); its id
    (for revoke-token) goes to stderr."""
    try:
        lifetime = parse_duration(expires_in) if expires_in is not None else None
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--expires-in") from None
    with _opened(database_url) as store, store.unit_of_work():
        caller = access.cli_principal(store, tenant)
        made = access.create_token(
            store,
            name=name,
            role=Role(role),
            tenant=tenant,
            warehouses=warehouses,
            expires_at=utcnow() + lifetime if lifetime is not None else None,
            created_by=caller.actor,
        )
        audit.record(store, caller, "create_token", "token", str(made.id), None, made.token)
    click.echo(made.secret)
    click.echo(f"token id {made.id} (revoke with `dockside-cloud revoke-token {made.id}`)", err=True)


@click.command("list-tokens")
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True, help="Whose tokens to list.")
@database_url_option
def list_tokens_command(tenant: str, database_url: str) -> None:
    """List a tenant's API tokens: id, state, role, name, scope, expiry and last use (never secrets)."""
    with _opened(database_url) as store:
        caller = access.cli_principal(store, tenant)
        for token in access.list_tokens(store, caller.tenant_id):
            scope = ",".join(token["warehouses"] or ["*"])
            click.echo(
                f"{token['id']}\t{token['state']}\t{token['role']}\t{token['name']}\t{scope}\t"
                f"expires={token['expires_at'] or 'never'}\tlast_used={token['last_used_at'] or 'never'}"
            )


@click.command("revoke-token")
@click.argument("token_id", type=click.IntRange(1, 2**62))
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True, help="The tenant the token belongs to.")
@database_url_option
def revoke_token_command(token_id: int, tenant: str, database_url: str) -> None:
    """Revoke API token TOKEN_ID (see list-tokens) for good: it answers 401 from the next request on."""
    with _opened(database_url) as store, store.unit_of_work():
        caller = access.cli_principal(store, tenant)
        before, after = access.revoke_token(store, caller.tenant_id, token_id)
        audit.record(store, caller, "revoke_token", "token", str(token_id), before, after)
    click.echo(f"token {token_id} ({after['name']}) revoked", err=True)


@click.command("create-tenant")
@click.option("--code", required=True, help="The tenant's short code, e.g. 'acme' (used by --tenant).")
@click.option("--name", default="", help="The tenant's display name.")
@database_url_option
def create_tenant_command(code: str, name: str, database_url: str) -> None:
    """Create a tenant (a brand or business unit whose data is kept apart); safe to run again."""
    with _opened(database_url) as store, store.unit_of_work():
        with store.read() as conn:
            existed = conn.execute(select(schema.tenants.c.id).where(schema.tenants.c.code == code)).first()
        access.create_tenant(store, code=code, name=name)
        if existed is None:
            caller = access.cli_principal(store, code)
            audit.record(store, caller, "create_tenant", "tenant", code, None, {"code": code, "name": name})
    click.echo(f"tenant {code} ready", err=True)


@click.command("create-user")
@click.option("--email", required=True, help="The person's email; they sign in with it.")
@click.option("--name", required=True, help="The person's name, as the console shows it.")
@click.option(
    "--role",
    type=_ROLE,
    default=Role.VIEWER.value,
    show_default=True,
    help="What the person may do (same roles as API tokens).",
)
@click.option("--tenant", default=DEFAULT_TENANT, show_default=True, help="The tenant the person works for.")
@click.option(
    "--warehouse", "warehouses", multiple=True, help="Limit the person to this warehouse (repeatable)."
)
@click.option(
    "--password",
    prompt=True,
    hide_input=True,
    confirmation_prompt=True,
    envvar="DOCKSIDE_USER_PASSWORD",
    help="At least 12 characters; prompted when not given (or $DOCKSIDE_USER_PASSWORD).",
)
@database_url_option
def create_user_command(
    email: str,
    name: str,
    role: str,
    tenant: str,
    warehouses: tuple[str, ...],
    password: str,
    database_url: str,
) -> None:
    """Create a console user and print the TOTP secret to add to their authenticator app (shown once)."""
    with _opened(database_url, sealing=True) as store, store.unit_of_work():
        caller = access.cli_principal(store, tenant)
        made = users.create_user(
            store,
            email=email,
            name=name,
            password=password,
            role=Role(role),
            tenant=tenant,
            warehouses=warehouses,
        )
        audit.record(store, caller, "create_user", "user", str(made.id), None, made.user)
    click.echo(f"TOTP secret: {made.totp_secret}")
    click.echo(f"authenticator URI: {made.provisioning_uri}")


def _user_change(
    database_url: str, email: str, action: str, change: Callable[[CloudStore, int, int], Any]
) -> Any:
    """Run `change(store, tenant_id, user_id)` for the user with `email`, audited as `action`."""
    with _opened(database_url, sealing=action == "reset_totp") as store, store.unit_of_work():
        tenant, user_id = users.user_by_email(store, email)
        caller = access.cli_principal(store, tenant)
        result = change(store, caller.tenant_id, user_id)
        before, after = (result.before, result.after) if isinstance(result, users.UserReset) else result
        audit.record(store, caller, action, "user", str(user_id), before, after)
    return result


@click.command("disable-user")
@click.argument("email")
@database_url_option
def disable_user_command(email: str, database_url: str) -> None:
    """Disable the user with EMAIL: their sessions end at once and sign-in is refused."""
    _user_change(database_url, email, "disable_user", users.disable_user)
    click.echo(f"user {email} disabled; their sessions have ended", err=True)


@click.command("enable-user")
@click.argument("email")
@database_url_option
def enable_user_command(email: str, database_url: str) -> None:
    """Let the disabled user with EMAIL sign in again."""
    _user_change(database_url, email, "enable_user", users.enable_user)
    click.echo(f"user {email} enabled", err=True)


@click.command("reset-password")
@click.argument("email")
@database_url_option
def reset_password_command(email: str, database_url: str) -> None:
    """Give the user with EMAIL a new random password (printed once); their sessions end."""
    reset = _user_change(
        database_url,
        email,
        "reset_password",
        lambda store, tenant_id, user_id: users.reset_password(store, tenant_id, user_id),
    )
    click.echo(f"new password: {reset.password}")


@click.command("reset-totp")
@click.argument("email")
@database_url_option
def reset_totp_command(email: str, database_url: str) -> None:
    """Give the user with EMAIL a new TOTP secret (printed once); their sessions end."""
    reset = _user_change(
        database_url,
        email,
        "reset_totp",
        lambda store, tenant_id, user_id: users.reset_totp(store, tenant_id, user_id),
    )
    click.echo(f"TOTP secret: {reset.totp_secret}")
    click.echo(f"authenticator URI: {reset.provisioning_uri}")


@click.command("secret-key")
def secret_key_command() -> None:
    """Print a new key for $DOCKSIDE_SECRET_KEY (seals TOTP and webhook secrets at rest)."""
    click.echo(sealed_secrets.new_key())


@click.command("rotate-secrets")
@database_url_option
def rotate_secrets_command(database_url: str) -> None:
    """Seal every stored TOTP and webhook secret with the newest key in $DOCKSIDE_SECRET_KEY.

    To rotate: set DOCKSIDE_SECRET_KEY=NEW,OLD on every replica, run this, then drop OLD.
    Secrets an older release stored in clear are sealed too.
    """
    with _opened(database_url, sealing=True) as store:
        written = sealed_secrets.reseal_all(store)
    click.echo(f"{written} secrets sealed with the newest key", err=True)


ACCESS_COMMANDS = (
    create_tenant_command,
    create_token_command,
    list_tokens_command,
    revoke_token_command,
    create_user_command,
    disable_user_command,
    enable_user_command,
    reset_password_command,
    reset_totp_command,
    secret_key_command,
    rotate_secrets_command,
)
