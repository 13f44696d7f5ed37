"""Numba's on-disk cache, made safe for kernels that inline helpers.

Numba decides whether a cached kernel is stale from the content hash of the
one file that defines it.  qops kernels inline rounding recipes from other
files (``scalar.py``, ``requant.py``, ...), so an edit there (or a ``git
pull`` into an editable install) would keep running the old machine code.
The locators below stamp every kernel file with the hash of the WHOLE
``kernels/`` tree instead; any edit anywhere in it recompiles every kernel.
They apply to files inside this package only.  If Numba's private caching
API changes, qops falls back to Numba's own locators.
"""

import hashlib
import os

_ROOT = os.path.dirname(os.path.abspath(__file__))


def _tree_stamp() -> str:
    h = hashlib.sha256()
    for base, dirs, files in os.walk(_ROOT):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(base, name)
                h.update(os.path.relpath(path, _ROOT).encode())
                with open(path, "rb") as f:
                    h.update(f.read())
    return h.hexdigest()


def _inside(py_file) -> bool:
    try:
        return os.path.commonpath([_ROOT, os.path.abspath(py_file)]) == _ROOT
    except ValueError:
        return False


def install() -> bool:
    """Put the tree-stamped locators in front of Numba's (idempotent)."""
    try:
        from numba.core import caching
    except ImportError:  # pragma: no cover
        return False
    impl = getattr(caching, "CacheImpl", None) or getattr(caching, "_CacheImpl", None)
    bases = [
        getattr(caching, name, None) or getattr(caching, "_" + name, None)
        for name in ("UserProvidedCacheLocator", "InTreeCacheLocator", "UserWideCacheLocator")
    ]
    if impl is None or not hasattr(impl, "_locator_classes") or None in bases:
        return False  # pragma: no cover - a Numba without this API
    if any(getattr(c, "_qops_tree", False) for c in impl._locator_classes):
        return True
    stamp = _tree_stamp()

    def make(base):
        class Locator(base):
            _qops_tree = True

            def get_source_stamp(self):
                return stamp

            @classmethod
            def from_function(cls, py_func, py_file):
                if not _inside(py_file):
                    return None
                return super().from_function(py_func, py_file)

        Locator.__name__ = Locator.__qualname__ = "QopsTree" + base.__name__.lstrip("_")
        return Locator

    impl._locator_classes = [make(b) for b in bases] + list(impl._locator_classes)
    return True
