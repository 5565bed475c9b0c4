"""Render the mini-world as a Wikipedia-style corpus: `{"id", "contents": "Title\\ntext"}` passages.

Each entity gets one passage (people two: a biography and a career), 40-120 words, written from varied
sentence templates. Some facts live only in another entity's passage (a company's founder is stated on the
company's page, a band's singer on the band's page), as on Wikipedia, so that two-hop questions need two
searches. `render` also returns where each fact is stated: the supporting passage of every question.
"""

from __future__ import annotations

import random

from zerosearch.data.world import Entity

PRONOUNS = {"m": ("he", "his"), "f": ("she", "her")}

FILLERS = {
    "person": (
        "{He} has lectured widely and written several essays on {topic}.",
        "Colleagues describe {him} as patient, exacting and generous with students.",
        "{His} notebooks on {topic} are kept in a regional archive.",
        "{He} grew up in a large family and learned two foreign languages as a child.",
        "In interviews {he} has spoken about the influence of {his} first teacher.",
        "A short documentary about {his} life was broadcast on national television.",
    ),
    "company": (
        "The firm expanded steadily through the twentieth century and opened several regional offices.",
        "Its early growth was financed by local merchants and a cooperative bank.",
        "The company is privately held and publishes an annual report on its activities.",
        "It survived a severe financial crisis by selling part of its property.",
    ),
    "city": (
        "The old town is known for its covered markets, stone bridges and a large clock tower.",
        "Its economy rests on trade, light industry and a growing number of visitors.",
        "A music festival is held there every summer.",
        "The city has a university, a botanical garden and a small natural history museum.",
    ),
    "country": (
        "The country is divided into provinces, each with an elected council.",
        "Agriculture, fishing and forestry remain important to its economy.",
        "Its parliament has a single chamber elected every four years.",
    ),
    "river": (
        "Its valley is known for orchards and vineyards.",
        "Several hydroelectric dams were built along its course.",
        "Barges carried timber and grain on it until the railway arrived.",
    ),
    "band": (
        "The band toured widely and released several studio albums.",
        "Critics praised their live performances.",
        "Their second album sold well and was later reissued with unreleased songs.",
        "The band took a long break before returning with a new line-up.",
    ),
    "book": (
        "The book was translated into several languages.",
        "Critics praised its careful structure and vivid characters.",
        "It was later adapted for radio and the stage.",
        "The story follows three generations of one family.",
    ),
    "club": (
        "The club's supporters are known for their songs and banners.",
        "It has a youth academy for local players.",
        "The club won its first national cup in the years after its founding.",
        "Its traditional colours are green and white.",
    ),
}


def _pick(rng: random.Random, *options: str) -> str:
    return rng.choice(options)


def _num(n: int) -> str:
    return f"{n:,}"


def mention(e: Entity, start: bool = False) -> str:
    """How an entity is named inside a sentence ("the Velna River", "Dravenport"); `start`: opening one."""
    return f"{'The' if start else 'the'} {e.name}" if e.kind == "river" else e.name


def _person(e: Entity, w: dict, rng: random.Random) -> list[tuple[str, list[str], tuple[str, ...]]]:
    a = e.attrs
    he, his = PRONOUNS[a["gender"]]
    fill = dict(
        he=he, his=his, He=he.capitalize(), His=his.capitalize(), him="him" if he == "he" else "her", topic=a["topic"]
    )
    city, occ = w[a["birthplace"]].name, a["occupation"]
    art = "an" if occ[0] in "aeiou" else "a"
    extra = [f.format(**fill) for f in rng.sample(FILLERS["person"], 4)]  # two for each passage, none repeated
    bio = [
        _pick(
            rng,
            f"{e.name} (born {a['born']} in {city}) is {art} {occ}.",
            f"{e.name} is {art} {occ} who was born in {city} in {a['born']}.",
            f"Born in {city} in {a['born']}, {e.name} is {art} {occ}.",
        ),
        _pick(
            rng,
            f"{fill['He']} is best known for {his} work on {a['topic']}.",
            f"{fill['His']} main interest is {a['topic']}.",
        ),
        *extra[:2],
    ]
    career = [
        _pick(
            rng,
            f"{e.name} began {his} career as {art} {occ} after studying {a['topic']}.",
            f"After early studies of {a['topic']}, {e.name} turned to work as {art} {occ}.",
        )
    ]
    if a.get("employer"):
        career.append(
            _pick(
                rng,
                f"For many years {he} worked for {w[a['employer']].name}.",
                f"{fill['He']} spent most of {his} working life at {w[a['employer']].name}.",
            )
        )
    if a.get("prize"):
        career.append(f"{fill['He']} later received the {a['prize']} for {his} contributions.")
    career += extra[2:]
    return [("bio", bio, ("born", "birthplace", "occupation")), ("career", career, ("employer",))]


def _company(e: Entity, w: dict, rng: random.Random):
    a = e.attrs
    founder, hq = w[a["founder"]].name, w[a["headquarters"]].name
    s = [
        _pick(
            rng,
            f"{e.name} is a {a['industry']} company founded in {a['founded']} by {founder}.",
            f"{e.name} is a {a['industry']} company. It was founded by {founder} in {a['founded']}.",
        ),
        _pick(
            rng,
            f"It is headquartered in {hq} and employs about {_num(a['employees'])} people.",
            f"The company has its headquarters in {hq}, where about {_num(a['employees'])} people work for it.",
        ),
    ]
    return [
        ("", s + rng.sample(FILLERS["company"], 2), ("industry", "founded", "founder", "headquarters", "employees"))
    ]


def _city(e: Entity, w: dict, rng: random.Random):
    a = e.attrs
    country = w[a["country"]]
    s = [
        _pick(
            rng,
            f"{e.name} is a city in the country of {country.name}, founded in {a['founded']}.",
            f"Founded in {a['founded']}, {e.name} is a city located in the country of {country.name}.",
        ),
        f"It has a population of {_num(a['population'])}.",
    ]
    if country.attrs["capital"] == e.id:
        s.append(f"{e.name} is the capital of {country.name}.")
    if a.get("river"):
        s.append(
            _pick(
                rng,
                f"The city lies on {mention(w[a['river']])}, which flows through it.",
                f"{mention(w[a['river']], start=True)} flows through the city.",
            )
        )
    return [("", s + rng.sample(FILLERS["city"], 2), ("country", "founded", "population", "river"))]


def _country(e: Entity, w: dict, rng: random.Random):
    a = e.attrs
    s = [
        f"{e.name} is a country whose capital is {w[a['capital']].name}.",
        _pick(
            rng,
            f"It became independent in {a['independence']}.",
            f"The country gained independence in {a['independence']}.",
        ),
        f"Its currency is the {a['currency']}.",
    ]
    return [("", s + rng.sample(FILLERS["country"], 2), ("capital", "independence", "currency"))]


def _river(e: Entity, w: dict, rng: random.Random):
    a = e.attrs
    s = [
        _pick(
            rng,
            f"{mention(e, start=True)} is a river {a['length']} km long.",
            f"{mention(e, start=True)} is a river with a length of {a['length']} km.",
        ),
        f"It rises in {w[a['source']].name} and flows through several towns before reaching the sea.",
    ]
    return [("", s + rng.sample(FILLERS["river"], 2), ("length", "source"))]


def _band(e: Entity, w: dict, rng: random.Random):
    a = e.attrs
    s = [
        _pick(
            rng,
            f"{e.name} are a {a['genre']} band formed in {w[a['origin']].name} in {a['formed']}.",
            f"{e.name} are a {a['genre']} band. The band was formed in {a['formed']} in {w[a['origin']].name}.",
        ),
        _pick(
            rng,
            f"Their lead singer is {w[a['singer']].name}.",
            f"The lead singer of the band is {w[a['singer']].name}.",
        ),
    ]
    return [("", s + rng.sample(FILLERS["band"], 2), ("formed", "genre", "origin", "singer"))]


def _book(e: Entity, w: dict, rng: random.Random):
    a = e.attrs
    s = [
        _pick(
            rng,
            f"{e.name} is a novel by {w[a['author']].name}, published in {a['year']}.",
            f"{e.name} is a novel written by {w[a['author']].name}. It was published in {a['year']}.",
        ),
        f"The book was published by {w[a['publisher']].name}.",
    ]
    return [("", s + rng.sample(FILLERS["book"], 2), ("author", "year", "publisher"))]


def _club(e: Entity, w: dict, rng: random.Random):
    a = e.attrs
    s = [
        f"{e.name} is a football club based in {w[a['city']].name}, founded in {a['founded']}.",
        _pick(rng, f"The club plays its home games at {a['stadium']}.", f"Its home stadium is {a['stadium']}."),
        _pick(rng, f"The club is coached by {w[a['coach']].name}.", f"Its coach is {w[a['coach']].name}."),
    ]
    return [("", s + rng.sample(FILLERS["club"], 2), ("city", "founded", "stadium", "coach"))]


RENDER = {
    "person": _person,
    "company": _company,
    "city": _city,
    "country": _country,
    "river": _river,
    "band": _band,
    "book": _book,
    "club": _club,
}


def render(world: dict[str, Entity], seed: int) -> tuple[list[dict], dict[tuple[str, str], str]]:
    """Passages in world order, and the passage id stating each (entity id, attribute) fact."""
    rng = random.Random(f"corpus-{seed}")
    passages, where = [], {}
    for e in world.values():
        for part, sentences, facts in RENDER[e.kind](e, world, rng):
            pid = f"{e.id}-{part}" if part else e.id
            passages.append({"id": pid, "contents": f"{e.name}\n{' '.join(sentences)}"})
            where.update({(e.id, f): pid for f in facts if e.attrs.get(f) is not None})
    return passages, where
