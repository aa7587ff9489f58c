"""Export a dataset (HDF5 from :class:`~gannotate.io.hdf5.DatasetWriter`) to formats other tools read.

Registered formats (``list_exporters()``):

- ``pts``: ``images/<i>.png`` + ``<i>.pts`` (300W, 1-based), readable by :func:`gannotate.io.discover`.
- ``ljson``: ``images/<i>.png`` + ``<i>.ljson``, menpo LJSON v2: points ``[y, x]`` 0-based (menpo's
  own convention), named groups as labels and the drawing edges as connectivity.
- ``hrnet-csv``: ``images/<i>.png`` + ``face_landmarks.csv`` in HRNet-Facial-Landmark-Detection's
  300W form: ``image_name,scale,center_w,center_h,original_0_x,original_0_y,...``; points and
  centre 1-based as in HRNet's 300W csvs; centre = landmark-box centre, ``scale`` = longest
  landmark-box side / 200 (HRNet's 300W csvs agree with this rule to ≤ 0.5 px and ≤ 3.5 %).
- ``coco``: ``images/<i>.png`` + ``annotations.json`` (COCO keypoints): ``keypoints`` =
  ``[x, y, 2] * K`` in 0-based pixel centres (stated in ``info.coord_origin``), ``bbox`` = landmark
  box ``[x, y, w, h]``, one ``face`` category with keypoint names and a 1-based ``skeleton``.

Sample ``i`` of the dataset is written as ``images/{i:06d}.*`` in every format.
"""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np

from gannotate.errors import GannotateError
from gannotate.io.atomic import atomic_write_text
from gannotate.io.folder_writer import FolderWriter
from gannotate.io.hdf5 import COORD_ORIGIN, DatasetReader
from gannotate.io.images import write_image
from gannotate.landmarks import Scheme, get_scheme, scheme_for
from gannotate.registry import Registry

__all__ = [
    "register_exporter",
    "list_exporters",
    "export",
    "ljson_v2",
    "read_hrnet_csv",
    "keypoint_names",
    "skeleton",
    "HRNET_CSV_NAME",
    "COCO_JSON_NAME",
]

log = logging.getLogger(__name__)

Exporter = Callable[[DatasetReader, Path], Path]
_EXPORTERS: Registry[Exporter] = Registry("export format")
HRNET_CSV_NAME = "face_landmarks.csv"
COCO_JSON_NAME = "annotations.json"


def register_exporter(name: str) -> Callable[[Exporter], Exporter]:
    """Decorator: register ``fn(reader, out_dir) -> Path`` under ``name`` (a ``--format`` choice)."""
    return _EXPORTERS.register(name)


def list_exporters() -> list[str]:
    """Names of the registered export formats, sorted."""
    return sorted(_EXPORTERS.names())


def export(dataset_path: str | Path, fmt: str, out_dir: str | Path) -> Path:
    """Export every committed sample of ``dataset_path`` to ``out_dir`` in format ``fmt``.

    Returns:
        The main output (the folder, or the csv/json file that indexes the images).

    Raises:
        GannotateError: unknown format (the message lists the valid ones).
        DatasetError: the dataset cannot be read.
    """
    fn = _EXPORTERS.get(fmt)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    with DatasetReader(dataset_path) as reader:
        result = fn(reader, out)
        log.info("exported %d samples of %s as %s to %s", len(reader), dataset_path, fmt, result)
    return result


def _scheme_of(reader: DatasetReader) -> Scheme:
    try:
        return get_scheme(reader.scheme)
    except GannotateError:
        return scheme_for(reader.landmarks.shape[1])


def _name(i: int) -> str:
    return f"{i:06d}"


def _write_images(reader: DatasetReader, out: Path) -> list[str]:
    """Write every image as ``images/<i>.png``; returns the paths relative to ``out``."""
    names = []
    for i in range(len(reader)):
        rel = f"images/{_name(i)}.png"
        write_image(out / rel, reader.images[i])
        names.append(rel)
    return names


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
    for i in range(len(reader)):
        writer.write(_name(i), reader.images[i], reader.landmarks[i])
    return out


def ljson_v2(points: np.ndarray, scheme: Scheme | None = None) -> dict[str, Any]:
    """menpo LJSON v2 for (K, 2) (x, y) 0-based points: ``points`` are ``[y, x]`` (menpo's order)."""
    pts = np.asarray(points, dtype=np.float64)
    sch = scheme if scheme is not None else scheme_for(len(pts))
    return {
        "version": 2,
        "labels": [{"label": g, "mask": [int(i) for i in idx]} for g, idx in sch.groups.items()],
        "landmarks": {"points": pts[:, ::-1].tolist(), "connectivity": skeleton(sch)},
    }


@register_exporter("ljson")
def _export_ljson(reader: DatasetReader, out: Path) -> Path:
    sch = _scheme_of(reader)
    for i, rel in enumerate(_write_images(reader, out)):
        doc = ljson_v2(reader.landmarks[i], sch)
        atomic_write_text(out / Path(rel).with_suffix(".ljson"), json.dumps(doc))
    return out


def _box(points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Landmark boxes of (N, K, 2) points: min and max corners and centre (N, 2), and the
    HRNet/MMPose ``scale`` = longest box side / 200 (N,)."""
    lo, hi = points.min(axis=1), points.max(axis=1)
    return lo, hi, (lo + hi) / 2.0, (hi - lo).max(axis=1) / 200.0


@register_exporter("hrnet-csv")
def _export_hrnet_csv(reader: DatasetReader, out: Path) -> Path:
    names = _write_images(reader, out)
    pts1 = reader.landmarks.astype(np.float64) + 1.0  # HRNet's 300W csvs are 1-based
    _, _, centre, scale = _box(pts1)
    k = pts1.shape[1]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["image_name", "scale", "center_w", "center_h"]
               + [f"original_{i}_{c}" for i in range(k) for c in "xy"])
    for i, name in enumerate(names):
        w.writerow([name, f"{scale[i]:.6f}", f"{centre[i, 0]:.4f}", f"{centre[i, 1]:.4f}"]
                   + [f"{v:.4f}" for v in pts1[i].ravel()])
    return atomic_write_text(out / HRNET_CSV_NAME, buf.getvalue())


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


@register_exporter("coco")
def _export_coco(reader: DatasetReader, out: Path) -> Path:
    sch = _scheme_of(reader)
    names = _write_images(reader, out)
    pts = reader.landmarks.astype(np.float64)
    lo, hi, centre, scale = _box(pts)
    k = pts.shape[1]
    h, w = reader.images.shape[1:3]
    kp = np.concatenate([pts, np.full((len(pts), k, 1), 2.0)], axis=2).reshape(len(pts), -1)  # (N, 3K)
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
        }],
    }
    return atomic_write_text(out / COCO_JSON_NAME, json.dumps(doc))
