"""The deployable Lambda artifacts: a function's code (its handler beside the library) and a
layer of the library, each without what the Lambda runtime already provides.

    python -m tools.lambda_artifact function examples/s3_redshift_batcher/handler.py --into DIR
    python -m tools.lambda_artifact function examples/s3_redshift_batcher/handler.py --zip F.zip
    python -m tools.lambda_artifact layer --zip dist/stateless-state-layer.zip

``sam build`` runs the first (the example templates build their functions with ``BuildMethod:
makefile``; the example's ``Makefile`` calls this), ``make package`` and ``make layer`` the
others. Run from the repository root, with the Python of its virtual env.

What goes in: the modules of ``stateless_state`` and ``patterns`` from this source tree, less
what no function runs (:data:`LEFT_OUT`: the testing tools and the operator CLI), with their
distribution's metadata; and the project's other dependencies (tenacity) as installed beside the
Python that builds, which is the version the tests ran with: the build needs no network and
gives the same bytes every time. What stays out: boto3 and what it needs
(:data:`RUNTIME_PROVIDED`), which every Python runtime of Lambda has, and the extras
(PynamoDB, psycopg), which a function that uses one adds itself.

Bytecode: a function's file system is read-only, so a module without a ``.pyc`` of the
runtime's own version is compiled again at every cold start. The artifact carries bytecode
(unchecked-hash ``.pyc``: the modification times a zip keeps do not matter) when the building
Python is the runtime's version (:data:`RUNTIME`), and source only otherwise.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import io
import py_compile
import re
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("stateless_state", "patterns")
RUNTIME = "python3.12"
"""The Lambda runtime the example templates deploy to (a test holds them to it)."""
LEFT_OUT = ("stateless_state/testing/", "patterns/testing.py", "patterns/cli/")
"""Modules of the packages that no function imports (a test checks that none of the others
imports them): the testing tools (DynamoDB Local, the simulation, strategies) and the CLI."""
RUNTIME_PROVIDED = frozenset(
    {"boto3", "botocore", "jmespath", "s3transfer", "urllib3", "python-dateutil", "six"}
)
"""Distributions every Python runtime of Lambda provides: boto3 and what it needs."""
LAYER_ROOT = "python/"
"""Where a layer's packages go: Lambda puts ``/opt/python`` on a Python function's path."""
# A zip entry's date: fixed, so the same files always make the same bytes (and SAM, comparing
# the zip's hash, sees no change where there is none). 1980 is the earliest a zip can hold.
_EPOCH = (1980, 1, 1, 0, 0, 0)
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


class ArtifactError(Exception):
    """The artifact cannot be built as asked; the message says what to do."""


@dataclass(frozen=True)
class Artifact:
    """The files of an artifact, by their path inside it."""

    files: dict[str, bytes]

    @property
    def size(self) -> int:
        """Bytes of the files, uncompressed (what Lambda's 250 MB unzipped limit counts)."""
        return sum(len(data) for data in self.files.values())

    def write_tree(self, into: Path) -> None:
        """Write the files under ``into`` (created if missing), as ``sam build`` leaves them."""
        for name, data in sorted(self.files.items()):
            path = into / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)

    def zip_bytes(self, *, zopfli: bool = True) -> bytes:
        """The artifact as a zip: sorted entries, fixed dates, readable by everyone (Lambda
        runs the code as another user than the one who built it), deflated by zopfli
        (:func:`_zopfli_deflate`), or with ``zopfli=False`` by zlib at level 9: for measuring
        megabytes (on boto3 and botocore, whose data is gzipped already, zopfli spends minutes
        for 0.3% less)."""
        buffer = io.BytesIO()
        deflate = _zopfli_deflate() if zopfli else contextlib.nullcontext()
        with deflate, zipfile.ZipFile(buffer, "w") as archive:
            for name, data in sorted(self.files.items()):
                entry = zipfile.ZipInfo(name, date_time=_EPOCH)
                entry.external_attr = 0o100644 << 16
                entry.compress_type = zipfile.ZIP_DEFLATED
                archive.writestr(entry, data, compresslevel=None if zopfli else 9)
        return buffer.getvalue()

    def write_zip(self, path: Path) -> int:
        """Write the zip to ``path``; return its size in bytes."""
        data = self.zip_bytes()
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return len(data)


def _project(root: Path) -> dict[str, object]:
    project: dict[str, object] = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    return project


def _version(root: Path, project: dict[str, object]) -> str:
    """The distribution's version: pyproject's own, or (``dynamic``) the ``__version__`` of
    ``stateless_state/__init__.py`` that ``[tool.setuptools.dynamic]`` names."""
    if "version" in project:
        return str(project["version"])
    found = re.search(
        r'^__version__ = "([^"]+)"$', (root / "stateless_state" / "__init__.py").read_text(), re.M
    )
    if found is None:
        raise ArtifactError('stateless_state/__init__.py sets no __version__ = "..."')
    return found.group(1)


def requirement_name(requirement: str) -> str:
    """The normalized distribution name a requirement (``"boto3>=1.34"``) names."""
    match = _NAME.match(requirement.strip())
    if match is None:
        raise ArtifactError(f"cannot read the requirement {requirement!r} of pyproject.toml")
    return match.group().lower().replace("_", "-")


class _ZopfliStream:
    """A compressor as zipfile drives one (``compress`` then ``flush``), giving zopfli's raw
    deflate of everything at the flush: the same format zlib writes, about 3% smaller for
    Python source (at some seconds per artifact, deterministic)."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def compress(self, data: bytes) -> bytes:
        self._parts.append(data)
        return b""

    def flush(self) -> bytes:
        import zopfli.zopfli  # type: ignore[import-untyped]

        # zlib container: a 2-byte header and a 4-byte checksum around the raw deflate.
        wrapped: bytes = zopfli.zopfli.compress(b"".join(self._parts), gzip_mode=0)
        return wrapped[2:-4]


@contextlib.contextmanager
def _zopfli_deflate() -> Iterator[None]:
    """Within it, zipfile deflates with :class:`_ZopfliStream`. zipfile has no public way to
    give it a compressor: this replaces its ``_get_compressor`` for deflate, and fails loudly
    if a Python no longer has it (the build test then reads every entry back)."""
    original = getattr(zipfile, "_get_compressor", None)
    if original is None:
        raise ArtifactError(
            "this Python's zipfile has no _get_compressor: update tools/lambda_artifact.py"
        )

    def compressor(compress_type: int, compresslevel: int | None = None) -> Any:
        if compress_type == zipfile.ZIP_DEFLATED:
            return _ZopfliStream()
        return original(compress_type, compresslevel)

    zipfile._get_compressor = compressor  # type: ignore[attr-defined]
    try:
        yield
    finally:
        zipfile._get_compressor = original  # type: ignore[attr-defined]


def bundled_dependencies(root: Path = ROOT) -> list[str]:
    """The project's dependencies that the artifact carries: all of them but the runtime's."""
    requirements = _project(root)["dependencies"]
    assert isinstance(requirements, list)
    names = [requirement_name(r) for r in requirements]
    return sorted(n for n in names if n not in RUNTIME_PROVIDED)


def _left_out(name: str) -> bool:
    return any(name == x or (x.endswith("/") and name.startswith(x)) for x in LEFT_OUT)


def library_files(root: Path = ROOT) -> dict[str, bytes]:
    """The library's modules from the source tree at ``root``, less :data:`LEFT_OUT`, and an
    installed distribution's metadata, less the installer's ``RECORD`` (so
    ``importlib.metadata.version("stateless-state")`` answers in the function too)."""
    files: dict[str, bytes] = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            name = path.relative_to(root).as_posix()
            if "__pycache__" not in name and not _left_out(name):
                files[name] = path.read_bytes()
    project = _project(root)
    name, version = str(project["name"]), _version(root, project)
    requirements = project["dependencies"]
    assert isinstance(requirements, list)
    metadata = [
        "Metadata-Version: 2.4",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {project['description']}",
        f"License-Expression: {project['license']}",
        f"Requires-Python: {project['requires-python']}",
        *(f"Requires-Dist: {r}" for r in requirements),
    ]
    dist_info = f"{name.replace('-', '_')}-{version}.dist-info"
    files[f"{dist_info}/METADATA"] = ("\n".join(metadata) + "\n").encode()
    if (root / "LICENSE").is_file():
        files[f"{dist_info}/licenses/LICENSE"] = (root / "LICENSE").read_bytes()
    return files


def installed_files(distribution: str) -> dict[str, bytes]:
    """An installed distribution's files (as listed in its ``RECORD``), without bytecode,
    scripts or the installer's own records (``RECORD``, ``INSTALLER``): nothing in a function
    reads them (``importlib.metadata.version`` reads ``METADATA``), and pip never manages a
    function's code, so they would only take room in the zip (4 KB of its 250)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise ArtifactError(
            f"{distribution} is not installed beside {sys.executable}: build with the "
            "repository's virtual env (make setup), where the project's dependencies are"
        ) from None
    listed = dist.files or []
    files: dict[str, bytes] = {}
    dist_info = ""
    for entry in listed:
        name = entry.as_posix()
        if name.startswith("..") or "__pycache__" in name or name.endswith(".pyc"):
            continue  # scripts installed outside site-packages; bytecode of another Python
        top = name.split("/", 1)[0]
        if top.endswith(".dist-info"):
            dist_info = top
            if name.endswith(("/RECORD", "/INSTALLER", "/direct_url.json")):
                continue
        files[name] = Path(str(entry.locate())).read_bytes()
    if not dist_info:
        raise ArtifactError(f"{distribution} as installed has no dist-info: reinstall it")
    return files


def _with_bytecode(files: dict[str, bytes], runtime: str) -> dict[str, bytes]:
    """``files`` and, when this Python is ``runtime``'s version, each module's ``.pyc``."""
    tag = sys.implementation.cache_tag
    if runtime != f"python{sys.version_info[0]}.{sys.version_info[1]}" or tag is None:
        return files
    out = dict(files)
    with tempfile.TemporaryDirectory() as scratch:
        for name, data in files.items():
            if not name.endswith(".py") or ".dist-info/" in name:
                continue
            source = Path(scratch) / name
            source.parent.mkdir(parents=True, exist_ok=True)
            source.write_bytes(data)
            compiled = source.with_suffix(".pyc")
            py_compile.compile(
                str(source),
                cfile=str(compiled),
                dfile=name,
                doraise=True,
                invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH,
            )
            folder, _, module = name.rpartition("/")
            cached = f"{folder}/__pycache__/{module[:-3]}.{tag}.pyc".lstrip("/")
            out[cached] = compiled.read_bytes()
    return out


def _bundle(root: Path, runtime: str) -> dict[str, bytes]:
    files = library_files(root)
    for dependency in bundled_dependencies(root):
        files.update(installed_files(dependency))
    return _with_bytecode(files, runtime)


def function(handler: Path, *, root: Path = ROOT, runtime: str = RUNTIME) -> Artifact:
    """A function's code: ``handler`` (a module file, at the artifact's top level, where
    ``Handler: <module>.<function>`` finds it) beside the library and its bundled dependencies."""
    if not handler.is_file() or handler.suffix != ".py":
        raise ArtifactError(f"the handler {handler} is not a Python module file: name its .py")
    if handler.stem in sys.stdlib_module_names:
        raise ArtifactError(f"the handler {handler.name} shadows the standard library: rename it")
    files = _bundle(root, runtime)
    if handler.name in files or handler.stem in PACKAGES:
        raise ArtifactError(f"the handler {handler.name} would replace the library's: rename it")
    return Artifact({**files, **_with_bytecode({handler.name: handler.read_bytes()}, runtime)})


def layer(*, root: Path = ROOT, runtime: str = RUNTIME) -> Artifact:
    """A Lambda layer of the library: the same files as a function's, under ``python/``."""
    return Artifact({LAYER_ROOT + name: data for name, data in _bundle(root, runtime).items()})


def main(argv: Iterable[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["function", "layer"])
    parser.add_argument("handler", nargs="?", type=Path, help="the function's handler module")
    out = parser.add_mutually_exclusive_group(required=True)
    out.add_argument("--into", type=Path, help="write the files into this directory")
    out.add_argument("--zip", type=Path, help="write a zip file")
    parser.add_argument("--runtime", default=RUNTIME, help=f"default {RUNTIME}")
    args = parser.parse_args(None if argv is None else list(argv))
    if (args.kind == "function") != (args.handler is not None):
        parser.error("a function needs its handler module; a layer takes none")
    try:
        if args.kind == "function":
            artifact = function(args.handler, runtime=args.runtime)
        else:
            artifact = layer(runtime=args.runtime)
    except ArtifactError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if args.into is not None:
        artifact.write_tree(args.into)
        print(f"{args.into}: {len(artifact.files)} files, {artifact.size:,} bytes")
    else:
        size = artifact.write_zip(args.zip)
        print(f"{args.zip}: {len(artifact.files)} files, {size:,} bytes zipped")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
