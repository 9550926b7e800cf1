"""A deterministic generator of varied, speakable sentences (English and Spanish) for the synthetic corpus.

Sentences come from a few grammatical templates filled from word lists, so that every speaker reads
different text and speaker verification cannot lean on lexical content.
"""

from __future__ import annotations

import random

from kdlib.data.sources import KEYWORDS  # the corpus speaks the keywords of the Speech Commands task

UNKNOWN_WORDS = (
    "bed", "bird", "cat", "dog", "happy", "house", "marvin", "sheila", "tree", "wow",
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    "forward", "backward", "follow", "learn", "visual",
)
"""Non-keyword words, as in Speech Commands' auxiliary words: they form the ``_unknown_`` class."""

_EN = {
    "adj": "quiet old bright small heavy gentle busy careful distant golden hungry curious silver narrow "
    "crowded sleepy honest tiny rusty clever".split(),
    "noun": "farmer teacher river window garden engine doctor painter sailor kitten journey market "
    "letter bottle mountain village student baker pilot lantern".split(),
    "verb": "carried found painted followed opened watched cleaned visited dropped repaired borrowed "
    "counted described remembered pushed ordered".split(),
    "place": "station kitchen harbour library forest bridge museum valley castle office meadow "
    "hospital factory island corner".split(),
    "time": ["this morning", "last winter", "every evening", "before dinner", "after the storm",
               "on sunday", "at noon", "during the holidays", "yesterday", "next week"],
}
_EN_TEMPLATES = (
    "The {adj} {noun} {verb} a {adj2} {noun2} near the {place}.",
    "{time_c}, the {noun} {verb} the {adj} {noun2}.",
    "Did the {adj} {noun} really leave the {noun2} by the {place}?",
    "My {noun} {verb} {num} {adj} {noun2}s {time}.",
    "We {verb} the {noun} and the {noun2} at the {adj} {place}.",
    "Nobody knew why the {noun} {verb} the {place} {time}.",
)
_EN_NUMS = "two three four five seven nine eleven twelve twenty".split()

_ES = {
    "adj": "viejo pequeño alegre tranquilo rápido oscuro nuevo amable lejano dorado curioso largo".split(),
    "noun": "pintor maestro médico marinero panadero granjero piloto estudiante vecino cartero".split(),
    "obj": "libro coche árbol barco caballo reloj sombrero pan espejo tren".split(),
    "verb": "compró encontró pintó abrió miró limpió visitó reparó contó buscó".split(),
    "time": ["esta mañana", "el invierno pasado", "cada tarde", "antes de cenar", "el domingo", "ayer"],
    "place": ["la estación", "la cocina", "el puerto", "la biblioteca", "el bosque", "el puente",
                "el museo", "el mercado", "la plaza", "el jardín"],
}
_ES_TEMPLATES = (
    "El {noun} {adj} {verb} un {obj} cerca de {place}.",
    "{time_c}, el {noun} {verb} el {obj} {adj}.",
    "¿Por qué el {noun} {verb} el {obj} en {place}?",
    "Mi {noun} {verb} {num} libros {time}.",
    "Nosotros vimos al {noun} {adj} en {place} {time}.",
)
_ES_NUMS = "dos tres cuatro cinco siete nueve doce veinte".split()


def sentence(rng: random.Random, language: str = "en") -> str:
    """One random sentence in ``language`` ("en" or "es"), drawn with ``rng``."""
    if language == "en":
        words, templates, nums = _EN, _EN_TEMPLATES, _EN_NUMS
    elif language == "es":
        words, templates, nums = _ES, _ES_TEMPLATES, _ES_NUMS
    else:
        raise ValueError(f"no sentence generator for language {language!r}; use 'en' or 'es'")
    fields = {key: rng.choice(values) for key, values in words.items()}
    fields["adj2"] = rng.choice(words["adj"])
    fields["noun2"] = rng.choice(words.get("noun", []))
    fields["num"] = rng.choice(nums)
    fields["time_c"] = fields["time"][0].upper() + fields["time"][1:]
    return rng.choice(templates).format(**fields)
