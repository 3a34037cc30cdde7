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
    install_requires=["setuptools", "numpy", "pyyaml"],
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
