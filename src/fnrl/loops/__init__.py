"""Training loops: one core (:mod:`fnrl.loops.core`: the carry, keys, chunks, evaluation, the
:class:`~fnrl.loops.core.Train`) and, beside each other, the loops that supply only their
iteration: :mod:`fnrl.loops.onpolicy` (rollout, update), :mod:`fnrl.loops.offpolicy`
(act, insert, sample, updates) and :mod:`fnrl.loops.modelbased` (act, insert, an update on every
real transition so far). :mod:`fnrl.loops.evaluation` runs evaluation episodes for all
of them, and :mod:`fnrl.runner` drives any of them chunk by chunk."""
