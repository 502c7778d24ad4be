"""The `singer` command line. Thin: every command builds a request and calls :mod:`singer.api`."""

from __future__ import annotations

import typer

from . import batch, cache, cover, engines, models, report, search, serve, voices

app = typer.Typer(
    name="singer",
    help="Sing any song in a character's voice: search, separate, convert, remix.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.command()(cover.cover)
app.command()(cover.convert)
app.command()(search.search)
app.command()(engines.engines)
app.command()(batch.batch)
app.command()(report.report)
app.command()(serve.serve)
app.command()(serve.worker)
app.add_typer(voices.app, name="voices")
app.add_typer(cache.app, name="cache")
app.add_typer(models.app, name="models")


@app.command()
def version() -> None:
    """Print singer's version."""
    from ..version import __version__

    typer.echo(__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
