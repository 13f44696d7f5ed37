"""Modules over :mod:`qops._norm`."""

__all__: list = []
