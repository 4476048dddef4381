"""``azsidecar stack``: attach, detach, show, list."""

from __future__ import annotations

import json

import click

from sidecar.cli.common import config_option, friendly_errors, runtime
from sidecar.errors import NotFoundError, VaultNotFound
from sidecar.stacks import ANY, list_stacks
from sidecar.stacks import attach as attach_stack
from sidecar.stacks import detach as detach_stack
from sidecar.store import StackRecord


def _row(record: StackRecord) -> dict[str, str | None]:
    return {
        "name": record.name,
        "read": record.read,
        "write": record.write,
        "subscription_id": record.subscription_id,
    }


def _describe(record: StackRecord) -> str:
    sub = f"  subscription {record.subscription_id}" if record.subscription_id else ""
    return (
        f"{record.name:<24} plan -> {record.read or '-':<20} apply -> {record.write or '-':<20}"
        f"{sub}"
    )


@click.group()
def stack() -> None:
    """Stacks: which integration plan and apply runs use."""


@stack.command()
@click.argument("name")
@click.option("--read", "read", default=None, help="Integration for plan runs.")
@click.option("--write", "write", default=None, help="Integration for apply runs.")
@click.option("--subscription", default=None, help="Subscription id overriding the integration's.")
@config_option
@friendly_errors
def attach(
    name: str,
    read: str | None,
    write: str | None,
    subscription: str | None,
    config_path: str | None,
) -> None:
    """Attach integrations to stack NAME (one integration may be both)."""
    record = attach_stack(
        runtime(config_path).store, name, read=read, write=write, subscription_id=subscription
    )
    click.echo(_describe(record))


@stack.command()
@click.argument("name")
@click.option(
    "--read",
    "read",
    is_flag=False,
    flag_value=ANY,
    default=None,
    help="Detach the read integration (optionally: only if it is this one).",
)
@click.option(
    "--write",
    "write",
    is_flag=False,
    flag_value=ANY,
    default=None,
    help="Detach the write integration (optionally: only if it is this one).",
)
@config_option
@friendly_errors
def detach(name: str, read: str | None, write: str | None, config_path: str | None) -> None:
    """Detach integrations from stack NAME; without --read/--write, both."""
    record = detach_stack(runtime(config_path).store, name, read=read, write=write)
    if record is None:
        click.echo(f"stack {name} has nothing attached any more and was removed")
    else:
        click.echo(_describe(record))


@stack.command()
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@config_option
@friendly_errors
def show(name: str, as_json: bool, config_path: str | None) -> None:
    """Show one stack's attachments."""
    try:
        record, _ = runtime(config_path).store.stack(name)
    except VaultNotFound as exc:
        raise NotFoundError(f"no stack named {name!r}; see `azsidecar stack list`") from exc
    if as_json:
        click.echo(json.dumps(_row(record), indent=2))
    else:
        click.echo(_describe(record))


@stack.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@config_option
@friendly_errors
def list_(as_json: bool, config_path: str | None) -> None:
    """List stacks and their attachments."""
    records = list_stacks(runtime(config_path).store)
    if as_json:
        click.echo(json.dumps([_row(r) for r in records], indent=2))
        return
    if not records:
        click.echo("no stacks; attach one with `azsidecar stack attach`")
    for record in records:
        click.echo(_describe(record))
