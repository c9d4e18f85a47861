"""§10 of ``RESULTS.md``: the sizes of what is deployed (``tools/lambda_artifact.py``).

    python -m benchmarks.artifact                                # print the section
    python -m benchmarks.artifact --write benchmarks/RESULTS.md  # replace it in RESULTS.md

``make bench`` writes it with the rest; ``--write`` measures this section alone (a second or
two, no DynamoDB Local) and puts it in place of the one ``RESULTS.md`` has.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import sys
from dataclasses import dataclass
from pathlib import Path

from tools.lambda_artifact import (
    LEFT_OUT,
    ROOT,
    RUNTIME,
    RUNTIME_PROVIDED,
    Artifact,
    bundled_dependencies,
    function,
    layer,
)

HANDLER = ROOT / "examples" / "s3_redshift_batcher" / "handler.py"
HEADING = "## 10. The deployed artifact: sizes"


@dataclass(frozen=True)
class Size:
    files: int
    unzipped: int
    zipped: int


@dataclass(frozen=True)
class Sizes:
    function: Size
    """The example's function code, as ``sam build`` and ``make package`` build it."""
    layer: Size
    """``make layer``: the library and tenacity under ``python/``."""
    compiled: Size
    """The function with bytecode, as built where the building Python is the runtime's (here
    compiled by this Python: the size is what matters, the ``.pyc`` of 3.12 are alike)."""
    left_out: Size
    """What the runtime provides and the artifact leaves out, deflated by zlib (level 9): zopfli
    took minutes on its 24 MB for 0.3% less (17,439 KB against 17,499 KB)."""
    python: str


def _size(artifact: Artifact, *, zopfli: bool = True) -> Size:
    return Size(len(artifact.files), artifact.size, len(artifact.zip_bytes(zopfli=zopfli)))


def _runtime_provided() -> Artifact:
    files: dict[str, bytes] = {}
    for name in sorted(RUNTIME_PROVIDED):
        for entry in importlib.metadata.distribution(name).files or []:
            path = entry.as_posix()
            if not (path.startswith("..") or "__pycache__" in path or path.endswith(".pyc")):
                files[path] = Path(str(entry.locate())).read_bytes()
    return Artifact(files)


def run() -> Sizes:
    """Build each artifact in memory and measure it."""
    here = f"python{sys.version_info[0]}.{sys.version_info[1]}"
    # The function and the layer as built on this machine for the runtime (source only unless
    # this Python is the runtime's); the compiled variant for the other case.
    return Sizes(
        function=_size(function(HANDLER, runtime=RUNTIME)),
        layer=_size(layer(runtime=RUNTIME)),
        compiled=_size(function(HANDLER, runtime=here)),
        left_out=_size(_runtime_provided(), zopfli=False),
        python=here,
    )


def markdown(sizes: Sizes) -> list[str]:
    kb = 1000
    rows = [
        ("the example's function (`sam build`, `make package`)", sizes.function),
        ("the layer (`make layer`)", sizes.layer),
        (f"the function with bytecode (a build on {RUNTIME}'s own Python)", sizes.compiled),
        ("left out: boto3 and what it needs (the runtime's; zlib -9)", sizes.left_out),
    ]
    built_here = "source only" if sizes.python != RUNTIME else "with bytecode"
    return [
        HEADING,
        "",
        f"What `tools/lambda_artifact.py` builds for the {RUNTIME} runtime: the library's "
        f"modules (less {', '.join(f'`{x}`' for x in LEFT_OUT)}), "
        f"{', '.join(bundled_dependencies())} and their metadata; deflated, fixed dates (the "
        f"same bytes every build). Built here with {sizes.python}, so {built_here}: without "
        "a `.pyc` of the runtime's version a cold start compiles the modules it imports "
        "(§4's *from source* column against *bytecode compiled*).",
        "",
        "| artifact | files | unzipped | zipped |",
        "|---|---:|---:|---:|",
        *(
            f"| {name} | {s.files:,} | {s.unzipped / kb:,.0f} KB | {s.zipped / kb:,.0f} KB |"
            for name, s in rows
        ),
        "",
    ]


def replace_section(text: str, section: list[str]) -> str:
    """``text`` (a ``RESULTS.md``) with its §10 replaced by ``section``, or ``section`` added
    at the end when it has none."""
    block = "\n".join(section).rstrip("\n") + "\n"
    start = text.find(HEADING)
    if start < 0:
        return text.rstrip("\n") + "\n\n" + block
    end = text.find("\n## ", start + len(HEADING))
    rest = "" if end < 0 else text[end + 1 :]
    return text[:start] + block + ("\n" + rest if rest else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, help="replace the section in this RESULTS.md")
    args = parser.parse_args()
    section = markdown(run())
    if args.write is None:
        print("\n".join(section))
        return
    args.write.write_text(replace_section(args.write.read_text(), section))
    print(f"wrote {HEADING!r} in {args.write}")


if __name__ == "__main__":
    main()
