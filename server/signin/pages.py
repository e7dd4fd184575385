"""The few HTML pages of the sign-in that are not the app's: a refusal shown where no
app can be told (an unknown or replayed state, a bad start request). French first."""

from __future__ import annotations

from html import escape

__all__ = ["error_page"]

_PAGE = """<!doctype html>
<html lang="fr"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Connexion impossible · Préau</title>
<style>body{{font-family:system-ui,sans-serif;max-width:36rem;margin:3rem auto;
padding:0 1rem;line-height:1.5}}h1{{font-size:1.4rem}}</style></head>
<body><main><h1>Connexion impossible</h1><p class="signin-error" data-code="{code}">{text}</p>
<p><a href="/">Revenir à Préau</a></p></main></body></html>
"""


def error_page(code: str, text: str) -> str:
    return _PAGE.format(code=escape(code), text=escape(text))
