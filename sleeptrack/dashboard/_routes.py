"""The dashboard's pages: one FastAPI router, server-rendered with Jinja2, mounted under ``/dashboard``.

Every page except sign-in / sign-up needs a signed-in account; every data page shows only the selected
environment (Live / Test) of that account. POSTs check the CSRF token of the session cookie.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from functools import cached_property
from importlib import resources
from typing import Any
from urllib.parse import quote, urlencode

from argon2 import PasswordHasher
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from sleeptrack.analysis import (
    EPOCH_SECONDS,
    INVALID_PECULIARITIES,
    MAX_AVERAGE_PERIOD_DAYS,
    InvalidTimezoneError,
    SessionState,
    StageScheme,
    format_time,
    parse_timezone,
    validate_period,
)
from sleeptrack.store import Account, Stores

from . import _data as data
from ._definitions import PECULIARITY_DEFINITIONS, STAT_DEFINITIONS, format_stat, stat_rows
from ._security import (
    COOKIE_NAME,
    CookieSession,
    LoginLimiter,
    Passwords,
    SessionSigner,
    csrf_matches,
    new_password_errors,
    normalize_email,
    try_again_in,
    validate_email,
)
from ._svg import (
    NightBar,
    NightStages,
    bar_chart_svg,
    format_duration,
    hypnogram_svg,
    snoring_svg,
    stage_shares_svg,
    usage_svg,
)

__all__ = ["DashboardOptions", "dashboard_router"]

log = logging.getLogger("sleeptrack.dashboard")

_STATIC_FILES = {"dashboard.css": "text/css; charset=utf-8", "dashboard.js": "text/javascript; charset=utf-8"}
_CSP = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
_STAGE_NAMES_FOUR = {-1: "error", 0: "wake", 1: "light", 2: "deep", 3: "rem"}
_STAGE_NAMES_TWO = {-1: "error", 0: "wake", 1: "sleep"}


@dataclass(frozen=True)
class DashboardOptions:
    """Knobs of the dashboard (the defaults suit ``sleeptrack serve``)."""

    prefix: str = "/dashboard"
    #: Anyone reaching the server may create an account (the reference's self-service dashboard).
    allow_signup: bool = True
    #: Session cookies are refused after this many seconds.
    session_max_age: int = 14 * 86400
    #: OPEN / CLOSED session pages poll for new results this often.
    live_poll_seconds: float = 10.0
    max_login_failures: int = 5
    login_window_seconds: float = 900.0
    #: Sign-ups (each costs a password hash) per client IP and hour.
    max_signups_per_ip: int = 10
    #: argon2id parameters (default: argon2-cffi's, RFC 9106 low-memory profile); tests pass cheaper ones.
    password_hasher: PasswordHasher | None = None


@dataclass(frozen=True)
class Auth:
    """A signed-in visitor: the cookie and the scope it selects."""

    cookie: CookieSession
    scope: data.Scope


def _security_headers(response: Response) -> Response:
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers.setdefault("Cache-Control", "no-store")
    return response


def _safe_next(value: str | None, prefix: str) -> str:
    """Only paths of this dashboard are followed after sign-in (no open redirect)."""
    if value and value.startswith(prefix + "/") and not value.startswith("//") and "\\" not in value:
        return value
    return prefix + "/"


def _int(value: Any, default: int) -> int:
    try:
        return int(str(value))
    except (TypeError, ValueError):
        return default


def _float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        return 0.0
    return number if math.isfinite(number) else 0.0


def _timezone(name: str | None, fallback: str) -> tuple[tzinfo, str, str | None]:
    """(tzinfo, its name, an error message if ``name`` was given but unknown)."""
    if name:
        try:
            return parse_timezone(name), name, None
        except InvalidTimezoneError:
            return parse_timezone(fallback), fallback, f"Unknown time zone {name!r}; showing {fallback}."
    try:
        return parse_timezone(fallback), fallback, None
    except InvalidTimezoneError:
        return UTC, "UTC", None


class _Dashboard:
    def __init__(self, stores: Stores | Callable[[], Stores], options: DashboardOptions) -> None:
        self._stores = stores
        self.options = options
        self.prefix = options.prefix.rstrip("/")
        self.passwords = Passwords(options.password_hasher)
        self.limiter = LoginLimiter(options.max_login_failures, options.login_window_seconds)
        self.signup_limiter = LoginLimiter(options.max_signups_per_ip, 3600.0, options.max_signups_per_ip)
        self.static: dict[str, tuple[bytes, str, str]] = {}
        for name, mime in _STATIC_FILES.items():
            body = resources.files("sleeptrack.dashboard").joinpath("static", name).read_bytes()
            self.static[name] = (body, mime, hashlib.sha256(body).hexdigest()[:12])
        self.env = Environment(
            loader=PackageLoader("sleeptrack.dashboard", "templates"),
            autoescape=select_autoescape(["html"]),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.env.filters.update(
            {
                "duration": format_duration,
                "when": self._when,
                "pct": lambda v: "—" if v is None else f"{float(v) * 100:.0f}%",
                "q": lambda v: quote(str(v), safe=""),
            }
        )
        self.env.globals.update(
            {
                "base": self.prefix,
                "static_url": lambda name: f"{self.prefix}/static/{name}?v={self.static[name][2]}",
                "allow_signup": options.allow_signup,
                "peculiarity_definitions": PECULIARITY_DEFINITIONS,
                "invalid_peculiarities": {p.value for p in INVALID_PECULIARITIES},
            }
        )

    # ---------------------------------------------------------------------------------------- helpers
    @property
    def stores(self) -> Stores:
        """The server's stores (opened by its lifespan, so looked up at request time when given a callable)."""
        return self._stores if isinstance(self._stores, Stores) else self._stores()

    @cached_property
    def signer(self) -> SessionSigner:
        return SessionSigner(self.stores.secret, self.options.session_max_age)

    @staticmethod
    def _when(value: datetime | None, tz: tzinfo | None = None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        if value is None:
            return "—"
        local = value.astimezone(tz or UTC)
        return local.strftime(fmt)

    def cookie(self, request: Request) -> CookieSession | None:
        return self.signer.loads(request.cookies.get(COOKIE_NAME))

    def auth(self, request: Request) -> Auth | None:
        """The signed-in account and its environment, or None (signed out, forged or outdated cookie)."""
        cookie = self.cookie(request)
        if cookie is None or cookie.account_id is None:
            return None
        with self.stores.db.read() as s:
            account = s.get(Account, cookie.account_id)
            if account is None or not account.password_hash:
                return None
            if cookie.fingerprint != self.signer.fingerprint(account.id, account.password_hash):
                return None
            scope = data.resolve_scope(s, account.id, cookie.environment)
        return None if scope is None else Auth(cookie, scope)

    def set_cookie(self, request: Request, response: Response, cookie: CookieSession) -> None:
        response.set_cookie(
            COOKIE_NAME,
            self.signer.dumps(cookie),
            max_age=self.options.session_max_age,
            path=self.prefix + "/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https",
        )

    def render(
        self,
        request: Request,
        template: str,
        context: dict[str, Any],
        *,
        auth: Auth | None = None,
        cookie: CookieSession | None = None,
        status_code: int = 200,
        set_cookie: bool = False,
    ) -> HTMLResponse:
        cookie = auth.cookie if auth is not None else cookie
        if cookie is None:
            cookie = self.cookie(request)
            if cookie is None:
                cookie = CookieSession.anonymous()
                set_cookie = True
        ctx = {
            "request_path": request.url.path,
            "auth": auth,
            "csrf_token": cookie.csrf,
            "environment": auth.scope.environment if auth else None,
            **context,
        }
        html = self.env.get_template(template).render(ctx)
        response = HTMLResponse(html, status_code=status_code)
        if set_cookie:
            self.set_cookie(request, response, cookie)
        _security_headers(response)
        return response

    def redirect(self, url: str) -> RedirectResponse:
        response = RedirectResponse(url, status_code=303)
        _security_headers(response)
        return response

    def to_signin(self, request: Request) -> Response:
        if request.method == "GET":
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            return self.redirect(f"{self.prefix}/signin?{urlencode({'next': target})}")
        return self.redirect(f"{self.prefix}/signin")

    def not_found(self, request: Request, auth: Auth, what: str) -> HTMLResponse:
        message = f"No {what} with this id in the {auth.scope.environment.title()} environment of your account."
        return self.render(
            request, "error.html", {"title": "Not found", "message": message}, auth=auth, status_code=404
        )

    @staticmethod
    async def read_form(request: Request) -> dict[str, str]:
        form = await request.form()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    async def handle_form(self, request: Request, handler: Callable[..., Response], *args: Any) -> Response:
        """Read the posted form here, then run ``handler(request, values, *args)`` in the thread pool:
        password hashing and the database stay off the event loop that receives uploads."""
        values = await self.read_form(request)
        return await run_in_threadpool(handler, request, values, *args)

    def signed_in_form(self, request: Request, values: dict[str, str]) -> tuple[Auth, dict[str, str]] | Response:
        """The signed-in visitor and the posted form, or the answer instead: sign-in page or expired form."""
        auth = self.auth(request)
        if auth is None:
            return self.to_signin(request)
        form = self.check_form(request, auth.cookie, values)
        if isinstance(form, Response):
            return form
        return auth, form

    def check_form(
        self, request: Request, cookie: CookieSession | None, values: dict[str, str]
    ) -> dict[str, str] | Response:
        """The posted form, or a 403 page when its CSRF token does not match the cookie's."""
        if cookie is None or not csrf_matches(cookie.csrf, values.get("csrf_token")):
            log.warning("dashboard: POST %s refused: missing or wrong CSRF token", request.url.path)
            return self.render(
                request,
                "error.html",
                {
                    "title": "Form expired",
                    "message": "This form was not sent by this dashboard page or has expired. "
                    "Reload the page and try again.",
                },
                cookie=cookie,
                status_code=403,
            )
        return values

    def client_ip(self, request: Request) -> str:
        return request.client.host if request.client else "unknown"


# ------------------------------------------------------------------------------------------------ router
def dashboard_router(
    stores: Stores | Callable[[], Stores],
    options: DashboardOptions | None = None,
    *,
    on_key_revoked: Callable[[], None] | None = None,
) -> APIRouter:
    """The dashboard's routes (pages, exports, live updates and its two static files) under ``options.prefix``.

    ``stores``: the server's :class:`~sleeptrack.store.Stores`, or a callable returning them (the server opens
    its stores in the app's lifespan: ``dashboard_router(lambda: app.state.ctx.stores)``).
    ``on_key_revoked``: called after a key is revoked (the server drops its API-key cache, so the key is
    refused at once).
    """
    options = options or DashboardOptions()
    dash = _Dashboard(stores, options)
    p = dash.prefix
    router = APIRouter(prefix=p, include_in_schema=False)

    @router.get("/static/{name}")
    def static(name: str) -> Response:
        item = dash.static.get(name)
        if item is None:
            return Response("not found", status_code=404, media_type="text/plain")
        body, mime, digest = item
        return Response(
            body,
            media_type=mime,
            headers={
                "Cache-Control": "public, max-age=86400",
                "ETag": f'"{digest}"',
                "X-Content-Type-Options": "nosniff",
            },
        )

    @router.get("")
    @router.get("/")
    def home(request: Request) -> Response:
        if dash.auth(request) is None:
            return dash.redirect(f"{p}/signin")
        return dash.redirect(f"{p}/overview")

    # ------------------------------------------------------------------------------------- accounts
    @router.get("/signup")
    def signup_page(request: Request) -> Response:
        if not options.allow_signup:
            return dash.redirect(f"{p}/signin")
        return dash.render(request, "signup.html", {"title": "Create an account", "email": "", "errors": {}})

    @router.post("/signup")
    async def signup(request: Request) -> Response:
        return await dash.handle_form(request, _signup)

    def _signup(request: Request, values: dict[str, str]) -> Response:
        cookie = dash.cookie(request)
        form = dash.check_form(request, cookie, values)
        if isinstance(form, Response):
            return form
        assert cookie is not None
        if not options.allow_signup:
            return dash.redirect(f"{p}/signin")
        email = normalize_email(form.get("email", ""))
        password = form.get("password", "")
        errors = new_password_errors(password, form.get("password2", ""), email)
        if message := validate_email(email):
            errors["email"] = message
        if not errors:
            ip = dash.client_ip(request)
            wait = dash.signup_limiter.retry_after("", ip)
            if wait:
                context = {
                    "title": "Create an account",
                    "email": email,
                    "errors": {"email": "Too many accounts created from this address; try again later."},
                }
                refused = dash.render(request, "signup.html", context, cookie=cookie, status_code=429)
                refused.headers["Retry-After"] = str(wait)
                return refused
            dash.signup_limiter.failure("", ip)  # every attempt that reaches the hash counts
            hashed = dash.passwords.hash(password)
            default_plan = "advanced" if "advanced" in dash.stores.plans else next(iter(dash.stores.plans))
            with dash.stores.db.write() as s:
                existing = data.account_by_email(s, email)
                if existing is not None:
                    errors["email"] = (
                        "An account with this e-mail exists. Sign in, or (for an account made by "
                        "`sleeptrack keys create --account`) set its password with "
                        "`sleeptrack accounts set-password`."
                    )
                else:
                    account = data.create_account(s, email, hashed, default_plan)
                    account_id, fingerprint = account.id, dash.signer.fingerprint(account.id, hashed)
        if errors:
            context = {"title": "Create an account", "email": email, "errors": errors}
            return dash.render(request, "signup.html", context, cookie=cookie, status_code=400)
        log.info("dashboard: account created")
        response = dash.redirect(f"{p}/keys")
        dash.set_cookie(request, response, cookie.signed_in(account_id, fingerprint).with_environment("test"))
        return response

    @router.get("/signin")
    def signin_page(request: Request, next: str = "") -> Response:
        if dash.auth(request) is not None:
            return dash.redirect(_safe_next(next, p))
        return dash.render(request, "signin.html", {"title": "Sign in", "email": "", "next": next, "error": None})

    @router.post("/signin")
    async def signin(request: Request) -> Response:
        return await dash.handle_form(request, _signin)

    def _signin(request: Request, values: dict[str, str]) -> Response:
        cookie = dash.cookie(request)
        form = dash.check_form(request, cookie, values)
        if isinstance(form, Response):
            return form
        assert cookie is not None
        email = normalize_email(form.get("email", ""))
        next_url = form.get("next", "")
        ip = dash.client_ip(request)
        wait = dash.limiter.retry_after(email, ip)
        if wait:
            context = {
                "title": "Sign in",
                "email": email,
                "next": next_url,
                "error": f"Too many failed sign-ins. {try_again_in(wait)}",
            }
            response = dash.render(request, "signin.html", context, cookie=cookie, status_code=429)
            response.headers["Retry-After"] = str(wait)
            return response
        with dash.stores.db.read() as s:
            account = data.account_by_email(s, email)
            stored = account.password_hash if account is not None else None
            account_id = account.id if account is not None else None
        ok = dash.passwords.verify(stored, form.get("password", ""))
        if not ok or account_id is None or stored is None:
            dash.limiter.failure(email, ip)
            context = {"title": "Sign in", "email": email, "next": next_url, "error": "Wrong e-mail or password."}
            return dash.render(request, "signin.html", context, cookie=cookie, status_code=401)
        dash.limiter.success(email, ip)
        if dash.passwords.needs_rehash(stored):
            stored = dash.passwords.hash(form.get("password", ""))
            with dash.stores.db.write() as s:
                row = s.get(Account, account_id)
                if row is not None:
                    row.password_hash = stored
        done = dash.redirect(_safe_next(next_url, p))
        dash.set_cookie(request, done, cookie.signed_in(account_id, dash.signer.fingerprint(account_id, stored)))
        return done

    @router.post("/signout")
    async def signout(request: Request) -> Response:
        return await dash.handle_form(request, _signout)

    def _signout(request: Request, values: dict[str, str]) -> Response:
        cookie = dash.cookie(request)
        form = dash.check_form(request, cookie, values)
        if isinstance(form, Response):
            return form
        response = dash.redirect(f"{p}/signin")
        dash.set_cookie(request, response, CookieSession.anonymous())
        return response

    # -------------------------------------------------------------------------------------- account
    @router.get("/account")
    def account_page(request: Request, changed: str = "") -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        context = {"title": "Account", "section": "account", "errors": {}, "changed": changed == "1"}
        return dash.render(request, "account.html", context, auth=auth)

    @router.post("/account/password")
    async def change_password(request: Request) -> Response:
        return await dash.handle_form(request, _change_password)

    def _change_password(request: Request, values: dict[str, str]) -> Response:
        """New password after the current one; the cookie's fingerprint of the hash signs out other browsers."""
        checked = dash.signed_in_form(request, values)
        if isinstance(checked, Response):
            return checked
        auth, form = checked
        account_id, email, ip = auth.scope.account_id, auth.scope.email, dash.client_ip(request)
        errors: dict[str, str] = {}
        status = 400
        wait = dash.limiter.retry_after(email, ip)  # the same counters as sign-in: no guessing from here either
        if wait:
            errors["current"] = f"Too many wrong passwords. {try_again_in(wait)}"
            status = 429
        else:
            with dash.stores.db.read() as s:
                row = s.get(Account, account_id)
                stored = row.password_hash if row is not None else None
            if dash.passwords.verify(stored, form.get("current", "")):
                dash.limiter.success(email, ip)
            else:
                dash.limiter.failure(email, ip)
                errors["current"] = "The current password is wrong."
            password = form.get("password", "")
            errors.update(new_password_errors(password, form.get("password2", ""), email))
        if errors:
            context = {"title": "Account", "section": "account", "errors": errors, "changed": False}
            response = dash.render(request, "account.html", context, auth=auth, status_code=status)
            if wait:
                response.headers["Retry-After"] = str(wait)
            return response
        hashed = dash.passwords.hash(password)
        with dash.stores.db.write() as s:
            row = s.get(Account, account_id)
            if row is None:
                return dash.to_signin(request)
            row.password_hash = hashed
        log.info("dashboard: account %d changed its password", account_id)
        done = dash.redirect(f"{p}/account?changed=1")
        dash.set_cookie(request, done, auth.cookie.signed_in(account_id, dash.signer.fingerprint(account_id, hashed)))
        return done

    @router.post("/environment")
    async def switch_environment(request: Request) -> Response:
        return await dash.handle_form(request, _switch_environment)

    def _switch_environment(request: Request, values: dict[str, str]) -> Response:
        checked = dash.signed_in_form(request, values)
        if isinstance(checked, Response):
            return checked
        auth, form = checked
        env = form.get("environment", "")
        if env not in data.ENVIRONMENTS:
            env = auth.cookie.environment
        response = dash.redirect(_safe_next(form.get("next"), p))
        dash.set_cookie(request, response, auth.cookie.with_environment(env))
        return response

    # ------------------------------------------------------------------------------------- overview
    @router.get("/overview")
    def overview(request: Request) -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        with dash.stores.db.read() as s:
            ov = data.overview(s, auth.scope)
            n_keys = sum(1 for k in data.list_keys(s, auth.scope, dash.stores.plans) if k.status == "active")
        context = {
            "title": "Overview",
            "section": "overview",
            "ov": ov,
            "n_keys": n_keys,
            "usage_chart": usage_svg(ov.usage),
        }
        return dash.render(request, "overview.html", context, auth=auth)

    # ----------------------------------------------------------------------------------------- keys
    def keys_context(auth: Auth, **extra: Any) -> dict[str, Any]:
        with dash.stores.db.read() as s:
            keys = data.list_keys(s, auth.scope, dash.stores.plans)
        return {
            "title": "API keys",
            "section": "keys",
            "keys": keys,
            "plan": dash.stores.plans.get(auth.scope.plan),
            "plan_name": auth.scope.plan,
            "new_key": None,
            "error": None,
            **extra,
        }

    @router.get("/keys")
    def keys_page(request: Request) -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        return dash.render(request, "keys.html", keys_context(auth), auth=auth)

    @router.post("/keys")
    async def create_key(request: Request) -> Response:
        return await dash.handle_form(request, _create_key)

    def _create_key(request: Request, values: dict[str, str]) -> Response:
        checked = dash.signed_in_form(request, values)
        if isinstance(checked, Response):
            return checked
        auth, form = checked
        name = form.get("name", "").strip()[:200]
        try:
            with dash.stores.db.write() as s:
                new_key = data.create_key(s, auth.scope, dash.stores.plans, name)
        except ValueError as exc:
            return dash.render(request, "keys.html", keys_context(auth, error=str(exc)), auth=auth, status_code=400)
        log.info("dashboard: key %s created in %s", new_key.prefix, auth.scope.environment)
        return dash.render(request, "keys.html", keys_context(auth, new_key=new_key), auth=auth)

    @router.post("/keys/{key_id}/revoke")
    async def revoke_key(request: Request, key_id: int) -> Response:
        return await dash.handle_form(request, _revoke_key, key_id)

    def _revoke_key(request: Request, values: dict[str, str], key_id: int) -> Response:
        checked = dash.signed_in_form(request, values)
        if isinstance(checked, Response):
            return checked
        auth, _ = checked
        with dash.stores.db.write() as s:
            found = data.revoke_key(s, auth.scope, key_id)
        if not found:
            return dash.not_found(request, auth, "API key")
        if on_key_revoked is not None:
            on_key_revoked()
        log.info("dashboard: key %d revoked", key_id)
        return dash.redirect(f"{p}/keys")

    @router.post("/keys/{key_id}/rename")
    async def rename_key(request: Request, key_id: int) -> Response:
        return await dash.handle_form(request, _rename_key, key_id)

    def _rename_key(request: Request, values: dict[str, str], key_id: int) -> Response:
        checked = dash.signed_in_form(request, values)
        if isinstance(checked, Response):
            return checked
        auth, form = checked
        with dash.stores.db.write() as s:
            found = data.rename_key(s, auth.scope, key_id, form.get("name", "").strip()[:200])
        if not found:
            return dash.not_found(request, auth, "API key")
        return dash.redirect(f"{p}/keys")

    # ---------------------------------------------------------------------------------------- users
    @router.get("/users")
    def users(request: Request, q: str = "", page: str = "1") -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        with dash.stores.db.read() as s:
            result = data.list_users(s, auth.scope, q, _int(page, 1))
        context = {"title": "Users", "section": "users", "page": result, "q": q}
        return dash.render(request, "users.html", context, auth=auth)

    @router.get("/users/{user_id}")
    def user(request: Request, user_id: str, page: str = "1") -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        with dash.stores.db.read() as s:
            row = data.get_user(s, auth.scope, user_id)
            if row is None:
                return dash.not_found(request, auth, "user")
            sessions = data.list_sessions(s, auth.scope, user_id=user_id, page=_int(page, 1))
            s.expunge_all()
        context = {"title": f"User {user_id}", "section": "users", "user": row, "page": sessions, "tz_for": _tz_for}
        return dash.render(request, "user.html", context, auth=auth)

    @router.get("/users/{user_id}/averages")
    def averages(request: Request, user_id: str, start_date: str = "", end_date: str = "", tz: str = "") -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        with dash.stores.db.read() as s:
            row = data.get_user(s, auth.scope, user_id)
            if row is None:
                return dash.not_found(request, auth, "user")
            latest = data.list_sessions(s, auth.scope, user_id=user_id, page=1).items
            tzinfo_, tz_name, tz_error = _timezone(tz, latest[0].created_timezone if latest else "UTC")
            today = datetime.now(tzinfo_).date()
            errors = [tz_error] if tz_error else []
            try:
                end = date.fromisoformat(end_date) if end_date else today
                start = date.fromisoformat(start_date) if start_date else end - timedelta(days=13)
                validate_period(start, end)
            except ValueError as exc:
                errors.append(f"{exc}." if "period" in str(exc) or "before" in str(exc) else "Dates are YYYY-MM-DD.")
                end = today
                start = end - timedelta(days=13)
            average, nights = data.average_for_user(s, auth.scope, user_id, start, end, tzinfo_)
            s.expunge_all()
        avg_doc = average.to_dict(tzinfo_, tz_name)
        avg_stats = avg_doc["average_stats"]
        rows = _average_rows(avg_stats, tzinfo_) if avg_stats else {}
        charts = _night_charts(nights, tzinfo_)
        context = {
            "title": f"Averages of {user_id}",
            "section": "users",
            "user": row,
            "start": start,
            "end": end,
            "tz_name": tz_name,
            "errors": errors,
            "avg": avg_doc,
            "rows": rows,
            "charts": charts,
            "nights": nights,
            "max_days": MAX_AVERAGE_PERIOD_DAYS,
        }
        return dash.render(request, "averages.html", context, auth=auth)

    # ------------------------------------------------------------------------------------- sessions
    @router.get("/sessions")
    def sessions(request: Request, q: str = "", state: str = "", page: str = "1") -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        with dash.stores.db.read() as s:
            result = data.list_sessions(s, auth.scope, q, state, page=_int(page, 1))
        context = {
            "title": "Sessions",
            "section": "sessions",
            "page": result,
            "q": q,
            "state": state,
            "states": [st.value for st in SessionState],
            "tz_for": _tz_for,
        }
        return dash.render(request, "sessions.html", context, auth=auth)

    def load_detail(request: Request, auth: Auth, session_id: str) -> data.SessionDetail | None:
        with dash.stores.db.read() as s:
            sess = data.get_session(s, auth.scope, session_id)
            if sess is None:
                return None
            detail = data.session_detail(s, sess)
            s.expunge_all()  # keep the loaded rows usable after the read transaction ends
            return detail

    def live_context(detail: data.SessionDetail, tzinfo_: tzinfo) -> dict[str, Any]:
        report = detail.report
        two = data.scheme_of(detail.session) is StageScheme.TWO
        stages = report.sleep_stages or []
        snoring = report.snoring_stages
        return {
            "detail": detail,
            "report": report,
            "tz": tzinfo_,
            "hypnogram": hypnogram_svg(stages, report.start_time, tzinfo_, two_stage=two),
            "snoring_chart": None if snoring is None else snoring_svg(snoring, report.start_time, tzinfo_),
            "epoch_seconds": EPOCH_SECONDS,
            "two_stage": two,
            "gap_times": [
                (
                    report.start_time + timedelta(seconds=EPOCH_SECONDS * start),
                    report.start_time + timedelta(seconds=EPOCH_SECONDS * (start + n)),
                    n,
                )
                for start, n in detail.gaps
            ],
        }

    @router.get("/sessions/{session_id}")
    def session_page(request: Request, session_id: str, tz: str = "", poll: str = "") -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        detail = load_detail(request, auth, session_id)
        if detail is None:
            return dash.not_found(request, auth, "session")
        tzinfo_, tz_name, tz_error = _timezone(tz, detail.session.created_timezone)
        report = detail.report
        stat = report.stat.to_dict(tzinfo_) if report.stat is not None else None
        live = report.state is not SessionState.COMPLETE
        context = {
            "title": f"Session {session_id}",
            "section": "sessions",
            "sess": detail.session,
            "tz_name": tz_name,
            "tz_error": tz_error,
            "stat_groups": stat_rows(stat, tzinfo_) if stat else {},
            "live": live,
            "live_url": f"{p}/sessions/{quote(session_id, safe='')}/live" + (f"?tz={quote(tz)}" if tz else ""),
            # ``?poll=N`` (1..300 s) overrides the refresh interval of this page view.
            "poll_ms": int(min(300.0, max(1.0, _float(poll) or options.live_poll_seconds)) * 1000),
            "export_query": f"?tz={quote(tz_name)}",
            "invalid": not report.is_valid,
            **live_context(detail, tzinfo_),
        }
        return dash.render(request, "session.html", context, auth=auth)

    @router.get("/sessions/{session_id}/live")
    def session_live(request: Request, session_id: str, tz: str = "") -> Response:
        auth = dash.auth(request)
        if auth is None:
            return _security_headers(JSONResponse({"detail": "signed out"}, status_code=401))
        detail = load_detail(request, auth, session_id)
        if detail is None:
            return _security_headers(JSONResponse({"detail": "not found"}, status_code=404))
        tzinfo_, _, _ = _timezone(tz, detail.session.created_timezone)
        html = dash.env.get_template("_session_live.html").render(live_context(detail, tzinfo_))
        body = {
            "state": detail.session.state,
            "version": detail.version,
            "epochs": len(detail.report.sleep_stages or []),
            "received": detail.session.received_count,
            "html": html,
        }
        return _security_headers(JSONResponse(body))

    @router.get("/sessions/{session_id}/export.json")
    def export_json(request: Request, session_id: str, tz: str = "") -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        detail = load_detail(request, auth, session_id)
        if detail is None:
            return dash.not_found(request, auth, "session")
        tzinfo_, tz_name, _ = _timezone(tz, detail.session.created_timezone)
        document = {"detail": "OK", "result": detail.report.to_dict(tzinfo_, tz_name)}
        body = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
        response = Response(body, media_type="application/json")
        response.headers["Content-Disposition"] = f'attachment; filename="sleeptrack-session-{session_id}.json"'
        return _security_headers(response)

    @router.get("/sessions/{session_id}/export.csv")
    def export_csv(request: Request, session_id: str, tz: str = "") -> Response:
        auth = dash.auth(request)
        if auth is None:
            return dash.to_signin(request)
        detail = load_detail(request, auth, session_id)
        if detail is None:
            return dash.not_found(request, auth, "session")
        tzinfo_, _, _ = _timezone(tz, detail.session.created_timezone)
        response = Response(_epochs_csv(detail, tzinfo_), media_type="text/csv; charset=utf-8")
        response.headers["Content-Disposition"] = f'attachment; filename="sleeptrack-session-{session_id}.csv"'
        return _security_headers(response)

    return router


def _tz_for(row: data.SessionRow) -> tzinfo:
    return _timezone(None, row.created_timezone)[0]


def _epochs_csv(detail: data.SessionDetail, tz: tzinfo) -> str:
    """One row per epoch: index (= seq_num), its start and end in ``tz``, the stage and snoring codes."""
    report = detail.report
    names = _STAGE_NAMES_TWO if data.scheme_of(detail.session) is StageScheme.TWO else _STAGE_NAMES_FOUR
    stages = report.sleep_stages or []
    snoring = report.snoring_stages
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["epoch", "start_time", "end_time", "sleep_stage", "sleep_stage_name", "snoring_stage"])
    for i, code in enumerate(stages):
        begin = report.start_time + timedelta(seconds=EPOCH_SECONDS * i)
        writer.writerow(
            [
                i,
                format_time(begin, tz),
                format_time(begin + timedelta(seconds=EPOCH_SECONDS), tz),
                code,
                names.get(code, str(code)),
                "" if snoring is None else snoring[i],
            ]
        )
    return out.getvalue()


def _average_rows(avg: dict[str, Any], tz: tzinfo) -> list[tuple[str, str, str]]:
    """(label, value, definition) of every average statistic present."""
    rows = []
    for key, value in avg.items():
        d = STAT_DEFINITIONS.get(key)
        if d is None:
            continue
        kind = "clock" if d.kind == "time" else d.kind
        rows.append((d.label, format_stat(kind, value, tz), d.definition + " Averaged over the slept nights."))
    for key, label, definition in (
        ("start_time", "Start time", "Mean clock time at which tracking started (on the 24-hour circle)."),
        ("end_time", "End time", "Mean clock time at which tracking ended (on the 24-hour circle)."),
    ):
        if key in avg:
            rows.insert(0 if key == "start_time" else 1, (label, str(avg[key] or "—"), definition))
    return rows


def _night_charts(nights: list[data.NightSummary], tz: tzinfo) -> dict[str, Markup]:
    labels = [f"{n.local_date:%m-%d}" for n in nights]
    sleep_bars = []
    eff_bars = []
    shares = []
    sleep_values = []
    eff_values = []
    for label, night in zip(labels, nights, strict=True):
        stat = night.summary.stat
        if stat is None or stat.sleep_time is None:  # never slept: listed apart, not charted (nor averaged)
            continue
        hours = stat.time_in_sleep / 3600.0
        sleep_values.append(hours)
        eff_values.append(stat.sleep_efficiency)
        sleep_bars.append(NightBar(label, hours, f"{label}: {format_duration(stat.time_in_sleep)} asleep"))
        eff_bars.append(
            NightBar(label, stat.sleep_efficiency, f"{label}: efficiency {stat.sleep_efficiency * 100:.0f}%")
        )
        shares.append(
            NightStages(
                label,
                wake=stat.wake_ratio or 0.0,
                light=stat.light_ratio,
                deep=stat.deep_ratio,
                rem=stat.rem_ratio,
                sleep=stat.sleep_ratio,
                title=f"{label}: stage shares of the sleep period",
            )
        )

    def mean(values: list[float]) -> float | None:
        return sum(values) / len(values) if values else None

    hours_fmt: Callable[[float], str] = lambda v: f"{v:g} h"  # noqa: E731
    return {
        "sleep": bar_chart_svg(sleep_bars, fmt=hours_fmt, css_class="nights sleep-time", average=mean(sleep_values)),
        "efficiency": bar_chart_svg(
            eff_bars,
            y_max=1.0,
            fmt=lambda v: f"{v * 100:.0f}%",
            css_class="nights efficiency",
            average=mean(eff_values),
        ),
        "stages": stage_shares_svg(shares),
    }
