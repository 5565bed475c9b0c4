"""The mini-world: a seeded fictional world of entities, attributes and relations, and its encyclopedia.

Names are assembled from syllables so that no model knows the facts from pre-training (they are not checked
against a list of real names, none being available offline; an accidental real name carries fictional facts
anyway). A small surname pool, near-twin city names, companies and clubs named after surnames and cities,
and shared attribute values make entities *confusable*, so that a careless query retrieves the wrong passage.
Everything is drawn from one `random.Random(seed)` in a fixed order: the same seed gives the same world, byte for byte.
"""

from __future__ import annotations

import bisect
import random
from dataclasses import dataclass, field

KINDS = ("country", "city", "river", "person", "company", "band", "book", "club")

# entities per kind at scale 1 (`small`); sizes multiply these
BASE_COUNTS = {
    "country": 16,
    "city": 110,
    "river": 30,
    "person": 520,
    "company": 150,
    "band": 60,
    "book": 150,
    "club": 50,
}

_ONSETS = (
    "b",
    "br",
    "d",
    "dr",
    "f",
    "g",
    "gr",
    "h",
    "k",
    "kr",
    "l",
    "m",
    "n",
    "p",
    "qu",
    "r",
    "s",
    "sk",
    "t",
    "th",
    "v",
    "w",
    "z",
    "zh",
)
_VOWELS = ("a", "e", "i", "o", "u", "a", "e", "o", "y", "ae", "ei", "ou")  # mostly plain vowels: readable names
_CODAS = ("", "", "", "n", "r", "l", "s", "th", "x", "m", "nd", "rk", "lt")
_PLACE_ENDS = ("mor", "vale", "holt", "wick", "stead", "ora", "ith", "grad", "ovan", "esk", "wyn", "dun")
_COUNTRY_ENDS = ("ia", "land", "ova", "ar", "eth", "onia", "avia")
_MALE_ENDS = ("ric", "an", "o", "ius", "ard", "el", "in")
_FEMALE_ENDS = ("a", "ine", "elle", "ia", "wen", "ara", "ys")

OCCUPATIONS = (
    "painter",
    "chemist",
    "architect",
    "composer",
    "economist",
    "sculptor",
    "astronomer",
    "diplomat",
    "engineer",
    "photographer",
    "historian",
    "surgeon",
    "cyclist",
    "chess player",
    "botanist",
    "lawyer",
)
ROLE_OCCUPATION = {
    "founder": ("entrepreneur", "engineer", "industrialist"),
    "author": ("novelist", "poet", "essayist"),
    "singer": ("singer",),
    "coach": ("football coach",),
}
INDUSTRIES = (
    "shipbuilding",
    "software",
    "textiles",
    "brewing",
    "aviation",
    "pharmaceuticals",
    "mining",
    "banking",
    "robotics",
    "glassmaking",
    "publishing",
)
COMPANY_WORDS = {
    "shipbuilding": "Shipyards",
    "software": "Systems",
    "textiles": "Mills",
    "brewing": "Breweries",
    "aviation": "Aeronautics",
    "pharmaceuticals": "Laboratories",
    "mining": "Mining",
    "banking": "Bank",
    "robotics": "Robotics",
    "glassmaking": "Glassworks",
    "publishing": "Press",
}
GENRES = ("folk rock", "synth-pop", "jazz fusion", "heavy metal", "shoegaze", "bluegrass", "post-punk", "trip hop")
CLUB_SUFFIXES = ("Rovers", "Athletic", "United", "Wanderers", "Town", "Albion")
STADIUM_SUFFIXES = ("Park", "Arena", "Ground", "Stadium")
BOOK_NOUNS = (
    "Lantern",
    "Orchard",
    "Ferryman",
    "Cartographer",
    "Winter",
    "Harbour",
    "Clockmaker",
    "Tide",
    "Archive",
    "Glass Garden",
    "Salt Road",
    "Long Night",
)
TOPICS = (
    "coastal erosion",
    "early printing",
    "river trade",
    "glass chemistry",
    "mountain railways",
    "folk songs",
    "naval history",
    "urban planning",
    "star catalogues",
    "medieval law",
    "bridge design",
    "wool dyeing",
)
PRIZES = ("Orvel Prize", "Silver Quill", "Halden Medal", "Kestrin Award", "Marrow Cup")


@dataclass
class Entity:
    id: str
    kind: str
    name: str
    attrs: dict = field(default_factory=dict)  # literal values, or entity ids for relations
    aliases: tuple[str, ...] = ()


class _Namer:
    """Unique syllable names; `taken` spans every kind, so a name identifies one entity."""

    def __init__(self, rng: random.Random):
        self.rng, self.taken = rng, set()

    def word(self, syllables: tuple[int, int] = (2, 3), end: tuple[str, ...] = ("",)) -> str:
        r = self.rng
        w = "".join(r.choice(_ONSETS) + r.choice(_VOWELS) for _ in range(r.randint(*syllables) - 1))
        return (w + r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS) + r.choice(end)).capitalize()

    def unique(self, make) -> str:
        while True:
            name = make()
            if name.lower() not in self.taken and 4 <= len(name.replace(" ", "")) <= 24:
                self.taken.add(name.lower())
                return name

    def twin(self, name: str) -> str | None:
        """A near-identical name (one vowel changed), the kind of name a sloppy reader confuses."""
        spots = [i for i, c in enumerate(name) if c in "aeiou" and i > 0]
        for i in self.rng.sample(spots, len(spots)):
            alt = name[:i] + self.rng.choice([v for v in "aeiou" if v != name[i]]) + name[i + 1 :]
            if alt.lower() not in self.taken:
                self.taken.add(alt.lower())
                return alt
        return None


def build_world(seed: int, scale: float = 1.0) -> dict[str, Entity]:
    """All entities by id, in a deterministic order."""
    rng = random.Random(seed)
    namer = _Namer(rng)
    counts = {k: max(2, round(n * scale)) for k, n in BASE_COUNTS.items()}
    world: dict[str, Entity] = {}
    by_kind: dict[str, list[Entity]] = {k: [] for k in KINDS}

    def add(kind: str, name: str, aliases: tuple[str, ...] = (), **attrs) -> Entity:
        e = Entity(f"{kind}-{len(by_kind[kind])}", kind, name, attrs, aliases)
        world[e.id] = e
        by_kind[kind].append(e)
        return e

    for _ in range(counts["country"]):
        add(
            "country",
            namer.unique(lambda: namer.word((1, 2), _COUNTRY_ENDS)),
            independence=rng.randint(1650, 1990),
            currency=namer.unique(lambda: namer.word((1, 1)).lower()),
        )
    countries = by_kind["country"]
    for _ in range(counts["river"]):
        base = namer.unique(lambda: namer.word((2, 2)))
        add("river", f"{base} River", (base,), length=rng.randint(40, 2900), source=rng.choice(countries).id)
    rivers = by_kind["river"]
    while len(by_kind["city"]) < counts["city"]:
        name = namer.unique(lambda: namer.word((1, 2), _PLACE_ENDS))
        names = [name] + ([t] if rng.random() < 0.25 and (t := namer.twin(name)) else [])
        for n in names:  # a twin is a city of its own: another country, founding year, population
            add(
                "city",
                n,
                country=rng.choice(countries).id,
                founded=rng.randint(880, 1890),
                population=rng.randint(40, 25000) * 100,
                river=rng.choice(rivers).id if rng.random() < 0.6 else None,
            )
    cities = by_kind["city"]
    capitals = set()
    for country in countries:
        home = [c for c in cities if c.attrs["country"] == country.id]
        capital = rng.choice(home or [c for c in cities if c.id not in capitals])
        capitals.add(capital.id)
        capital.attrs["country"] = country.id
        country.attrs["capital"] = capital.id

    # people: a small surname pool shared by many (confusable), fictional given names
    surnames = [namer.unique(lambda: namer.word((2, 3))) for _ in range(max(8, counts["person"] // 5))]
    given = {
        g: [
            namer.unique(lambda g=g: namer.word((1, 2), _MALE_ENDS if g == "m" else _FEMALE_ENDS))
            for _ in range(max(20, counts["person"] // 6))
        ]
        for g in "mf"
    }
    full_names = set()
    for _ in range(counts["person"]):
        while True:
            gender = rng.choice("mf")
            first, last = rng.choice(given[gender]), rng.choice(surnames)
            if f"{first} {last}" not in full_names:
                break
        full_names.add(f"{first} {last}")
        add(
            "person",
            f"{first} {last}",
            surname=last,
            gender=gender,
            occupation=rng.choice(OCCUPATIONS),
            born=rng.randint(1890, 2002),
            birthplace=rng.choice(cities).id,
            topic=rng.choice(TOPICS),
            prize=rng.choice(PRIZES) if rng.random() < 0.5 else None,
        )
    people = by_kind["person"]
    free = rng.sample(people, len(people))  # people not yet given a role

    def take(role: str, born: tuple[int, int]) -> str:
        person = free.pop()  # BASE_COUNTS has more people than roles, at every scale
        person.attrs.update(occupation=rng.choice(ROLE_OCCUPATION[role]), born=rng.randint(*born))
        return person.id

    for i in range(counts["company"]):
        industry = "publishing" if i % 6 == 0 else rng.choice(INDUSTRIES)
        # some are named after a surname, so that they are confusable with people of that name
        name = namer.unique(
            lambda industry=industry: (
                f"{rng.choice(surnames) if rng.random() < 0.4 else namer.word((2, 2))} {COMPANY_WORDS[industry]}"
            )
        )
        founded = rng.randint(1860, 2016)
        add(
            "company",
            name,
            industry=industry,
            founded=founded,
            founder=take("founder", (founded - 55, founded - 22)),
            headquarters=rng.choice(cities).id,
            employees=rng.randint(12, 9000) * 10,
        )
    companies = by_kind["company"]
    by_founding = sorted(companies, key=lambda c: c.attrs["founded"])
    founding_years = [c.attrs["founded"] for c in by_founding]
    for person in people:  # about a third of the others work for a company founded before they were 25
        if person.attrs["occupation"] in OCCUPATIONS and rng.random() < 0.35:
            n = bisect.bisect_left(founding_years, person.attrs["born"] + 25)
            person.attrs["employer"] = by_founding[rng.randrange(n)].id if n else None

    for _ in range(counts["band"]):
        formed = rng.randint(1958, 2019)
        add(
            "band",
            namer.unique(lambda: "The " + namer.word((2, 2)) + "s"),
            formed=formed,
            genre=rng.choice(GENRES),
            origin=rng.choice(cities).id,
            singer=take("singer", (formed - 32, formed - 17)),
        )
    publishers = [c for c in companies if c.attrs["industry"] == "publishing"]
    authors: list[str] = []
    for _ in range(counts["book"]):
        year = rng.randint(1880, 2022)
        title = namer.unique(
            lambda: rng.choice(
                (
                    f"The {rng.choice(BOOK_NOUNS)} of {namer.word((2, 2))}",
                    f"{namer.word((2, 3))} and the {rng.choice(BOOK_NOUNS)}",
                )
            )
        )
        # some authors write several books: reuse an earlier author where the dates allow it
        again = rng.choice(authors) if authors and rng.random() < 0.3 else None
        if not (again and year - 75 < world[again].attrs["born"] < year - 20):
            again = None
        author = again or take("author", (year - 70, year - 22))
        authors.append(author)
        add("book", title, year=year, author=author, publisher=rng.choice(publishers).id)
    for _ in range(counts["club"]):
        while (name := f"{(home := rng.choice(cities)).name} {rng.choice(CLUB_SUFFIXES)}").lower() in namer.taken:
            pass
        namer.taken.add(name.lower())
        add(
            "club",
            name,
            city=home.id,
            founded=rng.randint(1870, 1990),
            stadium=namer.unique(lambda: f"{namer.word((2, 2))} {rng.choice(STADIUM_SUFFIXES)}"),
            coach=take("coach", (1940, 1992)),
        )
    return world
