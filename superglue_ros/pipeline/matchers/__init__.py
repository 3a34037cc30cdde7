"""Matchers by network family: a frame's Features against K keyframes' in one call."""
