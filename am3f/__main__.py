"""``python -m am3f`` = the ``am3f`` command."""

import sys

from am3f.app.cli import main

sys.exit(main())
