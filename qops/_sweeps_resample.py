"""``qops report`` sweeps for :mod:`qops._resample` (registered on import by :mod:`qops.report`)."""
