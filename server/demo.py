"""A deterministic demo school, to click through Préau without a real directory.

:func:`generate_school` returns a format-1 directory document
(``docs/directory.md``): a *cité scolaire* with collège and lycée classes,
teachers, staff, students and their families. The same arguments always give
the same document, byte for byte once dumped, on any machine: every choice
comes from one :class:`random.Random` seeded with ``seed``, and nothing
depends on set or hash order.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.directory import directory_to_json, is_valid_id
from server.model import (
    ClassId,
    Directory,
    Profile,
    ProfileId,
    Relation,
    Role,
    School,
    SchoolClass,
    SchoolId,
    User,
    UserId,
)

__all__ = ["ADMIN_ID", "generate_school"]

ADMIN_ID = UserId("admin")
"""The stable id of the demo's principal, an admin whatever the seed."""

_TIMEZONE = "Europe/Paris"

_TEACHERS = ProfileId("teachers")
_STAFF = ProfileId("staff")
_STUDENTS_COLLEGE = ProfileId("students-college")
_STUDENTS_LYCEE = ProfileId("students-lycee")
_PARENTS = ProfileId("parents")
_PROFILES = (
    Profile(_TEACHERS, "Enseignants"),
    Profile(_STAFF, "Personnels"),
    Profile(_STUDENTS_COLLEGE, "Élèves (collège)"),
    Profile(_STUDENTS_LYCEE, "Élèves (lycée)"),
    Profile(_PARENTS, "Responsables"),
)


@dataclass(frozen=True, slots=True)
class _Level:
    prefix: str  # class ids are prefix + letter: "6A", "2B", "TA"
    name: str  # class names are name + " " + letter: "Seconde B"
    cycle: str  # the class level: "college" or "lycee"


_LEVELS = (
    _Level("6", "6e", "college"),
    _Level("5", "5e", "college"),
    _Level("4", "4e", "college"),
    _Level("3", "3e", "college"),
    _Level("2", "Seconde", "lycee"),
    _Level("1", "Première", "lycee"),
    _Level("T", "Terminale", "lycee"),
)
# Classes are dealt to levels in this order, alternating collège and lycée, so
# that even a two-class school has one of each.
_DEAL_ORDER = (0, 4, 1, 5, 2, 6, 3)

_TEACHERS_PER_CLASS = (6, 8)
_CLASSES_PER_TEACHER = (3, 5)
_STAFF_COUNT = 8  # the principal and seven others
_DELEGATES_PER_CLASS = 2
# Children per family: mostly one, often two, sometimes three.
_FAMILY_SIZES = (1, 2, 3)
_FAMILY_WEIGHTS = (55, 33, 12)
_TWO_PARENTS = 0.8  # share of families with two parents
_SECOND_PARENT_SAME_NAME = 0.75  # share of second parents sharing the family name
_HALF_SIBLING = 0.06  # share of younger siblings carrying another last name

# Names, written for this generator: common French family names of several
# origins, and first names of the parents' and of the children's generations.
_LAST_NAMES = (
    "Martin", "Bernard", "Thomas", "Petit", "Robert", "Richard", "Durand", "Dubois",
    "Moreau", "Laurent", "Simon", "Michel", "Lefèvre", "Leroy", "Roux", "David",
    "Bertrand", "Morel", "Fournier", "Girard", "Bonnet", "Dupont", "Lambert", "Fontaine",
    "Rousseau", "Vincent", "Muller", "Lefebvre", "Faure", "André", "Mercier", "Blanc",
    "Guérin", "Boyer", "Garnier", "Chevalier", "François", "Legrand", "Gauthier", "Garcia",
    "Perrin", "Robin", "Clément", "Morin", "Nicolas", "Henry", "Roussel", "Mathieu",
    "Gautier", "Masson", "Marchand", "Duval", "Denis", "Dumont", "Marie", "Lemaire",
    "Noël", "Meyer", "Dufour", "Meunier", "Brun", "Blanchard", "Giraud", "Joly",
    "Rivière", "Lucas", "Brunet", "Gaillard", "Barbier", "Arnaud", "Martinez", "Gérard",
    "Roche", "Renard", "Schmitt", "Roy", "Leroux", "Colin", "Vidal", "Caron",
    "Picard", "Roger", "Fabre", "Aubert", "Lemoine", "Renaud", "Dumas", "Lacroix",
    "Olivier", "Philippe", "Bourgeois", "Pierre", "Benoît", "Rey", "Leclerc", "Payet",
    "Rolland", "Leclercq", "Guillaume", "Lecomte", "Nguyen", "Tran", "Benali", "Haddad",
    "Diallo", "Traoré", "Da Silva", "Pereira", "Ferreira", "Kaya", "Bensaïd", "Le Gall",
    "Le Goff", "Le Roux", "Hoarau", "Cohen",
)
_WOMEN = (
    "Nathalie", "Isabelle", "Sylvie", "Catherine", "Valérie", "Sandrine", "Stéphanie",
    "Céline", "Sophie", "Christelle", "Aurélie", "Virginie", "Julie", "Émilie", "Caroline",
    "Laetitia", "Karine", "Delphine", "Élodie", "Marie", "Anne", "Laure", "Cécile",
    "Hélène", "Claire", "Audrey", "Mélanie", "Vanessa", "Amélie", "Jessica", "Séverine",
    "Florence", "Agnès", "Corinne", "Nadia", "Samia", "Fatima", "Leïla", "Sonia",
    "Myriam", "Patricia", "Béatrice", "Magali", "Charlotte", "Pauline", "Marion", "Lucie",
    "Camille", "Anaïs", "Aline",
)
_MEN = (
    "Stéphane", "Sébastien", "Nicolas", "Julien", "Christophe", "Frédéric", "Laurent",
    "David", "Olivier", "Éric", "Thierry", "Philippe", "Pascal", "Vincent", "Jérôme",
    "Cédric", "Fabrice", "Franck", "Guillaume", "Arnaud", "Mathieu", "Romain", "Antoine",
    "Benoît", "François", "Emmanuel", "Yannick", "Alexandre", "Damien", "Grégory",
    "Ludovic", "Xavier", "Karim", "Mehdi", "Rachid", "Samir", "Mohamed", "Hervé",
    "Patrick", "Bruno", "Didier", "Thomas", "Pierre", "Jean", "Marc", "Michel",
    "Rémi", "Loïc", "Gilles", "Yves",
)
_CHILDREN = (
    "Léa", "Emma", "Jade", "Louise", "Chloé", "Inès", "Manon", "Camille", "Lina", "Zoé",
    "Alice", "Lola", "Léna", "Sarah", "Juliette", "Clara", "Ambre", "Rose", "Anna", "Mila",
    "Jeanne", "Romane", "Lucie", "Agathe", "Eva", "Nina", "Mathilde", "Margaux", "Yasmine",
    "Maëlys", "Océane", "Lou", "Julia", "Salomé", "Capucine", "Elsa", "Iris", "Maya",
    "Lucas", "Hugo", "Gabriel", "Louis", "Arthur", "Jules", "Nathan", "Raphaël", "Adam",
    "Léo", "Ethan", "Paul", "Tom", "Sacha", "Noah", "Théo", "Maël", "Timéo", "Enzo",
    "Mathis", "Nolan", "Baptiste", "Clément", "Maxime", "Axel", "Victor", "Antoine",
    "Yanis", "Rayan", "Ilyes", "Samuel", "Gabin", "Martin", "Aaron", "Mohamed", "Valentin",
    "Robin", "Evan",
)


def generate_school(
    classes: int = 30, students: int = 28, seed: int = 1, school_id: str = "demo"
) -> dict[str, object]:
    """Return a demo school's directory document, valid for ``parse_directory``.

    ``classes`` classes (at least 1) of ``students`` students each (at least 1),
    their families (one to three children, usually two parents, exactly two
    delegate parents per class), a pool of teachers (six to eight per class,
    each teaching up to five classes) and eight staff, of whom the principal
    (id ``admin``) and ``staff-01`` are admins. Ids are stable and readable:
    ``6A``, ``t-001``, ``staff-01``, ``s-0001``, ``p-0001``. Deterministic in
    all four arguments. Raises :class:`ValueError` for a size below 1 or an
    invalid ``school_id``.
    """
    if classes < 1 or students < 1:
        raise ValueError(
            f"need at least one class and one student per class, got {classes=}, {students=}"
        )
    if not is_valid_id(school_id):
        raise ValueError(f"invalid school id {school_id!r}: use 1 to 64 of A-Z a-z 0-9 . _ -")
    return directory_to_json(_Generator(random.Random(seed)).school(classes, students, school_id))


# --------------------------------------------------------------------------- internals


@dataclass(slots=True)
class _Student:
    class_id: ClassId
    first_name: str = ""
    last_name: str = ""
    number: int = 0  # in roster order; the id is s-0001 for number 1


@dataclass(slots=True)
class _Family:
    children: list[_Student]
    last_name: str
    # (first name, last name) of each parent, the first one sharing the family name.
    parents: list[tuple[str, str]] = field(default_factory=list)


class _Generator:
    """One generation run; every random draw goes through ``self.rng``, in a fixed order."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        # Display names already given, so that two people are never confused in a list.
        self.used: set[tuple[str, str]] = set()

    def school(self, class_count: int, class_size: int, school_id: str) -> Directory:
        classes = self.classes(class_count)
        users: list[User] = [*self.staff()]
        teachers = self.teachers(list(classes))
        students, parents = self.families(classes, class_size)
        users += teachers + students + parents
        return Directory(
            school=School(SchoolId(school_id), "Cité scolaire Jean Moulin (démo)"),
            timezone=_TIMEZONE,
            profiles={p.id: p for p in _PROFILES},
            classes=classes,
            users={u.id: u for u in users},
        )

    # ------------------------------------------------------------------ classes

    def classes(self, count: int) -> dict[ClassId, SchoolClass]:
        per_level = [0] * len(_LEVELS)
        for n in range(count):
            per_level[_DEAL_ORDER[n % len(_DEAL_ORDER)]] += 1
        classes: dict[ClassId, SchoolClass] = {}
        for level, how_many in zip(_LEVELS, per_level, strict=True):
            for n in range(how_many):
                letter = _letters(n)
                class_id = ClassId(f"{level.prefix}{letter}")
                classes[class_id] = SchoolClass(class_id, f"{level.name} {letter}", level.cycle)
        return classes

    # -------------------------------------------------------------------- names

    def name(self, first_names: Sequence[str], last_name: str | None = None) -> tuple[str, str]:
        """A display name not used yet (after a few tries, any name: tiny lists may run out)."""
        for _ in range(50):
            first = self.rng.choice(first_names)
            last = last_name if last_name is not None else self.rng.choice(_LAST_NAMES)
            if (first, last) not in self.used:
                break
        self.used.add((first, last))
        return first, last

    def adult_names(self) -> Sequence[str]:
        return _WOMEN if self.rng.random() < 0.5 else _MEN

    # -------------------------------------------------------------------- staff

    def staff(self) -> list[User]:
        self.used.add(("Hélène", "Proviseure"))
        users = [User(ADMIN_ID, Role.STAFF, "Hélène", "Proviseure", _STAFF, admin=True)]
        for n in range(1, _STAFF_COUNT):
            first, last = self.name(self.adult_names())
            # A second admin, so the school is not locked out when the principal is away.
            users.append(
                User(UserId(f"staff-{n:02d}"), Role.STAFF, first, last, _STAFF, admin=n == 1)
            )
        return users

    # ----------------------------------------------------------------- teachers

    def teachers(self, class_ids: list[ClassId]) -> list[User]:
        """A pool of teachers covering each class 6–8 times, each teacher 3–5 classes."""
        low, high = _TEACHERS_PER_CLASS
        wanted = [self.rng.randint(low, high) for _ in class_ids]
        most = min(_CLASSES_PER_TEACHER[1], len(class_ids))
        least = min(_CLASSES_PER_TEACHER[0], most)
        capacity: list[int] = []
        while sum(capacity) < sum(wanted):
            capacity.append(self.rng.randint(least, most))
        teaches: list[list[ClassId]] = [[] for _ in capacity]

        for class_id, count in zip(class_ids, wanted, strict=True):
            # Take the teachers with the most room left, so loads stay even and
            # the last classes still find enough distinct teachers.
            order = sorted(range(len(capacity)), key=lambda t: (-capacity[t], self.rng.random()))
            chosen = [t for t in order if capacity[t] > 0][:count]
            while len(chosen) < count:  # only if the capacities ran short at the end
                capacity.append(self.rng.randint(least, most))
                teaches.append([])
                chosen.append(len(capacity) - 1)
            for t in chosen:
                capacity[t] -= 1
                teaches[t].append(class_id)

        users: list[User] = []
        for classes in teaches:
            if not classes:
                continue
            first, last = self.name(self.adult_names())
            teacher_id = UserId(f"t-{len(users) + 1:03d}")
            users.append(
                User(teacher_id, Role.TEACHER, first, last, _TEACHERS, teaches=frozenset(classes))
            )
        return users

    # ------------------------------------------------------ students and parents

    def families(
        self, classes: dict[ClassId, SchoolClass], class_size: int
    ) -> tuple[list[User], list[User]]:
        seats = [_Student(class_id) for class_id in classes for _ in range(class_size)]
        self.rng.shuffle(seats)  # siblings are neighbours here, so they land in any class

        families: list[_Family] = []
        start = 0
        while start < len(seats):
            size = self.rng.choices(_FAMILY_SIZES, _FAMILY_WEIGHTS)[0]
            families.append(_Family(seats[start : start + size], self.rng.choice(_LAST_NAMES)))
            start += size
        for family in families:
            self.name_family(family)
        self.ensure_delegates(families)

        # Number students class by class, in roster (alphabetical) order.
        class_rank = {class_id: rank for rank, class_id in enumerate(classes)}
        roster = sorted(
            seats, key=lambda s: (class_rank[s.class_id], s.last_name, s.first_name)
        )
        students: list[User] = []
        for number, student in enumerate(roster, start=1):
            student.number = number
            profile = (
                _STUDENTS_LYCEE if classes[student.class_id].level == "lycee" else _STUDENTS_COLLEGE
            )
            students.append(
                User(
                    _student_id(student),
                    Role.STUDENT,
                    student.first_name,
                    student.last_name,
                    profile,
                    class_id=student.class_id,
                )
            )

        # Number parents family by family, in the order of their first child.
        for family in families:
            family.children.sort(key=lambda s: s.number)
        families.sort(key=lambda f: f.children[0].number)
        parent_records: list[tuple[UserId, str, str, _Family]] = []
        for family in families:
            for first, last in family.parents:
                parent_id = UserId(f"p-{len(parent_records) + 1:04d}")
                parent_records.append((parent_id, first, last, family))

        delegate_of = self.delegates(classes, parent_records)
        parents = [
            User(
                parent_id,
                Role.PARENT,
                first,
                last,
                _PARENTS,
                children=tuple(_student_id(child) for child in family.children),
                delegate_of=frozenset(delegate_of.get(parent_id, ())),
                # Mother or father, as the first name says (no draw: the same seed
                # keeps giving the same school).
                relations=tuple(
                    (_student_id(child), Relation.MOTHER if first in _WOMEN else Relation.FATHER)
                    for child in family.children),
            )
            for parent_id, first, last, family in parent_records
        ]
        return students, parents

    def name_family(self, family: _Family) -> None:
        """Give the family's children and one or two parents their names."""
        given: set[str] = set()
        for n, child in enumerate(family.children):
            last = family.last_name
            if n > 0 and self.rng.random() < _HALF_SIBLING:
                last = self.rng.choice(_LAST_NAMES)
            first_names = [n for n in _CHILDREN if n not in given]
            child.first_name, child.last_name = self.name(first_names, last)
            given.add(child.first_name)
        # The first parent carries the family name; a second one usually does too.
        first_parent_names = self.adult_names()
        family.parents.append(self.name(first_parent_names, family.last_name))
        if self.rng.random() < _TWO_PARENTS:
            self.add_second_parent(family, first_parent_names)

    def add_second_parent(self, family: _Family, first_parent_names: Sequence[str]) -> None:
        other_names = _MEN if first_parent_names is _WOMEN else _WOMEN
        same_name = self.rng.random() < _SECOND_PARENT_SAME_NAME
        family.parents.append(self.name(other_names, family.last_name if same_name else None))

    def ensure_delegates(self, families: list[_Family]) -> None:
        """Give each class at least two parents to choose its delegates among.

        A class short of them has all its students in one single-parent
        family (tiny schools only); that family gets a second parent.
        """
        parents_in: dict[ClassId, int] = {}
        for family in families:
            for class_id in dict.fromkeys(child.class_id for child in family.children):
                parents_in[class_id] = parents_in.get(class_id, 0) + len(family.parents)
        for family in families:
            short = any(
                parents_in[child.class_id] < _DELEGATES_PER_CLASS for child in family.children
            )
            if short and len(family.parents) == 1:
                self.add_second_parent(family, _WOMEN if self.rng.random() < 0.5 else _MEN)
                for class_id in dict.fromkeys(child.class_id for child in family.children):
                    parents_in[class_id] += 1

    def delegates(
        self,
        classes: dict[ClassId, SchoolClass],
        parent_records: list[tuple[UserId, str, str, _Family]],
    ) -> dict[UserId, list[ClassId]]:
        """Two delegate parents per class, from two different families when possible."""
        candidates: dict[ClassId, list[tuple[UserId, _Family]]] = {c: [] for c in classes}
        for parent_id, _, _, family in parent_records:
            for class_id in dict.fromkeys(child.class_id for child in family.children):
                candidates[class_id].append((parent_id, family))

        delegate_of: dict[UserId, list[ClassId]] = {}
        for class_id, pool in candidates.items():
            first_id, first_family = self.rng.choice(pool)
            others = [p for p in pool if p[0] != first_id]
            other_families = [p for p in others if p[1] is not first_family]
            second_id, _ = self.rng.choice(other_families or others)
            for parent_id in (first_id, second_id):
                delegate_of.setdefault(parent_id, []).append(class_id)
        return delegate_of


def _student_id(student: _Student) -> UserId:
    return UserId(f"s-{student.number:04d}")


def _letters(n: int) -> str:
    """0 → A, 25 → Z, 26 → AA: class letters that never run out."""
    letters = ""
    n += 1
    while n:
        n, rest = divmod(n - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters
