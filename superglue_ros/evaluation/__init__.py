"""The evaluation floor: ROS-free, CLI-free parts that the commands of tools/ call.

- :mod:`.metrics`: relative pose, epipolar and homography errors, pose AUC, inlier ratio
- :mod:`.report`: the replay report (statistics per configuration, report.json/.md, plots)
- :mod:`.trajectory`: the reference back-end over replayed messages, ATE / RPE, its plot
- :mod:`.homography`, :mod:`.room`, :mod:`.textures`: generated sequences with exact truth
- :mod:`.frame_bench`, :mod:`.memory`: end-to-end frame time, replay peak memory
- :mod:`.benchmark`, :mod:`.table`: configurations x sequences x seeds, each run
  ``superglue-ros replay`` in a fresh child process, one ATE / RPE / time table

Nothing here parses arguments or imports ROS or the shells (its ruff.toml bans them).
The package imports none of its modules, so that a command loads only what it uses
(``bench`` runs where OpenCV is absent).
"""
