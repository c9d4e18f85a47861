"""JMESPath for idempotency keys, with Powertools' functions, so an ``event_key_jmespath``
written for Powertools selects the same key here.

jmespath ships with botocore (boto3 imports it when it builds a client), so this costs a
handler nothing at cold start.
"""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import jmespath
from jmespath import functions
from jmespath.exceptions import ParseError
from jmespath.parser import ParsedResult

__all__ = ["ParseError", "compile"]


class _Functions(functions.Functions):  # type: ignore[misc]
    @functions.signature({"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_powertools_json(self, value: str) -> Any:
        return json.loads(value)

    @functions.signature({"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_powertools_base64(self, value: str) -> str:
        return base64.b64decode(value).decode()

    @functions.signature({"types": ["string"]})  # type: ignore[untyped-decorator]
    def _func_powertools_base64_gzip(self, value: str) -> str:
        return gzip.decompress(base64.b64decode(value)).decode()


_OPTIONS = jmespath.Options(custom_functions=_Functions())


class _Compiled:
    def __init__(self, parsed: ParsedResult) -> None:
        self._parsed = parsed

    def __call__(self, event: Any) -> Any:
        return self._parsed.search(event, options=_OPTIONS)


def compile(expression: str) -> _Compiled:
    """``expression`` parsed once, as a function of the event. Raises :class:`ParseError`."""
    return _Compiled(jmespath.compile(expression))
