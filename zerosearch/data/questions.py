"""Questions about the mini-world: single-hop, two-hop compositional and comparison, with their evidence.

Every question records the facts it uses (`entity.attribute`), its supporting passages and, per hop, the
oracle sub-question a perfect searcher would issue. In a two-hop question the first hop's answer is an
entity whose own page holds the second fact ("In which city was the founder of X born?": search X, read the
founder's name, search the founder), so one search cannot answer it.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass

from zerosearch.data.corpus import mention
from zerosearch.data.world import Entity

# (kind, attribute) -> question; `{x}` is the entity's mention, or a two-hop description of it
SINGLE = {
    ("person", "born"): "In which year was {x} born?",
    ("person", "birthplace"): "In which city was {x} born?",
    ("person", "occupation"): "What is the occupation of {x}?",
    ("person", "employer"): "Which company did {x} work for?",
    ("company", "founded"): "In which year was {x} founded?",
    ("company", "founder"): "Who founded {x}?",
    ("company", "headquarters"): "In which city is {x} headquartered?",
    ("company", "industry"): "In which industry does {x} operate?",
    ("company", "employees"): "How many people does {x} employ?",
    ("city", "country"): "In which country is {x} located?",
    ("city", "founded"): "In which year was {x} founded?",
    ("city", "population"): "What is the population of {x}?",
    ("city", "river"): "Which river flows through {x}?",
    ("country", "capital"): "What is the capital of {x}?",
    ("country", "independence"): "In which year did {x} become independent?",
    ("country", "currency"): "What is the currency of {x}?",
    ("river", "length"): "How long is {x}?",
    ("river", "source"): "In which country does {x} rise?",
    ("band", "formed"): "In which year was the band {x} formed?",
    ("band", "origin"): "In which city was the band {x} formed?",
    ("band", "singer"): "Who is the lead singer of {x}?",
    ("band", "genre"): "What genre of music does {x} play?",
    ("book", "author"): "Who wrote {x}?",
    ("book", "year"): "In which year was {x} published?",
    ("book", "publisher"): "Which company published {x}?",
    ("club", "city"): "In which city is the football club {x} based?",
    ("club", "founded"): "In which year was the football club {x} founded?",
    ("club", "stadium"): "What is the home stadium of {x}?",
    ("club", "coach"): "Who coaches {x}?",
}

# relation -> how the related entity is described inside a two-hop question
BRIDGES = {
    ("person", "birthplace"): "the birthplace of {x}",
    ("person", "employer"): "the company {x} worked for",
    ("company", "founder"): "the founder of {x}",
    ("company", "headquarters"): "the city where {x} is headquartered",
    ("city", "country"): "the country in which {x} lies",
    ("city", "river"): "the river that flows through {x}",
    ("country", "capital"): "the capital of {x}",
    ("river", "source"): "the country where {x} rises",
    ("band", "singer"): "the lead singer of {x}",
    ("band", "origin"): "the city where {x} was formed",
    ("book", "author"): "the author of {x}",
    ("book", "publisher"): "the publisher of {x}",
    ("club", "coach"): "the coach of {x}",
}  # not a club's home city: clubs are named after it, so that "bridge" would be no hop at all

# (kind, attribute) -> question and whether the larger value wins
COMPARE = {
    ("person", "born"): ("Who was born first, {a} or {b}?", False),
    ("company", "founded"): ("Which company was founded first, {a} or {b}?", False),
    ("river", "length"): ("Which river is longer, {a} or {b}?", True),
    ("city", "population"): ("Which city has the larger population, {a} or {b}?", True),
    ("book", "year"): ("Which book was published first, {a} or {b}?", False),
}


@dataclass
class Question:
    text: str
    answers: list[str]
    type: str  # single_hop | two_hop | comparison
    hops: list[dict]  # {"question", "answer", "passage_id"} per hop: the oracle's sub-question and evidence
    facts: list[str]  # "entity.attribute" for every fact the question uses

    def meta(self) -> dict:
        support = list(dict.fromkeys(h["passage_id"] for h in self.hops))
        return {"type": self.type, "supporting_ids": support, "hops": self.hops, "facts": self.facts}


def answers(e: Entity, attr: str, world: dict[str, Entity]) -> list[str]:
    value = e.attrs[attr]
    if isinstance(value, str) and value in world:
        target = world[value]
        return [target.name, *target.aliases]
    if attr == "length":
        return [f"{value} km", f"{value} kilometres", str(value)]
    if attr in ("population", "employees"):
        return [f"{value:,}"]  # normalization drops the commas: "12340" matches too
    return [str(value)]


def _hop(e: Entity, attr: str, world: dict, where: dict) -> dict:
    return {
        "question": SINGLE[(e.kind, attr)].format(x=mention(e)),
        "answer": answers(e, attr, world)[0],
        "passage_id": where[(e.id, attr)],
    }


def single_hop(world: dict[str, Entity], where: dict) -> list[Question]:
    out = []
    for e in world.values():
        for kind, attr in SINGLE:
            if kind == e.kind and e.attrs.get(attr) is not None:
                hop = _hop(e, attr, world, where)
                out.append(Question(hop["question"], answers(e, attr, world), "single_hop", [hop], [f"{e.id}.{attr}"]))
    return out


def two_hop(world: dict[str, Entity], where: dict) -> list[Question]:
    out = []
    for e in world.values():
        for (kind, rel), bridge in BRIDGES.items():
            if kind != e.kind or e.attrs.get(rel) is None:
                continue
            mid = world[e.attrs[rel]]
            for (kind2, attr), template in SINGLE.items():
                # skip the way back ("the capital of the country in which X lies" can be X itself)
                if kind2 != mid.kind or mid.attrs.get(attr) in (None, e.id):
                    continue
                text = template.format(x=bridge.format(x=mention(e)))
                out.append(
                    Question(
                        text,
                        answers(mid, attr, world),
                        "two_hop",
                        [_hop(e, rel, world, where), _hop(mid, attr, world, where)],
                        [f"{e.id}.{rel}", f"{mid.id}.{attr}"],
                    )
                )
    return out


def comparison(world: dict[str, Entity], where: dict, rng: random.Random) -> list[Question]:
    """One pair per entity of a compared kind; people are paired with a namesake where there is one."""
    out = []
    for (kind, attr), (template, larger) in COMPARE.items():
        group = [e for e in world.values() if e.kind == kind]
        families = defaultdict(list)
        for e in group:
            if kind == "person":
                families[e.attrs["surname"]].append(e)
        for a in group:
            namesakes = [b for b in families.get(a.attrs.get("surname"), []) if b is not a]
            b = rng.choice(namesakes or group)
            if b is a or a.attrs[attr] == b.attrs[attr]:
                continue
            win = max((a, b), key=lambda x: x.attrs[attr]) if larger else min((a, b), key=lambda x: x.attrs[attr])
            out.append(
                Question(
                    template.format(a=mention(a), b=mention(b)),
                    [win.name, *win.aliases],
                    "comparison",
                    [_hop(a, attr, world, where), _hop(b, attr, world, where)],
                    [f"{a.id}.{attr}", f"{b.id}.{attr}"],
                )
            )
    return out
