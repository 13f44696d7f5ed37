"""``qops report`` sweeps for :mod:`qops._norm` (registered on import by :mod:`qops.report`)."""
