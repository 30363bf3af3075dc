"""pytest plugin: lock a model's integer numerics in your own test suite.

Installed with hwsim (a ``pytest11`` entry point); it only adds an option, an
ini key and a fixture, and imports hwsim when a test uses the fixture::

    def test_my_model_on_my_chip(hwsim_golden):
        x = np.load("tests/data/images.npz")["image"][:4]
        hwsim_golden.check("models/net_int8.onnx", "npu-acc16", {"image": x}, "net_npu")

The first run with ``pytest --hwsim-update-golden`` records the vectors under
``tests/golden/<name>/`` (a fixture directory, see :mod:`hwsim.fixtures`; the
``hwsim_golden_dir`` ini key changes the root); commit them.  Every later run
verifies their hashes, re-runs the model and fails the test at the first
mismatch, naming the layer, file, flat index, expected and actual value.  A
float model needs ``calibration=`` (a dict, stored with the vectors).
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

__all__ = ["GoldenVectors"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def pytest_addoption(parser) -> None:
    group = parser.getgroup("hwsim", "hwsim golden vectors")
    group.addoption("--hwsim-update-golden", action="store_true", default=False,
                    help="(re-)record the golden vectors of every hwsim_golden.check() instead of checking them")
    parser.addini("hwsim_golden_dir", default="tests/golden",
                  help="where hwsim_golden keeps golden vectors, relative to the rootdir (default tests/golden)")


class GoldenVectors:
    """What the ``hwsim_golden`` fixture gives a test (one per test)."""

    def __init__(self, root: pathlib.Path, update: bool):
        self.root = pathlib.Path(root)
        self.update = bool(update)

    def directory(self, name: str) -> pathlib.Path:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ValueError(f"name: expected letters, digits, '_', '.', '-' (a directory name), got {name!r}")
        return self.root / name

    def check(self, model, target, inputs: dict, name: str, *, calibration: dict | None = None):
        """Check (or, with ``--hwsim-update-golden``, record) ``model`` on ``target`` for ``inputs``.

        Parameters
        ----------
        model : path or hwsim Graph
            A model file (loaded as ``hwsim run`` loads it) or a loaded graph.
        target : str, path or TargetProfile
        inputs : dict name -> ndarray
        name : str
            The golden directory's name under the golden root.
        calibration : dict, optional
            For a float model: the calibration data to quantize it with.

        Returns
        -------
        hwsim.fixtures.CheckSummary, or the Manifest when recording.
        """
        import hwsim
        from hwsim.cli_io import qdq_fusion
        from hwsim.fixtures import FixtureMismatch, check, read_manifest, record
        from hwsim.fixtures.record import quantize_for_fixtures
        from hwsim.graph.ir import Graph

        directory = self.directory(name)
        profile = target if isinstance(target, hwsim.TargetProfile) else hwsim.load_target(target)
        model_path, fusion = None, None
        if isinstance(model, Graph):
            graph = model
        elif isinstance(model, (str, os.PathLike)):
            fusion = qdq_fusion(profile)
            graph = hwsim.load_model(model, qdq_fusion=fusion)
            model_path = model
        else:
            raise ValueError(f"model: expected a model file path or a hwsim Graph, got {type(model).__name__}")
        if graph.kind == "float" and calibration is None:
            raise ValueError(f"model {model_path or graph.path}: a float model; pass calibration= to quantize it")
        if self.update:
            return record(graph, profile, inputs, directory, model_path=model_path, overwrite=True,
                          calibration=calibration, qdq_fusion=fusion)
        if not directory.exists():
            pytest.fail(f"no golden vectors at {directory}; run pytest with --hwsim-update-golden to record them",
                        pytrace=False)
        if graph.kind == "float":
            recorded = (read_manifest(directory).data.get("quantization") or {}).get("quantizer")
            graph, _ = quantize_for_fixtures(graph, profile, calibration, recorded)
        try:
            return check(directory, graph, profile)
        except FixtureMismatch as exc:
            pytest.fail(f"hwsim golden vectors {directory}: {exc}", pytrace=False)


@pytest.fixture
def hwsim_golden(request) -> GoldenVectors:
    """Golden vectors of your model's integer layers: ``hwsim_golden.check(model, target, inputs, name)``."""
    config = request.config
    return GoldenVectors(config.rootpath / config.getini("hwsim_golden_dir"),
                         config.getoption("--hwsim-update-golden"))
