"""``python -m crane`` runs the command line (also under torchrun)."""

from crane.cli import main

main()
