"""``python -m telesurgery`` runs the command line (the demo starts its nodes this way)."""

from telesurgery.cli.main import main

main()
