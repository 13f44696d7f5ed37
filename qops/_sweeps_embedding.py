"""``qops report`` sweeps for :mod:`qops._embedding` (registered on import by :mod:`qops.report`)."""
