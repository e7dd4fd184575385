"""The sign-in sections of PREAU_IDENTITY_FILE (server/signin/config.py): what they
give, and a clear refusal, naming the file, the school and the key, for each mistake."""

from __future__ import annotations

from pathlib import Path

import pytest

from server.config import Config
from server.errors import ConfigurationError
from server.signin.config import CasProvider, OidcProvider, load_signin_config
from server.web import create_app

GOOD = """
[signin]
public_url = "https://preau.example.fr/"
app_redirect_uris = ["fr.preau.app:/signin"]

[schools.hugo.tokens]          # another reader's section: left alone here
jwks_url = "https://ent.example.fr/jwks"

[schools.hugo.oidc]
issuer = "https://ent.example.fr"
client_id = "preau"
client_secret = "s3cret"
user_claim = "preau_uid"

[schools.hugo.oidc.users]
"f81d4fae" = "t1"

[schools.moulin.cas]
server_url = "https://cas.example.fr/cas/"
version = 2
"""


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "identity.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_the_sections_are_read(tmp_path: Path):
    config = load_signin_config(write(tmp_path, GOOD))
    oidc = config.provider("hugo", "oidc")  # type: ignore[arg-type]
    cas = config.provider("moulin", "cas")  # type: ignore[arg-type]
    assert isinstance(oidc, OidcProvider)
    assert (oidc.issuer, oidc.client_id, oidc.user_claim, dict(oidc.users or {})) == (
        "https://ent.example.fr", "preau", "preau_uid", {"f81d4fae": "t1"})
    assert oidc.frontchannel_logout is False  # off unless the school turns it on
    opted = load_signin_config(write(tmp_path, GOOD.replace(
        'user_claim = "preau_uid"', 'user_claim = "preau_uid"\nfrontchannel_logout = true')))
    assert opted.provider("hugo", "oidc").frontchannel_logout is True  # type: ignore
    assert isinstance(cas, CasProvider)
    assert (cas.server_url, cas.version, cas.user_attribute) == (
        "https://cas.example.fr/cas", 2, None)
    assert config.public_url == "https://preau.example.fr"
    assert config.app_redirect_uris == {"fr.preau.app:/signin"}
    assert load_signin_config(None).providers == {}


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD.replace('user_claim = "preau_uid"', 'user_clam = "preau_uid"'),
     r"unknown key 'user_clam' in \[schools.hugo.oidc\] of school 'hugo'"),
    (GOOD.replace("version = 2", "version = 2\nuser_atribute = 'x'"),
     r"unknown key 'user_atribute' in \[schools.moulin.cas\] of school 'moulin'"),
    (GOOD.replace("version = 2", "version = 4"), "version must be 2 or 3"),
    (GOOD.replace('client_secret = "s3cret"\n', ""), "needs 'client_secret'"),
    (GOOD.replace('"fr.preau.app:/signin"', '"https://evil.example/"'), "custom-scheme"),
    (GOOD.replace("public_url", "public_ur1"), r"unknown key 'public_ur1' in \[signin\]"),
    (GOOD.replace('issuer = "https://ent.example.fr"', 'issuer = "ent.example.fr"'),
     "must be an http"),
    (GOOD.replace('user_claim = "preau_uid"',
                  'user_claim = "preau_uid"\nfrontchannel_logout = "yes"'),
     r"\[schools.hugo.oidc\] frontchannel_logout must be true or false"),
    ("[schools.hugo\n", "not valid TOML"),
])
def test_a_mistake_is_refused_with_the_file_school_and_key(tmp_path: Path, text: str,
                                                           expected: str):
    path = write(tmp_path, text)
    with pytest.raises(ConfigurationError, match=expected) as refused:
        load_signin_config(path)
    assert path in str(refused.value)


def test_the_server_does_not_start_with_a_mistake(tmp_path: Path):
    path = write(tmp_path, GOOD.replace("client_id", "client"))
    with pytest.raises(ConfigurationError, match="'client'"):
        create_app(Config(demo=True, identity_file=path))
