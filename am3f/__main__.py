"""``python -m am3f`` = the ``am3f`` command."""

from am3f.app.cli import command

command()
