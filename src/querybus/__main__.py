"""``python -m querybus`` runs the command line."""

from querybus.cli.launcher import main

main()
