"""A private LemonLDAP::NG for tests: the real identity provider of French school ENTs.

:class:`IdentityProvider` runs the LemonLDAP::NG portal (Debian's
``liblemonldap-ng-portal-perl``, 2.16 in bookworm) under Starman (``plackup -s
Starman``, a few workers) on a free 127.0.0.1 port, from a temporary directory holding
everything it uses: its ``lemonldap-ng.ini``, a File configuration backend
(``conf/lmConf-<n>.json``, written here), its session files, an SQLite table of
accounts (the DBI authentication and user backend) and a fresh RSA key that signs the
ID tokens (RS256; LL::NG publishes it at ``/oauth2/jwks``).
:meth:`~IdentityProvider.close` kills it and removes the directory.

It plays, towards Préau, what an ENT plays in production:

- **OpenID Connect provider**, issuer ``url`` (discovery at ``discovery_url``). One
  relying party, ``client_id`` ``preau``, confidential (``client_secret``, sent with
  HTTP Basic or in the form), PKCE required (``S256``), authorization-code flow; the
  ID token and ``/oauth2/userinfo`` carry the claims ``preau_uid`` and ``preau_school``
  (scope ``preau``; they are forced into the ID token) besides ``sub`` = the login,
  ``name`` and ``email`` (scopes ``profile``, ``email``). Logout: LL::NG 2.16 has
  **no OIDC back-channel logout** (``backchannel_logout_supported`` is false in its
  discovery document; its code says "TODO #1194"): it has *front-channel* logout,
  an ``<iframe src="frontchannel_logout_url?iss=…&sid=…">`` in the page the browser
  sees when it signs out at the portal (``end_session_url?confirm=1`` or
  ``url/?logout=1``; with ``post_logout_redirect_uri`` it is redirected at once and no
  iframe is shown). ``sid`` is the user's ``sub`` (2.16 puts no ``sid`` claim in the ID
  token). LL::NG counts Préau as signed in only once Préau has taken its tokens.
- **CAS server** (2.0 and 3.0), ``cas_url`` (``/cas/login``, ``/cas/serviceValidate``,
  ``/cas/p3/serviceValidate``, ``/cas/logout``), releasing ``preau_uid`` and
  ``preau_school`` as CAS attributes; **CAS back-channel single logout** is on: at
  logout LL::NG POSTs ``logoutRequest=<samlp:LogoutRequest …><samlp:SessionIndex>ST-…``
  to the ``service`` URL the ticket was issued for.

Redirect URIs and CAS services are exact URLs, and Préau's port is only known once a
test has started it: :meth:`~IdentityProvider.configure` rewrites the configuration
(next ``cfgNum``) and restarts the portal on the same port (sessions survive: they are
files). Accounts live in SQLite and can be added at any time with
:meth:`~IdentityProvider.add_account` (a restart only if it brings a new attribute
name). The ``identity_provider`` fixture (tests/conftest.py) is one instance for the
whole run, with :data:`DEFAULT_ACCOUNTS`; each test calls ``configure()`` first.
:func:`submit_login` posts the login form over HTTP, for tests without a browser.

Both servers share the host 127.0.0.1, and cookies ignore ports: LL::NG's cookie is
named ``lemonldap``; a Préau cookie must not use that name.

A missing package or a portal that does not start raises
:class:`IdentityProviderUnavailable` with what to do: the tests fail, they never skip.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

__all__ = [
    "DEFAULT_ACCOUNTS",
    "INSTALL_HINT",
    "LOGIN_FORM_FIELDS",
    "Account",
    "IdentityProvider",
    "IdentityProviderUnavailable",
    "submit_login",
]

INSTALL_HINT = (
    "LemonLDAP::NG is not installed: run `make lemonldap` (it apt-installs Debian's "
    "liblemonldap-ng-portal-perl, starman and the Perl modules the portal needs, listed "
    "in the Makefile; as root or with sudo, Debian 12 or later)")
_STARMAN = Path("/usr/share/perl5/Plack/Handler/Starman.pm")
_PORTAL_PSGI = Path("/usr/share/lemonldap-ng/portal/htdocs/index.psgi")
_STATIC = Path("/usr/share/lemonldap-ng/portal/htdocs/static")
_JAVASCRIPT = Path("/usr/share/javascript")  # jQuery, Bootstrap: Debian's libjs-* packages
_TEMPLATES = Path("/usr/share/lemonldap-ng/portal/templates")
_START_TIMEOUT = 60.0  # seconds; reached only when it fails (it starts in a few seconds)
_STOP_TIMEOUT = 10.0
_PORT_ATTEMPTS = 5
_WORKERS = 3  # enough for a browser's parallel requests and a server's calls
_ATTRIBUTE_NAMES = frozenset("abcdefghijklmnopqrstuvwxyz_0123456789")


class IdentityProviderUnavailable(RuntimeError):
    """LemonLDAP::NG is missing or did not start; the message says what to do."""


@dataclass(frozen=True)
class Account:
    """One account of the identity provider: what a user types, and what it asserts.

    ``attributes`` become session attributes of the same name; ``preau_uid`` and
    ``preau_school`` are released to Préau (OIDC claims and CAS attributes), ``cn``
    as ``name`` and ``mail`` as ``email``. Leave ``preau_uid`` out for an account that
    has no Préau identity at all.
    """

    login: str
    password: str
    attributes: Mapping[str, str] = field(default_factory=dict)


# The test school "hugo" (tests/schools.py): a teacher, a parent, and two accounts
# Préau must refuse: one naming a user its directory does not have, one naming nobody.
DEFAULT_ACCOUNTS: tuple[Account, ...] = (
    Account("claire.martin", "claire-pw", {"preau_uid": "t1", "preau_school": "hugo",
                                           "cn": "Claire Martin",
                                           "mail": "claire.martin@hugo.test"}),
    Account("marc.petit", "marc-pw", {"preau_uid": "p1", "preau_school": "hugo",
                                      "cn": "Marc Petit", "mail": "marc.petit@hugo.test"}),
    Account("inconnu", "inconnu-pw", {"preau_uid": "zz99", "preau_school": "hugo",
                                      "cn": "Compte Inconnu"}),
    Account("sans.preau", "sans-pw", {"cn": "Sans Identifiant"}),
)


# The login page's form: ``user`` and ``password`` (ids in the page: #userfield,
# #passwordfield), posted back to the page's own URL with its hidden inputs.
LOGIN_FORM_FIELDS = ("user", "password")
_HIDDEN_INPUT = re.compile(r'<input[^>]*type="hidden"[^>]*>')
_ATTRIBUTE = re.compile(r'(name|value)="([^"]*)"')


def submit_login(client: httpx.Client, page: httpx.Response, login: str,
                 password: str) -> httpx.Response:
    """Fill in and post the login form that ``page`` shows, as a browser would.

    ``page`` is LL::NG's answer to a GET of ``/oauth2/authorize?…`` or
    ``/cas/login?service=…`` by ``client`` (which must keep cookies and not follow
    redirects); the answer returned is the form's: a 302 to the relying party (with
    ``code`` or ``ticket``) when the password is right, the form again (200) otherwise.
    """
    if 'name="password"' not in page.text:
        raise AssertionError(f"not a login page ({page.status_code}): {page.text[:300]}")
    fields: dict[str, str] = {}
    for tag in _HIDDEN_INPUT.findall(page.text):
        attributes = dict(_ATTRIBUTE.findall(tag))
        if "name" in attributes:
            fields[attributes["name"]] = html.unescape(attributes.get("value", ""))
    fields.update(user=login, password=password)
    return client.post(str(page.url), data=fields)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _check_name(name: str) -> str:
    if not name or not set(name) <= _ATTRIBUTE_NAMES or name[0].isdigit():
        raise ValueError(f"attribute name {name!r}: lowercase letters, digits and _ only")
    return name


class IdentityProvider:
    """One private LemonLDAP::NG portal; use as a context manager or call close().

    ``url`` (= the OIDC issuer) stays the same across :meth:`configure` restarts.
    """

    client_id = "preau"
    cas_attributes = ("preau_uid", "preau_school", "cn", "mail")

    def __init__(self, accounts: Iterable[Account] = DEFAULT_ACCOUNTS) -> None:
        plackup = shutil.which("plackup")
        if plackup is None or not _PORTAL_PSGI.exists() or not _STARMAN.exists():
            raise IdentityProviderUnavailable(INSTALL_HINT)
        self._plackup = plackup
        self._dir = Path(tempfile.mkdtemp(prefix="preau-llng-"))
        self._process: subprocess.Popen[bytes] | None = None
        self._cfg_num = 0
        self.port = 0
        self.client_secret = "preau-secret-" + os.urandom(12).hex()
        self.redirect_uris: tuple[str, ...] = ()
        self.post_logout_redirect_uris: tuple[str, ...] = ()
        self.frontchannel_logout_url = ""
        self.cas_services: tuple[str, ...] = ()
        self._accounts: dict[str, Account] = {}
        for sub in ("conf", "sessions/lock", "psessions/lock", "cache", "notifications"):
            (self._dir / sub).mkdir(parents=True)
        self._write_keys()
        self._db = self._dir / "accounts.sqlite"
        self._columns: list[str] = []
        for account in accounts:
            self.add_account(account)

    # -- addresses ------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>``: the portal, and the OIDC issuer (``iss``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def issuer(self) -> str:
        return self.url

    @property
    def discovery_url(self) -> str:
        return f"{self.url}/.well-known/openid-configuration"

    @property
    def authorization_url(self) -> str:
        return f"{self.url}/oauth2/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.url}/oauth2/token"

    @property
    def userinfo_url(self) -> str:
        return f"{self.url}/oauth2/userinfo"

    @property
    def jwks_url(self) -> str:
        return f"{self.url}/oauth2/jwks"

    @property
    def end_session_url(self) -> str:
        return f"{self.url}/oauth2/logout"

    @property
    def cas_url(self) -> str:
        """The CAS server's base: ``<cas_url>/login``, ``<cas_url>/p3/serviceValidate``."""
        return f"{self.url}/cas"

    @property
    def accounts(self) -> tuple[Account, ...]:
        return tuple(self._accounts.values())

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @property
    def log(self) -> str:
        """The portal's log so far (to explain a failure)."""
        path = self._dir / "portal.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- accounts -------------------------------------------------------------------

    def add_account(self, account: Account) -> None:
        """Add (or replace) an account; takes effect at once, running or not (a new
        attribute name restarts the portal: the attributes it reads are configuration)."""
        for name in account.attributes:
            _check_name(name)
        with sqlite3.connect(self._db) as db:
            if not self._columns:
                db.execute("CREATE TABLE accounts (login TEXT PRIMARY KEY, password TEXT)")
            new = [n for n in account.attributes if n not in self._columns]
            for name in new:
                db.execute(f"ALTER TABLE accounts ADD COLUMN {name} TEXT")
            self._columns += new
            names = ["login", "password", *account.attributes]
            db.execute(
                f"INSERT OR REPLACE INTO accounts ({', '.join(names)}) "
                f"VALUES ({', '.join('?' * len(names))})",
                [account.login, account.password, *account.attributes.values()])
        db.close()
        self._accounts[account.login] = account
        if new and self.running:
            self._restart()  # the exported variables are part of the configuration

    # -- configuration --------------------------------------------------------------

    def configure(self, *, redirect_uris: Sequence[str] = (),
                  post_logout_redirect_uris: Sequence[str] = (),
                  frontchannel_logout_url: str = "",
                  cas_services: Sequence[str] = ()) -> None:
        """Declare Préau's URLs (replacing earlier ones) and restart on the same port.

        ``redirect_uris``: where ``/oauth2/authorize`` may send the code (exact match).
        ``post_logout_redirect_uris``: where ``end_session_url`` may send the browser.
        ``frontchannel_logout_url``: loaded in an iframe at logout with ``iss`` and
        ``sid``. ``cas_services``: service URLs (prefixes) of the CAS application;
        the single-logout POST goes to the exact ``service`` of each ticket.
        """
        wanted = (tuple(redirect_uris), tuple(post_logout_redirect_uris),
                  frontchannel_logout_url, tuple(cas_services))
        if wanted == (self.redirect_uris, self.post_logout_redirect_uris,
                      self.frontchannel_logout_url, self.cas_services):
            return  # already so: no restart
        (self.redirect_uris, self.post_logout_redirect_uris, self.frontchannel_logout_url,
         self.cas_services) = wanted
        if self.running:
            self._restart()

    # -- life cycle -----------------------------------------------------------------

    def start(self) -> None:
        """Start on a free port (first time) or on the same port (after stop())."""
        if self.running:
            raise RuntimeError("LemonLDAP::NG is already running")
        if self.port:
            self._spawn(self.port)
            return
        for attempt in range(_PORT_ATTEMPTS):
            try:
                self._spawn(_free_port())
                return
            except _PortTaken:
                if attempt == _PORT_ATTEMPTS - 1:
                    raise IdentityProviderUnavailable(
                        f"LemonLDAP::NG found no free port:\n{self.log[-2000:]}") from None

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL if it hangs). The port and the sessions are kept."""
        process, self._process = self._process, None
        if process is not None:
            _end(process)

    def close(self) -> None:
        """Kill the portal if it still runs and delete its directory."""
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> IdentityProvider:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    # -- internals ------------------------------------------------------------------

    def _restart(self) -> None:
        self.stop()
        self._spawn(self.port)

    def _write_keys(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._private_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption()).decode()
        self._public_pem = key.public_key().public_bytes(
            serialization.Encoding.PEM,
            serialization.PublicFormat.SubjectPublicKeyInfo).decode()
        self.key_id = "preau-test-" + os.urandom(4).hex()

    def _write_ini(self) -> Path:
        ini = self._dir / "lemonldap-ng.ini"
        # Without a local cache the portal reads lmConf-<n>.json itself: one source.
        ini.write_text(
            "[all]\n"
            "logLevel = notice\n"
            "checkTime = 1\n"
            "[configuration]\n"
            "type = File\n"
            f"dirName = {self._dir / 'conf'}\n"
            "[portal]\n"
            "staticPrefix = /static\n"
            f"templateDir = {_TEMPLATES}\n"
            "languages = fr, en\n"
            "[handler]\n"
            "status = 0\n",
            encoding="utf-8")
        return ini

    def _write_psgi(self) -> Path:
        app = self._dir / "app.psgi"
        # The portal's own PSGI app, plus the static files its pages load (as Debian's
        # /etc/lemonldap-ng/portal-nginx.conf serves them). First, a watchdog: a child
        # that reads stdin (a pipe from this test process) and stops the server at its
        # end, so that a test run killed outright leaves no portal behind.
        app.write_text(
            "use strict;\nuse POSIX ();\nuse Plack::Builder;\nuse Plack::App::File;\n"
            "my $server = $$;\n"
            "my $watchdog = fork;\n"
            "if (defined $watchdog && $watchdog == 0) {\n"
            "  1 while <STDIN>;\n"
            "  kill 'TERM', $server;\n"
            "  POSIX::_exit(0);\n"
            "}\n"
            "close STDIN;\n"
            f"my $portal = do '{_PORTAL_PSGI}' or die \"portal: $@$!\";\n"
            "builder {\n"
            f"  mount '/static' => Plack::App::File->new(root => '{_STATIC}')->to_app;\n"
            f"  mount '/javascript' => Plack::App::File->new(root => '{_JAVASCRIPT}')->to_app;\n"
            "  mount '/' => $portal;\n"
            "};\n", encoding="utf-8")
        return app

    def _conf(self, port: int) -> dict[str, object]:
        url = f"http://127.0.0.1:{port}"
        storage = {"Directory": str(self._dir / "sessions"),
                   "LockDirectory": str(self._dir / "sessions" / "lock"),
                   "generateModule":
                       "Lemonldap::NG::Common::Apache::Session::Generate::SHA256"}
        exported = {name: name for name in self._columns}
        claims = {"preau_uid": "preau_uid", "preau_school": "preau_school",
                  "name": "cn", "email": "mail"}
        return {
            "cfgNum": self._cfg_num, "cfgAuthor": "tests/identity_provider.py",
            "cfgDate": str(int(time.time())), "cfgVersion": "2.16.1",
            "portal": url + "/", "domain": "127.0.0.1", "cookieName": "lemonldap",
            "securedCookie": 0, "https": 0, "sameSite": "Lax",
            "globalStorage": "Apache::Session::File", "globalStorageOptions": storage,
            "persistentStorage": "Apache::Session::File",
            "persistentStorageOptions": {
                "Directory": str(self._dir / "psessions"),
                "LockDirectory": str(self._dir / "psessions" / "lock")},
            "localSessionStorage": "Cache::FileCache",
            "localSessionStorageOptions": {"cache_root": str(self._dir / "cache"),
                                           "namespace": "lemonldap-ng-sessions",
                                           "default_expires_in": 600,
                                           "directory_umask": "007", "cache_depth": 3},
            "notificationStorage": "File",
            "notificationStorageOptions": {"dirName": str(self._dir / "notifications")},
            "authentication": "DBI", "userDB": "Same", "passwordDB": "Null",
            "registerDB": "Null",
            "dbiAuthChain": f"dbi:SQLite:dbname={self._db}",
            "dbiAuthUser": "", "dbiAuthPassword": "",
            "dbiAuthTable": "accounts", "dbiUserTable": "accounts",
            "dbiAuthLoginCol": "login", "dbiAuthPasswordCol": "password",
            "dbiAuthPasswordHash": "", "dbiExportedVars": exported,
            "exportedVars": {}, "macros": {}, "groups": {},
            "whatToTrace": "_user",
            "locationRules": {}, "exportedHeaders": {}, "applicationList": {},
            "loginHistoryEnabled": 0, "portalDisplayResetPassword": 0,
            # OpenID Connect provider
            "issuerDBOpenIDConnectActivation": 1,
            "oidcServiceMetaDataIssuer": url,
            "oidcServicePrivateKeySig": self._private_pem,
            "oidcServicePublicKeySig": self._public_pem,
            "oidcServiceKeyIdSig": self.key_id,
            "oidcServiceAllowAuthorizationCodeFlow": 1,
            "oidcServiceAllowImplicitFlow": 0,
            "oidcRPMetaDataOptions": {"preau": {
                "oidcRPMetaDataOptionsClientID": self.client_id,
                "oidcRPMetaDataOptionsClientSecret": self.client_secret,
                "oidcRPMetaDataOptionsPublic": 0,
                "oidcRPMetaDataOptionsRequirePKCE": 1,
                "oidcRPMetaDataOptionsRedirectUris": " ".join(self.redirect_uris),
                "oidcRPMetaDataOptionsPostLogoutRedirectUris":
                    " ".join(self.post_logout_redirect_uris),
                "oidcRPMetaDataOptionsLogoutUrl": self.frontchannel_logout_url,
                "oidcRPMetaDataOptionsLogoutType": "front",
                "oidcRPMetaDataOptionsLogoutSessionRequired": 1,
                "oidcRPMetaDataOptionsLogoutBypassConfirm": 1,
                "oidcRPMetaDataOptionsBypassConsent": 1,
                "oidcRPMetaDataOptionsIDTokenSignAlg": "RS256",
                "oidcRPMetaDataOptionsIDTokenForceClaims": 1,
                "oidcRPMetaDataOptionsIDTokenExpiration": 3600,
                "oidcRPMetaDataOptionsAccessTokenExpiration": 3600,
                "oidcRPMetaDataOptionsDisplayName": "Préau",
            }},
            "oidcRPMetaDataExportedVars": {"preau": claims},
            "oidcRPMetaDataOptionsExtraClaims": {"preau": {
                "preau": "preau_uid preau_school"}},
            "oidcStorage": "Apache::Session::File", "oidcStorageOptions": storage,
            # CAS server
            "issuerDBCASActivation": 1,
            "casAccessControlPolicy": "error",
            "casBackChannelSingleLogout": 1,
            "casStrictMatching": 1,
            "casAttr": "",
            "casAttributes": {},
            "casAppMetaDataOptions": {"preau": {
                "casAppMetaDataOptionsService": " ".join(self.cas_services),
                "casAppMetaDataOptionsUserAttribute": "",
                "casAppMetaDataOptionsDisplayName": "Préau",
            }},
            "casAppMetaDataExportedVars": {"preau": {
                name: name for name in self.cas_attributes if name in self._columns}},
            "casStorage": "Apache::Session::File", "casStorageOptions": storage,
        }

    def _write_conf(self, port: int) -> None:
        self._cfg_num += 1
        path = self._dir / "conf" / f"lmConf-{self._cfg_num}.json"
        path.write_text(json.dumps(self._conf(port), indent=1), encoding="utf-8")
        for old in (self._dir / "conf").glob("lmConf-*.json"):
            if old != path:
                old.unlink()

    def _spawn(self, port: int) -> None:
        self._write_conf(port)
        log_start = len(self.log)  # the log is kept across restarts: read this start's part
        env = {**os.environ, "LLNG_DEFAULTCONFFILE": str(self._write_ini())}
        log = (self._dir / "portal.log").open("ab")
        try:
            process = subprocess.Popen(
                # Starman, not plackup's default single-process server: Chromium may
                # open a connection and send nothing on it, which would block that one.
                [self._plackup, "--server", "Starman", "--workers", str(_WORKERS),
                 "--host", "127.0.0.1", "--port", str(port),
                 "--no-default-middleware", "--app", str(self._write_psgi())],
                cwd=self._dir, env=env, stdin=subprocess.PIPE, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        finally:
            log.close()
        deadline = time.monotonic() + _START_TIMEOUT
        while not self._answers(port):
            failed = "Underlying object can't load conf" in self.log[log_start:]
            if failed or process.poll() is not None or time.monotonic() > deadline:
                _end(process)
                tail = self.log[log_start:]
                if "Address already in use" in tail:
                    raise _PortTaken
                raise IdentityProviderUnavailable(
                    f"LemonLDAP::NG did not start on port {port}; if its log below says a "
                    f"Perl module is missing (\"Can't locate …\"), run `make lemonldap` "
                    f"(it apt-installs the portal and the Perl modules it needs):\n"
                    f"{_errors(tail)}")
            time.sleep(0.05)
        self._process = process
        self.port = port

    @staticmethod
    def _answers(port: int) -> bool:
        try:
            response = httpx.get(
                f"http://127.0.0.1:{port}/.well-known/openid-configuration", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200


def _end(process: subprocess.Popen[bytes]) -> None:
    """Close the watchdog's pipe (it exits), SIGTERM the server, wait; SIGKILL if hung."""
    if process.stdin is not None:
        process.stdin.close()
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=_STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=_STOP_TIMEOUT)


class _PortTaken(Exception):
    pass


def _errors(log: str) -> str:
    """The lines that say why it failed, without the repeated 500s of each poll."""
    lines = [line for line in log.splitlines()
             if ("[error]" in line or "Can't locate" in line) and "Error 500" not in line]
    return "\n".join(dict.fromkeys(lines))[-3000:] or log[-3000:]
