"""``python -m detflow`` runs the command line."""

import sys

from detflow.cli import main

sys.exit(main())
