"""Where to put the faithfulness threshold: MiniLM similarities of supported vs unsupported claims.

    .venv/bin/python benchmarks/faithfulness_threshold.py [--model all-MiniLM-L6-v2]

A generated sentence counts as supported when its cosine similarity to the best
evidence sentence of the sources it cites reaches ``generate.faithfulness_threshold``.
This script measures that score on hand-written claims about small evidence sets
(three sentences per topic, as a source contributes several):

- ``paraphrase``: the same fact reworded, as a model restates evidence;
- ``condensed``: a shorter sentence keeping one fact of the evidence;
- ``same_topic``: a plausible claim about the topic that the evidence does not make;
- ``off_topic``: a claim from another topic (a citation pointing at the wrong source).

It prints each group's spread and the threshold that best separates the supported
groups from the unsupported ones (balanced accuracy), and that accuracy per group.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# topic: (evidence sentences, paraphrases, condensed, same-topic unsupported claims)
CASES: dict[str, tuple[list[str], list[str], list[str], list[str]]] = {
    "coffee": (
        [
            "Green coffee beans are roasted in a rotating drum at temperatures between 190 and 240 degrees Celsius.",
            "During roasting the beans lose most of their moisture and roughly a fifth of their weight.",
            "The first crack, an audible popping sound, signals that a light roast has been reached.",
        ],
        [
            "Roasters heat green beans in a spinning drum at roughly 190 to 240 °C.",
            "A popping noise called the first crack tells the roaster that the beans have reached a light roast.",
        ],
        ["Roasting beans makes them lighter because they lose water."],
        [
            "Coffee was first cultivated in Ethiopia in the ninth century.",
            "Dark roasts contain far more caffeine than light roasts.",
        ],
    ),
    "roman coins": (
        [
            "The denarius was the standard Roman silver coin from its introduction in 211 BC.",
            "Its silver content fell steadily during the third century as emperors debased the currency.",
            "Coins carried the portrait of the reigning emperor, which helps historians date them.",
        ],
        [
            "From 211 BC the silver denarius served as Rome's standard coin.",
            "Because emperors' faces appear on coins, historians can tell when a coin was struck.",
        ],
        ["Emperors reduced the silver in the denarius in the third century."],
        [
            "Roman soldiers were paid partly in salt.",
            "Gold aurei were minted only in Constantinople.",
        ],
    ),
    "bees": (
        [
            "Honey bees communicate the location of flowers through a waggle dance.",
            "The angle of the dance relative to vertical shows the direction of the food source relative to the sun.",
            "A colony can contain up to sixty thousand workers but only one queen.",
        ],
        [
            "Bees tell their nestmates where flowers are by performing a waggle dance.",
            "A single queen lives in a hive together with as many as 60,000 worker bees.",
        ],
        ["The dance's angle points toward the food."],
        [
            "Bumblebees can fly at altitudes above Mount Everest.",
            "Worker bees live for about five years.",
        ],
    ),
    "volcanoes": (
        [
            "Shield volcanoes are built almost entirely of fluid basaltic lava flows.",
            "Their gentle slopes form because the runny lava travels far before it cools.",
            "Mauna Loa in Hawaii is the largest active shield volcano on Earth.",
        ],
        [
            "Runny basalt lava that spreads a long way before solidifying gives shield volcanoes their shallow slopes.",
            "Hawaii's Mauna Loa is the biggest active shield volcano in the world.",
        ],
        ["Shield volcanoes are made of basalt lava."],
        [
            "Volcanic ash can ground aircraft for weeks.",
            "Most shield volcanoes erupt explosively every few years.",
        ],
    ),
    "bread": (
        [
            "Sourdough bread is leavened by a culture of wild yeast and lactic acid bacteria.",
            "The bacteria produce lactic and acetic acids that give the bread its sour taste.",
            "A starter must be fed with flour and water regularly to stay active.",
        ],
        [
            "Wild yeast and lactic acid bacteria, rather than commercial yeast, make sourdough rise.",
            "To keep a sourdough starter alive, bakers regularly add fresh flour and water.",
        ],
        ["Acids from the bacteria make sourdough taste sour."],
        [
            "Sourdough should be baked at exactly 250 degrees for one hour.",
            "Bread was invented in ancient Egypt around 8000 BC.",
        ],
    ),
    "printing": (
        [
            "Johannes Gutenberg introduced movable metal type printing in Europe around 1440.",
            "His press adapted the screw presses used for wine and olive oil.",
            "The Gutenberg Bible, printed around 1455, was the first major book printed this way in Europe.",
        ],
        [
            "Around 1440 Gutenberg brought printing with movable metal type to Europe.",
            "Gutenberg based his printing press on the screw presses that made wine and oil.",
        ],
        ["The Gutenberg Bible was printed around 1455."],
        [
            "Gutenberg died a wealthy man in Paris.",
            "Printing presses were banned in England until 1600.",
        ],
    ),
    "glaciers": (
        [
            "Glaciers form where more snow falls in winter than melts in summer over many years.",
            "Under its own weight the compacted ice flows slowly downhill.",
            "Retreating glaciers leave behind moraines of rock and gravel.",
        ],
        [
            "When winter snowfall exceeds summer melting for years, a glacier builds up.",
            "As glaciers shrink they deposit ridges of gravel and rock called moraines.",
        ],
        ["Glacier ice moves downhill because of its weight."],
        [
            "Antarctica holds ninety percent of the world's fresh water.",
            "Glaciers move several kilometres every day.",
        ],
    ),
    "chess": (
        [
            "In chess, castling moves the king two squares towards a rook, which jumps over it.",
            "Castling is not allowed if the king is in check or has moved before.",
            "A pawn that reaches the last rank is promoted, usually to a queen.",
        ],
        [
            "When castling, the king steps two squares toward a rook and the rook hops over to its other side.",
            "Pawns arriving at the far rank get promoted, most often becoming queens.",
        ],
        ["A king in check cannot castle."],
        [
            "The longest recorded chess game lasted 269 moves.",
            "Bishops may jump over other pieces in the opening.",
        ],
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    args = parser.parse_args()

    from engine.encoders.text import TextEncoder

    encoder = TextEncoder(args.model)
    topics = list(CASES)
    scores: dict[str, list[float]] = {"paraphrase": [], "condensed": [], "same_topic": [], "off_topic": []}
    for n, topic in enumerate(topics):
        evidence, paraphrases, condensed, same_topic = CASES[topic]
        other = CASES[topics[(n + 1) % len(topics)]]
        groups = {
            "paraphrase": paraphrases,
            "condensed": condensed,
            "same_topic": same_topic,
            "off_topic": other[1] + other[2],  # true claims, but about another topic's evidence
        }
        evidence_vectors = encoder.encode(evidence)
        for group, claims in groups.items():
            best = (encoder.encode(claims) @ evidence_vectors.T).max(axis=1)
            scores[group].extend(float(s) for s in best)

    for group, values in scores.items():
        print(
            f"{group:11s} n={len(values):2d}  min {min(values):.3f}  median {statistics.median(values):.3f}  "
            f"max {max(values):.3f}"
        )
    supported = np.array(scores["paraphrase"] + scores["condensed"])
    unsupported = np.array(scores["same_topic"] + scores["off_topic"])
    grid = np.round(np.arange(0.30, 0.90, 0.01), 2)
    balanced = [((supported >= t).mean() + (unsupported < t).mean()) / 2 for t in grid]
    best = float(grid[int(np.argmax(balanced))])
    print(f"best threshold {best:.2f}: balanced accuracy {max(balanced):.3f}")
    for t in sorted({best, 0.5, 0.6, 0.7}):
        parts = ", ".join(
            f"{g} {np.mean([v >= t if g in ('paraphrase', 'condensed') else v < t for v in vals]):.2f}"
            for g, vals in scores.items()
        )
        print(f"  at {t:.2f} correct share per group: {parts}")


if __name__ == "__main__":
    main()
