"""Launch matcher_node: SuperPoint + SuperGlue keyframe matching on a camera topic.

    ros2 launch superglue_ros matcher.launch.py image:=/camera/image_raw \
        camera_info:=/camera/camera_info preset:=fast_cpu

odometry:=true also starts odometry_node (the reference back-end) in the same
namespace, on the matcher's correspondences and the same camera_info.

Parameters come from params_file (default: the installed config/matcher.yaml),
then the preset's file (config/<preset>.yaml), then the arguments below that
are not empty.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

PRESETS = ("none", "indoor", "outdoor", "fast_cpu")


def _node(context, *args, **kwargs):
    def value(name: str) -> str:
        return LaunchConfiguration(name).perform(context)

    params = [value("params_file")]
    preset = value("preset")
    if preset != "none":
        share = FindPackageShare("superglue_ros").perform(context)
        params.append(f"{share}/config/{preset}.yaml")
    overrides = {
        name: value(name)
        for name in (
            "weights_dir",
            "device",
            "precision",
            "frontend",
            "matcher",
            "runtime",
            "onnx_dir",
        )
        if value(name)
    }
    overrides["use_sim_time"] = value("use_sim_time").lower() in ("true", "1", "yes")
    params.append(overrides)
    nodes = [
        Node(
            package="superglue_ros",
            executable="matcher_node",
            name=value("node_name"),
            namespace=value("namespace"),
            output="screen",
            emulate_tty=True,
            parameters=params,
            remappings=[
                ("image", value("image")),
                ("camera_info", value("camera_info")),
                ("features_vins", value("vins_topic")),
            ],
            arguments=["--ros-args", "--log-level", value("log_level")],
        )
    ]
    if value("odometry").lower() in ("true", "1", "yes"):
        nodes.append(
            Node(
                package="superglue_ros",
                executable="odometry_node",
                namespace=value("namespace"),
                output="screen",
                emulate_tty=True,
                parameters=[{"use_sim_time": overrides["use_sim_time"]}],
                remappings=[("camera_info", value("camera_info"))],
                arguments=["--ros-args", "--log-level", value("log_level")],
            )
        )
    return nodes


def generate_launch_description() -> LaunchDescription:
    default_params = PathJoinSubstitution(
        [FindPackageShare("superglue_ros"), "config", "matcher.yaml"]
    )
    arguments = [
        DeclareLaunchArgument("image", default_value="image", description="input image topic"),
        DeclareLaunchArgument(
            "camera_info", default_value="camera_info", description="CameraInfo topic"
        ),
        DeclareLaunchArgument(
            "vins_topic",
            default_value="features_vins",
            description="VINS feature stream (VINS-Fusion: /feature_tracker/feature)",
        ),
        DeclareLaunchArgument(
            "params_file", default_value=default_params, description="parameters YAML file"
        ),
        DeclareLaunchArgument(
            "preset",
            default_value="none",
            choices=list(PRESETS),
            description="config/<preset>.yaml loaded after params_file",
        ),
        DeclareLaunchArgument(
            "weights_dir", default_value="", description="directory of the .pth weights"
        ),
        DeclareLaunchArgument("device", default_value="", description="auto, cpu, cuda, cuda:N"),
        DeclareLaunchArgument("precision", default_value="", description="fp32, fp16 or bf16"),
        DeclareLaunchArgument("runtime", default_value="", description="torch or onnxruntime"),
        DeclareLaunchArgument(
            "onnx_dir", default_value="", description="directory of the exported .onnx files"
        ),
        DeclareLaunchArgument("frontend", default_value="", description="superpoint, orb, sift"),
        DeclareLaunchArgument("matcher", default_value="", description="superglue or mnn"),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("node_name", default_value="matcher_node", description="node name"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="use /clock (bag replay)"
        ),
        DeclareLaunchArgument("log_level", default_value="info", description="log level"),
        DeclareLaunchArgument(
            "odometry",
            default_value="false",
            description="also start odometry_node (nav_msgs Odometry and Path)",
        ),
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
