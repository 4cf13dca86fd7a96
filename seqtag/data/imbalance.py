"""Training sets that differ in their share of ``O`` tokens and in nothing else: one fixed set of entity-bearing
sentences plus more and more entity-free sentences of the same corpus (the imbalance curve of the loss study,
``docs/study/imbalance/``, built by ``scripts/imbalance_study.py``).

The entity-bearing sentences are the first ``n_entity`` sentences of the file that hold an entity token; the
entity-free ones are drawn from all of the file's entity-free sentences (the "pool"), shuffled once with ``seed``.
A set for a target share takes the pool's first sentences until the set's ``O`` share reaches the target, so a
set at a higher share holds every sentence of the sets below it. When the target needs more ``O`` tokens than the
pool holds, the pool is used again from its start (``pool_passes`` > 1 says by how much): CoNLL-2003's training
set has 2,909 entity-free sentences (31,842 tokens), enough for 97.5 % ``O`` around 250 entity sentences but not
for 99 %.

Pure: sentences in, sets out; :func:`write_sets` writes them as CoNLL files.

>>> from seqtag.data.sentence import Sentence
>>> ent = Sentence(("Paris", "is", "big"), ("B-LOC", "O", "O"))
>>> empty = Sentence(("it", "is"), ("O", "O"))
>>> [(s.target, s.o_share, len(s.sentences), s.pool_passes) for s in imbalance_sets([ent, empty], 1, [0.8, 0.9])]
[(None, 0.6667, 1, 0.0), (0.8, 0.8, 2, 1.0), (0.9, 0.9091, 5, 4.0)]
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from seqtag.data.sentence import Sentence
from seqtag.data.writers import write_conll
from seqtag.errors import DataError


@dataclass(frozen=True)
class ImbalanceSet:
    target: float | None  # the O share asked for; None: the entity-bearing sentences alone
    sentences: tuple[Sentence, ...]
    o_share: float  # the share reached (4 decimals), at or just above the target
    tokens: int
    entity_tokens: int
    added_sentences: int  # entity-free sentences added (repeats counted)
    pool_passes: float  # O tokens added / O tokens of the pool (> 1: the pool was used more than once)

    @property
    def name(self) -> str:
        """``o82.3``, ``o97.5``: the share reached, in percent."""
        return f"o{100 * self.o_share:.1f}"


def _has_entity(s: Sentence) -> bool:
    return any(t != "O" for t in s.tags)


def imbalance_sets(sentences: Sequence[Sentence], n_entity: int, targets: Sequence[float],
                   seed: int = 0) -> list[ImbalanceSet]:
    """The entity-bearing sentences alone, then one set per target ``O`` share (ascending; each above the
    share of the entity-bearing sentences and below 1). See the module docstring."""
    if any(s.tags is None for s in sentences):
        raise DataError("the imbalance sets need tagged sentences; the file has an untagged one")
    entity = [s for s in sentences if _has_entity(s)][:n_entity]
    if len(entity) < n_entity:
        raise DataError(f"asked for {n_entity} entity-bearing sentences, the file has {len(entity)}; lower n_entity")
    pool = [s for s in sentences if not _has_entity(s)]
    random.Random(seed).shuffle(pool)
    ent_tokens = sum(t != "O" for s in entity for t in s.tags)
    base_tokens = sum(len(s.tags) for s in entity)
    base_share = 1 - ent_tokens / base_tokens
    if list(targets) != sorted(targets) or any(not base_share < t < 1 for t in targets):
        raise DataError(f"targets must ascend within ({base_share:.4f}, 1): the entity-bearing sentences alone are "
                        f"{100 * base_share:.2f} % O; got {list(targets)}")
    if targets and not pool:
        raise DataError("the file has no entity-free sentence to add")
    pool_tokens = sum(len(s.tags) for s in pool)

    def make(target, added: list[Sentence]) -> ImbalanceSet:
        tokens = base_tokens + sum(len(s.tags) for s in added)
        return ImbalanceSet(target, tuple(entity + added), round(1 - ent_tokens / tokens, 4), tokens, ent_tokens,
                            len(added), round((tokens - base_tokens) / pool_tokens, 2) if pool_tokens else 0.0)

    out = [make(None, [])]
    added: list[Sentence] = []
    tokens = base_tokens
    for target in targets:
        while 1 - ent_tokens / tokens < target - 1e-12:
            s = pool[len(added) % len(pool)]
            added.append(s)
            tokens += len(s.tags)
        out.append(make(target, list(added)))
    return out


def write_sets(sets: Sequence[ImbalanceSet], directory: str | Path) -> dict[str, Path]:
    """Write each set as ``DIRECTORY/NAME.txt`` (CoNLL, tab-separated); return ``{name: path}``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for s in sets:
        paths[s.name] = directory / f"{s.name}.txt"
        write_conll(s.sentences, paths[s.name])
    return paths
