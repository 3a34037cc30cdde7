"""Warnings for an image subscription that QoS keeps silent.

Two ways a camera topic can look connected and deliver nothing:
- starvation: a publisher is matched but no frame arrives. The usual cause is
  a best-effort subscription to large images: DDS splits a 640x480 frame into
  many fragments, and over UDP one lost fragment loses the frame, so with
  small socket buffers every frame can be lost. A reliable subscription has
  lost fragments sent again.
- incompatible QoS: the publisher offers less than the subscription asks for
  (a best-effort publisher and a reliable subscription, or a volatile
  publisher and a transient-local subscription). DDS then does not match them
  at all and says so through the incompatible-QoS event.
Each is said once (the log and /diagnostics), with the parameter to change.
"""

from __future__ import annotations

from dataclasses import dataclass

RELIABILITY_PARAMETER = "image_reliability"


@dataclass
class StarvationWatch:
    """Says once that matched publishers have sent no frame for after_s seconds."""

    after_s: float
    reliability: str  # the subscription's image_reliability
    topic: str
    matched_since: float | None = None  # monotonic time publishers were first seen
    warned: bool = False

    def check(self, now: float, publishers: int, frames_received: int) -> str | None:
        """The warning, the first time the condition holds; None otherwise.

        now: time.monotonic(); publishers: matched publishers on the image topic;
        frames_received: frames received so far.
        """
        if frames_received or publishers == 0:
            self.matched_since = None
            return None
        if self.matched_since is None:
            self.matched_since = now
        if self.warned or now - self.matched_since < self.after_s:
            return None
        self.warned = True
        advice = (
            f"set {RELIABILITY_PARAMETER}:=reliable (large best-effort images are lost whole "
            "when one UDP fragment is lost)"
            if self.reliability == "best_effort"
            else f"check the publisher's QoS, or try {RELIABILITY_PARAMETER}:=best_effort"
        )
        return (
            f"{publishers} publisher(s) matched on {self.topic} but no frame arrived in "
            f"{self.after_s:.0f} s; QoS is the likely cause: {advice}"
        )


def incompatible_qos_message(topic: str, policy: str, total: int, reliability: str) -> str:
    """The warning for an incompatible-QoS event on the image subscription."""
    return (
        f"a publisher on {topic} offers QoS incompatible with this subscription "
        f"({policy} policy; {total} publisher(s) so far), so DDS does not connect them; "
        f"{RELIABILITY_PARAMETER} is {reliability}: set {RELIABILITY_PARAMETER}:=best_effort "
        "to receive from best-effort publishers"
    )
