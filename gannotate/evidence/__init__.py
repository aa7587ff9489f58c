"""The detector payoff (:mod:`gannotate.evidence.payoff`): does a renderer's data make a detector better?

Every other measure lives in :mod:`gannotate.metrics`.
"""
