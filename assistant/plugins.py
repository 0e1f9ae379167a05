"""Commands other distributions add to `galaxy`, through the entry-point group `galaxy.commands`
(name -> a typer command function, or a `typer.Typer` for a group)."""

from __future__ import annotations

import logging
from importlib.metadata import entry_points

import typer

PLUGIN_GROUP = "galaxy.commands"
log = logging.getLogger(__name__)


def add_commands(cli: typer.Typer) -> None:
    """Register every command of the entry-point group `galaxy.commands`. Loading one imports
    only its small CLI module; a plugin that fails to load, or that would replace a built-in
    command, is logged and skipped: the product's own commands always work."""
    taken = {
        c.name or (c.callback.__name__.replace("_", "-") if c.callback else "")
        for c in cli.registered_commands
    }
    for ep in entry_points(group=PLUGIN_GROUP):
        if ep.name in taken:
            log.warning(
                "galaxy: plugin command %r (%s) clashes with a built-in; skipped", ep.name, ep.value
            )
            continue
        try:
            command = ep.load()
        except Exception as exc:  # any failure in a plugin's import must not break `galaxy`
            log.warning("galaxy: plugin command %r (%s) failed to load: %s", ep.name, ep.value, exc)
            continue
        if isinstance(command, typer.Typer):
            cli.add_typer(command, name=ep.name)
        elif callable(command):
            cli.command(name=ep.name)(command)
        else:
            log.warning("galaxy: plugin %r (%s) is not a command; skipped", ep.name, ep.value)
            continue
        taken.add(ep.name)
