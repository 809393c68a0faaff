import numpy as np

from detectors.nms import iou_matrix, nms


def test_iou_matrix_known_values():
    a = np.array([[0, 0, 10, 10]], dtype=np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float32)
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 50 / 150, 0.0], rtol=1e-6)


def test_nms_suppresses_overlaps_keeps_best_first():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [50, 50, 60, 60], [0, 0, 10, 9]], dtype=np.float32)
    scores = np.array([0.6, 0.9, 0.5, 0.7], dtype=np.float32)
    keep = nms(boxes, scores, 0.45)
    assert keep.tolist() == [1, 2]


def test_nms_is_class_aware():
    boxes = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]], dtype=np.float32)
    scores = np.array([0.9, 0.8, 0.7], dtype=np.float32)
    assert nms(boxes, scores, 0.5, np.array([0, 1, 0])).tolist() == [0, 1]
    assert nms(boxes, scores, 0.5).tolist() == [0]


def test_nms_iou_threshold_boundary_and_empty():
    boxes = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float32)  # IoU 1/3
    scores = np.array([0.9, 0.8], dtype=np.float32)
    assert nms(boxes, scores, 0.3).tolist() == [0]
    assert nms(boxes, scores, 0.4).tolist() == [0, 1]
    assert nms(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0
