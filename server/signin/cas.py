"""Préau as a CAS client (protocol 2.0 and 3.0): the login URL, the ticket validation
(``serviceValidate``, ``p3/serviceValidate`` for 3.0 and its attributes), and the
server's single logout request (``logoutRequest``, whose ``SessionIndex`` is the ticket).

The answers come from the school's own CAS server, configured by the operator; they are
parsed with the standard library's ElementTree, which resolves no external entity.
"""

from __future__ import annotations

from urllib.parse import urlencode
from xml.etree import ElementTree

import httpx

from .config import CasProvider
from .oidc import ProviderError

__all__ = ["CasClient", "session_index"]

CAS_NS = "{http://www.yale.edu/tp/cas}"
SAMLP_NS = "{urn:oasis:names:tc:SAML:2.0:protocol}"


class CasClient:
    """The client of one school's CAS server."""

    def __init__(self, provider: CasProvider, http: httpx.AsyncClient) -> None:
        self.provider = provider
        self.http = http

    def login_url(self, service: str) -> str:
        return f"{self.provider.server_url}/login?{urlencode({'service': service})}"

    def logout_url(self, service: str | None) -> str:
        query = "" if service is None else "?" + urlencode({"service": service})
        return f"{self.provider.server_url}/logout{query}"

    async def validate(self, ticket: str, service: str) -> tuple[str, str | None]:
        """The directory user id the server vouches for with ``ticket``, and the school it
        names (``school_attribute``, if configured); ProviderError if it does not."""
        path = "p3/serviceValidate" if self.provider.version == 3 else "serviceValidate"
        try:
            response = await self.http.get(f"{self.provider.server_url}/{path}",
                                           params={"service": service, "ticket": ticket})
            response.raise_for_status()
            root = ElementTree.fromstring(response.content)
        except (httpx.HTTPError, ElementTree.ParseError) as exc:
            raise ProviderError(f"the CAS ticket cannot be validated: {exc}") from exc
        success = root.find(f"{CAS_NS}authenticationSuccess")
        if success is None:
            failure = root.find(f"{CAS_NS}authenticationFailure")
            code = failure.get("code") if failure is not None else "no answer"
            raise ProviderError(f"the CAS server refused the ticket: {code}")
        attribute = self.provider.user_attribute
        if attribute is None:
            user = success.findtext(f"{CAS_NS}user")
        else:
            user = success.findtext(f"{CAS_NS}attributes/{CAS_NS}{attribute}")
        if not user or not user.strip():
            raise ProviderError(f"the CAS answer has no {attribute or 'user'}")
        school = None
        if self.provider.school_attribute is not None:
            school = success.findtext(
                f"{CAS_NS}attributes/{CAS_NS}{self.provider.school_attribute}")
        return user.strip(), (school or "").strip() or None


def session_index(logout_request: str) -> str | None:
    """The ticket a CAS single-logout request names, if it is one."""
    try:
        root = ElementTree.fromstring(logout_request)
    except ElementTree.ParseError:
        return None
    index = root.findtext(f"{SAMLP_NS}SessionIndex")
    return index.strip() if index and index.strip() else None
