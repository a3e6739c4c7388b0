"""``python -m revbridge.cli``: the same as the ``revbridge`` command."""

from revbridge.cli.main import main

main()
