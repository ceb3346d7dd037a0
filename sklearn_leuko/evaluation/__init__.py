"""The paper's evaluation protocol, public.

- :func:`run_protocol`: subject-level folds and held-out test subjects for
  the chosen stages, each network trained once per fold; returns the raw
  results (:class:`ProtocolResult`);
- :func:`fit_stage`: fit one stage the way the protocol does;
- :func:`split_test_subjects`: choose the test subjects, stratified by class.

Tables and figures are made from a :class:`ProtocolResult` by
:mod:`sklearn_leuko.report` (:func:`~sklearn_leuko.report.protocol_tables`).
"""

from ._protocol import EPOCH_SELECTIONS, ProtocolResult, fit_stage, run_protocol
from ._split import split_test_subjects

__all__ = [
    "EPOCH_SELECTIONS",
    "ProtocolResult",
    "fit_stage",
    "run_protocol",
    "split_test_subjects",
]
