"""Label groups the rules reason about, whatever the model calls them (COCO or the demo model)."""

PERSON = frozenset({"person"})
VEHICLE = frozenset({"vehicle", "car", "bus", "truck", "motorcycle", "bicycle", "train", "boat"})
FOREGROUND = "foreground"  # a class-agnostic persistent mass (see camera_hub.analytics.foreground)
