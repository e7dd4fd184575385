"""Small hand-written schools for the store, CLI and REST tests.

Two establishments share user ids on purpose ("t1" exists in both), so that a
leak across schools shows up as a wrong name or a wrong class.

``hugo``: classes 2A and 2B.
- t1 teaches 2A, t2 teaches 2B; a1 is an admin staff member, s1 staff (not admin)
- e1, e2 in 2A; e3 in 2B (students, profile ``students``)
- p1 parent of e1 and delegate of 2A; p2 parent of e2; p3 parent of e3
"""

from __future__ import annotations

from typing import Any


def school_doc(school_id: str = "hugo", name: str = "Lycée Victor Hugo",
               timezone: str = "Europe/Paris") -> dict[str, Any]:
    def user(uid: str, role: str, first: str, last: str, profile: str,
             **extra: Any) -> dict[str, Any]:
        return {"id": uid, "role": role, "first_name": first, "last_name": last,
                "profile": profile, **extra}

    return {
        "format": 1,
        "school": {"id": school_id, "name": name, "timezone": timezone},
        "profiles": [
            {"id": "teachers", "name": "Enseignants"},
            {"id": "staff", "name": "Personnels"},
            {"id": "students", "name": "Élèves"},
            {"id": "parents", "name": "Responsables"},
        ],
        "classes": [
            {"id": "2A", "name": "Seconde A", "level": "lycee"},
            {"id": "2B", "name": "Seconde B", "level": "lycee"},
        ],
        "users": [
            user("t1", "teacher", "Claire", "Martin", "teachers", teaches=["2A"]),
            user("t2", "teacher", "Hélène", "Bernard", "teachers", teaches=["2B"]),
            user("a1", "staff", "Jean", "Durand", "staff", admin=True),
            user("s1", "staff", "Sophie", "Leroy", "staff"),
            user("e1", "student", "Léa", "Petit", "students", **{"class": "2A"}),
            user("e2", "student", "Hugo", "Moreau", "students", **{"class": "2A"}),
            user("e3", "student", "Inès", "Fournier", "students", **{"class": "2B"}),
            user("p1", "parent", "Marc", "Petit", "parents", children=["e1"],
                 delegate_of=["2A"]),
            user("p2", "parent", "Nadia", "Moreau", "parents", children=["e2"]),
            user("p3", "parent", "Karim", "Fournier", "parents", children=["e3"]),
        ],
    }


def other_school_doc() -> dict[str, Any]:
    """A second establishment reusing the same ids with different people."""
    doc = school_doc("moulin", "Collège Jean Moulin", "America/Martinique")
    for u in doc["users"]:
        u["last_name"] = u["last_name"] + "-Moulin"
    return doc
