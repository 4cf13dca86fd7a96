"""Push a finished run directory to the Hugging Face Hub: one commit holding the model, tokenizer, config, scores
and a model card rendered from the run (:func:`seqtag.publish.card.render_card`).

Everything that can be checked locally is checked before the first request: the run is finished (its
``run_info.json`` says so and the safetensors weights and ``config.json`` are there), the repository id has the
form ``namespace/name`` and a token is available. The upload is a single ``create_commit``, so the repository
either gets every file or none of them. Optimizer state, ``checkpoints/`` and pickle files (``*.bin``, ``*.pt``,
``*.pth``) are never uploaded: :func:`files_to_upload` is an allowlist.

The token comes from the ``token`` argument, else ``HF_TOKEN``, else the stored login (``hf auth login``). It is
never logged, never part of an error message, and a file that contains it is refused. ``HF_ENDPOINT`` is honoured
(``huggingface_hub`` reads it when first imported); ``endpoint=`` overrides it.

>>> check_repo_id("alice/conll-focal")
>>> check_repo_id("conll-focal")
Traceback (most recent call last):
...
seqtag.errors.ConfigError: --repo-id must look like 'namespace/name', got 'conll-focal'; a Hub repo id is namespace/name, each part made of ASCII letters, digits, '-', '_' and '.', at most 96 characters, without '--' or '..', not starting or ending with '-' or '.', and not ending in '.git'
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import sys
from pathlib import Path

from seqtag import __version__, config
from seqtag.errors import SeqtagError
from seqtag.modeling.crf import TRANSITIONS_FILE
from seqtag.modeling.span_head import SPAN_HEAD_FILE
from seqtag.publish.card import render_card
from seqtag.runs import read_run_info, require_finished_run

logger = logging.getLogger(__name__)

# Top-level files of a run directory that are uploaded. Anything else (checkpoints/, caches, logs, pickles) stays.
UPLOAD_NAMES = (
    "config.json", "generation_config.json",
    "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json", "vocab.txt",
    "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model", "tokenizer.model", "chat_template.jinja",
    "seqtag_config.yaml", "metrics.json", "run_info.json", "history.jsonl", "training_curves.png",
    "model.safetensors.index.json", TRANSITIONS_FILE, SPAN_HEAD_FILE,
)
UPLOAD_PATTERNS = ("model*.safetensors",)
NEVER_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")
_TEXT_SUFFIXES = (".json", ".jsonl", ".yaml", ".txt", ".md", ".jinja")
NO_TOKEN = "no Hugging Face token: run `hf auth login` or set HF_TOKEN"


def check_repo_id(repo_id: str) -> None:
    """Raise :class:`SeqtagError` unless ``repo_id`` is ``namespace/name`` as the Hub accepts it (one rule, in
    :func:`seqtag.config.check_repo_id`, also checked for ``hub.repo_id`` when a config loads)."""
    config.check_repo_id(repo_id, key="--repo-id")


def check_finished_run(run_dir: str | Path) -> Path:
    """Return ``run_dir`` as a Path if it holds a complete finished run; else raise :class:`SeqtagError` saying
    what is missing and what to do (:func:`seqtag.runs.require_finished_run`, plus ``config.json`` and every
    shard a ``model.safetensors.index.json`` names)."""
    run_dir = require_finished_run(run_dir)
    missing = [] if (run_dir / "config.json").is_file() else ["config.json"]
    if read_run_info(run_dir).model_head == "crf" and not (run_dir / TRANSITIONS_FILE).is_file():
        missing.append(TRANSITIONS_FILE)  # the CRF head's transitions
    if read_run_info(run_dir).model_head == "span" and not (run_dir / SPAN_HEAD_FILE).is_file():
        missing.append(SPAN_HEAD_FILE)  # the span head's weights
    index = run_dir / "model.safetensors.index.json"
    if index.is_file():
        try:
            shards = set(json.loads(index.read_text(encoding="utf-8"))["weight_map"].values())
        except (ValueError, KeyError, TypeError, AttributeError) as e:
            raise SeqtagError(f"{index} does not parse ({e}); the run directory is incomplete") from e
        missing += sorted(s for s in shards if not (run_dir / s).is_file())
    if missing:
        raise SeqtagError(f"{run_dir} is missing {', '.join(missing)}: the run directory is incomplete; "
                          "re-run or resume the training that wrote it")
    return run_dir


def _top_level_uploads(run_dir: Path) -> list[Path]:
    out = []
    for path in sorted(run_dir.iterdir()):
        if not path.is_file() or path.name.lower().endswith(NEVER_SUFFIXES):
            continue
        if path.name in UPLOAD_NAMES or any(fnmatch.fnmatchcase(path.name, p) for p in UPLOAD_PATTERNS):
            out.append(path)
    return out


def files_to_upload(run_dir: str | Path) -> list[Path]:
    """The files of a finished run that go to the Hub, sorted by name (the card README.md is added in memory).

    Only top-level files named in :data:`UPLOAD_NAMES` or matching :data:`UPLOAD_PATTERNS`; never anything under
    ``checkpoints/`` or another folder, never ``*.bin``/``*.pt``/``*.pth`` pickles, never an existing README.md.
    """
    return _top_level_uploads(check_finished_run(run_dir))


def resolve_token(token: str | None = None) -> str:
    """The token to push with: ``token``, else ``HF_TOKEN``, else the stored login; :class:`SeqtagError` if none."""
    if token:
        return token
    env = os.environ.get("HF_TOKEN") or os.environ.get("HUGGING_FACE_HUB_TOKEN")
    if env and env.strip():
        return env.strip()
    import huggingface_hub

    stored = huggingface_hub.get_token()
    if not stored:
        raise SeqtagError(NO_TOKEN)
    return stored


def _scrub(text: str, token: str) -> str:
    return text.replace(token, "hf_***") if token else text


def _network_errors() -> tuple[type[BaseException], ...]:
    """Connection refused / reset / timeout classes of whichever HTTP library huggingface_hub uses."""
    errors: list[type[BaseException]] = [ConnectionError, TimeoutError]
    for module, names in (("httpx2", ("TransportError",)), ("httpx", ("TransportError",)),
                          ("requests", ("ConnectionError", "Timeout"))):
        mod = sys.modules.get(module)
        errors += [getattr(mod, n) for n in names if mod is not None and isinstance(getattr(mod, n, None), type)]
    return tuple(errors)


def _http_error(err, repo_id: str, endpoint: str, token: str) -> SeqtagError:
    status = getattr(getattr(err, "response", None), "status_code", None)
    server = getattr(err, "server_message", None) or ""
    detail = f" (server said: {_scrub(server.strip(), token)})" if server.strip() else ""
    if status == 401:
        msg = (f"the Hugging Face token was rejected by {endpoint} (401 Unauthorized): it is invalid or expired; "
               "create a token with write access, then run `hf auth login` or set HF_TOKEN")
    elif status == 403:
        msg = f"you cannot write to {repo_id}; check the namespace or the token's permissions{detail}"
    elif status == 404:
        msg = (f"{repo_id} was not found at {endpoint} (404): check the repository id and that the token can see "
               f"it{detail}")
    elif status in (409, 412):
        msg = f"{repo_id} changed while pushing ({status}){detail}; re-run the same command"
    elif status is not None and status >= 500:
        msg = (f"the Hub at {endpoint} failed ({status}){detail}; nothing was committed and the local files are "
               "untouched: re-run the same command later")
    else:
        msg = f"pushing to {repo_id} failed ({status}){detail}"
    return SeqtagError(_scrub(msg, token))


def _card_and_files(run_dir: Path, repo_id: str, token: str) -> tuple[bytes, list[Path]]:
    files = _top_level_uploads(run_dir)
    card = render_card(run_dir, repo_id=repo_id).encode("utf-8")
    needle = token.encode("utf-8")
    if needle in card:
        raise SeqtagError("the model card would contain your Hugging Face token; remove it from the run files")
    for path in files:
        if path.name.endswith(_TEXT_SUFFIXES) and needle in path.read_bytes():
            raise SeqtagError(f"{path} contains your Hugging Face token; remove it before pushing")
    return card, files


def _ensure_repo(api, repo_id: str, private: bool) -> None:
    """Create ``repo_id`` unless it exists. Without the right to create in the namespace (401/402/403) an existing
    repository is still fine: the commit decides whether the token may write to it."""
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api.create_repo(repo_id, private=private, exist_ok=False, repo_type="model")
    except HfHubHTTPError as err:
        status = err.response.status_code
        if status == 409:  # already exists
            return
        if status in (401, 402, 403):
            try:
                if api.repo_exists(repo_id, repo_type="model"):
                    return
            except HfHubHTTPError:
                pass
        raise


def push_run(run_dir: str | Path, repo_id: str, *, private: bool = False, revision: str | None = None,
             commit_message: str | None = None, token: str | None = None, endpoint: str | None = None) -> str:
    """Upload the finished run in ``run_dir`` to the model repository ``repo_id`` in one commit; return its URL.

    The repository is created if missing (``private`` applies only then); ``revision`` names a branch, created
    from ``main`` if missing. Raises :class:`SeqtagError` before any request if the run is unfinished, the id is
    malformed or no token is found, and after a failed request with what to do (401 bad token, 403 no write
    access, network failure: the local files are untouched and the command can be re-run).
    """
    run_dir = check_finished_run(run_dir)
    check_repo_id(repo_id)
    if revision is not None and (not revision.strip() or revision.startswith("refs/")):
        raise SeqtagError(f"revision {revision!r} must be a branch name such as 'main' or 'experiment-1'")
    token = resolve_token(token)
    card, files = _card_and_files(run_dir, repo_id, token)

    import huggingface_hub
    from huggingface_hub import CommitOperationAdd, HfApi
    from huggingface_hub.errors import HfHubHTTPError

    if huggingface_hub.constants.HF_HUB_OFFLINE:
        raise SeqtagError("HF_HUB_OFFLINE is set, so nothing can be pushed: unset it and run the command again")
    api = HfApi(endpoint=endpoint, token=token, library_name="seqtag", library_version=__version__)
    endpoint = api.endpoint
    operations = [CommitOperationAdd(path_in_repo=p.name, path_or_fileobj=str(p)) for p in files]
    operations.append(CommitOperationAdd(path_in_repo="README.md", path_or_fileobj=card))
    message = commit_message or f"Upload seqtag run {run_dir.resolve().name}"
    logger.info("pushing %d files from %s to %s at %s", len(operations), run_dir, repo_id, endpoint)
    try:
        _ensure_repo(api, repo_id, private)
        if revision is not None and revision != "main":
            api.create_branch(repo_id, branch=revision, exist_ok=True, repo_type="model")
        info = api.create_commit(
            repo_id, operations, commit_message=message, repo_type="model", revision=revision,
            commit_description="Files: " + ", ".join(op.path_in_repo for op in operations),
        )
    except HfHubHTTPError as err:
        raise _http_error(err, repo_id, endpoint, token) from None
    except _network_errors() as err:
        raise SeqtagError(_scrub(
            f"could not reach {endpoint} ({type(err).__name__}: {err}); the local files in {run_dir} are "
            "untouched and the push is a single commit, so re-run the same command when the network is back",
            token)) from None
    except ValueError as err:  # the Hub rejected the card metadata, or a malformed server answer
        raise SeqtagError(_scrub(f"pushing to {repo_id} failed: {err}", token)) from None
    return info.commit_url
