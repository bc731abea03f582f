"""`python -m openpanel_lite` runs the CLI."""

from openpanel_lite.cli import main

raise SystemExit(main())
