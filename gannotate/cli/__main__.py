"""``python -m gannotate.cli`` runs the CLI (the console script is ``gannotate``)."""

from gannotate.cli import main

main()
