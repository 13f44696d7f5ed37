"""``qops report`` sweeps for :mod:`qops._pool` (registered on import by :mod:`qops.report`)."""
