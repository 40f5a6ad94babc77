"""The ``corral`` command line (Typer): parse, call the SDK or the wiring, print."""

__all__: list[str] = []
