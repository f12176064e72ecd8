"""``python -m am3f`` = the ``am3f`` command."""

import sys

from .cli import main

sys.exit(main())
