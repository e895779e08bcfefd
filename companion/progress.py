"""Progress bars for readers running a notebook, and none in the built book.

``tqdm.auto`` shows a widget in Jupyter, and its notebook flavour ignores tqdm's own
``TQDM_DISABLE`` environment variable; in the HTML book such a widget would be a dead
control. ``make book`` and ``make pdf`` set ``TQDM_DISABLE=1``, and every progress bar of
the book and the companion goes through :func:`tqdm` here, which honours it.
"""

from __future__ import annotations

import os
from typing import Any

from tqdm.auto import tqdm as _tqdm

__all__ = ["tqdm", "disabled"]


def disabled() -> bool:
    """True when ``TQDM_DISABLE`` is set to 1, true or yes (any case)."""
    return os.environ.get("TQDM_DISABLE", "").strip().lower() in ("1", "true", "yes")


def tqdm(*args: Any, **kwargs: Any) -> Any:
    """``tqdm.auto.tqdm``, switched off when :func:`disabled` (an explicit ``disable=True`` stays)."""
    if disabled():
        kwargs["disable"] = True
    return _tqdm(*args, **kwargs)
