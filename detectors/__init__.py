"""Object detectors: ONNX Runtime sessions, pre/post-processing per model format, tiling."""
