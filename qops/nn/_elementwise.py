"""Modules over :mod:`qops._elementwise`."""

__all__: list = []
