"""Build step: the demo city and the demo models go into the wheel as package data.

The repository keeps one copy of them, where people look: config/demo-city/ and models/ at the
top. build_py copies the files listed in BUNDLE into camera_hub/bundled/ inside the build, so
`pip wheel .` (and a wheel built from the sdist: MANIFEST.in) carries them; camera_hub/paths.py
finds them there in an installed wheel, and the two top-level folders themselves in a checkout.

Why a copy at build time and not a mapping in pyproject.toml: [tool.setuptools.package-dir] can
only map whole packages, so models/ would ship its training and quantisation scripts too, and
every subpackage of camera_hub would then have to be listed by hand instead of found. A symlink
under camera_hub/ instead does not survive every checkout or archive (Windows, zip). The
metadata stays in pyproject.toml; this file only adds the copy.
"""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
BUNDLE = {  # folder under camera_hub/bundled/ -> (source folder in the repository, file patterns)
    "demo-city": ("config/demo-city", ["*.yaml"]),
    "models": ("models", ["*.yaml", "*.onnx", "*.md"]),  # manifests, the demo models, their model card
}


class BuildPyWithBundle(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads config/ and models/ in place (camera_hub/paths.py)
        for name, (src, patterns) in BUNDLE.items():
            files = sorted({f for pattern in patterns for f in (ROOT / src).glob(pattern) if f.is_file()})
            if not files:
                raise SystemExit(f"setup.py: nothing to bundle from {src}/ (an sdist built without MANIFEST.in?)")
            dest = Path(self.build_lib) / "camera_hub" / "bundled" / name
            self.mkpath(str(dest))
            for f in files:
                self.copy_file(str(f), str(dest / f.name))


setup(cmdclass={"build_py": BuildPyWithBundle})
