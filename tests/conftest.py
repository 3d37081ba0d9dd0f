"""Shared test set-up: headless matplotlib and hypothesis profiles sized for CI's 2 cores."""

import os

os.environ.setdefault("MPLBACKEND", "Agg")

from hypothesis import HealthCheck, settings

# CI (CI=true) replays the same examples every run, so whether a submission lands never depends
# on a random draw; locally every run explores new examples (and `thorough` explores many).
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=os.environ.get("CI", "").lower() == "true",
)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
