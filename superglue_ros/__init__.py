"""SuperPoint + SuperGlue keyframe matching front-end for ROS 2 visual SLAM.

``superglue_ros.models`` and ``superglue_ros.pipeline`` are ROS-agnostic;
rclpy is imported only under ``superglue_ros.ros``.
"""

__version__ = "0.1.0"
