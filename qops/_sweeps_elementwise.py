"""``qops report`` sweeps for :mod:`qops._elementwise` (registered on import by :mod:`qops.report`)."""
