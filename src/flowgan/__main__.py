"""``python -m flowgan`` (and ``torchrun -m flowgan train ...``)."""

import sys

from .cli import main

sys.exit(main())
