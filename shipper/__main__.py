"""`python -m shipper` is the `ship` command (useful where the script is not installed)."""

import sys

from shipper.cli import main

sys.exit(main())
