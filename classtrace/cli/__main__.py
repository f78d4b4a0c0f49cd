"""``python -m classtrace.cli``: the same as the ``classtrace`` console script."""

import sys

from classtrace.cli import main

sys.exit(main())
