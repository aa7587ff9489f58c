"""Train/validation splits by source face: every sample follows its source, so no face is in both parts.

One ranking for every client (the exporters' ``--val-fraction`` and :class:`gannotate.io.LandmarkDataset`):
sources are ordered by a SHA-256 of their key, stable across runs, machines and dataset order.
"""

from __future__ import annotations

import hashlib
from typing import Iterable

from gannotate.errors import GannotateError

__all__ = ["val_keys"]


def val_keys(keys: Iterable[str], val_fraction: float, seed: int | None = None) -> set[str]:
    """The keys of the validation part: the first ``round(val_fraction · M)`` of the M distinct keys by hash.

    At least one key goes to validation when the fraction is > 0 and M ≥ 2. ``seed`` (None: the
    exporters' fixed order) salts the hash, so another seed draws another, equally stable, split.

    Raises:
        GannotateError: ``val_fraction`` outside [0, 1).
    """
    if not 0.0 <= val_fraction < 1.0:
        raise GannotateError(f"val_fraction must be in [0, 1), got {val_fraction}")
    distinct = sorted(set(keys))
    if val_fraction == 0.0 or len(distinct) < 2:
        return set()
    salt = "" if seed is None else f"{int(seed)}\0"
    ranked = sorted(distinct, key=lambda k: hashlib.sha256(f"{salt}{k}".encode()).hexdigest())
    return set(ranked[: max(1, round(val_fraction * len(distinct)))])
