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

# The command line's persistent compilation cache goes to a fresh directory per test session,
# shared by the worker processes (they inherit the variable), and every test uses it from the
# start, in-process calls of the library too, for programs that take 0.2 s or more to compile:
# a program that several tests build (e.g. the same run in the library and through `fnrl train`)
# is compiled once. Cached executables are the compiled ones, so results are unchanged.
if "FNRL_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["FNRL_CACHE_DIR"] = tempfile.mkdtemp(prefix="fnrl-test-cache-")
import jax  # noqa: E402

from fnrl import cli  # noqa: E402

cli._enable_compile_cache()  # the command line's own switch (it leaves JAX_COMPILATION_CACHE_DIR alone)
jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
