"""The tasks' old import path. Task rows queued before the split into apps
store "playground.core.tasks.<name>" and are run by importing that path: keep
this module so that they still run after an upgrade."""

from playground.generations.tasks import adopt_claimed_job, advance_generation, sweep_generations  # noqa: F401
