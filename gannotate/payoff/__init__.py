"""The detector payoff: does generated data make a landmark detector better, where, and with which recipe?

:mod:`~gannotate.payoff.split` splits photos so turned faces are test-only; :mod:`~gannotate.payoff.protocol`
generates, trains every arm × seed (resumable, parallel) and scores with :mod:`gannotate.metrics.payoff`.
"""

from gannotate.payoff.protocol import SCENARIOS, Arm, PayoffConfig, Scenario, arms_of, prepare, run_payoff, train_all
from gannotate.payoff.split import Face, PayoffSplit, scenario_faces, split_photos

__all__ = ["SCENARIOS", "Arm", "PayoffConfig", "Scenario", "arms_of", "prepare", "run_payoff", "train_all",
           "Face", "PayoffSplit", "scenario_faces", "split_photos"]
