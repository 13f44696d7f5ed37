"""``qops report`` sweeps for :mod:`qops._conv_transpose` (registered on import by :mod:`qops.report`)."""
