"""A griffe extension for the API reference: the docstrings' reST roles as Markdown code.

The docstrings are written for Sphinx readers as much as for this site (``:class:`Store```,
``:func:`~patterns.health.publish_health```); mkdocstrings renders Markdown, where a role would
show as its raw text. Each role becomes inline code of its target (the last name of it when the
target starts with ``~``, as Sphinx shows it). Targets are not linked: many are relative
(``.workload``, ``Batcher.config_version``), which a cross-reference could not resolve.
"""

from __future__ import annotations

import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")


def _code(match: re.Match[str]) -> str:
    target = match.group(2)
    return f"`{target.rsplit('.', 1)[-1] if match.group(1) else target}`"


class RolesToCode(griffe.Extension):
    """Rewrite every role of an object's docstring (see the module docstring)."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_code, obj.docstring.value)
