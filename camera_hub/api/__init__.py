"""The HTTP API (FastAPI, ``/api/v1``): ``create_app(cfg)`` in :mod:`camera_hub.api.app`, routes in
:mod:`.routes`, request/response models in :mod:`.models`, users/tokens/roles/audit in :mod:`.auth`,
the SSE fan-out in :mod:`.feed`, the operator page in ``web/``."""
