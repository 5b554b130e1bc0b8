"""``python -m importer``: the same as the ``eloqua-import`` command."""

import sys

from importer.cli import main

sys.exit(main())
