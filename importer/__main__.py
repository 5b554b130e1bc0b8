"""``python -m importer`` and the ``eloqua-import`` command (pyproject's entry point): the
command line as a program of its own.

The garbage collector stays off while the command's modules load, and what they made is then
exempted from it for good (``gc.freeze``): some 60,000 objects (modules, classes, functions)
that live until the process exits, which collections would only scan again and again, at exit
too: some 40 ms of CPU, a seventh of a short run's. The objects a command makes from then
on are collected as usual; a program calling ``importer.cli.main`` itself keeps its own
collector settings.
"""

import gc
import sys
from typing import NoReturn


def run() -> NoReturn:
    gc.disable()
    try:
        from importer.cli import main
    finally:
        gc.freeze()
        gc.enable()
    sys.exit(main())


if __name__ == "__main__":
    run()
