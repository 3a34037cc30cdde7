"""Package conventions: ament layout, declared dependencies, ROS kept in ros/."""

from __future__ import annotations

import ast
import configparser
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import PROJECT_ROOT

PACKAGE = PROJECT_ROOT / "superglue_ros"
# Python modules that come from ROS packages, by the package.xml name that provides them.
ROS_MODULES = {
    "rclpy",
    "std_msgs",
    "sensor_msgs",
    "geometry_msgs",
    "nav_msgs",
    "diagnostic_msgs",
    "builtin_interfaces",
    "rcl_interfaces",
    "superglue_ros_msgs",
    "launch",
    "launch_ros",
    "ament_index_python",
    "cv_bridge",
    "message_filters",
    "rosbag2_py",
}


def imported_top_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def package_xml_depends(path: Path) -> set[str]:
    root = ET.parse(path).getroot()
    tags = ("depend", "exec_depend", "build_depend", "buildtool_depend")
    return {element.text for tag in tags for element in root.iter(tag)}


def test_rclpy_and_messages_are_imported_only_under_ros() -> None:
    offenders = {}
    for path in PACKAGE.rglob("*.py"):
        if path.relative_to(PACKAGE).parts[0] == "ros":
            continue
        ros_imports = imported_top_modules(path) & ROS_MODULES
        if ros_imports:
            offenders[str(path.relative_to(PROJECT_ROOT))] = sorted(ros_imports)
    assert not offenders, f"ROS imports outside superglue_ros/ros/: {offenders}"


def test_pipeline_imports_without_ros_or_torch() -> None:
    code = (
        "import sys, superglue_ros.pipeline, superglue_ros.odometry, superglue_ros.tools.cli;"
        "bad = [m for m in ('rclpy', 'torch') if m in sys.modules];"
        "sys.exit(f'imported eagerly: {bad}' if bad else 0)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr + run.stdout


def test_every_ros_import_is_declared_in_package_xml() -> None:
    used = set()
    for path in [*PACKAGE.rglob("*.py"), *PROJECT_ROOT.glob("launch/*.py")]:
        used |= imported_top_modules(path) & ROS_MODULES
    # Imported only where they exist, never required: not run-time dependencies.
    optional = {"cv_bridge", "message_filters", "rosbag2_py"}
    declared = package_xml_depends(PROJECT_ROOT / "package.xml")
    assert used - optional - declared == set()


def test_ament_python_conventions() -> None:
    root = ET.parse(PROJECT_ROOT / "package.xml").getroot()
    assert root.get("format") == "3"
    assert root.findtext("name") == "superglue_ros"
    assert root.findtext("export/build_type") == "ament_python"
    assert (PROJECT_ROOT / "resource" / "superglue_ros").is_file()
    config = configparser.ConfigParser(interpolation=None)
    config.read(PROJECT_ROOT / "setup.cfg")
    assert config["develop"]["script_dir"] == "$base/lib/superglue_ros"
    assert config["install"]["install_scripts"] == "$base/lib/superglue_ros"
    setup_py = (PROJECT_ROOT / "setup.py").read_text()
    for needed in ("share/{package_name}/launch", "share/{package_name}/config", "matcher_node"):
        assert needed in setup_py


def test_interface_package_conventions() -> None:
    root = ET.parse(PROJECT_ROOT / "msg" / "package.xml").getroot()
    assert root.findtext("name") == "superglue_ros_msgs"
    assert root.findtext("export/build_type") == "ament_cmake"
    assert root.findtext("member_of_group") == "rosidl_interface_packages"
    cmake = (PROJECT_ROOT / "msg" / "CMakeLists.txt").read_text()
    for msg in sorted((PROJECT_ROOT / "msg" / "msg").glob("*.msg")):
        assert f'"msg/{msg.name}"' in cmake, f"{msg.name} is not generated"
    for srv in sorted((PROJECT_ROOT / "msg" / "srv").glob("*.srv")):
        assert f'"srv/{srv.name}"' in cmake, f"{srv.name} is not generated"


def test_colcon_install_has_launch_config_and_node() -> None:
    share = PROJECT_ROOT / "install" / "superglue_ros" / "share" / "superglue_ros"
    if not share.is_dir():
        pytest.skip("no colcon install/ here (make test builds it)")
    assert (share / "launch" / "matcher.launch.py").exists()
    for source in (PROJECT_ROOT / "config").rglob("*.yaml"):
        assert (share / source.relative_to(PROJECT_ROOT)).exists(), f"{source} is not installed"
    lib = PROJECT_ROOT / "install" / "superglue_ros" / "lib" / "superglue_ros"
    assert (lib / "matcher_node").exists()
    assert (lib / "odometry_node").exists()


def test_one_image_decoder() -> None:
    """The node, replay and play decode image messages with superglue_ros.io.images only."""
    decoders = {
        str(path.relative_to(PROJECT_ROOT))
        for path in PACKAGE.rglob("*.py")
        if "imdecode" in path.read_text() or ".encoding" in path.read_text()
    }
    assert decoders == {"superglue_ros/io/images.py"}
