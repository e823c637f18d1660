"""The docs follow the code: every command's --help is in docs/cli.md as it prints now."""

from pathlib import Path

import click
from cogapp import Cog

from semsearch.cli import cli

DOCS = Path(__file__).parent.parent / "docs"


def command_paths(group: click.Group, prefix: tuple = ()) -> list[tuple[str, ...]]:
    found = []
    for name in group.list_commands(click.Context(group)):
        command = group.get_command(click.Context(group), name)
        found.append((*prefix, name))
        if isinstance(command, click.Group):
            found += command_paths(command, (*prefix, name))
    return found


def test_every_command_has_its_help_in_the_cli_reference():
    reference = (DOCS / "cli.md").read_text()
    paths = command_paths(cli)
    assert len(paths) >= 15
    missing = [path for path in paths if f"## `semsearch {' '.join(path)}`" not in reference]
    assert missing == []


def test_the_cli_reference_is_what_cog_generates_now():
    assert Cog().main(["cog", "--check", str(DOCS / "cli.md")]) == 0  # else: cog -r docs/cli.md
