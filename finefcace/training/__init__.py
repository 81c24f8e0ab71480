"""The training engine: whole runs of the method from one typed configuration.

:mod:`~finefcace.training.config` (the checked :class:`~finefcace.training.config.TrainConfig`),
:mod:`~finefcace.training.recipe` (model, optimizer, schedule; paper §4.2),
:mod:`~finefcace.training.loaders` (the run's table and seeded, sharded loaders),
:mod:`~finefcace.training.trainer` (the epoch loop around
:func:`finefcace.mutual_learning.finefcace_iteration`, paper Algorithm 1),
:mod:`~finefcace.training.evaluation` (fused scores and the predictions table),
:mod:`~finefcace.training.run_directory` and :mod:`~finefcace.training.checkpoint` (what a run
writes and reads back), :mod:`~finefcace.training.model_card` (every finished run described for
its readers), :mod:`~finefcace.training.distributed` (several processes) and
:mod:`~finefcace.training.cli` (``python -m finefcace``). The engine imports the method (the
modules at the top of :mod:`finefcace`) and the data (:mod:`finefcace.sources`), never the course.
"""
