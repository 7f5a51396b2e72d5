"""Build hook: the wheel carries the top-level ``data/`` folder (facts, general text, measured curves, the
recorded controller stream, the default model's shipped teacher targets, their README) as package data ``stmltm_nb/_data/``, where
:func:`stmltm_nb.shipped.data_dir` finds it after ``pip install .``. Everything else is in ``pyproject.toml``."""

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DATA = Path(__file__).resolve().parent / "data"
SHIPPED = ("*.jsonl", "*.json", "*.txt", "*.md")  # data and its description; not the generator script
SHIPPED_DIRS = ("teacher_targets",)  # the default model's teacher targets: guard rows, the demo's facts (tools/shipped_targets.py)


class BuildPyWithData(build_py):
    """``build_py`` plus a copy of ``data/`` into ``stmltm_nb/_data/`` of the build (not for editable installs,
    which read ``data/`` of the checkout)."""

    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "stmltm_nb" / "_data"
        self.mkpath(str(target))
        for pattern in SHIPPED:
            for src in sorted(DATA.glob(pattern)):
                self.copy_file(str(src), str(target / src.name))
        for folder in SHIPPED_DIRS:
            if (DATA / folder).is_dir():
                self.mkpath(str(target / folder))
                for src in sorted((DATA / folder).iterdir()):
                    self.copy_file(str(src), str(target / folder / src.name))


setup(cmdclass={"build_py": BuildPyWithData})
