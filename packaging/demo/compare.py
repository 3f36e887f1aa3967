"""The same questions to the base model and to the tuned one, side by side (the end of `./run demo`).

    python packaging/demo/compare.py BASE.gguf TUNED.gguf QUESTION...
"""

from __future__ import annotations

import sys

from aurora_desktop.conversation import Conversation
from aurora_desktop.engine import ChatEngine, EngineConfig, SamplingSettings, consume

GREEDY = SamplingSettings(temperature=0.0, max_tokens=40, seed=1)


def answers(model: str, questions: list[str]) -> list[str]:
    engine = ChatEngine(model, EngineConfig(n_ctx=512))
    try:
        out = []
        for q in questions:
            conv = Conversation()
            conv.add_user(q)
            out.append(" ".join(consume(engine.stream(conv, GREEDY)).text.split()))
        return out
    finally:
        engine.close()


def main() -> int:
    base, tuned, questions = sys.argv[1], sys.argv[2], sys.argv[3:]
    rows = zip(questions, answers(base, questions), answers(tuned, questions))
    print("| question | base model (random weights) | after QLoRA on the demo data |")
    print("|---|---|---|")
    for q, a, b in rows:
        print(f"| {q} | {a[:40]} | {b[:40]} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
