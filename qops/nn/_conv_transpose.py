"""Modules over :mod:`qops._conv_transpose`."""

__all__: list = []
