"""The words a search query is matched with (server/search.py)."""

from __future__ import annotations

from server import search


def test_words_of_one_letter_are_left_out_of_the_match() -> None:
    # « l » as the start of a word would match nearly every word of the shared index.
    assert search.words("L'école, à 8 h") == ["école"]
    assert search.words("Sortie au musée") == ["sortie", "au", "musée"]
