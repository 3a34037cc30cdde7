"""Frontends by network family: image -> Features (keypoints, scores, descriptors)."""
