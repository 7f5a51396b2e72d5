"""Estimators for every signal of the spec's Key Metrics. Pure-numpy modules (``stats``, ``signal``,
``compression``, ``governance``) import no torch; the ``measure`` module runs them on a real model."""
