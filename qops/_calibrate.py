"""Calibration loops: feed batches to an observer, with a progress bar."""

from __future__ import annotations

from ._progress import Progress

__all__ = ["calibrate"]


def calibrate(observer, batches, progress=False, *, total=None, stream=None):
    """Feed every batch of ``batches`` to ``observer``; return the observer.

    Parameters
    ----------
    observer : callable
        An observer or fake quantization module (anything called on a batch).
    batches : iterable
        Arrays (NumPy, CUDA device arrays, torch CPU tensors...).
    progress : bool
        Draw a one-line progress bar on ``stream`` (default stderr).
    total : int, optional
        Number of batches, for the bar when ``batches`` has no ``len()``.
    stream : file-like, optional

    Returns
    -------
    observer
        The same object, so ``qops.calibrate(obs, batches).calculate_qparams()``
        reads naturally.

    Examples
    --------
    >>> import numpy as np, qops
    >>> batches = [np.float32([-1.0, 2.0]), np.float32([0.5, 3.0])]
    >>> obs = qops.calibrate(qops.observer.MinMaxObserver(), batches)
    >>> float(obs.min_val), float(obs.max_val)
    (-1.0, 3.0)
    """
    if not callable(observer):
        raise TypeError(f"calibrate expects a callable observer, got {type(observer).__name__}")
    if total is None:
        try:
            total = len(batches)
        except TypeError:
            total = None
    bar = Progress(total or 0, stream=stream, enabled=bool(progress), prefix="calibrate")
    with bar:
        count = 0
        for batch in batches:
            observer(batch)
            count += 1
            if total:
                bar.advance(label=f"batch {count}")
            else:
                bar.set_label(f"{count} batches")
        if not total:
            bar.total = bar.done = count  # the final line shows the count
    return observer
