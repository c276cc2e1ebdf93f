"""The factory file: `darkfab init` writes a commented starter, `darkfab schema` prints its JSON Schema."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ..errors import SpecError
from ._common import Commands, err, print_json

commands = Commands()


@commands.command()
def init(
    path: Annotated[Path, typer.Argument(help="where to write the starter file")] = Path("factory.yaml"),
    force: Annotated[bool, typer.Option("--force", help="overwrite an existing file")] = False,
) -> None:
    """Write a commented starter factory file."""
    from ..spec import STARTER

    if path.exists() and not force:
        raise SpecError(f"{path} exists; fix: pick another path or add --force")
    path.write_text(STARTER, encoding="utf-8")
    err.print(f"wrote {path}; run it with `darkfab run {path}`")


@commands.command()
def schema() -> None:
    """Print the JSON Schema of the factory file (for editors)."""
    from ..spec import json_schema

    print_json(json_schema())
