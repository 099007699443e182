"""SynthSign vocabulary: the English words of the grammar, their glosses and word categories.

Nouns carry a kind (`person`, `place`, `food`, `drink`, `read`, `item`, `animal`) that decides which verbs
and adjectives combine with them; verbs list the noun kinds they take as objects (motion/location verbs take
a place with their preposition); adjectives list the kinds they describe and whether they may stand before
a noun. `lexicon_glosses()` is the fixed, ordered list of base glosses of the language.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

# Nouns: (singular, plural or None for mass nouns, gloss). Kinds drive which verbs/adjectives combine.
_PEOPLE = [
    ("man", "men", "MAN"), ("woman", "women", "WOMAN"), ("boy", "boys", "BOY"), ("girl", "girls", "GIRL"),
    ("child", "children", "CHILD"), ("baby", "babies", "BABY"), ("teacher", "teachers", "TEACHER"),
    ("doctor", "doctors", "DOCTOR"), ("student", "students", "STUDENT"), ("friend", "friends", "FRIEND"),
    ("mother", "mothers", "MOTHER"), ("father", "fathers", "FATHER"), ("brother", "brothers", "BROTHER"),
    ("sister", "sisters", "SISTER"), ("nurse", "nurses", "NURSE"), ("farmer", "farmers", "FARMER"),
    ("chef", "chefs", "CHEF"), ("driver", "drivers", "DRIVER"), ("police officer", "police officers", "POLICE"),
    ("grandmother", "grandmothers", "GRANDMOTHER"), ("grandfather", "grandfathers", "GRANDFATHER"),
    ("artist", "artists", "ARTIST"), ("neighbor", "neighbors", "NEIGHBOR"), ("boss", "bosses", "BOSS"),
    ("uncle", "uncles", "UNCLE"), ("aunt", "aunts", "AUNT"), ("son", "sons", "SON"),
    ("daughter", "daughters", "DAUGHTER"), ("pilot", "pilots", "PILOT"), ("dentist", "dentists", "DENTIST"),
]
_PLACES = [
    ("school", "SCHOOL"), ("home", "HOME"), ("store", "STORE"), ("hospital", "HOSPITAL"), ("park", "PARK"),
    ("library", "LIBRARY"), ("church", "CHURCH"), ("office", "OFFICE"), ("restaurant", "RESTAURANT"),
    ("beach", "BEACH"), ("farm", "FARM"), ("airport", "AIRPORT"), ("station", "STATION"), ("museum", "MUSEUM"),
    ("zoo", "ZOO"), ("city", "CITY"), ("market", "MARKET"), ("bank", "BANK-MONEY"), ("river bank", "RIVER-BANK"),
    ("river", "RIVER"), ("gym", "GYM"), ("hotel", "HOTEL"), ("cafe", "CAFE"), ("university", "UNIVERSITY"),
    ("kitchen", "KITCHEN"), ("garden", "GARDEN"), ("bakery", "BAKERY"), ("factory", "FACTORY"),
]
_FOOD = [
    ("apple", "apples", "APPLE"), ("banana", "bananas", "BANANA"), ("bread", None, "BREAD"), ("cake", "cakes", "CAKE"),
    ("pizza", "pizzas", "PIZZA"), ("soup", None, "SOUP"), ("rice", None, "RICE"), ("egg", "eggs", "EGG"),
    ("cheese", None, "CHEESE"), ("sandwich", "sandwiches", "SANDWICH"), ("cookie", "cookies", "COOKIE"),
    ("ice cream", None, "ICE-CREAM"), ("chicken", None, "CHICKEN"), ("candy", None, "CANDY"),
    ("potato", "potatoes", "POTATO"), ("tomato", "tomatoes", "TOMATO"), ("carrot", "carrots", "CARROT"),
]
_DRINK = [
    ("water", None, "WATER"), ("coffee", None, "COFFEE"), ("tea", None, "TEA"), ("milk", None, "MILK"),
    ("juice", None, "JUICE"), ("beer", None, "BEER"),
]
_READ = [
    ("book", "books", "BOOK"), ("letter", "letters", "LETTER"), ("newspaper", "newspapers", "NEWSPAPER"),
    ("email", "emails", "EMAIL"), ("story", "stories", "STORY"), ("answer", "answers", "ANSWER"),
    ("magazine", "magazines", "MAGAZINE"),
]
_ITEMS = [
    ("car", "cars", "CAR"), ("ball", "balls", "BALL"), ("phone", "phones", "PHONE"),
    ("computer", "computers", "COMPUTER"),
    ("key", "keys", "KEY"), ("cup", "cups", "CUP"), ("chair", "chairs", "CHAIR"), ("table", "tables", "TABLE"),
    ("bag", "bags", "BAG"), ("shoe", "shoes", "SHOE"), ("hat", "hats", "HAT"), ("bicycle", "bicycles", "BICYCLE"),
    ("watch", "watches", "WRISTWATCH"), ("light", "lights", "LAMP"), ("umbrella", "umbrellas", "UMBRELLA"),
    ("camera", "cameras", "CAMERA"), ("box", "boxes", "BOX"), ("pen", "pens", "PEN"), ("shirt", "shirts", "SHIRT"),
    ("clock", "clocks", "CLOCK"), ("door", "doors", "DOOR"), ("window", "windows", "WINDOW"), ("bed", "beds", "BED"),
    ("ticket", "tickets", "TICKET"), ("picture", "pictures", "PICTURE"), ("bottle", "bottles", "BOTTLE"),
    ("plate", "plates", "PLATE"), ("spoon", "spoons", "SPOON"), ("knife", "knives", "KNIFE"),
    ("coat", "coats", "COAT"),
    ("dress", "dresses", "DRESS"), ("guitar", "guitars", "GUITAR"), ("ring", "rings", "RING"), ("toy", "toys", "TOY"),
    ("map", "maps", "MAP"),
]
_ANIMALS = [
    ("dog", "dogs", "DOG"), ("cat", "cats", "CAT"), ("bird", "birds", "BIRD"), ("horse", "horses", "HORSE"),
    ("cow", "cows", "COW"), ("rabbit", "rabbits", "RABBIT"), ("pig", "pigs", "PIG"), ("duck", "ducks", "DUCK"),
    ("mouse", "mice", "MOUSE"), ("snake", "snakes", "SNAKE"), ("bear", "bears", "BEAR"), ("lion", "lions", "LION"),
]
# Verbs: (base, 3sg, past, -ing, gloss, object kinds). Object kinds: noun kinds, or "place" for the verbs
# of motion/location, whose preposition is given separately.
_VERBS = [
    ("like", "likes", "liked", "liking", "LIKE", ("food", "drink", "animal", "item", "read", "person")),
    ("love", "loves", "loved", "loving", "LOVE", ("food", "drink", "animal", "person")),
    ("want", "wants", "wanted", "wanting", "WANT", ("food", "drink", "animal", "item")),
    ("need", "needs", "needed", "needing", "NEED", ("food", "drink", "item")),
    ("have", "has", "had", "having", "HAVE", ("animal", "item", "read")),
    ("see", "sees", "saw", "seeing", "SEE", ("animal", "item", "person")),
    ("buy", "buys", "bought", "buying", "BUY", ("food", "drink", "item", "read")),
    ("sell", "sells", "sold", "selling", "SELL", ("food", "item", "read", "animal")),
    ("eat", "eats", "ate", "eating", "EAT", ("food",)),
    ("drink", "drinks", "drank", "drinking", "DRINK", ("drink",)),
    ("cook", "cooks", "cooked", "cooking", "COOK", ("food",)),
    ("read", "reads", "read", "reading", "READ", ("read",)),
    ("write", "writes", "wrote", "writing", "WRITE", ("read",)),
    ("find", "finds", "found", "finding", "FIND", ("item", "animal")),
    ("lose", "loses", "lost", "losing", "LOSE", ("item",)),
    ("bring", "brings", "brought", "bringing", "BRING", ("food", "drink", "item")),
    ("carry", "carries", "carried", "carrying", "CARRY", ("item",)),
    ("wash", "washes", "washed", "washing", "WASH", ("item",)),
    ("open", "opens", "opened", "opening", "OPEN", ("item", "read")),
    ("draw", "draws", "drew", "drawing", "DRAW", ("animal", "item", "person")),
    ("help", "helps", "helped", "helping", "HELP", ("person",)),
    ("meet", "meets", "met", "meeting", "MEET", ("person",)),
    ("know", "knows", "knew", "knowing", "KNOW", ("person",)),
    ("call", "calls", "called", "calling", "CALL", ("person",)),
    ("watch", "watches", "watched", "watching", "WATCH", ("animal", "person")),
    ("send", "sends", "sent", "sending", "SEND", ("read",)),
    ("paint", "paints", "painted", "painting", "PAINT", ("item", "animal")),
    ("throw", "throws", "threw", "throwing", "THROW", ("item",)),
    ("fix", "fixes", "fixed", "fixing", "FIX", ("item",)),
    ("visit", "visits", "visited", "visiting", "VISIT", ("place", "person")),
]
# Verbs of motion/location with their preposition before a place ("" = none).
_PLACE_VERBS = [
    ("go", "goes", "went", "going", "GO", "to"), ("walk", "walks", "walked", "walking", "WALK", "to"),
    ("drive", "drives", "drove", "driving", "DRIVE", "to"), ("run", "runs", "ran", "running", "RUN", "to"),
    ("fly", "flies", "flew", "flying", "FLY", "to"), ("work", "works", "worked", "working", "WORK", "at"),
    ("study", "studies", "studied", "studying", "STUDY", "at"), ("stay", "stays", "stayed", "staying", "STAY", "at"),
    ("arrive", "arrives", "arrived", "arriving", "ARRIVE", "at"), ("swim", "swims", "swam", "swimming", "SWIM", "at"),
]
# Adjectives: (word, gloss, kinds it describes, attributive use allowed).
_ADJECTIVES = [
    ("happy", "HAPPY", ("person",), True), ("sad", "SAD", ("person",), True), ("tired", "TIRED", ("person",), True),
    ("hungry", "HUNGRY", ("person",), True), ("thirsty", "THIRSTY", ("person",), True),
    ("sick", "SICK", ("person",), True),
    ("busy", "BUSY", ("person",), True), ("angry", "ANGRY", ("person",), True), ("ready", "READY", ("person",), False),
    ("late", "LATE", ("person",), False), ("right", "CORRECT", ("person", "read"), False),
    ("wrong", "WRONG", ("person", "read"), False), ("young", "YOUNG", ("person",), True),
    ("tall", "TALL", ("person",), True), ("kind", "KIND", ("person",), True),
    ("funny", "FUNNY", ("person", "read"), True),
    ("smart", "SMART", ("person",), True), ("strong", "STRONG", ("person",), True), ("shy", "SHY", ("person",), True),
    ("old", "OLD", ("person", "item", "place", "read"), True),
    ("red", "RED", ("item",), True), ("blue", "BLUE", ("item",), True), ("green", "GREEN", ("item", "food"), True),
    ("yellow", "YELLOW", ("item", "food"), True), ("white", "WHITE", ("item", "animal"), True),
    ("black", "BLACK", ("item", "animal"), True), ("brown", "BROWN", ("item", "animal"), True),
    ("big", "BIG", ("item", "animal", "place"), True), ("small", "SMALL", ("item", "animal", "place"), True),
    ("new", "NEW", ("item", "place", "read"), True), ("expensive", "EXPENSIVE", ("item", "food", "drink"), True),
    ("cheap", "CHEAP", ("item", "food", "drink"), True), ("heavy", "HEAVY", ("item",), True),
    ("light", "LIGHT-WEIGHT", ("item",), True), ("clean", "CLEAN", ("item", "place"), True),
    ("dirty", "DIRTY", ("item", "place"), True), ("beautiful", "BEAUTIFUL", ("item", "place", "animal"), True),
    ("broken", "BROKEN", ("item",), True), ("hot", "HOT", ("food", "drink", "weather"), True),
    ("cold", "COLD", ("food", "drink", "weather", "person"), True), ("full", "FULL", ("item",), False),
    ("empty", "EMPTY", ("item",), False), ("soft", "SOFT", ("item", "food"), True), ("long", "LONG", ("read",), True),
    ("quiet", "QUIET", ("place",), True), ("noisy", "NOISY", ("place", "animal"), True),
    ("far", "FAR", ("place",), False),
    ("closed", "CLOSED", ("place",), False), ("crowded", "CROWDED", ("place",), True),
    ("fresh", "FRESH", ("food",), True), ("sweet", "SWEET", ("food", "drink"), True),
    ("rainy", "RAIN", ("weather",), False), ("sunny", "SUN", ("weather",), False),
    ("snowy", "SNOW", ("weather",), False),
    ("windy", "WIND", ("weather",), False), ("cloudy", "CLOUD", ("weather",), False),
    ("warm", "WARM", ("weather",), False),
    ("nice", "NICE", ("weather",), False),
]
# Time expressions: (words, gloss, tense they select).
TIMES = [
    ("yesterday", "YESTERDAY", "past"), ("last week", "LAST-WEEK", "past"), ("last year", "LAST-YEAR", "past"),
    ("this morning", "MORNING", "past"), ("tomorrow", "TOMORROW", "future"), ("next week", "NEXT-WEEK", "future"),
    ("next year", "NEXT-YEAR", "future"), ("tonight", "TONIGHT", "future"), ("today", "TODAY", "present"),
    ("every day", "EVERY-DAY", "present"), ("now", "NOW", "progressive"),
]
NUMBERS = [(w, w.upper()) for w in ("one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")]
# Pronouns: word -> (gloss, person/number class for agreement: 1 = "i", 2 = "you"/plural, 3 = third singular).
PRONOUNS = {"i": ("ME", 1), "you": ("YOU", 2), "he": ("HE", 3), "she": ("SHE", 3), "we": ("WE", 2), "they": ("THEY",
    2)}
POSSESSIVES = {"my": "MY", "your": "YOUR", "his": "HIS", "her": "HER", "our": "OUR"}
WH_WORDS = {"what": "WHAT", "where": "WHERE", "who": "WHO", "when": "WHEN", "why": "WHY", "how many": "HOW-MANY"}

FUNCTION_WORDS = frozenset("the a an is am are was were be will do does did to at on it".split())
GRAMMATICAL_GLOSSES = frozenset({"NOT", "QUESTION", "BUT", *WH_WORDS.values()})
WH_GLOSSES = frozenset(WH_WORDS.values())
# Homonyms whose gloss depends on the neighbouring words (documented on the dataset card).
CONTEXT_GLOSSES = {
    "right": ("RIGHT-DIRECTION", "CORRECT"),
    "bank": ("BANK-MONEY", "RIVER-BANK"),
    "light": ("LIGHT-WEIGHT", "LAMP"),
    "watch": ("WATCH", "WRISTWATCH"),
}
CONTRACTIONS = {
    "don't": "do not", "doesn't": "does not", "didn't": "did not", "won't": "will not", "isn't": "is not",
    "aren't": "are not", "wasn't": "was not", "weren't": "were not",
}


@dataclass(frozen=True)
class Noun:
    word: str
    plural: Optional[str]
    gloss: str
    kind: str

    @property
    def mass(self) -> bool:
        return self.plural is None


@dataclass(frozen=True)
class Verb:
    base: str
    s3: str
    past: str
    ing: str
    gloss: str
    objects: Tuple[str, ...] = ()
    prep: Optional[str] = None  # set for place verbs (go *to*, work *at*)


@dataclass(frozen=True)
class Adjective:
    word: str
    gloss: str
    kinds: Tuple[str, ...]
    attributive: bool


NOUNS: List[Noun] = (
    [Noun(s, p, g, "person") for s, p, g in _PEOPLE]
    + [Noun(s, None, g, "place") for s, g in _PLACES]
    + [Noun(s, p, g, "food") for s, p, g in _FOOD]
    + [Noun(s, p, g, "drink") for s, p, g in _DRINK]
    + [Noun(s, p, g, "read") for s, p, g in _READ]
    + [Noun(s, p, g, "item") for s, p, g in _ITEMS]
    + [Noun(s, p, g, "animal") for s, p, g in _ANIMALS]
)
VERBS: List[Verb] = [Verb(*v) for v in _VERBS] + [Verb(*v[:5], objects=("place",), prep=v[5]) for v in _PLACE_VERBS]
ADJECTIVES: List[Adjective] = [Adjective(*a) for a in _ADJECTIVES]
NOUNS_BY_KIND: Dict[str, List[Noun]] = {}
for _n in NOUNS:
    NOUNS_BY_KIND.setdefault(_n.kind, []).append(_n)


def lexicon_glosses() -> List[str]:
    """Every base gloss of the language in a fixed order (plural `X+` forms are derived, not listed)."""
    out: List[str] = []
    for g in (
        [p[0] for p in PRONOUNS.values()] + list(POSSESSIVES.values()) + [n.gloss for n in NOUNS] + ["WEATHER"]
        + [v.gloss for v in VERBS] + [a.gloss for a in ADJECTIVES] + [t[1] for t in TIMES] + [n[1] for n in NUMBERS]
        + list(WH_WORDS.values()) + ["NOT", "QUESTION", "BUT", "RIGHT-DIRECTION", "LEFT"]
    ):
        if g not in out:
            out.append(g)
    return out
