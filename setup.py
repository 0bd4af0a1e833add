"""setuptools shim beside pyproject.toml. Its one job: a wheel carries the course notebooks (and the files they read)
inside the package, as leech_explorer/course_files/, so `leech-explorer lab` and `leech-explorer site` work for a user
who installed the package without cloning the repository."""
import shutil
from pathlib import Path
from setuptools import setup
from setuptools.command.build_py import build_py

COURSE_DIRS = ('nbs', 'benchmarks', 'results', 'images')   # keep in step with leech_explorer.website.COURSE_DIRS
ROOT = Path(__file__).parent


class build_py_with_course(build_py):
    "build_py, then copy the course folders into the built package."
    def run(self):
        super().run()
        dest = Path(self.build_lib) / 'leech_explorer' / 'course_files'
        for d in COURSE_DIRS:
            for f in sorted((ROOT / d).rglob('*')) if (ROOT / d).is_dir() else []:
                if f.is_file() and not {'.ipynb_checkpoints', '__pycache__'} & set(f.parts):
                    target = dest / f.relative_to(ROOT)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(f, target)


setup(cmdclass={'build_py': build_py_with_course})
