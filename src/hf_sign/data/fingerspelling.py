"""The real fingerspelling corpus: letters and words in ~20 sign languages, built from `spoken-to-signed`.

The `spoken-to-signed` package (PyPI) ships a fingerspelling lexicon: one MediaPipe Holistic `.pose`
clip per letter and sign language with an `index.csv` (`path, spoken_language, signed_language,
start, end, words, glosses, priority`). hf-sign reads the clips from the installed package (they
are never copied into this repository) and builds a `DatasetDict` on the `holistic` skeleton:

* **letters** (train split): one row per clip; `text` is the letter as the index spells it (NFC
  normalised), `gloss` its upper-cased gloss (`ß` stays `ß`), one span over the whole clip.
* **words** (all splits): words from the built-in lists below (per spoken language; only words whose
  letters all have a clip in that sign language), spelled letter by letter. Digraph letters that
  have a clip of their own (German `SCH`, Spanish `LL`, Croatian `LJ`, Italian double letters, ...)
  are matched greedily, longest first. Each letter contributes its *hold* (the clip without the hand
  rising into / dropping out of signing space; the first letter keeps its rise, the last its drop;
  long static holds are shortened to `max_hold_frames`), and consecutive letters are joined by a
  minimum-jerk transition. `gloss_spans` tile the word: each transition is split between the two
  letters it joins.
* **held-out words**: a word (case-folded) goes to one split for every language (seeded, stratified
  per spoken language, 80/10/10), so validation and test words never occur in training.

How the clips are read, and what is repaired on the way, is `fingerspelling_clips`.
"""

from __future__ import annotations

import random
import unicodedata
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from ..skeletons.spec import get_skeleton
from .fingerspelling_clips import FPS, LetterClip, load_letter_clips
from .io import SPLITS, render_card, save_corpus
from .resample import minimum_jerk
from .schema import make_sample, sign_features

SIGNER = "fs-lexicon"

# Built-in word lists per spoken language (common everyday words, natural spelling).
WORDS: Dict[str, str] = {
    "en": "house water friend family school book apple mother father sister brother baby happy thanks please sorry "
    "hello world music money coffee table chair phone dog cat bird fish tree flower garden river city train bus car "
    "street doctor teacher student work play sleep dream light night morning summer winter rain snow green black "
    "white yellow purple orange pizza bread cheese milk sugar honey jazz quiz zebra jump yoga kiwi juice box fox taxi "
    "hotel radio video piano queen square",
    "de": "Haus Wasser Freund Familie Schule Buch Apfel Mutter Vater Schwester Bruder Kind danke bitte hallo Welt "
    "Musik Geld Kaffee Tisch Stuhl Hund Katze Vogel Fisch Baum Blume Garten Fluss Stadt Zug Auto Straße Arzt Lehrer "
    "Arbeit Spiel Schlaf Traum Licht Nacht Morgen Sommer Winter Regen Schnee grün schwarz weiß gelb Brot Käse Milch "
    "Zucker Honig Tür Mädchen Bär Löwe Küche Fuß Brücke Öl Übung schön müde Quelle Taxi",
    "pt": "casa amigo escola livro pai feliz obrigado mundo dinheiro mesa cadeira telefone gato peixe flor jardim rio "
    "cidade carro rua professor aluno trabalho sono sonho luz noite chuva neve verde preto branco amarelo queijo "
    "leite mel janela porta sol lua praia cavalo cabelo boca olho nariz mulher homem menino menina comida fruta "
    "laranja banana bolo copo faca garfo prato caixa cabeça criança praça dança",
    "cs": "kočka pes ryba strom škola kniha auto vlak řeka matka otec sestra bratr ruka noha oko ucho hlava srdce "
    "hrad most okno dveře pivo maso zima jaro podzim kolo dort ovoce doktor učitel hudba barva chata ticho Praha Brno "
    "tužka žena muž kluk šaty boty čepice košile hrnek chleba med sestra",
    "hr": "kuća voda prijatelj obitelj škola knjiga jabuka majka otac sestra brat dijete hvala molim zdravo svijet "
    "glazba novac kava stol stolica pas mačka ptica riba drvo cvijet vrt rijeka grad vlak autobus auto ulica "
    "liječnik učitelj posao igra san svjetlo noć jutro ljeto zima kiša snijeg zeleno crno bijelo žuto kruh sir "
    "mlijeko šećer med ljubav džep đak konj",
    "et": "maja vesi sõber pere kool raamat õun ema isa õde vend laps aitäh palun tere maailm muusika raha kohv laud "
    "tool koer kass lind kala puu lill aed jõgi linn rong buss auto tänav arst õpetaja töö mäng uni unistus valgus "
    "öö hommik suvi talv vihm lumi roheline must valge kollane leib juust piim suhkur mesi",
    "el": "σπίτι νερό φίλος οικογένεια σχολείο βιβλίο μήλο μητέρα πατέρας αδελφή αδελφός μωρό ευχαριστώ παρακαλώ "
    "γεια κόσμος μουσική χρήματα καφές τραπέζι καρέκλα σκύλος γάτα πουλί ψάρι δέντρο λουλούδι κήπος ποτάμι πόλη "
    "τρένο λεωφορείο αυτοκίνητο δρόμος γιατρός δάσκαλος δουλειά παιχνίδι ύπνος όνειρο φως νύχτα πρωί καλοκαίρι "
    "χειμώνας βροχή χιόνι πράσινο μαύρο άσπρο κίτρινο ψωμί τυρί γάλα ζάχαρη μέλι θάλασσα ήλιος",
    "it": "casa acqua amico famiglia scuola libro mela madre padre sorella fratello bambino grazie ciao mondo musica "
    "soldi tavolo sedia cane gatto uccello pesce albero fiore giardino fiume treno autobus macchina strada medico "
    "maestro lavoro gioco sonno sogno luce notte mattina estate inverno pioggia neve verde nero bianco giallo pane "
    "formaggio latte zucchero miele pizza pasta mamma ragazzo ragazza cappello bottiglia rosso",
    "ar": "بيت ماء صديق كتاب أم أب أخ أخت ولد بنت شكرا مرحبا عالم مال كلب قط طائر سمك نهر شارع طبيب معلم عمل لعب "
    "نوم حلم نور ليل صباح صيف شتاء مطر ثلج أخضر أسود أبيض أصفر خبز جبن حليب سكر عسل باب شمس قمر بحر يد عين "
    "رأس قلب سلام البيت الولد سؤال بئر رئيس على",
    "lt": "namas vanduo draugas šeima mokykla knyga obuolys motina tėvas sesuo brolis vaikas ačiū prašau labas "
    "pasaulis muzika pinigai kava stalas kėdė šuo katė paukštis žuvis medis gėlė sodas upė miestas traukinys "
    "autobusas mašina gatvė gydytojas mokytojas darbas žaidimas miegas sapnas šviesa naktis rytas vasara žiema "
    "lietus sniegas žalia juoda balta geltona duona sūris pienas cukrus medus",
    "es": "casa agua amigo familia escuela libro manzana madre padre hermana hermano gracias hola mundo dinero mesa "
    "silla perro gato pez flor ciudad tren coche calle maestro trabajo juego sueño luz noche mañana verano invierno "
    "lluvia nieve verde negro blanco amarillo pan queso leche miel niño niña año muchacho caballo llave pollo "
    "cerro tierra carro chico",
    "sk": "dom voda priateľ rodina škola kniha jablko matka otec sestra brat dieťa ďakujem prosím ahoj svet hudba "
    "peniaze káva stôl stolička pes mačka vták ryba strom kvet záhrada rieka mesto vlak autobus auto ulica lekár "
    "učiteľ práca hra spánok sen svetlo noc ráno leto zima dážď sneh zelená čierna biela žltá chlieb syr mlieko "
    "cukor med chlapec",
    "sv": "hus vatten vän familj skola bok äpple mamma pappa syster bror barn tack hej värld musik pengar kaffe bord "
    "stol hund katt fågel fisk träd blomma trädgård flod stad tåg buss bil gata läkare lärare arbete lek sömn dröm "
    "ljus natt morgon sommar vinter regn snö grön svart vit gul bröd ost mjölk socker honung",
    "tr": "ev su arkadaş aile okul kitap elma anne baba kız bebek teşekkür merhaba dünya müzik para kahve masa "
    "sandalye köpek kedi kuş balık ağaç çiçek bahçe nehir şehir tren otobüs araba sokak doktor öğretmen iş oyun "
    "uyku rüya ışık gece sabah yaz kış yağmur kar yeşil siyah beyaz sarı ekmek peynir süt şeker bal",
    "uk": "дім вода друг родина школа книга яблуко мати батько сестра брат дитина дякую привіт світ музика гроші "
    "кава стіл стілець собака кіт птах риба дерево квітка сад річка місто поїзд автобус машина вулиця лікар "
    "вчитель робота гра сон мрія світло ніч ранок літо зима дощ сніг зелений чорний білий жовтий хліб сир молоко "
    "цукор мед ґанок їжа єнот",
}
# Peak joint speed of a letter-to-letter transition, px/frame at 25 fps (a quarter of the ~200 px
# shoulder width of the upstream-normalised clips; their own rise-in motions peak around 30-40).
_MAX_SPEED = 50.0
# Letters that only stand for themselves at the start of a word (the Arabic article).
_WORD_INITIAL_ONLY = {"ar": {"ال"}}


def normalize_letters(text: str, spoken_language: str) -> str:
    """Lower-case key used to match words against letter glosses (not stored anywhere).

    Turkish dotted/dotless i are mapped explicitly; Greek drops accents and final sigma, which
    fingerspelling does not distinguish.
    """
    text = unicodedata.normalize("NFC", text)
    if spoken_language == "tr":
        text = text.replace("I", "ı").replace("İ", "i")
    text = text.lower()
    if spoken_language == "el":
        text = "".join(c for c in unicodedata.normalize("NFD", text) if not unicodedata.combining(c))
        text = unicodedata.normalize("NFC", text).replace("ς", "σ")
    return text


def spell(word: str, letters: Sequence[str], spoken_language: str) -> Optional[List[int]]:
    """Greedy longest-match spelling of `word` with the letter glosses `letters`.

    Returns the indices into `letters`, or `None` when some part of the word has no letter clip.
    """
    keys: Dict[str, int] = {}
    for i, g in enumerate(letters):
        keys.setdefault(normalize_letters(g, spoken_language), i)
    initial_only = {normalize_letters(g, spoken_language) for g in _WORD_INITIAL_ONLY.get(spoken_language, ())}
    order = sorted(keys, key=len, reverse=True)
    w, pos, out = normalize_letters(word, spoken_language), 0, []
    while pos < len(w):
        for k in order:
            if w.startswith(k, pos) and (pos == 0 or k not in initial_only):
                out.append(keys[k])
                pos += len(k)
                break
        else:
            return None
    return out


def gloss_of(letter: str) -> str:
    """Upper-case gloss of an index letter, unless upper-casing changes its length (`ß` -> `SS`)."""
    up = letter.upper()
    return up if len(up) == len(letter) else letter


def _min_jerk(x0: np.ndarray, x1: np.ndarray, n: int) -> np.ndarray:
    """`n` in-between frames of a minimum-jerk path from x0 to x1 (both excluded)."""
    s = minimum_jerk(np.arange(1, n + 1) / (n + 1))
    return (x0[None] + (x1 - x0)[None] * s[:, None]).astype(np.float32)


def compose_word(
    clips: Sequence[LetterClip], transition_frames: int = 4, max_hold_frames: int = 10
) -> Tuple[np.ndarray, List[List[int]]]:
    """Concatenate letter clips into one word with minimum-jerk transitions. Returns (features, spans)."""
    segments = []
    for i, c in enumerate(clips):
        first, last = i == 0, i == len(clips) - 1
        a, b = c.hold
        if c.static and b - a > max_hold_frames:  # keep the part next to a kept rise/drop, else the centre
            if first:
                b = a + max_hold_frames
            elif last:
                a = b - max_hold_frames
            else:
                a += (b - a - max_hold_frames) // 2
                b = a + max_hold_frames
        segments.append(c.features[0 if first else a : len(c.features) if last else b])
    frames, spans, cursor = [], [], 0
    for i, seg in enumerate(segments):
        if i > 0:
            prev = segments[i - 1][-1]
            # longer reaches take longer: peak speed of a minimum-jerk move is 1.875 x its mean speed
            reach = float(np.abs(seg[0] - prev).max())
            n = int(np.clip(np.ceil(1.875 * reach / _MAX_SPEED), transition_frames, 3 * transition_frames))
            trans = _min_jerk(prev, seg[0], n)
            half = n // 2
            spans[-1][1] += half
            frames.append(trans)
            cursor += n
            spans.append([cursor - (n - half), cursor + len(seg)])
        else:
            spans.append([0, len(seg)])
        frames.append(seg)
        cursor += len(seg)
    return np.concatenate(frames).astype(np.float32), spans


def assign_word_splits(seed: int = 0, fractions: Tuple[float, float, float] = (0.8, 0.1, 0.1)) -> Dict[str, str]:
    """Case-folded word -> split, the same for every language that has the word (seeded)."""
    rng = random.Random(seed)
    assign: Dict[str, str] = {}
    for spoken in sorted(WORDS):
        new = [k for k in dict.fromkeys(w.casefold() for w in WORDS[spoken].split()) if k not in assign]
        rng.shuffle(new)
        n_test, n_val = round(len(new) * fractions[2]), round(len(new) * fractions[1])
        for i, k in enumerate(new):
            assign[k] = "test" if i < n_test else "validation" if i < n_test + n_val else "train"
    return assign


def _generate(seed, languages, words_per_language, face, transition_frames, max_hold_frames, include_mirrored):
    spec_name = "holistic" if face else "holistic_noface"
    stats: Dict = {}
    clips = load_letter_clips(languages, face=face, include_mirrored=include_mirrored, stats=stats)
    assign = assign_word_splits(seed)
    splits: Dict[str, List[Dict]] = {s: [] for s in SPLITS}
    per_lang: Dict[str, Dict[str, object]] = {}
    for lang in sorted(clips):
        lc = clips[lang]
        letters = [c.letter for c in lc]
        for i, c in enumerate(lc):
            row = make_sample(
                id=f"fs-{lang}-letter-{i:03d}",
                text=c.letter,
                gloss=[gloss_of(c.letter)],
                gloss_spans=[[0, len(c.features)]],
                poses=c.features,
                fps=FPS,
                representation=spec_name,
                language=lang,
                signer=SIGNER,
                source=c.path,
            )
            splits["train"].append(row)
        spoken = lc[0].spoken_language
        by_split: Dict[str, List[Tuple[str, List[int]]]] = {s: [] for s in SPLITS}
        for word in dict.fromkeys(WORDS.get(spoken, "").split()):
            seq = spell(word, letters, spoken)
            if seq is not None and len(seq) >= 2:
                by_split[assign[word.casefold()]].append((word, seq))
        if words_per_language is not None:
            rng = random.Random(f"{seed}-{lang}")
            n_test = n_val = 1 if words_per_language >= 3 else 0
            quota = {"train": words_per_language - n_test - n_val, "validation": n_val, "test": n_test}
            for s in SPLITS:
                rng.shuffle(by_split[s])
                by_split[s] = by_split[s][: quota[s]]
        for s in SPLITS:
            for word, seq in by_split[s]:
                feats, spans = compose_word([lc[i] for i in seq], transition_frames, max_hold_frames)
                row = make_sample(
                    id=f"fs-{lang}-word-{word.casefold()}",
                    text=word,
                    gloss=[gloss_of(letters[i]) for i in seq],
                    gloss_spans=spans,
                    poses=feats,
                    fps=FPS,
                    representation=spec_name,
                    language=lang,
                    signer=SIGNER,
                )
                splits[s].append(row)
        per_lang[lang] = {"spoken": spoken, "letters": len(lc), **{s: [w for w, _ in by_split[s]] for s in SPLITS}}
    return splits, per_lang, stats


def generate_fingerspelling(
    seed: int = 0,
    languages: Optional[Sequence[str]] = None,
    words_per_language: Optional[int] = None,
    face: bool = True,
    transition_frames: int = 4,
    max_hold_frames: int = 10,
    include_mirrored: bool = False,
) -> Dict[str, List[Dict]]:
    """Rows of the fingerspelling corpus per split (see `build_fingerspelling` for the arguments)."""
    return _generate(seed, languages, words_per_language, face, transition_frames, max_hold_frames, include_mirrored)[
        0
    ]


def build_fingerspelling(
    out_dir: str | Path,
    seed: int = 0,
    languages: Optional[Sequence[str]] = None,
    words_per_language: Optional[int] = None,
    face: bool = True,
    transition_frames: int = 4,
    max_hold_frames: int = 10,
    include_mirrored: bool = False,
):
    """Build the fingerspelling corpus under `out_dir` (Parquet + dataset card) and return its `DatasetDict`.

    Args:
        out_dir (`str` or `Path`): output folder (`datasets.load_dataset(out_dir)` loads it).
        seed (`int`, defaults to 0): seeds the word split and the `words_per_language` sample.
        languages (`Sequence[str]`, *optional*): sign-language codes to keep (e.g. `["ase", "gsg"]`); all by default.
        words_per_language (`int`, *optional*): at most this many words per sign language (1 validation and
            1 test word when >= 3, the rest train); all matching words by default.
        face (`bool`, defaults to `True`): `holistic` (with the face subset) or `holistic_noface` poses.
        transition_frames (`int`, defaults to 4): minimum length of a letter-to-letter transition (frames at
            25 fps); longer reaches get up to 3x as many.
        max_hold_frames (`int`, defaults to 10): static letter holds inside words are shortened to this.
        include_mirrored (`bool`, defaults to `False`): also keep index rows that reuse another language's clips.
    """
    splits, per_lang, stats = _generate(
        seed, languages, words_per_language, face, transition_frames, max_hold_frames, include_mirrored
    )
    spec = get_skeleton("holistic" if face else "holistic_noface")
    fields = _card_fields(splits, per_lang, stats, spec, seed)
    card = render_card(
        "fingerspelling_dataset_card.md",
        transition_frames=transition_frames,
        max_hold_frames=max_hold_frames,
        **fields,
    )
    return save_corpus(splits, sign_features(spec.feature_dim), out_dir, card)


def _card_fields(splits, per_lang, stats, spec, seed) -> Dict[str, object]:
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg_version = version("spoken-to-signed")
    except PackageNotFoundError:
        pkg_version = "unknown"
    table = [
        "| sign language | spoken | letters | train words | validation words | test words | "
        "interpolated values | values on an anchor | clips resampled to 25 fps |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    held = []
    for lang, p in per_lang.items():
        s = stats["languages"][lang]
        table.append(
            f"| {lang} | {p['spoken']} | {p['letters']} | {len(p['train'])} | {len(p['validation'])} "
            f"| {len(p['test'])} | {s['interpolated'] / s['values']:.1%} | {s['anchored'] / s['values']:.1%} | "
            f"{s['resampled']} |"
        )
        val, test = ", ".join(p["validation"]) or "-", ", ".join(p["test"]) or "-"
        held.append(f"- **{lang}**: validation: {val}; test: {test}")
    n_letters = sum(p["letters"] for p in per_lang.values())
    return {
        "package_version": pkg_version,
        "representation": spec.name,
        "num_joints": spec.num_joints,
        "feature_dim": spec.feature_dim,
        "num_languages": len(per_lang),
        "num_letters": n_letters,
        "num_train": len(splits["train"]),
        "num_validation": len(splits["validation"]),
        "num_test": len(splits["test"]),
        "seed": seed,
        "language_table": "\n".join(table),
        "held_out_words": "\n".join(held),
        "mirrored": ", ".join(sorted(stats["mirrored"])) or "none",
        "repairs": "\n".join(f"- {r}" for r in stats["repairs"]) or "- none",
    }
