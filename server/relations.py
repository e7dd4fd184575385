"""What a parent is to a child, as a directory file may say it.

The directory's optional ``relations`` field of a parent (docs/directory.md) maps a
child's id to a relation. Information systems export it in French words (« mère »,
« PERE », « responsable légal ») or as Préau's codes (``mother``…): both are read,
case and accents aside, into a :class:`~server.model.Relation`. Clients get the code
and write the label in their language.
"""

from __future__ import annotations

import json
import unicodedata

from .model import Relation, User, UserId

__all__ = ["FRENCH", "parse_relation", "relation_choices", "relations_from_json",
           "relations_to_json"]

FRENCH: dict[Relation, str] = {
    Relation.MOTHER: "mère",
    Relation.FATHER: "père",
    Relation.STEPMOTHER: "belle-mère",
    Relation.STEPFATHER: "beau-père",
    Relation.GRANDMOTHER: "grand-mère",
    Relation.GRANDFATHER: "grand-père",
    Relation.LEGAL_GUARDIAN: "responsable légal",
    Relation.GUARDIAN: "responsable",
}
"""The French word of each relation (the default label is « responsable »)."""

# Other French words exports use for the same links.
_ALIASES = {"tuteur": Relation.LEGAL_GUARDIAN, "tutrice": Relation.LEGAL_GUARDIAN,
            "responsable legale": Relation.LEGAL_GUARDIAN,
            "autre lien": Relation.GUARDIAN, "autre": Relation.GUARDIAN}


def _key(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text)
    plain = "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()
    return " ".join(plain.replace("-", " ").replace("_", " ").split())


_WORDS: dict[str, Relation] = {
    **{_key(r.value): r for r in Relation},
    **{_key(word): r for r, word in FRENCH.items()},
    **{_key(word): r for word, r in _ALIASES.items()},
}


def parse_relation(text: str) -> Relation | None:
    """The relation ``text`` names (« Mère », ``MERE``, ``mother``…), or ``None``."""
    return _WORDS.get(_key(text))


def relation_choices() -> str:
    """The accepted words, for an error message."""
    return ", ".join(f"{r.value} ({FRENCH[r]})" for r in Relation)


def relations_to_json(user: User) -> str:
    """How the stores keep a parent's relations: ``{child id: code}`` (``{}`` if none)."""
    return json.dumps({child: relation.value for child, relation in user.relations})


def relations_from_json(children: str, relations: str | None) -> tuple[
        tuple[UserId, Relation], ...]:
    """A stored parent's relations, in the order of the stored ``children``."""
    found = json.loads(relations) if relations else {}
    return tuple((UserId(c), Relation(found[c])) for c in json.loads(children) if c in found)
