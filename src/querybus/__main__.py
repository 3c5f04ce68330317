"""``python -m querybus`` runs the command line."""

from querybus.cli.main import main

main()
