"""``qops report`` sweeps for :mod:`qops._activation` (registered on import by :mod:`qops.report`)."""
