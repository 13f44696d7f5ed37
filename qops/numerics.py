"""Numerics profiles: which backend's integer arithmetic an op reproduces.

Every op that rounds takes ``numerics=`` (a profile name).  ``None`` means the
current default, which is ``"fbgemm"`` unless a :func:`numerics` context is
active.  ``docs/numerics.md`` describes each profile's arithmetic.
"""

from __future__ import annotations

import contextlib
import contextvars

__all__ = ["available_numerics", "numerics", "resolve_numerics", "DEFAULT_NUMERICS"]

DEFAULT_NUMERICS = "fbgemm"

_PROFILES = (
    "fbgemm",
    "qnnpack",
    "onednn",
    "onnxruntime",
    "tflite",
    "tflite_single",
    "reference",
)

#: Profiles whose quantize/dequantize are torch's (engine independent).
TORCH_PROFILES = ("fbgemm", "qnnpack", "onednn")

_current = contextvars.ContextVar("qops_numerics", default=DEFAULT_NUMERICS)


def available_numerics() -> tuple[str, ...]:
    """Return the names of all numerics profiles, the default first."""
    return _PROFILES


def _check(name) -> str:
    if not isinstance(name, str):
        raise TypeError(
            f"numerics must be a profile name (str), got {type(name).__name__}; "
            f"use one of {', '.join(_PROFILES)}"
        )
    if name not in _PROFILES:
        raise ValueError(
            f"unknown numerics profile {name!r}; known profiles: {', '.join(_PROFILES)}"
        )
    return name


def resolve_numerics(name=None) -> str:
    """Return the profile to use: ``name`` if given, else the active default."""
    if name is None:
        return _current.get()
    return _check(name)


@contextlib.contextmanager
def numerics(name):
    """Context manager that sets the default numerics profile.

    The setting is local to the current thread (and asyncio task), and
    an explicit ``numerics=`` argument always wins.

    Examples
    --------
    >>> import numpy as np, qops
    >>> with qops.numerics("onnxruntime"):
    ...     q = qops.quantize_per_tensor(np.float32([2.5]), 1.0, 3, qops.quint8)
    >>> int(q.int_repr()[0])   # rounds before adding the zero point
    5
    """
    token = _current.set(_check(name))
    try:
        yield name
    finally:
        _current.reset(token)
