"""`python -m netfast` runs the command-line interface."""

from netfast.cli import main

raise SystemExit(main())
