"""``python -m corral``: the same as the ``corral`` command."""

from corral.cli.main import main

main()
