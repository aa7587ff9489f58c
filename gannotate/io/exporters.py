"""Export a dataset (HDF5 from :class:`~gannotate.io.hdf5.DatasetWriter`) to formats other tools read.

Registered formats (``list_exporters()``); each is checked in tests by the real client:

- ``pts``: ``images/<name>.png`` + ``<name>.pts`` (300W, 1-based), readable by :func:`gannotate.io.discover`.
- ``ljson``: ``images/<name>.png`` + ``<name>.ljson``, menpo LJSON **v3** (what menpo writes today;
  ``menpo.io.import_landmark_file`` reads it without a deprecation warning): one group
  ``face_ibug_68`` (``face_ibug_66``), points ``[y, x]`` 0-based (menpo's order), the labels of
  menpo's own labeller (``left_eye`` = points 36-41, the eye on the image's left, as in
  ``menpo.landmark.face_ibug_68_to_face_ibug_68``) and the drawing edges as connectivity.
- ``hrnet-csv``: ``images/<name>.png`` + ``face_landmarks.csv`` (or, with ``val_fraction``,
  ``face_landmarks_train.csv`` + ``face_landmarks_valid.csv``) in the form HRNet-Facial-Landmark-
  Detection's 300W reader (``lib/datasets/face300w.py``) indexes by position: column 0
  ``image_name`` (relative to ``images/``: set HRNet's ``DATASET.ROOT`` to ``<out>/images/``),
  1 ``scale``, 2 ``center_w``, 3 ``center_h``, then 2K coordinates ``original_0_x, original_0_y,
  ...``; points and centre 1-based as in HRNet's 300W csvs; centre = landmark-box centre,
  ``scale`` = longest landmark-box side / 200 (HRNet's 300W csvs agree with this rule to ≤ 0.5 px
  and ≤ 3.5 %). The split is by source face, so one person never lands in both files.
- ``coco``: ``images/<name>.png`` + ``annotations.json`` (COCO keypoints): ``keypoints`` =
  ``[x, y, 2] * K`` in 0-based pixel centres (stated in ``info.coord_origin``), ``bbox`` = landmark
  box ``[x, y, w, h]``, ``area`` = its area, one ``face`` category with keypoint names, a 1-based
  ``skeleton`` and per-keypoint ``sigmas`` (:data:`COCO_FACE_SIGMAS`) to pass to
  ``COCOeval.params.kpt_oks_sigmas``.

Every export is built in a hidden folder beside ``out`` and moved into place only when complete
(:func:`gannotate.io.atomic.staged_folder`): a failed or killed export leaves nothing at ``out``, and an
existing ``out`` is replaced whole (never added to) when it is empty or an earlier gannotate export
(it holds :data:`EXPORT_MARKER`); any other existing ``out`` is refused before any work.

Sample names keep the source: ``<name>`` = :func:`gannotate.io.folder_writer.sample_name` of the
sample's source key and target index (e.g. ``afw%2F111076519_2_0003``), the same name augment's
folder output uses.
"""

from __future__ import annotations

import csv
import inspect
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from gannotate.errors import GannotateError
from gannotate.io.atomic import atomic_write_text, staged_folder
from gannotate.io.folder_writer import FolderWriter, sample_name
from gannotate.io.hdf5 import COORD_ORIGIN, DatasetReader
from gannotate.io.images import write_image
from gannotate.io.splits import val_keys
from gannotate.landmarks import Scheme, get_scheme, scheme_for
from gannotate.registry import Registry

__all__ = [
    "register_exporter",
    "list_exporters",
    "export",
    "ljson_v3",
    "menpo_labels",
    "split_by_source",
    "read_hrnet_csv",
    "keypoint_names",
    "skeleton",
    "HRNET_CSV_NAME",
    "COCO_JSON_NAME",
    "COCO_FACE_SIGMA",
    "coco_sigmas",
    "EXPORT_MARKER",
]

log = logging.getLogger(__name__)

Exporter = Callable[..., Path]  # fn(reader, out_dir, **options) -> main output
_EXPORTERS: Registry[Exporter] = Registry("export format")
HRNET_CSV_NAME = "face_landmarks.csv"
HRNET_SPLIT_NAMES = ("face_landmarks_train.csv", "face_landmarks_valid.csv")
COCO_JSON_NAME = "annotations.json"
COCO_SPLIT_NAMES = ("annotations_train.json", "annotations_valid.json")
#: written last into every export: what made it; an ``out`` holding it may be replaced by a new export
EXPORT_MARKER = ".gannotate-export.json"

# OKS σ per keypoint for a face-only COCO file. One value for all points, 0.025, COCO's own σ for
# the eyes and nose (its most precise body keypoints; COCO 2017 person_keypoints). Why not
# COCO-WholeBody's 68 face σ (≈ 0.007–0.045)? Those were measured relative to the *person's*
# area; here the object is the face (area = landmark box), about 10× smaller in side, so
# person-relative σ would make 1-2 px of noise fail OKS. With σ = 0.025 and a 100-px face, a
# 3-px error still scores OKS ≈ 0.84 and a 7-px (~ 7 % of the face) error ≈ 0.38. Tools may
# override: the value is stored per keypoint in ``categories[0]["sigmas"]``.
COCO_FACE_SIGMA = 0.025


def register_exporter(name: str) -> Callable[[Exporter], Exporter]:
    """Decorator: register ``fn(reader, out_dir) -> Path`` under ``name`` (a ``--format`` choice)."""
    return _EXPORTERS.register(name)


def list_exporters() -> list[str]:
    """Names of the registered export formats, sorted."""
    return sorted(_EXPORTERS.names())


def export(dataset_path: str | Path, fmt: str, out_dir: str | Path, **options: Any) -> Path:
    """Export every committed sample of ``dataset_path`` to ``out_dir`` in format ``fmt``.

    Args:
        options: format options (``val_fraction`` for ``hrnet-csv`` and ``coco``); ``None`` values are ignored.

    Returns:
        The main output (the folder, or the csv/json file that indexes the images).

    Raises:
        GannotateError: unknown format (the message lists the valid ones), or an option the
            format does not take.
        DatasetError: the dataset cannot be read, or ``out_dir`` exists and is neither empty nor an
            earlier export (see the module doc).
        DatasetCorruptError: an image or a row's ground truth fails its stored checksum (nothing is
            left at ``out_dir``; an earlier export there stays as it was).
    """
    fn = _EXPORTERS.get(fmt)
    options = {k: v for k, v in options.items() if v is not None}
    accepted = set(inspect.signature(fn).parameters) - {"reader", "out"}
    unknown = sorted(set(options) - accepted)
    if unknown:
        raise GannotateError(f"export format {fmt!r} takes no option {', '.join(unknown)} "
                             f"(it takes: {', '.join(sorted(accepted)) or 'none'})")
    out = Path(out_dir)
    with DatasetReader(dataset_path) as reader, staged_folder(out, _may_replace) as tmp:
        result = fn(reader, tmp, **options)
        atomic_write_text(tmp / EXPORT_MARKER, json.dumps(
            {"format": fmt, "dataset": str(dataset_path), "n_samples": len(reader), **options}) + "\n")
        log.info("exported %d samples of %s as %s to %s", len(reader), dataset_path, fmt, out)
    return out / Path(result).relative_to(tmp)


def _may_replace(out: Path) -> str | None:
    """None when an existing ``out`` may be replaced by an export (empty, or an earlier export), else why not."""
    if not out.is_dir():
        return "exists and is not a folder; choose another --out"
    if (out / EXPORT_MARKER).is_file() or not any(out.iterdir()):
        return None
    return (f"exists and is not a gannotate export (no {EXPORT_MARKER}); an export replaces only an earlier "
            "export: choose a new or empty --out, or remove this folder")


def _scheme_of(reader: DatasetReader) -> Scheme:
    try:
        return get_scheme(reader.scheme)
    except GannotateError:
        return scheme_for(reader.landmarks.shape[1])


def _names(reader: DatasetReader) -> list[str]:
    """One file stem per sample: ``sample_name(source key, target)`` (unique: the resume key)."""
    names: list[str] = []
    seen: set[str] = set()
    for i in range(len(reader)):
        si = int(reader.source_index[i])
        key = reader.sources[si] if 0 <= si < len(reader.sources) else f"sample{i:06d}"
        name = sample_name(key, int(reader.target_index[i]))
        if name in seen:  # only a hand-made file repeats (source, target); keep every sample
            name = f"{name}_{i:06d}"
        seen.add(name)
        names.append(name)
    return names


def _write_images(reader: DatasetReader, out: Path) -> list[str]:
    """Write every image as ``images/<name>.png``; returns the paths relative to ``out``."""
    rels = []
    for i, name in enumerate(_names(reader)):
        rel = f"images/{name}.png"
        write_image(out / rel, reader.images[i])
        rels.append(rel)
    return rels


def keypoint_names(scheme: Scheme) -> list[str]:
    """One name per point, ``<group>_<j>`` (j counts within the group), e.g. ``jaw_0``, ``mouth_19``."""
    names = [f"point_{i}" for i in range(scheme.n_points)]
    for group, idx in scheme.groups.items():
        for j, i in enumerate(idx):
            names[i] = f"{group}_{j}"
    return names


def skeleton(scheme: Scheme, one_based: bool = False) -> list[list[int]]:
    """The scheme's drawing polylines as unique ``[a, b]`` edges (COCO skeletons are 1-based)."""
    pairs = {tuple(sorted((int(a), int(b)))) for e in scheme.edges for a, b in zip(e[:-1], e[1:])}
    off = 1 if one_based else 0
    return [[a + off, b + off] for a, b in sorted(pairs)]


@register_exporter("pts")
def _export_pts(reader: DatasetReader, out: Path) -> Path:
    writer = FolderWriter(out)
    for i, name in enumerate(_names(reader)):
        writer.write(name, reader.images[i], reader.landmarks[i])
    return out


# our group names are the subject's sides (right_eye = 36-41, as in 300W's own description);
# menpo's labeller names the sides as seen in the image (left_eye = 36-41): LJSON speaks menpo's
_MENPO_LABELS = {"jaw": "jaw", "right_brow": "left_eyebrow", "left_brow": "right_eyebrow", "nose": "nose",
                 "right_eye": "left_eye", "left_eye": "right_eye", "mouth": "mouth"}


def menpo_labels(scheme: Scheme) -> dict[str, list[int]]:
    """The scheme's groups under menpo's label names (``face_ibug_68_to_face_ibug_68``'s convention)."""
    return {_MENPO_LABELS.get(g, g): [int(i) for i in idx] for g, idx in scheme.groups.items()}


def ljson_v3(points: np.ndarray, scheme: Scheme | None = None) -> dict[str, Any]:
    """menpo LJSON v3 for (K, 2) (x, y) 0-based points: one group ``face_<scheme>``, ``points``
    ``[y, x]`` (menpo's order), menpo's labels and the scheme's edges as connectivity."""
    pts = np.asarray(points, dtype=np.float64)
    sch = scheme if scheme is not None else scheme_for(len(pts))
    group = {
        "labels": [{"label": label, "mask": mask} for label, mask in menpo_labels(sch).items()],
        "landmarks": {"points": pts[:, ::-1].tolist(), "connectivity": skeleton(sch)},
    }
    return {"version": 3, "groups": {f"face_{sch.name.replace('ibug', 'ibug_')}": group}}


@register_exporter("ljson")
def _export_ljson(reader: DatasetReader, out: Path) -> Path:
    sch = _scheme_of(reader)
    for i, rel in enumerate(_write_images(reader, out)):
        doc = ljson_v3(reader.landmarks[i], sch)
        atomic_write_text(out / Path(rel).with_suffix(".ljson"), json.dumps(doc))
    return out


def _box(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Landmark boxes of (N, K, 2) points: min and max corners and centre (N, 2), and the
    HRNet/MMPose ``scale`` = longest box side / 200 (N,)."""
    lo, hi = points.min(axis=1), points.max(axis=1)
    return lo, hi, (lo + hi) / 2.0, (hi - lo).max(axis=1) / 200.0


def split_by_source(sources: Sequence[str], source_index: np.ndarray, val_fraction: float) -> np.ndarray:
    """(N,) bool, True for samples of the validation part: whole source faces, never one split.

    Sources are ranked by a hash of their key (:func:`gannotate.io.splits.val_keys`, stable across
    runs, machines and dataset order) and the first ``round(val_fraction · M)`` of them (at least one
    when the fraction is > 0 and M ≥ 2) are validation; every sample follows its source.
    """
    idx = [int(i) for i in np.asarray(source_index).tolist()]
    key = {i: str(sources[i] if i < len(sources) else i) for i in set(idx)}
    val = val_keys(key.values(), val_fraction)
    return np.array([key[i] in val for i in idx], dtype=bool)


def _hrnet_rows(names: list[str], pts1: np.ndarray) -> str:
    """csv text: HRNet's header, then image_name, scale, center_w, center_h, 2K 1-based coordinates."""
    _, _, centre, scale = _box(pts1)
    k = pts1.shape[1]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image_name", "scale", "center_w", "center_h"]
               + [f"original_{i}_{c}" for i in range(k) for c in "xy"])
    for i, name in enumerate(names):
        w.writerow([name, f"{scale[i]:.6f}", f"{centre[i, 0]:.4f}", f"{centre[i, 1]:.4f}"]
                   + [f"{v:.4f}" for v in pts1[i].ravel()])
    return buf.getvalue()


@register_exporter("hrnet-csv")
def _export_hrnet_csv(reader: DatasetReader, out: Path, val_fraction: float = 0.0) -> Path:
    """Images under ``images/``, csv paths relative to it (HRNet joins ``DATASET.ROOT`` + name)."""
    names = [rel[len("images/"):] for rel in _write_images(reader, out)]
    pts1 = reader.landmarks.astype(np.float64) + 1.0  # HRNet's 300W csvs are 1-based
    if not val_fraction:
        return atomic_write_text(out / HRNET_CSV_NAME, _hrnet_rows(names, pts1))
    is_val = split_by_source(reader.sources, reader.source_index, val_fraction)
    paths = []
    for csv_name, keep in zip(HRNET_SPLIT_NAMES, (~is_val, is_val)):
        idx = np.nonzero(keep)[0]
        paths.append(atomic_write_text(out / csv_name, _hrnet_rows([names[i] for i in idx], pts1[idx])))
    log.info("hrnet-csv: %d train / %d valid samples", int((~is_val).sum()), int(is_val.sum()))
    return paths[0]


def read_hrnet_csv(path: str | Path) -> list[dict[str, Any]]:
    """Read an HRNet 300W-style csv: per row ``image_name``, ``scale``, ``center`` (2,) and
    ``points`` (K, 2) float32 converted to 0-based (the csv is 1-based; the centre stays as written).

    Raises:
        GannotateError: a row that does not have 4 + 2K numeric columns.
    """
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        next(reader, None)  # header
        for no, row in enumerate(reader, start=2):
            try:
                vals = np.asarray(row[1:], dtype=np.float64)
            except ValueError:
                raise GannotateError(f"{path}:{no}: non-numeric value") from None
            if len(vals) < 5 or (len(vals) - 3) % 2:
                raise GannotateError(f"{path}:{no}: expected image_name,scale,center_w,center_h,x0,y0,...")
            rows.append({
                "image_name": row[0],
                "scale": float(vals[0]),
                "center": vals[1:3],
                "points": (vals[3:].reshape(-1, 2) - 1.0).astype(np.float32),
            })
    return rows


def coco_sigmas(n_points: int) -> list[float]:
    """Per-keypoint OKS σ of a face-only export (see :data:`COCO_FACE_SIGMA` for the choice)."""
    return [COCO_FACE_SIGMA] * int(n_points)


@register_exporter("coco")
def _export_coco(reader: DatasetReader, out: Path, val_fraction: float = 0.0) -> Path:
    """COCO keypoints; with ``val_fraction``, ``annotations_train.json`` + ``annotations_valid.json``
    split by source face (as the HRNet split), each a complete COCO file over the same images folder."""
    names = _write_images(reader, out)
    doc = _coco_doc(reader, names)
    if not val_fraction:
        return atomic_write_text(out / COCO_JSON_NAME, json.dumps(doc))
    is_val = split_by_source(reader.sources, reader.source_index, val_fraction)
    paths = []
    for json_name, keep in zip(COCO_SPLIT_NAMES, (~is_val, is_val)):
        ids = {int(i) + 1 for i in np.nonzero(keep)[0]}
        part = dict(doc, images=[im for im in doc["images"] if im["id"] in ids],
                    annotations=[a for a in doc["annotations"] if a["image_id"] in ids])
        paths.append(atomic_write_text(out / json_name, json.dumps(part)))
    log.info("coco: %d train / %d valid samples", int((~is_val).sum()), int(is_val.sum()))
    return paths[0]


def _coco_doc(reader: DatasetReader, names: list[str]) -> dict[str, Any]:
    """The COCO keypoints document for every sample (images ids are row + 1)."""
    sch = _scheme_of(reader)
    pts = reader.landmarks.astype(np.float64)
    k = pts.shape[1]
    lo, hi, centre, scale = _box(pts)  # (N, 2) ×3, (N,); N may be 0
    h, w = reader.images.shape[1:3]
    kp = np.concatenate([pts, np.full((len(pts), k, 1), 2.0)], axis=2).reshape(len(pts), 3 * k)  # (N, 3K)
    images, annotations = [], []
    for i, name in enumerate(names):
        bw, bh = (hi[i] - lo[i]).tolist()
        images.append({"id": i + 1, "file_name": name, "width": int(w), "height": int(h)})
        annotations.append({
            "id": i + 1,
            "image_id": i + 1,
            "category_id": 1,
            "keypoints": [round(v, 4) if j % 3 != 2 else 2 for j, v in enumerate(kp[i].tolist())],
            "num_keypoints": int(k),
            "bbox": [round(v, 4) for v in (lo[i, 0], lo[i, 1], bw, bh)],
            "area": round(bw * bh, 4),
            "iscrowd": 0,
            "center": [round(v, 4) for v in centre[i].tolist()],
            "scale": round(float(scale[i]), 6),
            "pose": [round(float(v), 4) for v in reader.pose[i]],
            "source": reader.sources[int(reader.source_index[i])] if reader.sources else "",
        })
    doc = {
        "info": {
            "description": "gannotate export",
            "version": str(reader.attrs.get("version", "")),
            "coord_origin": COORD_ORIGIN,
            "scheme": sch.name,
        },
        "images": images,
        "annotations": annotations,
        "categories": [{
            "id": 1,
            "name": "face",
            "supercategory": "face",
            "keypoints": keypoint_names(sch),
            "skeleton": skeleton(sch, one_based=True),
            "sigmas": coco_sigmas(k),
        }],
    }
    return doc
