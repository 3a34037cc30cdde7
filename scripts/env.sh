# Source me: the project's Python environment and built packages, DDS on loopback.
# shellcheck shell=bash
_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
. "$_root/.venv/bin/activate"
if [ -z "${ROS_DISTRO:-}" ]; then
  export AMENT_PREFIX_PATH="$VIRTUAL_ENV${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
fi
# shellcheck disable=SC1091
. "$_root/install/local_setup.bash"
# Keep DDS discovery on this machine (development and CI machines must not multicast).
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
unset _root
