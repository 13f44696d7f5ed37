"""Modules over :mod:`qops._activation`."""

__all__: list = []
