"""Helpers below ``models`` and ``ops`` (they import nothing of the package but :mod:`mmvit_backbones.compat`):
graph capture (:mod:`.tracing`), fast and reference paths (:mod:`.fast_paths`), the shape cache (:mod:`.cache`)."""
