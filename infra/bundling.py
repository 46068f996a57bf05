"""Lambda code asset: the ``functions`` package beside its arm64 dependencies.

The wire protocol lives in the client package (``tabrelay.wire``, the one
definition): the asset carries a ``tabrelay`` package of only the modules the
Lambdas import (:data:`CLIENT_MODULES`), never the client's websockets-based
modules. ``tabrelay/__init__.py`` imports lazily, so ``import tabrelay.wire``
loads nothing else.

No Docker is needed: dependencies are installed by pip as prebuilt
``manylinux2014_aarch64`` wheels for the Lambda runtime's Python version
(``--only-binary=:all:`` refuses anything that would compile for the host), through
CDK *local* bundling. The installed dependencies are cached under
``.tools/lambda-deps/<hash of requirements.txt and target>`` so a repeated synth
only copies files.

With ``bundle=False`` the asset is the source as it is (``functions/`` and
``requirements.txt``): what the local emulator runs in place, in a second.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import jsii
from aws_cdk import AssetHashType, BundlingOptions, DockerImage, ILocalBundling
from aws_cdk import aws_lambda as lambda_

__all__ = [
    "CLIENT_MODULES",
    "CLIENT_PACKAGE",
    "PROJECT_ROOT",
    "BundlingError",
    "LocalPipBundler",
    "lambda_code",
]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
_REQUIREMENTS = "requirements.txt"
_PACKAGE = "functions"
#: Where the client package lives in the project, and what of it the Lambdas need.
CLIENT_PACKAGE = Path("clients", "python", "tabrelay")
CLIENT_MODULES = ("__init__.py", "wire.py", "py.typed")
# The asset's source: only the runtime package, the client modules it imports and
# the requirements count for its hash (each parent directory re-included for its child).
_EXCLUDE = [
    "*",
    # "*" matches no dot entries: without this, .git, .venv and .tools would be part
    # of the asset (and of its hash, which then changed with every commit).
    ".*",
    f"!{_PACKAGE}",
    f"!{_PACKAGE}/**",
    f"!{_REQUIREMENTS}",
    "!clients",
    "!clients/python",
    "!clients/python/tabrelay",
    *(f"!{(CLIENT_PACKAGE / name).as_posix()}" for name in CLIENT_MODULES),
    "**/__pycache__",
    "**/*.pyc",
]
_PLATFORM = "manylinux2014_aarch64"


class BundlingError(RuntimeError):
    """pip could not install the Lambda dependencies for the target platform."""


def _copy_package(source: Path, destination: Path) -> None:
    shutil.copytree(
        source,
        destination,
        ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
        dirs_exist_ok=True,
    )


@jsii.implements(ILocalBundling)
class LocalPipBundler:
    """Installs ``requirements.txt`` for arm64 with pip, then adds the ``functions``
    package and the client's ``tabrelay`` modules the functions import."""

    def __init__(self, *, project_root: Path, python_version: str, cache_root: Path) -> None:
        self._root = project_root
        self._python_version = python_version
        self._cache_root = cache_root

    def _dependencies(self) -> Path:
        requirements = (self._root / _REQUIREMENTS).read_bytes()
        key = hashlib.sha256(
            requirements + f"|{_PLATFORM}|cp{self._python_version}|no-compile".encode()
        ).hexdigest()[:16]
        cached = self._cache_root / key
        if (cached / ".complete").exists():
            return cached
        staging = self._cache_root / f"{key}.partial"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        command = [
            sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-compile",
            "--platform", _PLATFORM, "--only-binary=:all:",
            "--python-version", self._python_version, "--implementation", "cp",
            "--target", str(staging), "-r", str(self._root / _REQUIREMENTS),
        ]  # fmt: skip
        completed = subprocess.run(command, capture_output=True, text=True, check=False)
        if completed.returncode != 0:
            raise BundlingError(f"pip install for {_PLATFORM} failed:\n{completed.stderr}")
        (staging / ".complete").touch()
        shutil.rmtree(cached, ignore_errors=True)
        staging.rename(cached)
        return cached

    @jsii.member(jsii_name="tryBundle")
    def try_bundle(self, output_dir: str, *, image: DockerImage, **_options: object) -> bool:
        """Fill ``output_dir`` with the dependencies, ``functions`` and ``tabrelay.wire``."""
        output = Path(output_dir)
        shutil.copytree(self._dependencies(), output, dirs_exist_ok=True)
        (output / ".complete").unlink(missing_ok=True)
        _copy_package(self._root / _PACKAGE, output / _PACKAGE)
        client = output / CLIENT_PACKAGE.name
        client.mkdir(exist_ok=True)
        for name in CLIENT_MODULES:
            shutil.copyfile(self._root / CLIENT_PACKAGE / name, client / name)
        return True


def lambda_code(*, bundle: bool, runtime: lambda_.Runtime) -> lambda_.Code:
    """The one code asset every function shares (handlers differ by dotted path).

    ``bundle=False`` skips the dependency install: the asset is the plain source.
    """
    if not bundle:
        return lambda_.Code.from_asset(str(PROJECT_ROOT), exclude=_EXCLUDE)
    python_version = runtime.name.removeprefix("python")
    bundler = LocalPipBundler(
        project_root=PROJECT_ROOT,
        python_version=python_version,
        cache_root=PROJECT_ROOT / ".tools" / "lambda-deps",
    )
    return lambda_.Code.from_asset(
        str(PROJECT_ROOT),
        exclude=_EXCLUDE,
        # The bundle is a function of the source and requirements.txt: hash the source.
        asset_hash_type=AssetHashType.SOURCE,
        bundling=BundlingOptions(
            # Never pulled: local bundling always succeeds or raises.
            image=runtime.bundling_image,
            local=bundler,
        ),
    )
