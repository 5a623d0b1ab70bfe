"""``python -m squeezelab``: the same command line as the ``squeezelab`` script."""

import sys

from .cli import main

sys.exit(main())
