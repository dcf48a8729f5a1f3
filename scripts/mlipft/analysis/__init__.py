"""The analysis layer: one module per evaluation of a model.

Each module is a function (model + inputs + params -> a tidy table that carries the run's keys)
and a ``python -m mlipft.analysis.<name>`` command line that the rules of ``rules/analysis_*.smk``
call. Outputs go under the run's directory (:mod:`mlipft.paths`).
"""
