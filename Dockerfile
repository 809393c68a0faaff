# Camera Hub image: one image, the command picks the role (api | worker | sim).
# PyAV, OpenCV (headless) and ONNX Runtime wheels bundle their native libraries.
# BASE_IMAGE: any Debian bookworm image with Python 3.11, pip and python on PATH (compose passes
# CAMERA_HUB_BASE_IMAGE; deploy/compose_check.py a locally made one where no registry is reachable).
ARG BASE_IMAGE=python:3.11-slim-bookworm
FROM ${BASE_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml setup.py MANIFEST.in README.md ./
COPY camera_hub ./camera_hub
COPY detectors ./detectors
COPY models ./models
COPY config ./config
RUN pip install --no-cache-dir . && useradd --system --uid 10001 hub && mkdir -p /data && chown hub /data
USER hub
EXPOSE 8080 9101 8091
ENTRYPOINT ["camera-hub"]
CMD ["--help"]
