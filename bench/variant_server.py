"""`securemsg` with uvloop and/or orjson in place of asyncio's loop and the standard `json`, for
bench/variants.py to measure what each would buy:

    python -m bench.variant_server [--uvloop] [--orjson] -- serve --port 8081 --no-worker ...

`--uvloop` installs uvloop's event loop policy before anything runs (aiohttp's `run_app` and the start's
`asyncio.run` then make uvloop loops). `--orjson` swaps the JSON of the send path and the fan-out: the request
body's parse (gateway.validation), every `web.json_response` and the websocket frames (gateway.realtime,
gateway.ws). The database's JSON columns keep Tortoise's own encoder. Nothing here is used outside the
benchmarks.
"""

from __future__ import annotations

import asyncio
import functools
import sys
from typing import Any

import orjson
import uvloop
from aiohttp import web


class OrjsonModule:
    """What gateway modules call on `json`: `loads`, and `dumps` with the standard library's keywords (the
    output is compact either way). orjson's errors are ValueErrors, as `json`'s are."""

    JSONDecodeError = orjson.JSONDecodeError

    @staticmethod
    def loads(raw: str | bytes) -> Any:
        return orjson.loads(raw)

    @staticmethod
    def dumps(obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()


def use_orjson() -> None:
    from gateway import realtime, validation, ws

    for module in (validation, realtime, ws):
        module.json = OrjsonModule  # type: ignore[assignment]
    web.json_response = functools.partial(web.json_response, dumps=OrjsonModule.dumps)  # type: ignore[assignment]


def main(argv: list[str]) -> int:
    if "--" not in argv:
        print(
            "usage: python -m bench.variant_server [--uvloop] [--orjson] -- SECUREMSG ARGS", file=sys.stderr
        )
        return 2
    split = argv.index("--")
    flags, rest = set(argv[:split]), argv[split + 1 :]
    if flags - {"--uvloop", "--orjson"}:
        print(f"bench.variant_server: unknown flags {sorted(flags)}", file=sys.stderr)
        return 2
    if "--uvloop" in flags:
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    if "--orjson" in flags:
        use_orjson()
    from gateway.cli import main as securemsg

    return securemsg(rest)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
