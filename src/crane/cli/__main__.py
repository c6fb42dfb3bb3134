"""``python -m crane.cli`` runs the command line (as ``python -m crane`` does)."""

from crane.cli import main

main()
