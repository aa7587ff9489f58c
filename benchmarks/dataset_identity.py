"""Content hashes of `gannotate augment` datasets over every renderer and way of running, to show a refactor changes no byte.

HDF5 files are not compared as files (the library may lay chunks out differently between runs); instead every
dataset's dtype, shape and bytes and every attribute (file and dataset level) are hashed, in name order. String
attributes (``command``, ``merged_from``) name the run's folders, so the case's folder is replaced by ``CASE``
before hashing. The exported 300W folder (``images/``) is hashed file by file.

Usage:
    python benchmarks/dataset_identity.py --work /tmp/ids > before.json      # with the old tree on PYTHONPATH
    python benchmarks/dataset_identity.py --work /tmp/ids2 --compare before.json
Prints JSON: one entry per case with the dataset and folder hashes (and, with --compare, whether each matches).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

# name -> list of argument lists; a case with several runs is shards followed by a merge.
BASE = ["--n", "2", "-q", "--seed", "3"]
CASES: dict[str, list[list[str]]] = {}
for _renderer in ("warp", "profile", "gan"):
    CASES[f"{_renderer}"] = [["--renderer", _renderer]]
    CASES[f"{_renderer}_workers2"] = [["--renderer", _renderer, "--workers", "2"]]
    CASES[f"{_renderer}_shards"] = [["--renderer", _renderer, "--shard", "0/2"], ["--renderer", _renderer, "--shard", "1/2"]]
CASES["default"] = [[]]
CASES["warp_ray"] = [["--renderer", "warp", "--backend", "ray", "--shards", "2", "--workers", "2"]]


def _value_bytes(value: object) -> bytes:
    """A value's type and content as bytes; object arrays (strings) by their items, never by their pointers."""
    if isinstance(value, (str, bytes)):
        return type(value).__name__.encode() + (value.encode() if isinstance(value, str) else value)
    arr = np.asarray(value)
    head = f"{arr.dtype}{arr.shape}".encode()
    return head + (repr(arr.tolist()).encode() if arr.dtype.kind == "O" else np.ascontiguousarray(arr).tobytes())


def _hash_attrs(h: "hashlib._Hash", attrs: h5py.AttributeManager, case_dir: str) -> None:
    for key in sorted(attrs):
        value = attrs[key]
        if isinstance(value, str):  # command lines and merged_from name the run's folders
            value = value.replace(case_dir, "CASE")
        h.update(key.encode())
        h.update(_value_bytes(value))


def dataset_digest(path: Path, case_dir: str) -> dict:
    """sha256 over every dataset (dtype, shape, bytes) and attribute of an HDF5 file, in name order."""
    h = hashlib.sha256()
    with h5py.File(path, "r") as f:
        _hash_attrs(h, f.attrs, case_dir)
        names: list[str] = []
        f.visit(names.append)
        for name in sorted(names):
            obj = f[name]
            h.update(name.encode())
            _hash_attrs(h, obj.attrs, case_dir)
            if isinstance(obj, h5py.Dataset):
                h.update(_value_bytes(obj[()]))
        n = int(f["images"].shape[0]) if "images" in f else 0
    return {"sha256": h.hexdigest(), "n_samples": n}


def folder_digest(folder: Path) -> str:
    """sha256 over the names and bytes of every file under ``folder``, in name order."""
    h = hashlib.sha256()
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            h.update(str(p.relative_to(folder)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def _gannotate(*args: str) -> None:
    """Run the CLI of the gannotate on PYTHONPATH; its summary lines go to stderr (stdout is this script's JSON)."""
    subprocess.run([sys.executable, "-m", "gannotate.cli", *args], check=True, env=dict(os.environ), stdout=sys.stderr)


def run_case(name: str, runs: list[list[str]], work: Path, run: bool = True) -> dict:
    case_dir = work / name
    final = case_dir / "out"
    if run:
        shutil.rmtree(case_dir, ignore_errors=True)
        outs = []
        for i, args in enumerate(runs):
            out = case_dir / (f"shard{i}" if len(runs) > 1 else "out")
            _gannotate("augment", "--out", str(out), *BASE, *args)
            outs.append(out)
        if len(runs) > 1:
            _gannotate("merge", "-q", str(final), *map(str, outs))
    digest = dataset_digest(final / "dataset.h5", str(case_dir))
    digest["folder_sha256"] = folder_digest(final / "images")
    return digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work", type=Path, required=True, help="scratch folder for the runs")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated case names")
    ap.add_argument("--compare", type=Path, help="earlier output of this script to compare with")
    ap.add_argument("--no-run", action="store_true", help="hash the outputs already in --work")
    args = ap.parse_args()
    import gannotate

    result: dict = {"gannotate": str(Path(gannotate.__file__).parent), "cases": {}}
    for name in args.cases.split(","):
        result["cases"][name] = run_case(name, CASES[name], args.work, run=not args.no_run)
    if args.compare:
        before = json.loads(args.compare.read_text())["cases"]
        for name, d in result["cases"].items():
            d["identical"] = name in before and all(before[name][k] == d[k] for k in ("sha256", "folder_sha256", "n_samples"))
        result["all_identical"] = all(d["identical"] for d in result["cases"].values())
    print(json.dumps(result, indent=2))
    if args.compare and not result["all_identical"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
