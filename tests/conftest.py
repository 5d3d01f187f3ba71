"""Hypothesis profiles (MyGrad style): MINIGROW_HYPOTHESIS=dev|ci|thorough sets how many examples run.

``dev`` and ``ci`` (the default) are derandomised, so the default suite is deterministic; ``thorough`` draws
fresh random examples (300 per test) to hunt for counterexamples.
"""
import os

from hypothesis import HealthCheck, settings

_quiet = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile("dev", max_examples=10, deadline=None, derandomize=True)
settings.register_profile("ci", max_examples=30, deadline=None, derandomize=True, suppress_health_check=_quiet)
settings.register_profile("thorough", max_examples=300, deadline=None, suppress_health_check=_quiet)
settings.load_profile(os.environ.get("MINIGROW_HYPOTHESIS", "ci"))
