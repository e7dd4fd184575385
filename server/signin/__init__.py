"""Sign-in through each school's identity provider (OpenID Connect, CAS).

Préau is the client of each school's provider, and a small authorization server for its
own apps (the browser app, mobile apps): an app sends the user to
``/signin/{school}/{provider}/start`` with its PKCE challenge, Préau signs the user in
at the provider, checks them against the directory, and hands the app a one-time code
that ``POST /api/signin/token`` exchanges, with the PKCE verifier, for credentials.
``docs/protocol.md`` (« Signing in ») tells it from an app's side, ``docs/operating.md``
(« Connecting a school's ENT ») from the school's.
"""
