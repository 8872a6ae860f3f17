"""The one exception type users see, and the CLI wrapper that prints it.

Every stage raises ``ToolkitError`` for bad input (unknown program, token
outside the vocabulary, missing artifact, ...). Command-line entry points wrap
their ``main`` with ``cli_main`` so such errors become a single line on stderr
and exit status 2, instead of a traceback.
"""

from __future__ import annotations

import functools
import sys
from typing import Callable


class ToolkitError(Exception):
    """Bad input or a missing/corrupt artifact; the message is shown to the user as is."""


def cli_main(fn: Callable[..., int | None]) -> Callable[..., int]:
    """Wraps a CLI ``main`` so ``ToolkitError`` prints one line and exits 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs) -> int:
        try:
            return fn(*args, **kwargs) or 0
        except ToolkitError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("error: interrupted", file=sys.stderr)
            return 130

    return wrapper
