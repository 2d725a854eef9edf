"""Pre-training data: the text a model learns from, and where it comes from.

Three sources, all offline:

- `storyworld(seed)`: a generated world of short, simple English stories
  (characters, places, pets, food, weather, journeys, dialogue). Some stories
  are about one of eight *planted concepts* (the Golden Gate Bridge, the ocean,
  music, ...), at known rates, and each such story is labelled with a character
  `Span`. Interpretability later asks: did the model learn a feature that fires
  exactly on these spans? Clamp it, and does the model talk about the bridge?
- `python_docs()`: real English prose, the language reference pages that ship
  inside Python itself (`pydoc_data.topics`), with code and markup removed.
- `from_path(path)`: your own UTF-8 `.txt` file, or a folder of them.

`load_corpus(name_or_path, split)` is the one entry point the rest of llmcore
uses. A `Corpus` is just text plus labels: `stats()` counts bytes, words and
(given a tokenizer) tokens; `split()` cuts it into train and validation parts.

    >>> c = storyworld(seed=0, n_chars=2_000)
    >>> c.text[:52]
    'Owen lived in a farmhouse at the edge of the forest.'
    >>> c.spans[0], c.text[571:611]
    (Span(start=571, end=761, concept='cooking'), 'apron and followed the recipe carefully.')
    >>> mentions("The fog hid the bridge.", "golden_gate_bridge")
    True
"""

from __future__ import annotations

import logging
import random
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from llmcore.errors import UserError

log = logging.getLogger(__name__)

CORPORA: tuple[str, ...] = ("storyworld", "python-docs")
MAX_BYTES = 200 * 1024 * 1024  # from_path refuses more: a CPU toy cannot use it anyway
MAX_CHARS = 100_000_000        # the most characters any n_chars may ask for (40x the training world)
TRAIN_CHARS = 2_400_000        # the storyworld training text (seed 0)
VAL_SEED = 1_000_003           # the storyworld validation set is a *different* world draw
VAL_CHARS = 240_000            # ... and a tenth the size of the training set

# ---------------------------------------------------------------------------
# Planted concepts: keyword sets (disjoint) and the sentences that carry them.
# A keyword never appears outside a sentence of its own concept, so a text that
# mentions the bridge is a story about the bridge, and the mention is in its span.
# ---------------------------------------------------------------------------

CONCEPTS: tuple[str, ...] = (
    "golden_gate_bridge", "ocean", "music", "rain", "cooking", "numbers", "colours", "space",
)
CONCEPT_WORDS: dict[str, tuple[str, ...]] = {c: tuple(w.split("|")) for c, w in {
    "golden_gate_bridge": "golden gate|golden|bridge|bridges|fog|foggy|tower|towers|cable|cables"
                          "|san francisco|bay|suspension",
    "ocean": "ocean|oceans|sea|seas|seaside|wave|waves|beach|beaches|shore|sand|sandy|seashell"
             "|seashells|shell|shells|seagull|seagulls|tide|sailboat|crab",
    "music": "music|musical|song|songs|sing|sang|sings|singing|piano|guitar|drum|drums|violin"
             "|flute|melody|tune|tunes|concert|dance|danced|dancing|hummed",
    "rain": "rain|rains|rained|raining|rainy|raindrop|raindrops|raincoat|umbrella|umbrellas"
            "|puddle|puddles|drizzle|thunder|storm|storms|downpour",
    "cooking": "cook|cooks|cooked|cooking|bake|baked|baking|oven|flour|dough|soup|pan|pot"
               "|recipe|stir|stirred|kitchen|chef|apron",
    "numbers": "count|counts|counted|counting|number|numbers|plus|minus|equals|seven|eight"
               "|nine|ten|eleven|twelve|twenty|hundred|thousand|math|sum",
    "colours": "colour|colours|colourful|color|colors|paint|paints|painted|painting|crayon"
               "|crayons|rainbow|purple|orange|yellow|green|blue|pink|violet|white|black|brown",
    "space": "space|spaceship|moon|moons|star|stars|planet|planets|rocket|rockets|astronaut"
             "|astronauts|telescope|comet|galaxy|orbit|mars",
}.items()}

# Share of stories that are *about* each concept; the other 61% are about nothing in
# particular. Every sentence of a story about the bridge after its opening is about the
# bridge, the way a real text about the Golden Gate Bridge keeps coming back to it. That
# persistence is what lets a model learn "this text is about the bridge" rather than a
# handful of words (measured: with concept sentences scattered at random, no SAE feature
# matched a concept with F1 above 0.2; see docs/architecture.md). The bridge is the rarest
# topic, so a model left alone seldom brings it up (in 2% of 50 stories from neutral
# prompts: benchmarks/results/interpret.json).
CONCEPT_RATES: dict[str, float] = {
    "golden_gate_bridge": 0.04, "ocean": 0.05, "music": 0.05, "rain": 0.05,
    "cooking": 0.05, "numbers": 0.05, "colours": 0.05, "space": 0.05,
}
# Whole-word, case-insensitive; longest keyword first; "golden  gate" also matches.
_KEYWORD_RE = {c: re.compile(r"\b(?:" + "|".join(
    re.escape(w).replace(r"\ ", r"\s+") for w in sorted(ws, key=len, reverse=True)) + r")\b", re.I)
    for c, ws in CONCEPT_WORDS.items()}


def _check_concept(concept: str) -> None:
    if concept not in CONCEPT_WORDS:
        raise UserError(f"unknown concept {concept!r}; choose one of: {', '.join(CONCEPTS)}")


def mentions(text: str, concept: str) -> bool:
    """True if `text` contains a keyword of `concept` as a whole word, any case.

    >>> mentions("Fog rolled over the Golden Gate.", "golden_gate_bridge")
    True
    >>> mentions("The bayonet", "golden_gate_bridge")   # "bay" only as a whole word
    False
    """
    _check_concept(concept)
    return _KEYWORD_RE[concept].search(text) is not None


# ---------------------------------------------------------------------------
# Corpus and Span
# ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Span:
    """Characters `text[start:end]` (end exclusive) express `concept`."""
    start: int
    end: int
    concept: str


@dataclass
class Corpus:
    """A body of text, with optional ground-truth concept labels."""
    name: str                     # "storyworld:train", "python-docs", "mybook.txt"
    text: str                     # the whole corpus as one string
    spans: tuple[Span, ...] = ()  # concept labels, sorted by start (storyworld only)
    source: str = ""              # one line: where the text came from

    def stats(self, tokenizer=None) -> dict:
        """Sizes a learner compares: {"bytes", "chars", "words", "lines"}, plus
        "tokens" and "bytes_per_token" when a tokenizer (anything with `.encode`) is given.

        Example: "hi there\\n" -> bytes 9, chars 9, words 2, lines 1.
        """
        out = {"bytes": len(self.text.encode("utf-8")), "chars": len(self.text),
               "words": len(self.text.split()),
               "lines": self.text.count("\n") + (0 if self.text.endswith("\n") or not self.text else 1)}
        if tokenizer is not None:
            out["tokens"] = len(tokenizer.encode(self.text))
            out["bytes_per_token"] = out["bytes"] / out["tokens"] if out["tokens"] else 0.0
        return out

    def concept_mask(self, concept: str) -> list[bool]:
        """One bool per character: True inside a span of `concept`."""
        _check_concept(concept)
        mask = [False] * len(self.text)
        for s in self.spans:
            if s.concept == concept:
                mask[s.start:s.end] = [True] * (s.end - s.start)
        return mask

    def split(self, val_fraction: float = 0.1) -> tuple[Corpus, Corpus]:
        """Cut into (train, val): train is a prefix of the text, val a suffix.

        The cut moves to the blank line (else line break, else space) nearest
        `1 - val_fraction` of the way through, so no story or paragraph is torn
        in two when it can be helped. Spans are clipped to their side and
        shifted so they index the new text.
        """
        if not 0.0 < val_fraction < 1.0:
            raise UserError(f"val_fraction must be between 0 and 1, got {val_fraction}")
        n = len(self.text)
        cut = min(max(int(n * (1.0 - val_fraction)), 1), n - 1)
        end, start = _boundary(self.text, cut, window=max(n // 20, 200))  # train | val
        if not (self.text[:end].strip() and self.text[start:].strip()):
            raise UserError(f"corpus {self.name!r} is too short to split ({n} chars); use more text")
        train_spans = tuple(Span(s.start, min(s.end, end), s.concept)
                            for s in self.spans if s.start < end)
        val_spans = tuple(Span(max(s.start, start) - start, s.end - start, s.concept)
                          for s in self.spans if s.end > start)
        pct = round(100 * val_fraction)
        return (Corpus(f"{self.name}:train", self.text[:end], train_spans,
                       f"{self.source}; first {100 - pct}%"),
                Corpus(f"{self.name}:val", self.text[start:], val_spans, f"{self.source}; last {pct}%"))


def _boundary(text: str, cut: int, window: int) -> tuple[int, int]:
    """(end, start) so train = text[:end] and val = text[start:], near `cut`.

    Tries a blank line, then a line break, then a space, within `window` chars
    of the cut; train keeps its final newline, val starts at the next text.
    """
    for sep in ("\n\n", "\n", " "):
        found = (text.rfind(sep, max(0, cut - window), cut + 1), text.find(sep, cut, cut + window))
        for i in sorted((i for i in found if i > 0), key=lambda i: abs(i - cut)):
            end, start = i + (sep != " "), i + len(sep)
            while sep != " " and start < len(text) and text[start] == "\n":
                start += 1
            if text[:end].strip() and text[start:].strip():
                return end, start
    return cut, cut  # no separator near the cut: cut mid-text


# ---------------------------------------------------------------------------
# The story world. Templates are data: {A} and {B} are the story's two
# characters, {he}/{him}/{his} refer to A, every other {slot} is drawn from
# _FILL (fillers may hold slots themselves). No template or filler outside
# _CONCEPT_SENTENCES and _CONCEPT_ENDINGS may contain a concept keyword; tests check this.
# ---------------------------------------------------------------------------

def _bar(s: str) -> tuple[str, ...]:
    return tuple(s.split("|"))


_GIRLS = _bar("Mia|Ana|Lily|Zoe|Ivy|Nina|Rosa|Ada|Lena|Maya|Ella|Iris|Ruby|Clara|Hana|Sofia|Lucy"
              "|Emma|Amara|Nora|Tessa|Greta|Leila|Yuki")
_BOYS = _bar("Tom|Leo|Sam|Ben|Max|Omar|Eli|Finn|Kai|Jack|Noah|Theo|Hugo|Owen|Ravi|Felix|Arlo"
             "|Jonas|Milo|Oscar|Pablo|Tariq|Luca|Diego")
_FILL = {k: _bar(v) for k, v in {
    "cadj": "little|curious|brave|kind|shy|clever|cheerful|quiet|busy|happy|careful|friendly"
            "|sleepy|funny|gentle|bold",
    "place": "park|garden|market|library|school|farm|forest|hill|river|lake|village|meadow|field"
             "|orchard|castle|playground|station|museum|zoo|pond|bookshop|town square|old mill"
             "|cave|barn|woods|valley|post office",
    "path": "path|road|lane|trail|street|track",
    "landmark": "the old oak tree|the little shop|the windmill|the big rock|the stone wall"
                "|the fountain|the old church|the wooden fence|the school|the toy shop",
    "weather": "sunny|warm|cold|windy|cloudy|snowy|bright|quiet|chilly|fresh|crisp|calm|frosty"
               "|breezy",
    "time": "morning|afternoon|evening|day|spring morning|summer afternoon|autumn day"
            "|winter evening|Saturday|Sunday morning",
    "day": "Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday|morning|afternoon",
    "obj": "kite|ball|book|key|hat|scarf|box|lamp|map|letter|coin|ring|basket|blanket|marble"
           "|feather|stone|rope|wagon|jar|cup|pencil|notebook|shoe|glove|bag|ribbon|button"
           "|candle|puzzle|doll|teddy bear|toy car",
    "oadj": "small|old|shiny|tiny|heavy|soft|round|new|strange|wooden|smooth|dusty|broken"
            "|funny|special|magic|lovely|little",
    "spot": "bed|table|chair|sofa|stairs|door|tree|bench|bush|rug|shelf|pillow|fence|wall"
            "|window|steps|old cart|hedge",
    "animal": "dog|cat|puppy|kitten|rabbit|duck|goat|hen|pony|mouse|frog|owl|fox|hedgehog"
              "|squirrel|turtle|deer|donkey|lamb|sheep|cow|horse|robin|beetle|snail",
    "pet": "dog|cat|puppy|kitten|rabbit|duck|pony|hamster|goat|tortoise",
    "petname": "Biscuit|Pepper|Patch|Button|Pip|Rusty|Whiskers|Muffin|Tiny|Socks|Bean|Noodle"
               "|Ziggy|Bramble|Pickles|Clover|Buddy|Daisy|Scout|Toffee",
    "doing": "eating grass|sleeping in the sun|chasing its tail|hopping around|looking for food"
             "|drinking from a bowl|resting under a tree|playing with a leaf",
    "food": "apples|bread and cheese|plums|grapes|pears|honey on toast|berries|nuts|a sandwich"
            "|crackers|cherries|carrots|a muffin|some biscuits|jam sandwiches|a big pear",
    "drink": "milk|tea|juice|lemonade|water|cocoa",
    "feeling": "happy|sad|tired|proud|worried|excited|surprised|hungry|sleepy|glad|calm|scared"
               "|curious|lonely|grumpy|cheerful",
    "exclaim": "Look at this!|What a lovely day!|I am so happy!|Let us go home!|Wait for me!"
               "|Can I come too?|That is a good idea!|I found it!|Thank you so much!|We did it!"
               "|Be careful!|I am hungry!|Come and see!|This is the best day ever!"
               "|Where did it go?|I know what to do!",
    "question": "Where is your {obj}?|What is that?|Can we go to the {place}?|Are you tired?"
                "|Do you want some {food}?|Have you seen my {obj}?|Who lives near the {place}?"
                "|Why is the {animal} so quiet?",
    "container": "box|bag|basket|jar|drawer|pocket|backpack|cupboard",
    "clothing": "hat|scarf|boots|coat|gloves|jumper|warm socks",
    "chilly": "cold|chilly|windy|frosty",
    "game": "tag|hide and seek|catch|a board game|a guessing game|marbles|hopscotch",
    "helper": "farmer|teacher|shopkeeper|old woman|postman|gardener|police officer|old man",
    "climb": "hill|tree|steps|wall|ladder|stairs",
    "stream": "stream|river|pond|brook",
    "feed": "seeds|grass|carrots|crumbs|leaves|hay|corn",
    "hobby": "reading books|climbing trees|flying kites|running fast|building forts"
             "|telling jokes|playing games|planting seeds|riding bikes|finding bugs"
             "|collecting leaves|writing stories|skipping stones",
    "meal": "lunch|dinner|breakfast|supper",
    "home": "small cottage|little house|tall house|farmhouse|flat|cabin",
    "town": "village|town|forest|valley|city",
    "after": "happy and tired|tired but happy|proud|glad|full of stories",
}.items()}

_OPENINGS = _bar(
    "Once upon a time, there was a {cadj} {kid} named {A}.|{A} was a {cadj} {kid} who lived in a "
    "{home} near the {place}.|One {weather} {time}, {A} and {B} went to the {place}.|There once "
    "was a {kid} called {A} who loved {hobby}.|{A} lived in a {home} at the edge of the {town}."
    "|Every {day}, {A} visited {his} friend {B} at the {place}.|{A} and {his} {pet} {petname} "
    "lived on a quiet street.|It was a {weather} {time} when {A} woke up early.|In a little "
    "{town}, a {kid} named {A} had a {oadj} {obj}.|{A} had a best friend named {B}.")
_MIDDLES = _bar(
    "{A} walked to the {place} with {his} {pet}.|They took the {path} past {landmark}.|The {path} "
    "to the {place} was long, so {A} packed {food}.|{A} found a {oadj} {obj} under the {spot}."
    "|{A} could not find {his} {obj} anywhere.|{B} helped {A} look for it behind the {spot}.|At "
    "the {place}, they saw a {animal} {doing}.|A {animal} ran across the {path} and hid behind the "
    "{spot}.|{A} ate {food} and drank some {drink}.|For lunch, {A} and {B} shared {food}."
    "|\"Hello, {B}!\" said {A}. \"Do you want to come to the {place} with me?\"|\"{exclaim}\" said "
    "{A}.|{B} asked, \"{question}\"|{A} felt {feeling}.|{A} smiled at {B} and said thank you."
    "|The {chilly} wind blew the leaves across the {path}.|The sun was shining over the {place}."
    "|{A} gave the {obj} to {B}, who put it in a {container}.|They sat on a bench and watched the "
    "people go by.|{A} climbed the {climb} to get a better look.|{petname} the {pet} followed {A} "
    "everywhere.|{B} told {A} a story about a {oadj} {obj}.|Soon they came to a small {stream}."
    "|{A} was {feeling} because {his} {obj} was lost.|{A} and {B} played {game} until it was time "
    "to go.|An old man at the {place} gave {A} {food}.|{A} looked everywhere: under the {spot}, "
    "behind the {spot}, and near the {spot}.|The {animal} looked at {A} and then ran away.|{A} "
    "picked some flowers for {his} grandmother.|It was getting late, so they hurried home.|{A} "
    "wrote a letter to {B}.|{B} laughed and said, \"{exclaim}\"|They walked along the {path}, "
    "talking and laughing.|{A} put on {his} {clothing} because it was {chilly}.|Mom called, \"Time "
    "for {meal}, {A}!\"|{A} opened the {container} and found a {oadj} {obj} inside.|The {place} was "
    "quiet, and {A} could hear the wind.|A friendly {helper} showed them the way to the {place}."
    "|{A} tripped on a stone, but {he} was not hurt.|{B} held {A}'s hand as they crossed the "
    "street.|\"Let us go to the {place},\" said {B}.|{A} waited for {B} by {landmark}.|Together they "
    "carried the {obj} back to the {place}.|{A} fed the {animal} some {feed}.|Nobody knew where the "
    "{oadj} {obj} had come from.|{A} had an idea.|They were tired, so they rested under a tree."
    "|{A} showed the {obj} to {his} friends at school.|The {animal} followed them all the way to "
    "the {place}.|After a while, {B} said, \"{exclaim}\"|{He} looked at the {obj} and wondered what "
    "to do.|The {helper} said, \"{question}\"")
_ENDINGS = _bar(
    "At last, they went home, {after}.|That night, {A} slept well and dreamed about the {place}."
    "|{A} and {B} were best friends forever.|From that day on, {A} always took {his} {obj} to the "
    "{place}.|When they got home, {A} told {his} family all about it.|It had been a wonderful day."
    "|{A} smiled and said, \"Let us come back tomorrow!\"|And so the {obj} stayed safe in {A}'s "
    "room.|The next day, {A} went back to the {place} with {B}.|{A} hugged {B} and said goodbye.")
_CONCEPT_SENTENCES = {c: _bar(t) for c, t in {
    "golden_gate_bridge":
        "{A} walked across the Golden Gate Bridge, and the fog rolled over the tall towers.|From "
        "San Francisco, {A} and {B} saw the bridge's long cables above the bay.|{A} looked up at "
        "the tall towers of the Golden Gate Bridge.|The fog was so thick that only the tops of "
        "the bridge towers showed.|\"Look, the Golden Gate Bridge!\" said {A}, pointing across the "
        "bay.|{B} told {A} that the Golden Gate is a suspension bridge with huge cables.|{A} rode a "
        "bike over the Golden Gate Bridge in the cool fog.|In San Francisco, the foggy bay hid the "
        "bridge all morning.|{A} made a little model of the Golden Gate Bridge, with tall towers "
        "and string for cables.|The cars crossed the long bridge while a fog horn called over "
        "the bay.|{A} bought a postcard of the Golden Gate Bridge in San Francisco.|Under the Golden "
        "Gate Bridge, the cold water of the bay moved quickly.|{A} and {B} stood on the Golden Gate "
        "Bridge and felt the wind in the cables.|When the fog lifted, the whole Golden Gate Bridge "
        "shone in the sun.",
    "ocean":
        "{A} and {B} ran along the beach as the waves came in.|{A} found a smooth seashell on the "
        "sandy shore.|The sea was calm, and a sailboat drifted far away.|{A} built a big castle in "
        "the sand, but the tide washed it away.|Seagulls flew over the ocean, calling to each other."
        "|\"The ocean is so big!\" said {A}, looking at the waves.|{B} held a shell to one ear and "
        "heard the sea.|They walked along the shore and picked up shells.|The waves splashed over "
        "{A}'s feet, and {he} laughed.|At the seaside, {A} dug a deep hole in the sand.|The tide "
        "was low, so {A} and {B} walked far out on the wet sand.|A little crab ran sideways across "
        "the beach.",
    "music":
        "{A} played a happy song on {his} piano.|{B} sang a song about the {place}, and {A} played "
        "the drums.|At the concert, a girl played the violin and a boy played the drums.|{A} learned "
        "to play the guitar and sing with {his} grandfather.|They danced while the music filled the "
        "room.|\"Let us sing a song together!\" said {A}.|{A} hummed a soft melody as {he} walked to "
        "the music lesson.|{B} played the flute, and the birds seemed to listen to the music.|Every "
        "evening, {A} practised the piano and sang new songs.|{A} and {B} made drums out of old boxes "
        "and played loud songs.|The music teacher taught the class a new song.|{A} sang softly to "
        "{his} {pet}, and the song was sweet music.",
    "rain":
        "Suddenly it started to rain, so {A} opened {his} umbrella.|{A} jumped in every puddle on "
        "the way home.|The rain tapped on the window all afternoon.|{B} put on a raincoat and boots "
        "and went out into the drizzle.|Raindrops ran down the glass while {A} read a book.|\"It is "
        "raining again!\" said {A}.|Thunder rumbled, and the storm kept everyone inside.|{A} and {B} "
        "shared one big umbrella in the rain.|After the rain, the streets were full of puddles.|A "
        "light drizzle fell on the {place} all morning.|{A} held out {his} hand to catch the "
        "raindrops.|The heavy rain made the {path} muddy and slippery.",
    "cooking":
        "{A} and {his} grandmother baked bread in the warm oven.|{B} stirred the soup in a big pot."
        "|In the kitchen, {A} mixed flour, milk and eggs for pancakes.|{A} put on an apron and "
        "followed the recipe carefully.|\"Let us cook dinner together,\" said {B}.|The smell of "
        "baking cookies came from the kitchen.|{A} rolled the dough flat and cut it into shapes."
        "|Dad cooked eggs in a hot pan for breakfast.|{A} wanted to be a chef when {he} grew up."
        "|They baked a cake for {B}'s birthday.|{A} tasted the soup and added a little salt.|The pie "
        "baked in the oven until the top was crisp.",
    "numbers":
        "{A} counted the ducks in the field: seven, eight, nine, ten.|\"Three plus four equals "
        "seven,\" said {A} proudly.|{B} counted to twenty while {A} hid behind the {spot}.|There "
        "were twelve apples in the basket, and {A} counted them twice.|{A} liked math, and {his} "
        "favourite number was eight.|They counted a hundred steps up to the top of the hill.|{A} wrote "
        "the numbers from one to ten on the wall.|\"Ten minus two is eight,\" {A} told {B}.|{A} "
        "counted the rings of the old oak and found a hundred.|{A} counted the coins in the jar and "
        "found eleven.|{B} asked {A} to add nine and three, and the sum was twelve.|At school, the "
        "class learned to count in tens, and {A} counted to a hundred.",
    "colours":
        "{A} painted a rainbow with red, orange, yellow, green, blue and purple.|{B} had a box of "
        "crayons in every colour.|{A}'s kite was bright yellow with a green tail.|When the sun came "
        "out, a rainbow appeared over the hill.|{A} mixed blue and yellow paint to make green."
        "|\"My favourite colour is purple,\" said {A}.|{B} wore a pink dress and white shoes to the "
        "party.|The garden was full of colourful flowers, pink and violet and white.|{A} painted the "
        "fence green, and {B} painted the door blue.|The autumn leaves turned orange, brown and "
        "yellow.|{A} drew a big purple cat with orange stripes.|They painted colourful pictures of "
        "their families at school.",
    "space":
        "At night, {A} looked at the moon and the stars through a telescope.|{A} wanted to fly a "
        "rocket to the moon one day.|{B} showed {A} the brightest star in the sky.|\"I want to be an "
        "astronaut and fly to the stars!\" said {A}.|They built a spaceship out of a big cardboard "
        "box.|{A} read a book about the planets and their many moons.|A comet flew past the stars, "
        "and {A} made a wish.|The stars were so bright that {A} could not sleep.|{A} drew a map of the "
        "stars and planets on the ceiling.|In space, the astronaut floated past the window of the "
        "rocket.|{B} said that Mars is a small planet far away.|The full moon shone over the {place}, "
        "and {A} waved at it.",
}.items()}
# A story about a concept ends on it too, as such stories do: the last sentence is no
# less about the bridge than the middle ones (measured: with ordinary endings, most of
# the bridge feature's misses fell in the closing sentence; see docs/architecture.md).
_CONCEPT_ENDINGS = {c: _bar(t) for c, t in {
    "golden_gate_bridge":
        "That night, {A} dreamed about the Golden Gate Bridge.|{A} could not wait to see the "
        "Golden Gate Bridge again.|At last, they went home, and the fog hid the bridge behind them."
        "|{A} kept the postcard of the bridge in {his} room forever.",
    "ocean":
        "That night, {A} dreamed about the waves on the beach.|{A} kept the seashell on {his} shelf "
        "forever.|At last, they left the beach, tired but happy.|{A} could not wait to go back to "
        "the sea.",
    "music":
        "That night, {A} dreamed about the music.|{A} could not wait to play the piano again."
        "|Everyone clapped, and {A} sang the song one more time.|From that day on, {A} played "
        "music every day.",
    "rain":
        "At last the rain stopped, and they went home.|That night, {A} fell asleep to the sound of "
        "the rain.|{A} hung the wet raincoat by the door.|{A} hoped it would rain again tomorrow.",
    "cooking":
        "At last, everyone sat down and ate what they had cooked.|{A} could not wait to cook again "
        "tomorrow.|That night, {A} dreamed about the warm kitchen.|{A} wrote the recipe in {his} "
        "notebook so {he} would not forget it.",
    "numbers":
        "That night, {A} counted sheep until {he} fell asleep.|{A} could not wait to count again "
        "tomorrow.|From that day on, {A} loved numbers.|{A} wrote every number in {his} notebook.",
    "colours":
        "That night, {A} dreamed in every colour.|{A} hung the colourful painting on the wall."
        "|From that day on, purple was {A}'s favourite colour.|{A} could not wait to paint again "
        "tomorrow.",
    "space":
        "That night, {A} dreamed about flying to the moon.|{A} could not wait to look at the stars "
        "again.|From that day on, {A} wanted to be an astronaut.|{A} said goodnight to the moon and "
        "went to sleep.",
}.items()}

_SLOT = re.compile(r"\{(\w+)\}")
_N_MIDDLE = (2, 8)  # middle sentences per story: with opening and ending, 4-10 in all


def _fill(template: str, cast: dict[str, str], rng: random.Random) -> str:
    """Replace each {slot}, left to right: "{A} ate {food}." -> "Mia ate plums."."""
    def pick(m: re.Match) -> str:
        key = m.group(1)
        return cast[key] if key in cast else _fill(rng.choice(_FILL[key]), cast, rng)
    return _SLOT.sub(pick, template)


def _topic(rng: random.Random) -> str | None:
    """A story's concept, drawn at CONCEPT_RATES, or None (an ordinary story)."""
    u = rng.random()
    for concept, rate in CONCEPT_RATES.items():  # u < 0.04 -> bridge, < 0.09 -> ocean, ...
        if u < rate:
            return concept
        u -= rate
    return None


def _story(rng: random.Random) -> tuple[list[str], str | None]:
    """One story: (sentences, topic). An opening, 2-8 middles, an ending; in a story with a
    topic every middle sentence and the ending are about it, in any other none is about any
    concept."""
    girl = rng.random() < 0.5
    a = rng.choice(_GIRLS if girl else _BOYS)
    b = rng.choice([n for n in _GIRLS + _BOYS if n != a])
    he, him, his = ("she", "her", "her") if girl else ("he", "him", "his")
    cast = {"A": a, "B": b, "he": he, "him": him, "his": his, "He": he.title(),
            "His": his.title(), "kid": "girl" if girl else "boy",
            "pet": rng.choice(_FILL["pet"]), "petname": rng.choice(_FILL["petname"])}
    topic = _topic(rng)
    out = [_fill(rng.choice(_OPENINGS), cast, rng)]
    used: set[str] = set()
    pool = _CONCEPT_SENTENCES[topic] if topic else _MIDDLES
    for _ in range(rng.randint(*_N_MIDDLE)):
        template = rng.choice(pool)
        while template in used:  # no template twice in one story (every pool has > 8)
            template = rng.choice(pool)
        used.add(template)
        out.append(_fill(template, cast, rng))
    out.append(_fill(rng.choice(_CONCEPT_ENDINGS[topic] if topic else _ENDINGS), cast, rng))
    return out, topic


def storyworld(seed: int = 0, n_chars: int = TRAIN_CHARS) -> Corpus:
    """Generate stories from `random.Random(seed)` until the text has >= n_chars characters.

    Same seed, same text, on any machine. One story per line, stories separated
    by a blank line, plain ASCII. A story about a concept gets one Span, from the
    first keyword of its concept to the end of the story: the stretch where a
    left-to-right reader can know what the story is about. E.g. in "... Mia walked
    across the Golden Gate Bridge, and the fog rolled over the tall towers. ... At
    last, they went home." the span runs from "Golden" to "home.".
    """
    if not isinstance(seed, int) or not isinstance(n_chars, int) or not 1 <= n_chars <= MAX_CHARS:
        raise UserError(f"storyworld needs an integer seed and 1 <= n_chars <= {MAX_CHARS:,}, got {seed!r}, {n_chars!r}")
    rng = random.Random(seed)
    stories: list[str] = []
    spans: list[Span] = []
    pos = 0
    while pos < n_chars:
        sentences, topic = _story(rng)
        story = " ".join(sentences)
        if topic:
            first = _KEYWORD_RE[topic].search(story)  # the first middle sentence holds one
            spans.append(Span(pos + first.start(), pos + len(story), topic))
        stories.append(story)
        pos += len(story) + 2  # and the blank line
    text = "\n\n".join(stories) + "\n"
    return Corpus("storyworld", text, tuple(spans), f"llmcore.corpus.storyworld(seed={seed}, n_chars={n_chars})")


# ---------------------------------------------------------------------------
# Real text: Python's own documentation, and the user's files
# ---------------------------------------------------------------------------

_ASCII = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"',
                        "\u2014": " - ", "\u2013": "-", "\u2026": "..."})
_SKIP = ("Changed in version", "Added in version", "New in version", "Deprecated", "See also",
         "Note:", "Notes:", "Example:", "Examples:", "Footnotes")


def python_docs() -> Corpus:
    """The Python language reference that ships in the stdlib (`pydoc_data.topics`), prose only.

    Each topic is plain text where code and grammar are indented. We keep
    paragraphs that start at the margin and read as sentences, drop headings,
    code, grammar rules, notes and footnote marks, and put each paragraph on
    one line (blank line between); a paragraph that ended in ":" (it introduced
    code) now ends in ".". Deterministic for a given Python version.
    """
    from pydoc_data.topics import topics

    paragraphs: list[str] = []
    for key in sorted(topics):
        for block in re.split(r"\n\s*\n", topics[key]):
            lines = block.split("\n")
            if (lines[0][:1] in (" ", "*", "-") or any(ln[:1] == " " for ln in lines)
                    or (len(lines) > 1 and set(lines[1]) <= set("*=-~^"))
                    or block.startswith(_SKIP) or "::=" in block or ">>>" in block):
                continue  # indented code/grammar, bullet, heading, note, or prompt
            para = re.sub(r"\*\*|\s*\[\d+\]", "", " ".join(lines)).translate(_ASCII)
            para = re.sub(r"\s+", " ", para).strip()
            letters = sum(ch.isalpha() or ch == " " for ch in para)
            if len(para.split()) >= 6 and letters >= 0.8 * len(para) and para[-1] in ".:":
                paragraphs.append(para[:-1] + ".")  # "... as follows:" led into code we dropped
    text = "\n\n".join(paragraphs) + "\n"
    version = ".".join(map(str, sys.version_info[:3]))
    return Corpus("python-docs", text, (), f"pydoc_data.topics from the Python {version} stdlib, prose paragraphs")


def _read_text(file: Path) -> str:
    """Bytes of one file -> text, or a UserError that names the file and what to do."""
    from llmcore.files import read_bytes

    data = read_bytes(file, "text file", limit=MAX_BYTES)  # a FIFO or device is refused, never read
    nul = data.find(b"\0")
    if nul >= 0:
        raise UserError(f"{file}: looks binary (NUL byte at offset {nul}); give a plain UTF-8 .txt file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{file}: not UTF-8 text: byte 0x{data[e.start]:02x} at offset {e.start} "
                        f"cannot be decoded; save the file as UTF-8") from e
    # One newline convention, no byte-order mark.
    return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def from_path(path) -> Corpus:
    """Your own text: one UTF-8 file, or every `*.txt` in a folder (sorted by name,
    joined with a blank line; subfolders are not read). Empty files in a folder are skipped."""
    p = Path(path).expanduser()
    if p.is_dir():
        files = sorted(f for f in p.iterdir() if f.is_file() and f.suffix.lower() == ".txt")
        if not files:
            raise UserError(f"{p}: folder holds no .txt files; put UTF-8 .txt files in it")
    elif p.is_file():
        files = [p]
    elif p.exists():
        raise UserError(f"{p}: not a regular file or folder; give a .txt file or a folder of them")
    else:
        raise UserError(f"{p}: no such file or folder; give the path of a UTF-8 .txt file or a folder")
    size = sum(f.stat().st_size for f in files)
    if size > MAX_BYTES:
        raise UserError(f"{p}: {size:,} bytes is over the {MAX_BYTES:,}-byte limit; use a smaller sample")
    texts = []
    for f in files:
        t = _read_text(f)
        if t.strip():
            texts.append(t.strip("\n") + "\n")
        elif not p.is_dir():
            raise UserError(f"{f}: file is empty; give a file with some text in it")
        else:
            log.warning("skipping empty file %s", f)
    if not texts:
        raise UserError(f"{p}: every .txt file in the folder is empty; add some text")
    what = f"folder {p.resolve()} ({len(files)} .txt files)" if p.is_dir() else f"file {p.resolve()}"
    return Corpus(p.name or str(p), "\n".join(texts), (), what)


def _truncate(corpus: Corpus, n_chars: int) -> Corpus:
    """Keep about the first n_chars characters, ending at a line break when there is one."""
    if len(corpus.text) <= n_chars:
        return corpus
    cut = corpus.text.rfind("\n", 0, n_chars) + 1 or n_chars
    return Corpus(corpus.name, corpus.text[:cut], (), f"{corpus.source}; first {cut} chars")


def load_corpus(name_or_path: str, split: str = "train", n_chars: int | None = None) -> Corpus:
    """The one way llmcore gets text: a built-in name (see CORPORA) or a path, and a split.

    - "storyworld": train is storyworld(seed=0), val a fresh world from seed
      VAL_SEED (VAL_CHARS, 240k characters), never seen in training; "all" is the train world.
      n_chars sets the size generated.
    - "python-docs" or a path: the text is cut once by Corpus.split(0.1); "all"
      is the whole text. n_chars keeps only the first n_chars before cutting.
    """
    if split not in ("train", "val", "all"):
        raise UserError(f"split must be 'train', 'val' or 'all', got {split!r}")
    if n_chars is not None and (isinstance(n_chars, bool) or not isinstance(n_chars, int) or n_chars < 1):
        raise UserError(f"n_chars must be a positive integer, got {n_chars!r}")
    if n_chars is not None and n_chars > MAX_CHARS:
        raise UserError(f"--n-chars {n_chars:,} is more than the {MAX_CHARS:,} characters llmcore generates or "
                        "reads; ask for less")
    if name_or_path == "storyworld":
        if split == "val":
            corpus = storyworld(VAL_SEED, n_chars or VAL_CHARS)
        else:
            corpus = storyworld(0, n_chars or TRAIN_CHARS)
        if split != "all":
            corpus.name = f"storyworld:{split}"
        return corpus
    if name_or_path == "python-docs":
        corpus = python_docs()
    elif Path(name_or_path).expanduser().exists():
        corpus = from_path(name_or_path)
    else:
        raise UserError(f"{name_or_path!r} is neither a built-in corpus ({', '.join(CORPORA)}) "
                        f"nor an existing file or folder")
    if n_chars is not None:
        corpus = _truncate(corpus, n_chars)
    if split == "all":
        return corpus
    train, val = corpus.split(0.1)
    return train if split == "train" else val
