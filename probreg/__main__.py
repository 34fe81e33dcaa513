"""``python -m probreg``: the same as the ``probreg`` command."""

from probreg.cli import main

main()
