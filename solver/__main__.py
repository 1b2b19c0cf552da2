"""`python -m solver` is the `tumorsim` command."""

import sys

from solver.cli import main

sys.exit(main())
