"""Neutral I/O shared by both shells: image messages, bags, image folders and time stamps.

Nothing here imports rclpy or parses command lines, so the ROS node
(``superglue_ros.ros``) and the command-line tools (``superglue_ros.tools``)
decode and write exactly alike. Functions that read messages only read their
attributes, so rclpy messages, rosbags dataclasses and test doubles all work.
"""
