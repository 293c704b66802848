"""``python -m circuits.cli``: the ``circuits`` command."""

import sys

from circuits.cli import main

sys.exit(main())
