"""``python -m mindckpt``: the ``mindckpt`` command."""

import sys

from mindckpt.cli import main

sys.exit(main())
