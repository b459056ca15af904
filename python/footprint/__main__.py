"""python -m footprint: the command line (footprint/cli.py)."""
import sys

from .cli import main

sys.exit(main())
