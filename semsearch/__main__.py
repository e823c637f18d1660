"""``python -m semsearch`` runs the command line."""

from semsearch.cli import cli

cli(prog_name="semsearch")
