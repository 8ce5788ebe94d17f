"""Face detection (OpenSphere's MTCNN in JAX) for photos that are not aligned yet: ``Detector.from_checkpoint()
(image) -> boxes, scores, landmarks``; alignment of the landmarks is ``jsphere.data.landmark_align.align_face``."""

from jsphere.detect.detector import Detections, Detector, DetectorConfig

__all__ = ["Detections", "Detector", "DetectorConfig"]
