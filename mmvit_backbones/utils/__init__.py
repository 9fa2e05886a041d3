"""Helpers at the bottom of the package, below ``models`` and ``ops``: which graph capture is running
(:mod:`.tracing`), where the CPU-only fast paths and the reference paths run (:mod:`.fast_paths`), and the
per-model shape cache (:mod:`.cache`). They import nothing of the package but :mod:`mmvit_backbones.compat`."""
