"""Cookie names and attributes, in one place.

Under https (SECUREMSG_PUBLIC_URL starts with https://) every cookie's name carries a prefix that browsers
enforce: `__Host-` (Secure, Path=/, no Domain: no other host of the domain, nor a plain-http page, can
set or overwrite it) or, for the one cookie scoped to a path, `__Secure-`. Over plain http (a laptop, the
demo) browsers refuse those prefixes, so the plain names stay: `securemsg_session` and so on.
"""

from __future__ import annotations

from aiohttp import web

from gateway.keys import CONFIG


def cookie_name(request: web.Request, name: str, path: str = "/") -> str:
    if not request.app[CONFIG].cookie_secure:
        return name
    return ("__Host-" if path == "/" else "__Secure-") + name


def read_cookie(request: web.Request, name: str, path: str = "/") -> str | None:
    return request.cookies.get(cookie_name(request, name, path))


def set_cookie(
    request: web.Request,
    resp: web.StreamResponse,
    name: str,
    value: str,
    max_age: int,
    *,
    path: str = "/",
    samesite: str = "Lax",
) -> None:
    """HttpOnly always; Secure under https."""
    resp.set_cookie(
        cookie_name(request, name, path),
        value,
        max_age=max_age,
        path=path,
        httponly=True,
        samesite=samesite,
        secure=request.app[CONFIG].cookie_secure,
    )


def del_cookie(request: web.Request, resp: web.StreamResponse, name: str, path: str = "/") -> None:
    secure = request.app[CONFIG].cookie_secure
    resp.del_cookie(cookie_name(request, name, path), path=path, secure=secure or None)
