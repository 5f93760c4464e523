import os
import sys

from hypothesis import settings

# Make tests/ importable (shared case tables and helpers).
sys.path.insert(0, os.path.dirname(__file__))

# Property tests explore the same examples on every run (CI stays reproducible); run with
# HYPOTHESIS_PROFILE=explore to search new ones.
settings.register_profile("ci", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# The command line's persistent compilation cache goes to a fresh directory per test session
# (the same programs compiled by several tests are then compiled once).
if "FNRL_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["FNRL_CACHE_DIR"] = tempfile.mkdtemp(prefix="fnrl-test-cache-")
