"""Modules over :mod:`qops._embedding`."""

__all__: list = []
