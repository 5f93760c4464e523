"""jit/vmap/grad cases for :mod:`fnrl.envs.brax_envs` (none: see EXEMPT)."""
import fnrl.envs.brax_envs as BE

MODULE = BE
EXEMPT = {
    "BraxEnv": "a Brax environment: the eager and grad passes of this harness take ~2 minutes for even "
               "the smallest one; every Brax env is traced under jit+vmap (two of them run) in tests/test_envs_brax.py",
    "brax_names": "lists registry names; no array input",
}
CASES = []
