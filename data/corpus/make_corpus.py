#!/usr/bin/env python
"""Render an English training corpus for Spark-TTS with espeak-ng, with known gender/pitch/speed labels.

    python data/corpus/make_corpus.py --out DIR --n 6000 --heldout 200 --seed 0 [--jobs 2]

Writes, under ``--out`` only:

- ``wavs/<utt>.wav``: 16 kHz mono 16-bit PCM (espeak-ng's 22.05 kHz resampled with soxr "VHQ", end
  silences trimmed to 0.1 s);
- ``manifest.jsonl`` (training) and ``heldout.jsonl`` (evaluation only): one clip a line in the format of
  ``sparktts prepare``: ``audio`` (relative to the manifest), ``text``, ``speaker`` (the espeak voice),
  ``lang``, ``gender``, ``pitch``, ``speed`` (the intended levels), plus the measured values
  (``pitch_mel``, ``f0_mean_hz``, ``speed_sps``, ``duration_s``, ``*_measured`` levels) and the espeak
  settings;
- ``summary.json`` (counts per gender/level/voice, hours, level accuracy), ``failed.jsonl`` (bad
  renders, skipped), ``calibration.json`` when the voices were calibrated here, ``.records.jsonl``
  (per-clip results, what makes a rerun resume).

Texts: a seeded template grammar over the word lists of ``text/`` plus the hand-written
``text/sentences.txt``. The held-out list has its own sentences (never in training), and about 4 % of the
template words ("held-out words") appear only there. Sentences of ``data/testlists`` are never trained on.

Labels: each clip gets a (pitch level, speed level) from a shuffled 5 x 5 grid (so all 25 pairs are
equally frequent), a gender alternating male/female, and a voice of that gender able to reach that pitch
level. A target inside the level's band is drawn (mel for pitch, syllables/s for speed) and turned into
espeak's ``-p`` and ``-s`` through the per-voice calibration (measured with ``sparktts.eval.control``,
the eval's own code; espeak-ng does not go below 80 words/min, about 2.5 syllables/s, so slower targets
add a word gap ``-g`` at ``-s 80``). Speed is settled first by re-rendering on the syllable rate alone
(cheap), then each clip is measured with the eval's code (pyin F0); when a measured level misses, the
request is shifted by the miss and the clip re-rendered (``--retries``). The manifest's ``pitch`` and
``speed`` are the intended levels, ``*_measured`` what the eval measures on the written file. Bands:
the boundaries of ``sparktts.eval.control`` (pitch per gender, English speed); the outer levels use the
35 mel (pitch) or 0.75 syllables/s (speed) beyond the last boundary.

The plan (texts, labels, voices, targets) depends only on the seed, the sizes, the word lists and the
calibration, and its first k training clips are the same for any ``--n >= k``. Reruns skip clips already
rendered with the same settings. ``--plan-only`` writes the plan without rendering.

Calibration: ``calibration.json`` beside this script (espeak-ng 1.51, pyin) is used when the installed
espeak-ng has the same version; otherwise, or with ``--calibrate``, the voices are calibrated into
``OUT/calibration.json`` first (about 7 minutes on 2 busy cores). To refresh the committed file:
``--calibrate --n 0 --heldout 0`` and copy ``OUT/calibration.json`` here.

Cost: about 1.8 clips/s with ``--jobs 2`` on 2 shared cores (pyin F0 dominates; 98 % of clips need one
F0 measurement); 6000 + 200 clips take about an hour and give about 7 hours of audio.

Records: ``records.jsonl.gz`` beside this script (committed) keeps what earlier renders found for each
planned clip: its final espeak settings, its measurements and a digest of espeak-ng's output. A build replays
the clips it holds (espeak-ng only, no F0: about 27 clips/s on one core, so a fresh machine has the
corpus in minutes) and renders and measures the rest; a replay whose espeak-ng output differs from the
digest (another espeak-ng build) is rendered and measured afresh. ``--save-records`` adds a build's clips to
the file; ``--no-records`` measures everything.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
TEXT_DIR = HERE / "text"
TESTLISTS = HERE.parents[1] / "sparktts" / "assets" / "testlists"  # the package data (data/testlists links there)
CALIBRATION_FILE = HERE / "calibration.json"
# What earlier renders found for each planned clip (espeak settings, measurements, a digest of espeak-ng's
# output): a rebuild replays those settings and measures nothing when espeak-ng gives the same bytes.
RECORDS_FILE = HERE / "records.jsonl.gz"

SR = 16000
LEVELS = ("very_low", "low", "moderate", "high", "very_high")
GENDERS = ("female", "male")
OUTER_PITCH_MEL = 35.0  # width of the very_low / very_high pitch bands
OUTER_SPEED_SPS = 0.75  # width of the very_low / very_high speed bands
INNER = 0.2  # targets avoid this fraction of the band on each side
P_RANGE = (0, 99)  # espeak-ng -p
S_RANGE = (80, 450)  # espeak-ng -s, words per minute
CAL_P = (0, 25, 50, 75, 99)
CAL_S = (80, 130, 180, 250, 330)
CAL_G = (0, 4, 8, 14)  # espeak-ng -g word gap (10 ms units) at -s 80: -s stops slowing down at 80 wpm
G_MAX = 30
CAL_SENTENCES = (
    "The old fisherman carried a basket of silver fish down to the market before sunrise.",
    "My neighbour painted her kitchen door a bright shade of green last weekend.",
    "We walked along the quiet river until the lights of the town came into view.",
)
# Speed needs no F0, so it is calibrated on more sentences, shaped like the corpus's (commas, questions,
# spelled-out numbers, names, joined clauses): three plain ones gave speeds about 10 % too fast.
CAL_SPEED_SENTENCES = CAL_SENTENCES + (
    "Did you notice the broken clock that Helen repaired on Tuesday?",
    "There are forty-seven sheep in the meadow, but the farmer counted only twelve.",
    "At half past nine, the nervous pilot walked slowly to the hangar.",
    "Why is the kitten so sleepy today?",
    "Oh no, the kettle is empty again!",
    "On the twenty-third of March, Oliver Nakamura sold a wooden canoe in Lisbon.",
    "The library was quiet, although the students were whispering, laughing, and eating sandwiches.",
    "Please fold the blankets before the guests arrive.",
    "It costs three hundred and sixty pounds to repair a bicycle in Copenhagen.",
)

# Candidate voices: espeak-ng language + variant, and the gender of the variant. Which pitch levels each can
# reach is read from the calibration (some male variants cannot go above ~170 Hz, some female ones not below).
VOICES: dict[str, str] = {
    "en-us+m1": "male", "en-us+m2": "male", "en-us+m3": "male", "en+m4": "male", "en-us+m5": "male",
    "en-gb-scotland+m6": "male", "en-us+m7": "male", "en-us+Alex": "male", "en+ed": "male",
    "en-us+Jacky": "male", "en-gb-x-rp+Andy": "male", "en-us-nyc+edward": "male", "en-029+john": "male",
    "en+michel": "male", "en-us+travis": "male", "en+benjamin": "male", "en-us+Lee": "male",
    "en-us+f1": "female", "en-us+f2": "female", "en-us+f3": "female", "en+f4": "female", "en-us+f5": "female",
    "en-gb-scotland+f2": "female", "en-us+steph": "female", "en-us+belinda": "female",
    "en-gb-x-rp+linda": "female", "en-us+Annie": "female", "en-029+f4": "female", "en-us-nyc+f1": "female",
}


# --------------------------------------------------------------------------------------------- bands
def _control():
    from sparktts.eval import control

    return control


def _bands(boundaries: Sequence[float], outer: float, floor: float = 0.0) -> dict[str, tuple[float, float]]:
    vl, lo, hi, vh = boundaries
    return {
        "very_low": (max(floor, vl - outer), vl), "low": (vl, lo), "moderate": (lo, hi),
        "high": (hi, vh), "very_high": (vh, vh + outer),
    }


def pitch_bands(gender: str) -> dict[str, tuple[float, float]]:
    """Mel interval of each pitch level for ``gender`` (the eval's boundaries, outer bands 35 mel wide)."""
    return _bands(_control().PITCH_BOUNDARIES_MEL[gender], OUTER_PITCH_MEL)


def speed_bands() -> dict[str, tuple[float, float]]:
    """Syllables/s interval of each English speed level."""
    return _bands(_control().SPEED_BOUNDARIES_SPS["en"], OUTER_SPEED_SPS, floor=1.0)


def _inner(band: tuple[float, float]) -> tuple[float, float]:
    lo, hi = band
    return lo + INNER * (hi - lo), hi - INNER * (hi - lo)


# --------------------------------------------------------------------------------------------- lexicon
def _lines(name: str) -> list[str]:
    out = []
    for line in (TEXT_DIR / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            out.append(line)
    return out


def _plural(word: str) -> str:
    if re.search(r"(s|x|z|ch|sh)$", word):
        return word + "es"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ies"
    return word + "s"


def _past(word: str) -> str:
    if word.endswith("e"):
        return word + "d"
    if re.search(r"[^aeiou]y$", word):
        return word[:-1] + "ied"
    return word + "ed"


@dataclass(frozen=True)
class Noun:
    sg: str
    pl: str | None  # None: mass noun

    @property
    def forms(self) -> tuple[str, ...]:
        return (self.sg,) if self.pl is None else (self.sg, self.pl)


@dataclass(frozen=True)
class Verb:
    base: str
    past: str

    @property
    def forms(self) -> tuple[str, ...]:
        return (self.base, self.past)


def _nouns(name: str) -> list[Noun]:
    out, seen = [], set()
    for line in _lines(name):
        parts = line.rsplit(" ", 1) if " " in line else [line]
        # "fishing rod" is one noun with a regular plural; "knife knives" is singular + plural (a two-word
        # line whose words share their first letter); a final "-" marks a mass noun ("ice cream -").
        if len(parts) == 2 and parts[1] == "-":
            sg, pl = parts[0], None
        elif len(parts) == 2 and parts[1][0] == parts[0][0] and " " not in parts[0]:
            sg, pl = parts
        else:
            sg, pl = line, _plural(line)
        if sg not in seen:
            seen.add(sg)
            out.append(Noun(sg, pl))
    return out


def _verbs(name: str) -> list[Verb]:
    out, seen = [], set()
    for line in _lines(name):
        parts = line.split()
        v = Verb(parts[0], parts[1] if len(parts) > 1 else _past(parts[0]))
        if v.base not in seen:
            seen.add(v.base)
            out.append(v)
    return out


def _words(name: str) -> list[str]:
    return list(dict.fromkeys(_lines(name)))


@dataclass
class Lexicon:
    people: list[Noun]
    animals: list[Noun]
    objects: list[Noun]
    food: list[Noun]
    places: list[Noun]
    nature: list[Noun]
    abstract: list[Noun]
    vt: list[Verb]
    vi: list[Verb]
    adj: list[str]
    adv: list[str]
    names: list[str]
    surnames: list[str]
    cities: list[str]
    sentences: list[str]

    @classmethod
    def load(cls) -> Lexicon:
        return cls(
            people=_nouns("people.txt"), animals=_nouns("animals.txt"), objects=_nouns("objects.txt"),
            food=_nouns("food.txt"), places=_nouns("places.txt"), nature=_nouns("nature.txt"),
            abstract=_nouns("abstract.txt"), vt=_verbs("verbs_transitive.txt"),
            vi=_verbs("verbs_intransitive.txt"), adj=_words("adjectives.txt"), adv=_words("adverbs.txt"),
            names=_words("names.txt"), surnames=_words("surnames.txt"), cities=_words("proper_places.txt"),
            sentences=_words("sentences.txt"),
        )

    NOUN_FIELDS = ("people", "animals", "objects", "food", "places", "nature", "abstract")

    def vocabulary(self) -> set[str]:
        words: set[str] = set()
        for f in self.NOUN_FIELDS:
            for n in getattr(self, f):
                words.update(n.forms)
        for v in (*self.vt, *self.vi):
            words.update(v.forms)
        words.update(self.adj, self.adv, self.names, self.surnames, self.cities)
        return {w.lower() for w in words}

    def split(self, held: set[str]) -> tuple[Lexicon, Lexicon]:
        """(training lexicon without the held-out lexemes, lexicon of the held-out lexemes only)."""

        def keep(items, inside):
            key = (lambda x: x.forms[0]) if items and not isinstance(items[0], str) else (lambda x: x)
            return [x for x in items if (key(x).lower() in held) == inside]

        def make(inside):
            return Lexicon(**{
                f: keep(getattr(self, f), inside) if f != "sentences" else []
                for f in self.__dataclass_fields__
            })

        return make(False), make(True)


# --------------------------------------------------------------------------------------------- numbers
_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
         "sixteen seventeen eighteen nineteen").split()
_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()
_ORD = {"one": "first", "two": "second", "three": "third", "five": "fifth", "eight": "eighth",
        "nine": "ninth", "twelve": "twelfth"}


def number_words(n: int) -> str:
    """English words of 0 <= n < 10000 ("three hundred and forty-two")."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        t, o = divmod(n, 10)
        return _TENS[t] + ("-" + _ONES[o] if o else "")
    if n < 1000:
        h, r = divmod(n, 100)
        return _ONES[h] + " hundred" + (" and " + number_words(r) if r else "")
    th, r = divmod(n, 1000)
    if r == 0:
        return number_words(th) + " thousand"
    return number_words(th) + " thousand" + (" and " if r < 100 else " ") + number_words(r)


def ordinal_words(n: int) -> str:
    w = number_words(n)
    head, _, last = w.rpartition("-") if "-" in w else w.rpartition(" ")
    sep = "-" if "-" in w else " "
    if last in _ORD:
        last = _ORD[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return (head + sep if head else "") + last


# --------------------------------------------------------------------------------------------- grammar
DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
MONTHS = "January February March April May June July August September October November December".split()
PREPS = ("on", "under", "behind", "next to", "beside", "inside", "near", "above", "below", "in front of")
CONJ = ("and", "but", "because", "so", "while", "although", "until", "after", "before", "when")
SUBJ = ("I", "we", "they", "you", "she", "he")
MODAL = ("will", "can", "should", "must", "might", "could", "would")

TEMPLATES = (
    "{Name} {vt_past} the {adj} {object} {when}.",
    "The {person} {vt_past} a {adj} {object} in the {place}.",
    "Did you {vt} the {object} that {Name} {vt_past}?",
    "{Subj} {modal} {vt} the {objects} before {Day}.",
    "There are {num} {animals} in the {place}.",
    "I saw {num} {adj} {animals} near the {place} in {City}.",
    "Why did the {person} {vi} so {adv}?",
    "{Name} {Surname} {vi_past} to the {place} and {vt_past} some {stuff}.",
    "My {person} lives in {City} and works as {a_person}.",
    "The {animal} {vi_past} {adv} across the {nature}.",
    "Have you ever been to {City}?",
    "It was {a_adj} {nature} in {Month}.",
    "Please {vt} the {adj} {object} for me.",
    "How many {objects} did {Name} {vt}?",
    "Nobody could {vt} the {idea}.",
    "The {people} were {adj} because the {object} was {adj2}.",
    "If it is {adj} tomorrow, we will {vi} to the {place}.",
    "On the {ordinal} of {Month}, {Name} {vt_past} {a_adj} {object}.",
    "At {clock}, the {person} {vi_past} {adv}.",
    "{Name} said that the {food} tasted {adj}.",
    "Who {vt_past} my {adj} {object}?",
    "The {object} is {prep} the {object2}.",
    "What {a_adj} {object}!",
    "I would like {num} {foods}, please.",
    "{Name}'s {person} has {a_adj} {animal} called {Name2}.",
    "The {adj} {person} from {City} {vt_past} {num} {objects}.",
    "{Subj} {vi_past} {adv} until the {nature} {vi_past2}.",
    "Where did {Name} put the {adj} {object}?",
    "{Subj} {modal} never {vt} {a_adj} {animal}.",
    "The {people} in the {place} {vt_past} the {idea} {adv}.",
    "Last {Day}, {Name} and {Name2} {vi_past} to {City}.",
    "The {object} was {adj}, {adj2}, and surprisingly {adj3}.",
    "A {person} and {a_animal} {vi_past} together in the {place}.",
    "Is the {object} {prep} the {place} {adj}?",
    "{Name} {Surname} has lived in {City} for {num} years.",
    "{Subj} {vt_past} the {food} and {vt_past2} the {object}.",
    "The {animals} {vi_past} when the {person} {vt_past} the {object}.",
    "It costs {num} pounds to {vt} {a_object} in {City}.",
    "Could you {vt} my {object} while I {vi}?",
    "The {adj} {idea} of the {person} surprised everyone in {City}.",
    "Every {Day}, the {person} {vt_past} {num} {adj} {objects}.",
    "{Name}, please don't {vt} the {object} {prep} the {object2}.",
    "Between the {place} and the {place2}, there was {a_adj} {nature}.",
    "{Subj} {modal} {vi} {adv} if the {animal} is {adj}.",
    "The {person}'s {idea} was to {vt} every {object} in the {place}.",
    "In {Month}, the {nature} near {City} becomes {adj}.",
    "Why is the {animal} so {adj} today?",
    "After {clock}, nobody {vi_past} in the {place}.",
    "The {people} {vt_past} {adv}, and then they {vi_past}.",
    "{Name} asked the {person} to {vt} the {adj} {food}.",
    "The year was {year}, and {City} was {adj}.",
    "{Subj} {vt_past} {num} {foods} at the {place}.",
    "Don't forget to {vt} the {objects} before the {idea}.",
    "The {adj} {animals} {vi_past} {prep} the {object}.",
    "{Subj} {modal} {vt} {a_object}, but the {person} {vi_past}.",
    "Who is the {adj} {person} {prep} the {object}?",
    "Oh no, the {object} is {adj} again!",
    "My {adj} {object} is {prep} the {place}, I think.",
    "{Name} {vi_past} {adv} while the {people} {vt_past} the {objects}.",
    "The {idea} about the {animal} was {adj} and {adj2}.",
)

_SLOT = re.compile(r"\{(\w+)\}")
_TOKEN = re.compile(r"[A-Za-z]+(?:'[A-Za-z]+)?")


def _article(word: str) -> str:
    w = word.lower()
    if w.startswith(("uni", "use", "usu", "eu", "one", "uk")):
        return "a"
    if w.startswith(("hour", "honest", "honour", "heir")):
        return "an"
    return "an" if w[:1] in "aeiou" else "a"


class Grammar:
    """Seeded sentence generator over a lexicon; ``sentence(rng)`` returns one sentence."""

    def __init__(self, lex: Lexicon, extra: Lexicon | None = None, extra_p: float = 0.0):
        self.lex, self.extra, self.extra_p = lex, extra, extra_p
        self._proper = {w.split()[0] for w in (*lex.names, *lex.surnames, *lex.cities, *DAYS, *MONTHS)}
        self._proper |= {w + "'s" for w in lex.names}

    def _pick(self, rng: random.Random, field: str):
        if self.extra is not None and getattr(self.extra, field) and rng.random() < self.extra_p:
            return rng.choice(getattr(self.extra, field))
        return rng.choice(getattr(self.lex, field))

    def _noun(self, rng, fields: Sequence[str], plural: bool = False) -> str:
        for _ in range(50):
            n = self._pick(rng, rng.choice(fields))
            if not plural:
                return n.sg
            if n.pl is not None:
                return n.pl
        return n.sg

    def _fill(self, rng: random.Random, slot: str) -> str:
        base = slot.rstrip("0123456789")
        things = ("objects",) * 3 + ("animals", "food", "nature")
        if base.startswith("a_"):
            w = self._fill(rng, base[2:])
            return f"{_article(w)} {w}"
        match base:
            case "Name":
                return self._pick(rng, "names")
            case "Surname":
                return self._pick(rng, "surnames")
            case "City":
                return self._pick(rng, "cities")
            case "Subj":
                return rng.choice(SUBJ)
            case "modal":
                return rng.choice(MODAL)
            case "person":
                return self._noun(rng, ("people",))
            case "people":
                return self._noun(rng, ("people",), plural=True)
            case "animal":
                return self._noun(rng, ("animals",))
            case "animals":
                return self._noun(rng, ("animals",), plural=True)
            case "object":
                return self._noun(rng, things)
            case "objects":
                return self._noun(rng, things, plural=True)
            case "food":
                return self._noun(rng, ("food",))
            case "foods":
                return self._noun(rng, ("food",), plural=True)
            case "stuff":
                n = self._pick(rng, "food")
                return n.sg if n.pl is None else n.pl
            case "place":
                return self._noun(rng, ("places",))
            case "nature":
                return self._noun(rng, ("nature",))
            case "idea":
                return self._noun(rng, ("abstract",))
            case "vt":
                return self._pick(rng, "vt").base
            case "vt_past":
                return self._pick(rng, "vt").past
            case "vi":
                return self._pick(rng, "vi").base
            case "vi_past":
                return self._pick(rng, "vi").past
            case "adj":
                return self._pick(rng, "adj")
            case "adv":
                return self._pick(rng, "adv")
            case "prep":
                return rng.choice(PREPS)
            case "Day":
                return rng.choice(DAYS)
            case "Month":
                return rng.choice(MONTHS)
            case "num":
                r = rng.random()
                return number_words(rng.randint(2, 12) if r < 0.5 else rng.randint(13, 99) if r < 0.85
                                    else rng.randint(100, 2500))
            case "ordinal":
                return ordinal_words(rng.randint(1, 31))
            case "year":
                y = rng.randint(1700, 2030)
                c, r = divmod(y, 100)
                if r == 0:
                    return number_words(c) + " hundred"
                return number_words(y) if 2000 <= y < 2010 else number_words(c) + " " + (
                    number_words(r) if r >= 10 else "oh " + number_words(r))
            case "clock":
                h = number_words(rng.randint(1, 12))
                return rng.choice((f"{h} o'clock", f"half past {h}", f"a quarter to {h}",
                                   f"a quarter past {h}", f"{h} in the morning", f"{h} in the evening"))
            case "when":
                return rng.choice((
                    f"on {rng.choice(DAYS)}", f"last {rng.choice(MONTHS)}", "yesterday", "this morning",
                    f"at {self._fill(rng, 'clock')}", "before breakfast", "after lunch", "at midnight",
                    f"in {rng.choice(MONTHS)}", "a long time ago", "last night"))
        raise KeyError(slot)

    def clause(self, rng: random.Random) -> str:
        t = rng.choice(TEMPLATES)
        return _SLOT.sub(lambda m: self._fill(rng, m.group(1)), t)

    def sentence(self, rng: random.Random) -> str:
        s = self.clause(rng)
        if s.endswith(".") and rng.random() < 0.2:
            s2 = self.clause(rng)
            if s2.endswith("."):
                first = s2.split(" ", 1)[0]
                # Lower-case the second clause's first word unless it is "I" or a name/place.
                if first not in ("I", "I'd") and first.rstrip("',") not in self._proper:
                    s2 = s2[0].lower() + s2[1:]
                s = s[:-1] + f", {rng.choice(CONJ)} " + s2
        return s[0].upper() + s[1:]


def words_of(text: str) -> set[str]:
    return {w.lower() for w in _TOKEN.findall(text)}


def norm_text(text: str) -> str:
    return " ".join(w.lower() for w in _TOKEN.findall(text))


def testlist_texts() -> set[str]:
    """Normalised sentences of data/testlists (never trained on)."""
    out = set()
    for p in sorted(TESTLISTS.glob("*.jsonl")):
        for line in p.read_text(encoding="utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.update(norm_text(row[k]) for k in ("text", "prompt_text") if row.get(k))
    for p in sorted(TESTLISTS.glob("*.lst")):
        for line in p.read_text(encoding="utf-8").splitlines():
            parts = line.split("|")
            if len(parts) >= 4:
                out.update(norm_text(x) for x in (parts[1], parts[3]))
    return out


# --------------------------------------------------------------------------------------------- plan
def _rng(seed: int, *tags: str) -> random.Random:
    h = hashlib.sha256(":".join([str(seed), *tags]).encode()).digest()
    return random.Random(int.from_bytes(h[:8], "big"))


def plan_texts(n: int, n_heldout: int, seed: int, lex: Lexicon | None = None,
               heldout_word_frac: float = 0.04) -> tuple[list[str], list[str], set[str]]:
    """(training texts, held-out texts, held-out words); deterministic, training prefix-stable in ``n``."""
    lex = lex or Lexicon.load()
    banned = testlist_texts()
    free = [s for s in lex.sentences if norm_text(s) not in banned]
    _rng(seed, "free").shuffle(free)
    n_free_held = min(len(free) // 6, n_heldout // 4)
    free_held, free_train = free[:n_free_held], free[n_free_held:]
    # Held-out words: template words (nouns, verbs, adjectives) that no training free sentence uses.
    in_free = set().union(*(words_of(s) for s in free_train)) if free_train else set()
    cands = []
    for f in Lexicon.NOUN_FIELDS:
        cands += [x.sg for x in getattr(lex, f)]
    cands += [v.base for v in (*lex.vt, *lex.vi)] + list(lex.adj)
    forms_of: dict[str, set[str]] = {}
    for f in Lexicon.NOUN_FIELDS:
        for x in getattr(lex, f):
            forms_of.setdefault(x.sg.lower(), set()).update(w.lower() for w in x.forms)
    for v in (*lex.vt, *lex.vi):
        forms_of.setdefault(v.base, set()).update(v.forms)
    cands = sorted({c.lower() for c in cands if " " not in c
                    and not (forms_of.get(c.lower(), {c.lower()}) & in_free)})
    rh = _rng(seed, "heldout-words")
    held_words = set(rh.sample(cands, max(1, int(len(cands) * heldout_word_frac)))) if cands else set()
    held_forms = set().union(*(forms_of.get(w, {w}) for w in held_words)) if held_words else set()
    train_lex, held_lex = lex.split(held_words)

    # Held-out texts: free sentences, then templates drawing ~1/3 of their words from the held-out words.
    heldout: list[str] = []
    seen: set[str] = set(banned)
    for s in free_held:
        heldout.append(s)
        seen.add(norm_text(s))
    g = Grammar(train_lex, extra=held_lex, extra_p=0.35)
    r = _rng(seed, "heldout-text")
    while len(heldout) < n_heldout:
        s = g.sentence(r)
        if norm_text(s) not in seen:
            seen.add(norm_text(s))
            heldout.append(s)

    # Training texts: templates with a free sentence interleaved about one time in twelve (cycling).
    train: list[str] = []
    g = Grammar(train_lex)
    r = _rng(seed, "train-text")
    free_cycle = 0
    while len(train) < n:
        if free_train and r.random() < 1 / 12:
            s = free_train[free_cycle % len(free_train)]
            free_cycle += 1
            if norm_text(s) in banned or words_of(s) & held_forms:
                continue
            train.append(s)
            continue
        s = g.sentence(r)
        key = norm_text(s)
        if key in seen or words_of(s) & held_forms:
            continue
        seen.add(key)
        train.append(s)
    return train, heldout, held_words


def _balanced(rng: random.Random, items: Sequence, n: int) -> list:
    out: list = []
    while len(out) < n:
        block = list(items)
        rng.shuffle(block)
        out += block
    return out[:n]


def reachable_levels(cal: dict, voice: str) -> list[str]:
    """Pitch levels whose target band (inner part) the voice reaches within espeak's -p range."""
    c = cal["voices"][voice]
    lo, hi = min(c["mel"]), max(c["mel"])
    out = []
    for lvl, band in pitch_bands(c["gender"]).items():
        a, b = _inner(band)
        if max(a, lo + 2) < min(b, hi - 2) and (min(b, hi - 2) - max(a, lo + 2)) >= 0.4 * (b - a):
            out.append(lvl)
    return out


def plan(n: int, n_heldout: int, seed: int, cal: dict | None = None,
         lex: Lexicon | None = None) -> tuple[list[dict], list[dict], set[str]]:
    """Text-only plan: (training items, held-out items, held-out words). Nothing is rendered."""
    cal = cal if cal is not None else load_calibration()
    train_t, held_t, held_words = plan_texts(n, n_heldout, seed, lex)
    voices = {g: sorted(v for v, vg in VOICES.items() if vg == g and v in cal["voices"]) for g in GENDERS}
    reach = {v: set(reachable_levels(cal, v)) for g in GENDERS for v in voices[g]}
    items: dict[str, list[dict]] = {}
    for split, texts in (("train", train_t), ("heldout", held_t)):
        # Separate streams, so that the first k labels do not depend on how many are planned.
        grid = [(p, s) for p in LEVELS for s in LEVELS]
        cells = _balanced(_rng(seed, split, "grid"), grid, len(texts))
        genders = _balanced(_rng(seed, split, "gender"), GENDERS, len(texts))
        r = _rng(seed, split, "voice+target")
        # One voice rotation per (gender, pitch level): every eligible voice used equally often.
        rot: dict[tuple[str, str], list[str]] = {}
        pos: Counter = Counter()
        rows = []
        for i, (text, (pl, sl), g) in enumerate(zip(texts, cells, genders, strict=True)):
            key = (g, pl)
            elig = [v for v in voices[g] if pl in reach[v]]
            if not elig:
                raise SystemExit(f"no {g} voice reaches pitch level {pl}; recalibrate or add voices.")
            if key not in rot or pos[key] >= len(rot[key]):
                rot[key] = _balanced(r, elig, len(elig))
                pos[key] = 0
            voice = rot[key][pos[key]]
            pos[key] += 1
            pa, pb = _inner(pitch_bands(g)[pl])
            c = cal["voices"][voice]
            pa, pb = max(pa, min(c["mel"]) + 2), min(pb, max(c["mel"]) - 2)
            sa, sb = _inner(speed_bands()[sl])
            rows.append({
                "utt": f"{'tr' if split == 'train' else 'ho'}_{i:06d}", "split": split, "text": text,
                "speaker": voice, "gender": g, "pitch": pl, "speed": sl,
                "target_mel": round(pa + r.random() * (pb - pa), 2),
                "target_sps": round(sa + r.random() * (sb - sa), 3),
            })
        items[split] = rows
    return items["train"], items["heldout"], held_words


# --------------------------------------------------------------------------------------------- espeak
def espeak_version() -> str | None:
    try:
        out = subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    m = re.search(r"(\d+\.\d+(?:\.\d+)?)", out)
    return m.group(1) if m else out.strip()


def espeak_wav(text: str, voice: str, p: int, s: int, g: int = 0) -> bytes:
    """espeak-ng's own output (a 22.05 kHz WAV file's bytes); raises RuntimeError."""
    cmd = ["espeak-ng", "-v", voice, "-p", str(int(p)), "-s", str(int(s)), "-g", str(int(g)), "--stdout"]
    proc = subprocess.run(cmd, input=text.encode("utf-8"), capture_output=True, timeout=60)
    if proc.returncode != 0 or len(proc.stdout) < 1000:
        raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {proc.stderr.decode(errors='replace')[:200]}")
    return proc.stdout


def espeak_digest(raw: bytes) -> str:
    """What identifies espeak-ng's samples: a replay trusts a record only when espeak-ng gives these bytes.

    Taken before resampling, so a machine whose resampler rounds differently still replays the records.
    """
    return hashlib.sha256(raw).hexdigest()[:16]


def to_16k(raw: bytes):
    """espeak-ng's WAV -> 16 kHz float32 (soxr VHQ), end silences trimmed to exactly 0.1 s."""
    import numpy as np
    import soundfile as sf
    import soxr

    x, sr = sf.read(io.BytesIO(raw), dtype="float32")
    if x.ndim > 1:
        x = x.mean(axis=1)
    y = soxr.resample(x, sr, SR, "VHQ").astype(np.float32)
    loud = np.flatnonzero(np.abs(y) > 0.01 * max(float(np.abs(y).max()), 1e-9))
    if loud.size == 0:
        raise RuntimeError("espeak-ng produced silence")
    pad = int(0.1 * SR)
    seg = y[max(0, loud[0] - pad): loud[-1] + pad]
    # Exactly 0.1 s before the first and after the last sound (espeak-ng often starts without silence).
    head, tail = pad - (loud[0] - max(0, loud[0] - pad)), pad - (min(len(y), loud[-1] + pad) - loud[-1])
    return np.concatenate([np.zeros(head, np.float32), seg, np.zeros(tail, np.float32)])


def synthesize(text: str, voice: str, p: int, s: int, g: int = 0):
    """espeak-ng -> 16 kHz float32 (soxr VHQ), end silences trimmed to 0.1 s; raises RuntimeError."""
    return to_16k(espeak_wav(text, voice, p, s, g))


def to_int16(y):
    import numpy as np

    return np.clip(np.round(y * 32767.0), -32768, 32767).astype(np.int16)


def measure(y16, text: str, gender: str) -> dict:
    """The eval's measurement (``sparktts.eval.control.measure_attributes``) of a 16 kHz int16 clip."""
    import numpy as np

    a = _control().measure_attributes(y16.astype(np.float32) / 32768.0, text, SR, lang="en", gender=gender)
    return {
        "f0_mean_hz": round(a.f0_mean_hz, 2), "pitch_mel": round(a.pitch_mel, 2),
        "pitch_measured": a.pitch_level, "gender_measured": a.gender, "syllables": a.syllables,
        "speech_s": round(a.duration_s, 3), "speed_sps": round(a.speed_sps, 3), "speed_measured": a.speed_level,
    }


def speech_seconds(y16) -> float:
    """Trimmed speech duration as the eval measures it (volume normalised, RMS trim), without F0."""
    import numpy as np

    from sparktts.audio import volume_normalize

    c = _control()
    return c.trim_silence(volume_normalize(y16.astype(np.float64) / 32768.0)).shape[0] / SR


# --------------------------------------------------------------------------------------------- calibration
def calibrate_voice(voice: str) -> dict:
    """Mean mel pitch at CAL_P (at 170 wpm) over CAL_SENTENCES, syllables/s at CAL_S and CAL_G (at -p 50)
    over CAL_SPEED_SENTENCES."""
    import numpy as np

    c = _control()
    gender = VOICES[voice]
    mel, sps = [], []
    for p in CAL_P:
        vals = [c.hz_to_mel(c.mean_f0(c.trim_silence(_norm(synthesize(t, voice, p, 170))))) for t in CAL_SENTENCES]
        mel.append(round(float(np.mean(vals)), 2))
    for s in CAL_S:
        vals = [c.count_syllables(t) / speech_seconds(to_int16(synthesize(t, voice, 50, s)))
                for t in CAL_SPEED_SENTENCES]
        sps.append(round(float(np.mean(vals)), 3))
    gap = []
    for g in CAL_G:
        vals = [c.count_syllables(t) / speech_seconds(to_int16(synthesize(t, voice, 50, CAL_S[0], g)))
                for t in CAL_SPEED_SENTENCES]
        gap.append(round(float(np.mean(vals)), 3))
    # Monotone (espeak's -p and -s are), so interpolation can be inverted.
    mel = list(np.maximum.accumulate(mel))
    sps = list(np.maximum.accumulate(sps))
    gap = list(np.minimum.accumulate(gap))
    return {"gender": gender, "p": list(CAL_P), "mel": [float(m) for m in mel], "s": list(CAL_S),
            "sps": [float(x) for x in sps], "g": list(CAL_G), "sps_g": [float(x) for x in gap]}


def _norm(y):
    import numpy as np

    from sparktts.audio import volume_normalize

    return volume_normalize(to_int16(y).astype(np.float64) / 32768.0)


def calibrate(voices: Iterable[str], jobs: int = 1, progress: bool = True) -> dict:
    voices = list(voices)
    from tqdm.auto import tqdm

    if jobs > 1:
        import multiprocessing as mp

        with mp.get_context("spawn").Pool(jobs, initializer=_worker_init) as pool:
            res = list(tqdm(pool.imap(calibrate_voice, voices), total=len(voices), desc="calibrate",
                            disable=not progress))
    else:
        res = [calibrate_voice(v) for v in tqdm(voices, desc="calibrate", disable=not progress)]
    return {"espeak_ng": espeak_version(), "f0_method": "pyin", "speed_at_p": 50, "pitch_at_s": 170,
            "sentences": list(CAL_SENTENCES), "speed_sentences": list(CAL_SPEED_SENTENCES),
            "voices": dict(zip(voices, res, strict=True))}


def load_calibration(path: Path = CALIBRATION_FILE) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _interp(x: float, xs: Sequence[float], ys: Sequence[float]) -> float:
    """Piecewise-linear interpolation, extrapolated from the end segments."""
    if x <= xs[0]:
        i = 0
    elif x >= xs[-1]:
        i = len(xs) - 2
    else:
        i = max(j for j in range(len(xs) - 1) if xs[j] <= x)
    x0, x1, y0, y1 = xs[i], xs[i + 1], ys[i], ys[i + 1]
    return y0 if x1 == x0 else y0 + (x - x0) * (y1 - y0) / (x1 - x0)


def _dedupe(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    ox, oy = [], []
    for x, y in zip(xs, ys, strict=True):
        if not ox or x > ox[-1] + 1e-9:
            ox.append(x)
            oy.append(y)
    return ox, oy


def espeak_settings(cal: dict, voice: str, mel: float, sps: float) -> tuple[int, int, int]:
    """(-p, -s, -g) giving ``mel`` and ``sps`` for ``voice`` (inverse of its calibration).

    Below the syllable rate of -s 80 (espeak's slowest), the word gap -g slows speech down further.
    """
    c = cal["voices"][voice]
    mx, px = _dedupe(c["mel"], c["p"])
    p = _interp(mel, mx, px) if len(mx) > 1 else 50
    p = int(round(min(max(p, P_RANGE[0]), P_RANGE[1])))
    if sps >= c["sps"][0]:
        sx, wx = _dedupe(c["sps"], c["s"])
        s = _interp(sps, sx, wx) if len(sx) > 1 else 170
        return p, int(round(min(max(s, S_RANGE[0]), S_RANGE[1]))), 0
    # sps falls as the gap grows: interpolate on the reversed (increasing) sequence.
    gx, gg = _dedupe(c["sps_g"][::-1], c["g"][::-1])
    g = _interp(sps, gx, gg) if len(gx) > 1 else 0
    return p, S_RANGE[0], int(round(min(max(g, 0), G_MAX)))


# --------------------------------------------------------------------------------------------- render
_CAL: dict | None = None


def _worker_init(cal: dict | None = None) -> None:
    global _CAL
    _CAL = cal
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import warnings

    warnings.filterwarnings("ignore")


def item_key(item: dict) -> str:
    """What identifies a rendered clip: a rerun reuses a clip only when this matches."""
    fields = ("utt", "text", "speaker", "gender", "pitch", "speed", "target_mel", "target_sps")
    blob = json.dumps([item[k] for k in fields], ensure_ascii=False) + f"|{_RENDER_VERSION}"
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


_RENDER_VERSION = 5


def _settle_speed(item: dict, cal: dict, req_mel: float, req_sps: float, renders: dict, tries: int):
    """Re-render until the syllable rate lands in the intended speed level (cheap: no F0 needed).

    Returns (espeak setting, int16 audio, the corrected speed request); ``renders`` keeps each setting's
    (int16 audio, digest of espeak-ng's output).
    """
    c = _control()
    syl = c.count_syllables(item["text"])
    for _ in range(max(1, tries)):
        setting = espeak_settings(cal, item["speaker"], req_mel, req_sps)
        if setting not in renders:
            raw = espeak_wav(item["text"], item["speaker"], *setting)
            renders[setting] = (to_int16(to_16k(raw)), espeak_digest(raw))
        sps = syl / max(speech_seconds(renders[setting][0]), 1e-3)
        if c.speed_level(sps, "en") == item["speed"]:
            break
        req_sps *= item["target_sps"] / sps
    return setting, renders[setting][0], req_sps


def render_item(args: tuple[dict, str, int]) -> dict:
    """Render, measure and (if a level misses) correct one clip; write wav via a temp name. Never raises."""
    item, out_dir, retries = args
    cal = _CAL
    out = Path(out_dir)
    rel = f"wavs/{item['utt']}.wav"
    try:
        req_mel, req_sps = item["target_mel"], item["target_sps"]
        tried: list[tuple[int, int, int]] = []
        renders: dict[tuple[int, int, int], tuple] = {}
        best = None
        for attempt in range(retries + 1):
            setting, y16, req_sps = _settle_speed(item, cal, req_mel, req_sps, renders, tries=retries + 2)
            if setting in tried:
                break  # the correction no longer changes espeak's settings
            tried.append(setting)
            m = measure(y16, item["text"], item["gender"])
            score = (m["pitch_measured"] == item["pitch"]) + (m["speed_measured"] == item["speed"])
            if best is None or score > best[0]:
                best = (score, y16, m, setting, attempt + 1)
            if score == 2:
                break
            # This sentence came out off target: ask the calibration for the target shifted by the miss.
            if m["pitch_measured"] != item["pitch"]:
                req_mel += item["target_mel"] - m["pitch_mel"]
            if m["speed_measured"] != item["speed"]:
                req_sps *= item["target_sps"] / max(m["speed_sps"], 1e-3)
        _score, y16, m, (p, s, g), attempts = best
        _write_wav(out, rel, y16)
        return {**item, "audio": rel, "lang": "en", **m, "duration_s": round(len(y16) / SR, 3),
                "espeak": {"voice": item["speaker"], "p": p, "s": s, "g": g}, "attempts": attempts,
                "renders": len(renders), "espeak_digest": renders[p, s, g][1],
                "key": item_key(item)}
    except Exception as exc:  # noqa: BLE001 - a bad render is recorded and skipped, never fatal
        return {**item, "error": f"{type(exc).__name__}: {exc}", "key": item_key(item)}


def _write_wav(out: Path, rel: str, y16) -> None:
    import soundfile as sf

    tmp = out / "wavs" / f".{Path(rel).stem}.tmp.wav"
    sf.write(tmp, y16, SR, subtype="PCM_16", format="WAV")
    os.replace(tmp, out / rel)


def replay_item(args: tuple[dict, str, int, dict]) -> dict:
    """Render a clip with the espeak settings a record of it found, measuring nothing (about 30x faster).

    The record is reused only when espeak-ng gives the very bytes it digested; otherwise (another
    espeak-ng build, say) the clip is rendered and measured afresh by :func:`render_item`.
    """
    item, out_dir, retries, known = args
    e = known["espeak"]
    try:
        raw = espeak_wav(item["text"], e["voice"], e["p"], e["s"], e["g"])
        y16 = to_int16(to_16k(raw)) if espeak_digest(raw) == known["espeak_digest"] else None
    except Exception:  # noqa: BLE001 - render_item records the failure if it happens again
        y16 = None
    if y16 is None:
        return render_item((item, out_dir, retries))
    _write_wav(Path(out_dir), known["audio"], y16)
    return dict(known)


def _render(args: tuple[dict, str, int, dict | None]) -> dict:
    known = args[3]
    if known is None:
        return render_item(args[:3])
    return dict(known) if "error" in known else replay_item(args)  # a clip espeak-ng could not render stays out


def read_known_records(path: Path = RECORDS_FILE) -> dict[str, dict]:
    """``utt -> record`` of a saved records file (gzip JSON lines); empty when there is none."""
    import gzip

    if not path.is_file():
        return {}
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return {r["utt"]: r for r in map(json.loads, f)}


def save_records(out: Path, path: Path = RECORDS_FILE) -> int:
    """Add ``out``'s clips to the records file (digesting espeak-ng's output where a record lacks it).

    Failed clips are kept too (their error), so a replay skips them as the first build did.

    Records of other clips already in the file are kept, so corpora of any size share one file; it is
    written sorted, with no timestamp, so the same records give the same bytes. Returns its size in clips.
    """
    import gzip

    known = read_known_records(path)
    for r in _read_records(out / ".records.jsonl").values():
        if "error" not in r and not (out / r["audio"]).is_file():
            continue
        if "error" not in r and "espeak_digest" not in r:
            e = r["espeak"]
            r = {**r, "espeak_digest": espeak_digest(espeak_wav(r["text"], e["voice"], e["p"], e["s"], e["g"]))}
        known[r["utt"]] = r
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as f:
        for utt in sorted(known):
            f.write((json.dumps(known[utt], ensure_ascii=False, sort_keys=True) + "\n").encode("utf-8"))
    os.replace(tmp, path)
    return len(known)


MANIFEST_FIELDS = ("audio", "text", "speaker", "lang", "gender", "pitch", "speed")


def manifest_row(rec: dict) -> dict:
    row = {k: rec[k] for k in MANIFEST_FIELDS}
    row["utt"] = rec["utt"]
    for k in ("pitch_mel", "f0_mean_hz", "speed_sps", "syllables", "speech_s", "duration_s",
              "gender_measured", "pitch_measured", "speed_measured", "target_mel", "target_sps",
              "espeak", "attempts", "renders"):
        row[k] = rec[k]
    return row


def _read_records(path: Path) -> dict[str, dict]:
    recs: dict[str, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
            except json.JSONDecodeError:
                continue  # a line cut by an interrupted run
            recs[r["utt"]] = r
    return recs


def _write_jsonl(path: Path, rows: Iterable[dict]) -> None:
    tmp = path.with_name("." + path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    os.replace(tmp, path)


def summarize(train: list[dict], heldout: list[dict], failed: list[dict], held_words: set[str]) -> dict:
    def part(rows):
        hours = sum(r["duration_s"] for r in rows) / 3600
        n = len(rows)

        def acc(k: str) -> float | None:
            return round(sum(r[k] == r[k.replace("_measured", "")] for r in rows) / n, 4) if n else None

        return {
            "clips": n, "hours": round(hours, 4),
            "gender": dict(sorted(Counter(r["gender"] for r in rows).items())),
            "pitch": {lvl: sum(r["pitch"] == lvl for r in rows) for lvl in LEVELS},
            "speed": {lvl: sum(r["speed"] == lvl for r in rows) for lvl in LEVELS},
            "speaker": dict(sorted(Counter(r["speaker"] for r in rows).items())),
            "pitch_accuracy": acc("pitch_measured"), "speed_accuracy": acc("speed_measured"),
            "gender_measured_accuracy": acc("gender_measured"),
            "words": len(set().union(*(words_of(r["text"]) for r in rows))) if rows else 0,
        }

    ho_words = sum(bool(words_of(r["text"]) & held_words) for r in heldout)
    return {"train": part(train), "heldout": part(heldout), "failed": len(failed),
            "heldout_words": len(held_words), "heldout_clips_with_heldout_words": ho_words,
            "espeak_ng": espeak_version()}


def build(out: Path, n: int, n_heldout: int, seed: int, jobs: int = 1, retries: int = 2,
          calibrate_here: bool = False, progress: bool = True, records: Path | None = RECORDS_FILE) -> dict:
    """Render the corpus into ``out`` (resumable) and return the summary.

    Clips found in ``records`` (:func:`save_records`) with the same plan are replayed from their
    espeak settings instead of being measured again (None: render and measure everything).
    """
    out.mkdir(parents=True, exist_ok=True)
    (out / "wavs").mkdir(exist_ok=True)
    version = espeak_version()
    if version is None:
        raise SystemExit("espeak-ng not found: apt-get install espeak-ng")
    local_cal = out / "calibration.json"
    if local_cal.exists() and not calibrate_here:
        cal = load_calibration(local_cal)
    else:
        cal = load_calibration() if CALIBRATION_FILE.exists() else None
        if calibrate_here or cal is None or cal.get("espeak_ng") != version or set(cal["voices"]) != set(VOICES):
            print(f"calibrating {len(VOICES)} voices for espeak-ng {version} -> {local_cal}", file=sys.stderr)
            cal = calibrate(VOICES, jobs=jobs, progress=progress)
            local_cal.write_text(json.dumps(cal, indent=1) + "\n", encoding="utf-8")
    train, heldout, held_words = plan(n, n_heldout, seed, cal)
    items = train + heldout
    rec_path = out / ".records.jsonl"
    old = _read_records(rec_path)
    todo = []
    for it in items:
        r = old.get(it["utt"])
        if r is not None and r.get("key") == item_key(it) and ("error" in r or (out / r["audio"]).exists()):
            continue
        todo.append(it)
    known = read_known_records(records) if records is not None else {}
    replay = {it["utt"]: r for it in todo if (r := known.get(it["utt"])) is not None
              and r.get("key") == item_key(it) and ("espeak_digest" in r or "error" in r)}
    from tqdm.auto import tqdm

    if rec_path.exists() and rec_path.stat().st_size and not rec_path.read_bytes().endswith(b"\n"):
        with open(rec_path, "a", encoding="utf-8") as f:
            f.write("\n")  # end a line cut by an interrupted run, so the next record starts cleanly
    with open(rec_path, "a", encoding="utf-8") as rec_f:
        args = [(it, str(out), retries, replay.get(it["utt"])) for it in todo]
        if jobs > 1 and len(todo) > 1:
            import multiprocessing as mp

            with mp.get_context("spawn").Pool(jobs, initializer=_worker_init, initargs=(cal,)) as pool:
                it_res = pool.imap(_render, args, chunksize=4)
                for r in tqdm(it_res, total=len(todo), desc="render", disable=not progress):
                    rec_f.write(json.dumps(r, ensure_ascii=False) + "\n")
                    rec_f.flush()
                    old[r["utt"]] = r
        else:
            _worker_init(cal)
            for a in tqdm(args, desc="render", disable=not progress):
                r = _render(a)
                rec_f.write(json.dumps(r, ensure_ascii=False) + "\n")
                rec_f.flush()
                old[r["utt"]] = r
    recs = [old[it["utt"]] for it in items]
    good = [r for r in recs if "error" not in r]
    failed = [r for r in recs if "error" in r]
    tr = [manifest_row(r) for r in good if r["split"] == "train"]
    ho = [manifest_row(r) for r in good if r["split"] == "heldout"]
    _write_jsonl(out / "manifest.jsonl", tr)
    _write_jsonl(out / "heldout.jsonl", ho)
    _write_jsonl(out / "failed.jsonl", failed)
    (out / "heldout_words.txt").write_text("\n".join(sorted(held_words)) + "\n", encoding="utf-8")
    summary = summarize(tr, ho, failed, held_words)
    summary["config"] = {"n": n, "heldout": n_heldout, "seed": seed, "retries": retries}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n", encoding="utf-8")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path, help="output folder (nothing is written elsewhere)")
    ap.add_argument("--n", type=int, default=6000, help="training clips")
    ap.add_argument("--heldout", type=int, default=200, help="held-out clips (sentences never trained on)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--jobs", type=int, default=1, help="worker processes")
    ap.add_argument("--retries", type=int, default=2, help="re-renders of a clip whose measured level misses")
    ap.add_argument("--calibrate", action="store_true",
                    help="recalibrate the voices into OUT/calibration.json (default: data/corpus/calibration.json "
                         "when it was made with the installed espeak-ng version)")
    ap.add_argument("--plan-only", action="store_true", help="write OUT/plan.jsonl (texts + labels), render nothing")
    ap.add_argument("--records", type=Path, default=RECORDS_FILE,
                    help="replay the clips this records file holds instead of measuring them again "
                         "(default: data/corpus/records.jsonl.gz)")
    ap.add_argument("--no-records", action="store_true", help="render and measure every clip")
    ap.add_argument("--save-records", action="store_true",
                    help="then add OUT's clips to the --records file, so later builds replay them")
    a = ap.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    if a.plan_only:
        a.out.mkdir(parents=True, exist_ok=True)
        train, heldout, held_words = plan(a.n, a.heldout, a.seed)
        _write_jsonl(a.out / "plan.jsonl", train + heldout)
        print(json.dumps({"train": len(train), "heldout": len(heldout), "heldout_words": len(held_words),
                          "pitch": Counter(r["pitch"] for r in train), "speed": Counter(r["speed"] for r in train),
                          "gender": Counter(r["gender"] for r in train)}, indent=1))
        return 0
    records = None if a.no_records else a.records
    summary = build(a.out, a.n, a.heldout, a.seed, jobs=a.jobs, retries=a.retries, calibrate_here=a.calibrate,
                    records=records)
    print(json.dumps(summary, indent=1))
    if a.save_records:
        print(f"{a.records}: {save_records(a.out, a.records)} clips", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
