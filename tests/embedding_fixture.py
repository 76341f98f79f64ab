"""Real text for the embedding tests: SmolLM2 outputs when present, else a small realistic set."""

from __future__ import annotations

import json
from pathlib import Path

SMOLLM2 = Path(__file__).parent / "data" / "smollm2_outputs.jsonl"

FALLBACK: list[tuple[str, str]] = [
    ("capital", "The capital of France is Paris, a city known for the Eiffel Tower."),
    ("capital", "Paris is the capital of France."),
    ("capital", "France's capital city is Paris, located on the Seine river."),
    ("capital", "The capital of France is Paris."),
    ("poem", "Autumn leaves drift down, painting the quiet road in amber and rust."),
    ("poem", "The moon hangs low above the harbour, silver on the sleeping boats."),
    ("poem", "Rain taps the window like a patient friend who knows the way home."),
    ("poem", "Morning fog lifts slowly from the valley, revealing fields of gold."),
    ("code", "def add(a, b):\n    return a + b"),
    ("code", "You can sum two numbers in Python with the + operator: result = a + b."),
    ("code", "Use the built-in sum() function on a list: sum([1, 2, 3]) returns 6."),
    ("advice", "Drink plenty of water, get enough sleep and exercise regularly."),
    ("advice", "To stay healthy, eat vegetables, sleep eight hours and walk every day."),
    ("advice", "Regular exercise and a balanced diet are the keys to good health."),
    ("advice", "I recommend seeing a doctor for personalised advice about your health."),
    ("story", "Once upon a time, a small dragon was afraid of fire and learned to bake bread."),
    ("story", "The robot woke up in an empty lab and decided to plant a garden."),
    ("story", "A lighthouse keeper found a message in a bottle written in her own hand."),
]


def load_samples(limit: int = 40) -> list[tuple[str, str]]:
    """(prompt_id, output) pairs of real text, at most ``limit``."""
    if SMOLLM2.exists():
        rows = []
        with SMOLLM2.open(encoding="utf-8") as f:
            for line in f:
                if line.strip():
                    r = json.loads(line)
                    rows.append((str(r["prompt_id"]), str(r["output"])))
        if len(rows) >= 10:
            return rows[:limit]
    return FALLBACK[:limit]
