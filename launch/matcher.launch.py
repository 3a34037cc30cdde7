"""Launch matcher_node: SuperPoint + SuperGlue keyframe matching on a camera topic.

    ros2 launch superglue_ros matcher.launch.py image:=/camera/image_raw preset:=indoor

camera_info defaults to the camera info beside the image topic
(/camera/image_raw -> /camera/camera_info). input:=stereo takes a rectified pair
(left_image, right_image and their camera_info), input:=rgbd a colour image and
the depth aligned to it (color_image, depth_image, color_camera_info), paired by
stamp (sync_policy, sync_slop_s):

    ros2 launch superglue_ros matcher.launch.py input:=stereo \
        left_image:=/zed/left/image_rect right_image:=/zed/right/image_rect \
        left_camera_info:=/zed/left/camera_info right_camera_info:=/zed/right/camera_info
 odometry:=true also starts
odometry_node (the reference back-end) in the same namespace, on the matcher's
correspondences and the same camera_info.

Parameters come from params_file (default: the installed config/matcher.yaml),
then the preset's file (config/<preset>.yaml: indoor, outdoor or fast_cpu, a
kind of scene), then the arguments below that are not empty. Every argument is
checked before a node starts (superglue_ros/ros/launch_args.py); a bad one ends
the launch with a message naming it.

When the node exits with an error (a bad parameter: 2, missing weights: 3), the
launch ends too, with a non-zero status: launch returns 1 after an exception in
one of its actions, and a clean node exit (0, after Ctrl-C) raises none.
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, RegisterEventHandler
from launch.event_handlers import OnProcessExit
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

from superglue_ros.ros import launch_args

# Every argument generate_launch_description declares; _node checks them all.
ARGUMENT_NAMES = (
    "image",
    "camera_info",
    "vins_topic",
    "params_file",
    "preset",
    "weights_dir",
    "device",
    "precision",
    "runtime",
    "onnx_dir",
    "frontend",
    "matcher",
    "image_reliability",
    "image_qos_depth",
    "namespace",
    "node_name",
    "use_sim_time",
    "log_level",
    "odometry",
    "input",
    "sync_policy",
    "sync_slop_s",
    *launch_args.INPUT_TOPIC_ARGUMENTS,
)
NODE_EXIT_MEANINGS = {2: "bad parameter", 3: "model weights missing", 1: "start-up failed"}


class NodeFailedError(RuntimeError):
    """matcher_node exited with an error status: ends the launch with a non-zero status."""


def _fail_on_error_exit(event, context):
    """OnProcessExit: a non-zero exit of the node ends the launch with status 1."""
    if event.returncode == 0:
        return None
    meaning = NODE_EXIT_MEANINGS.get(event.returncode, "see its log above")
    raise NodeFailedError(
        f"{event.action.name} exited with status {event.returncode} ({meaning}); ending the launch"
    )


def _node(context, *args, **kwargs):
    values = {name: LaunchConfiguration(name).perform(context) for name in ARGUMENT_NAMES}
    share = FindPackageShare("superglue_ros").perform(context)
    settings = launch_args.check(values, share)  # LaunchArgumentError names a bad argument
    ros_args = ["--ros-args", "--log-level", settings.log_level]
    node = Node(
        package="superglue_ros",
        executable="matcher_node",
        name=settings.node_name,
        namespace=settings.namespace,
        output="screen",
        emulate_tty=True,
        parameters=[
            *settings.params_files,
            {**settings.overrides, "use_sim_time": settings.use_sim_time},
        ],
        remappings=[
            ("image", settings.image),
            ("camera_info", settings.camera_info),
            ("features_vins", settings.vins_topic),
            *settings.input_remappings,
        ],
        arguments=ros_args,
    )
    on_exit = OnProcessExit(target_action=node, on_exit=_fail_on_error_exit)
    nodes = [node, RegisterEventHandler(on_exit)]
    if settings.odometry:
        nodes.append(
            Node(
                package="superglue_ros",
                executable="odometry_node",
                namespace=settings.namespace,
                output="screen",
                emulate_tty=True,
                parameters=[{"use_sim_time": settings.use_sim_time}],
                remappings=[("camera_info", settings.frame_camera_info)],
                arguments=ros_args,
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
            "camera_info",
            default_value="",
            description="CameraInfo topic; empty: beside the image topic "
            "(/cam/image_raw -> /cam/camera_info)",
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
            description="kind of scene, config/<preset>.yaml loaded after params_file: "
            f"{', '.join(launch_args.PRESETS)} (the networks: frontend and matcher)",
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
        DeclareLaunchArgument(
            "frontend",
            default_value="",
            description="superpoint, aliked, disk, orb, sift or auto (superpoint where its "
            "weights are installed, else aliked)",
        ),
        DeclareLaunchArgument(
            "matcher",
            default_value="",
            description="superglue, lightglue, mnn or auto (the one trained for the frontend)",
        ),
        DeclareLaunchArgument(
            "image_reliability",
            default_value="",
            choices=["", "best_effort", "reliable"],
            description="image QoS: best_effort (sensor data; drops rather than delays) or "
            "reliable (large raw images over UDP, or a lossless link); empty: the file's value",
        ),
        DeclareLaunchArgument(
            "image_qos_depth",
            default_value="",
            description="image subscription history depth (1 keeps only the newest frame)",
        ),
        DeclareLaunchArgument("namespace", default_value="", description="node namespace"),
        DeclareLaunchArgument("node_name", default_value="matcher_node", description="node name"),
        DeclareLaunchArgument(
            "use_sim_time", default_value="false", description="use /clock (bag replay)"
        ),
        DeclareLaunchArgument(
            "log_level", default_value="info", description="debug, info, warn, error or fatal"
        ),
        DeclareLaunchArgument(
            "odometry",
            default_value="false",
            description="also start odometry_node (nav_msgs Odometry and Path)",
        ),
        DeclareLaunchArgument(
            "input",
            default_value="",
            description="mono (one image), stereo (a rectified pair) or rgbd (colour + aligned "
            "depth); empty: the file's value",
        ),
        DeclareLaunchArgument(
            "sync_policy",
            default_value="",
            description="stereo/rgbd pairing: exact or approximate stamps; empty: the file's value",
        ),
        DeclareLaunchArgument(
            "sync_slop_s",
            default_value="",
            description="approximate pairing: largest stamp difference (s); empty: the file's",
        ),
        *[
            DeclareLaunchArgument(name, default_value=topic, description=f"input {topic} topic")
            for name, topic in launch_args.INPUT_TOPIC_ARGUMENTS.items()
        ],
    ]
    return LaunchDescription([*arguments, OpaqueFunction(function=_node)])
