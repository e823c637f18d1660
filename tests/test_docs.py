"""The docs follow the code: every command's --help is in docs/cli.md, and every endpoint in
docs/http-api.md, as the code has them now."""

import re
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


def test_every_endpoint_is_in_the_http_reference():
    from fastapi.routing import APIRoute

    from semsearch.server.routes import ROUTERS

    reference = (DOCS / "http-api.md").read_text()
    routes = [(method, re.sub(r":\w+}", "}", route.path))  # {id:path} is {id} in the schema
              for router in ROUTERS for route in router.routes
              if isinstance(route, APIRoute) and route.include_in_schema
              for method in route.methods]
    assert len(routes) >= 9
    missing = [route for route in routes if f"## `{route[0]} {route[1]}`" not in reference]
    assert missing == []


def test_the_http_reference_is_what_cog_generates_now(encoder):
    assert Cog().main(["cog", "--check", str(DOCS / "http-api.md")]) == 0  # else: cog -r
