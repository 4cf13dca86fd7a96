"""seqtag.publish.hub: pushing a finished run to a Hub-compatible server (tests/hub_server.py) with the real client.

In-process tests point ``huggingface_hub.constants.ENDPOINT`` (what ``HF_ENDPOINT`` sets at import) at the fake
server. The round trip runs ``python -m seqtag push`` and ``from_pretrained("ns/name")`` in subprocesses with
``HF_ENDPOINT`` in their environment, as a user would.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from seqtag.errors import SeqtagError
from seqtag.publish.card import render_card
from seqtag.publish.hub import NO_TOKEN, files_to_upload, push_run, resolve_token
from tests.fake_run import SENTENCE, make_run, split_front_matter
from tests.hub_server import FakeHub

REPO_ROOT = Path(__file__).resolve().parents[2]
ALICE = "hf_aliceSecret0123456789abcdefXYZ"
BOB = "hf_bobSecret9876543210fedcbaQRS"
TOKENS = {ALICE: "alice", BOB: "bob"}
UPLOADED = ["README.md", "config.json", "history.jsonl", "metrics.json", "model.safetensors", "run_info.json",
            "seqtag_config.yaml", "tokenizer.json", "tokenizer_config.json", "training_curves.png"]


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """A fresh fake Hub; huggingface_hub in this process talks to it, with no token from the environment."""
    import huggingface_hub.constants as constants

    with FakeHub(TOKENS, orgs={"lab": {"alice"}}) as server:
        monkeypatch.setattr(constants, "ENDPOINT", server.url)
        monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
        monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(tmp_path / "hf_home" / "token"))
        for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE"):
            monkeypatch.delenv(var, raising=False)
        # no agent-registry fetch from the real Hub while building request headers
        detect = importlib.import_module("huggingface_hub.utils._detect_agent")
        monkeypatch.setattr(detect, "_registry", {"standardEnvVars": [], "harnesses": {}}, raising=False)
        yield server


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    return make_run(tmp_path_factory.mktemp("hub"), name="conll-focal")


def snapshot(directory: Path) -> dict[str, str]:
    return {str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def test_files_to_upload_is_the_allowlist(run_dir):
    names = [p.name for p in files_to_upload(run_dir)]
    assert names == [n for n in UPLOADED if n != "README.md"]
    # the fake run holds all of these, and none may go up
    for never in ("checkpoints/last/optimizer.pt", "checkpoints/last/model.safetensors", "extra_state.pt",
                  "pytorch_model.bin", "README.md"):
        assert (run_dir / never).is_file()


def test_push_is_one_commit_of_the_run_files_and_card(hub, run_dir):
    url = push_run(run_dir, "alice/conll-focal", token=ALICE, commit_message="first push")
    commits = hub.history("alice/conll-focal")
    assert [c.message for c in commits] == ["first push", "initial commit"]
    assert url == f"{hub.url}/alice/conll-focal/commit/{commits[0].oid}"
    assert [r.path for r in hub.requests if r.path.endswith("/commit/main")] == ["/api/models/alice/conll-focal/commit/main"]
    files = hub.files("alice/conll-focal")
    assert sorted(files) == sorted([".gitattributes", *UPLOADED])
    for name in UPLOADED[1:]:
        assert files[name] == (run_dir / name).read_bytes(), name
    assert files["README.md"].decode() == render_card(run_dir, repo_id="alice/conll-focal")
    assert not any(p.startswith("checkpoints/") or p.endswith((".pt", ".bin", ".pth")) for p in files)
    assert (run_dir / "README.md").read_text() == "stale card from an earlier push\n"  # card rendered in memory
    assert {r.user for r in hub.requests} == {"alice"}


def test_a_trained_run_with_or_without_its_own_card_is_pushed_with_the_card_naming_the_repo(hub, tmp_path):
    """Training writes README.md (no repo id); push uploads the card with the repo id, and a run directory from
    before training wrote a card (no README.md) is pushed the same way."""
    from seqtag.config import from_dict
    from seqtag.training.loop import train
    from tests.tiny import tiny_config

    run = train(from_dict(tiny_config(tmp_path, train={"epochs": 1})))
    own = (run / "README.md").read_text()
    assert "REPO_ID" in own and "alice/tiny" not in own
    push_run(run, "alice/tiny", token=ALICE)
    assert hub.files("alice/tiny")["README.md"].decode() == render_card(run, repo_id="alice/tiny")
    assert "alice/tiny" in hub.files("alice/tiny")["README.md"].decode()
    assert (run / "README.md").read_text() == own  # the run's own card is left as it was
    (run / "README.md").unlink()
    push_run(run, "alice/tiny-old", token=ALICE)
    assert hub.files("alice/tiny-old")["README.md"].decode() == render_card(run, repo_id="alice/tiny-old")


def test_token_from_env_is_never_uploaded_logged_or_printed(hub, run_dir, monkeypatch, caplog, capfd):
    monkeypatch.setenv("HF_TOKEN", ALICE)
    with caplog.at_level(logging.DEBUG):
        push_run(run_dir, "alice/secret-check")
    assert {r.user for r in hub.requests} == {"alice"}  # the env token authenticated every request
    needle = ALICE.encode()
    for commit in hub.history("alice/secret-check"):
        for path, content in commit.files.items():
            assert needle not in content, path
        assert ALICE not in commit.message + commit.description
    out, err = capfd.readouterr()
    assert ALICE not in caplog.text + out + err


def test_token_precedence(hub, run_dir, monkeypatch, tmp_path):
    import huggingface_hub.constants as constants

    token_file = Path(constants.HF_TOKEN_PATH)
    token_file.parent.mkdir(parents=True)
    token_file.write_text(BOB)
    assert resolve_token() == BOB  # stored login
    monkeypatch.setenv("HF_TOKEN", ALICE)
    assert resolve_token() == ALICE  # HF_TOKEN beats the stored login
    assert resolve_token(BOB) == BOB  # the argument beats both
    monkeypatch.delenv("HF_TOKEN")
    push_run(run_dir, "bob/from-stored-login")
    assert {r.user for r in hub.requests} == {"bob"}
    assert "README.md" in hub.files("bob/from-stored-login")


def test_no_token_fails_before_any_request(hub, run_dir):
    with pytest.raises(SeqtagError) as e:
        push_run(run_dir, "alice/x")
    assert str(e.value) == NO_TOKEN == "no Hugging Face token: run `hf auth login` or set HF_TOKEN"
    assert hub.requests == []


@pytest.mark.parametrize("change, expected", [
    ("running", "not finished (status: running)"),
    ("no_info", "no run_info.json"),
    ("no_weights", "no model.safetensors"),
    ("no_config", "missing config.json"),
    ("missing_dir", "does not exist"),
])
def test_unfinished_run_is_refused_before_any_request(hub, tmp_path, change, expected):
    run = make_run(tmp_path, junk=False)
    if change == "running":
        info = json.loads((run / "run_info.json").read_text())
        (run / "run_info.json").write_text(json.dumps({**info, "status": "running"}))
    elif change == "no_info":
        (run / "run_info.json").unlink()
    elif change == "no_weights":
        (run / "model.safetensors").unlink()
    elif change == "no_config":
        (run / "config.json").unlink()
    else:
        run = tmp_path / "nowhere"
    with pytest.raises(SeqtagError) as e:
        push_run(run, "alice/x", token=ALICE)
    assert expected in str(e.value)
    if change == "running":
        assert "resume" in str(e.value)
    assert hub.requests == []


@pytest.mark.parametrize("repo_id", ["conll-focal", "alice/", "a/b/c", "alice/bad name", "alice/x--y", ""])
def test_malformed_repo_id_is_refused_before_any_request(hub, run_dir, repo_id):
    with pytest.raises(SeqtagError, match="--repo-id"):
        push_run(run_dir, repo_id, token=ALICE)
    assert hub.requests == []


@pytest.mark.parametrize("repo_id", ["bob/existing", "bob/new-one"])
def test_repository_of_someone_else_is_403_and_nothing_committed(hub, run_dir, repo_id):
    hub.create_repo("bob/existing")
    with pytest.raises(SeqtagError) as e:
        push_run(run_dir, repo_id, token=ALICE)
    assert str(e.value).startswith(f"you cannot write to {repo_id}; check the namespace or the token's permissions")
    assert ALICE not in str(e.value)
    assert [c.message for c in hub.history("bob/existing")] == ["initial commit"]
    assert "bob/new-one" not in hub.repos


def test_organisation_member_can_push(hub, run_dir):
    push_run(run_dir, "lab/conll-focal", token=ALICE, private=True)
    assert hub.repos["lab/conll-focal"].private
    assert "model.safetensors" in hub.files("lab/conll-focal")


def test_rejected_token_is_401(hub, run_dir):
    bad = "hf_notARealToken000000000000000"
    with pytest.raises(SeqtagError) as e:
        push_run(run_dir, "alice/x", token=bad)
    assert "401" in str(e.value) and "hf auth login" in str(e.value)
    assert bad not in str(e.value)
    assert hub.repos == {}


def test_server_down_is_a_network_error_and_local_files_untouched(hub, run_dir):
    before = snapshot(run_dir)
    hub.stop()
    with pytest.raises(SeqtagError) as e:
        push_run(run_dir, "alice/x", token=ALICE)
    message = str(e.value)
    assert "could not reach" in message and "untouched" in message and "re-run" in message
    assert ALICE not in message
    assert snapshot(run_dir) == before


@pytest.mark.parametrize("failure, expected", [("drop", "could not reach"), ("500", "failed (500)")])
def test_failed_commit_leaves_nothing_half_uploaded(hub, run_dir, failure, expected):
    before = snapshot(run_dir)
    hub.fail_commit = failure
    with pytest.raises(SeqtagError) as e:
        push_run(run_dir, "alice/flaky", token=ALICE)
    assert expected in str(e.value) and "untouched" in str(e.value)
    assert hub.files("alice/flaky") == {".gitattributes": hub.files("alice/flaky")[".gitattributes"]}
    assert len(hub.history("alice/flaky")) == 1
    assert snapshot(run_dir) == before
    hub.fail_commit = None  # re-running the same command then succeeds
    push_run(run_dir, "alice/flaky", token=ALICE)
    assert len(hub.history("alice/flaky")) == 2 and "model.safetensors" in hub.files("alice/flaky")


def test_offline_mode_is_refused_before_any_request(hub, run_dir, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(SeqtagError, match="HF_HUB_OFFLINE is set"):
        push_run(run_dir, "alice/x", token=ALICE)
    assert hub.requests == []


def test_qa_run_is_pushed_with_a_qa_card(hub, tmp_path):
    run = make_run(tmp_path, task="qa", name="squad-ce")
    push_run(run, "alice/squad-ce", token=ALICE)
    files = hub.files("alice/squad-ce")
    assert sorted(files) == sorted([".gitattributes", *UPLOADED])
    meta, body = split_front_matter(files["README.md"].decode())
    assert meta["pipeline_tag"] == "question-answering"
    assert 'pipeline("question-answering", model="alice/squad-ce")' in body
    assert json.loads(files["config.json"])["architectures"] == ["BertForQuestionAnswering"]


def test_push_to_a_new_branch(hub, run_dir):
    push_run(run_dir, "alice/branchy", token=ALICE, revision="focal-gamma2")
    assert sorted(hub.files("alice/branchy", "main")) == [".gitattributes"]
    assert sorted(hub.files("alice/branchy", "focal-gamma2")) == sorted([".gitattributes", *UPLOADED])
    assert len(hub.history("alice/branchy", "focal-gamma2")) == 2


def _env(hub: FakeHub, hf_home: Path, token: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env.update(HF_ENDPOINT=hub.url, HF_HOME=str(hf_home), HF_HUB_DISABLE_TELEMETRY="1", OMP_NUM_THREADS="1",
               TOKENIZERS_PARALLELISM="false", PYTHONPATH=os.pathsep.join([str(REPO_ROOT), env.get("PYTHONPATH", "")]))
    if token:
        env["HF_TOKEN"] = token
    return env


def _cli_has_push() -> bool:
    try:
        from seqtag import cli
    except ImportError:
        return False
    return "push" in getattr(cli, "COMMANDS", {})


LOAD_BACK = r"""
import json, sys
import torch
from safetensors.torch import save_file
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

repo, sentence, out = sys.argv[1:4]
model = AutoModelForTokenClassification.from_pretrained(repo).eval()
tokenizer = AutoTokenizer.from_pretrained(repo)
with torch.no_grad():
    logits = model(**tokenizer(sentence, return_tensors="pt")).logits
tensors = {k: v.contiguous() for k, v in model.state_dict().items()}
save_file({**tensors, "__logits__": logits.contiguous()}, out + ".safetensors")
ner = pipeline("token-classification", model=repo, aggregation_strategy="simple")
entities = [{k: (float(v) if k == "score" else v) for k, v in e.items()} for e in ner(sentence)]
json.dump({"entities": entities, "id2label": model.config.id2label}, open(out + ".json", "w"))
"""


def test_round_trip_through_the_server(tmp_path):
    """Push with the CLI (HF_ENDPOINT, HF_TOKEN), load back with from_pretrained and pipeline through the server,
    and compare weights, logits and entities with the local run directory."""
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline

    run = make_run(tmp_path, name="conll-focal")
    before = snapshot(run)
    with FakeHub(TOKENS) as server:
        if _cli_has_push():
            push = [sys.executable, "-m", "seqtag", "push", str(run), "--repo-id", "alice/conll-focal"]
        else:
            push = [sys.executable, "-c", f"from seqtag.publish.hub import push_run; print(push_run({str(run)!r}, "
                                          "'alice/conll-focal'))"]
        done = subprocess.run(push, env=_env(server, tmp_path / "hf_push", ALICE), capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        assert f"{server.url}/alice/conll-focal/commit/" in done.stdout
        assert ALICE not in done.stdout + done.stderr
        out = str(tmp_path / "loaded")
        done = subprocess.run([sys.executable, "-c", LOAD_BACK, "alice/conll-focal", SENTENCE, out],
                              env=_env(server, tmp_path / "hf_load", None), capture_output=True, text=True,
                              timeout=180)
        assert done.returncode == 0, done.stderr
        assert server.unhandled == []
        uploaded = server.files("alice/conll-focal")
    assert snapshot(run) == before
    assert sorted(uploaded) == sorted([".gitattributes", *UPLOADED])

    loaded = load_file(out + ".safetensors")
    local = AutoModelForTokenClassification.from_pretrained(run).eval()
    for name, tensor in local.state_dict().items():
        assert torch.equal(loaded[name], tensor), name
    tokenizer = AutoTokenizer.from_pretrained(run)
    with torch.no_grad():
        logits = local(**tokenizer(SENTENCE, return_tensors="pt")).logits
    assert logits.shape == (1, 12, 5)  # [CLS] + 10 word pieces + [SEP], 5 IOB2 labels
    torch.testing.assert_close(loaded["__logits__"], logits, rtol=0, atol=1e-6)

    result = json.loads(Path(out + ".json").read_text())
    assert result["id2label"] == {"0": "O", "1": "B-PER", "2": "I-PER", "3": "B-LOC", "4": "I-LOC"}
    expected = pipeline("token-classification", model=str(run), aggregation_strategy="simple")(SENTENCE)
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in result["entities"]] == \
        [(e["entity_group"], e["word"], e["start"], e["end"]) for e in expected]
    assert [e["score"] for e in result["entities"]] == pytest.approx([float(e["score"]) for e in expected], abs=1e-6)

    for content in uploaded.values():
        assert ALICE.encode() not in content
    meta, _ = split_front_matter(uploaded["README.md"].decode())
    metrics = json.loads((run / "metrics.json").read_text())
    test_result = next(r for r in meta["model-index"][0]["results"] if r["dataset"]["split"] == "test")
    assert {m["type"]: m["value"] for m in test_result["metrics"]} == \
        {k: metrics["test"][k] for k in ("precision", "recall", "f1")}


def test_a_crf_run_uploads_its_transitions_and_needs_them(tmp_path):
    from seqtag.modeling.crf import CRF, TRANSITIONS_FILE, save_transitions
    from tests.fake_run import NER_LABELS

    run = make_run(tmp_path, name="crf", junk=False)
    info = json.loads((run / "run_info.json").read_text())
    (run / "run_info.json").write_text(json.dumps({**info, "model_head": "crf"}))
    with pytest.raises(SeqtagError, match=f"missing {TRANSITIONS_FILE}"):
        files_to_upload(run)
    save_transitions(run / TRANSITIONS_FILE, CRF(len(NER_LABELS)), NER_LABELS)
    names = [p.name for p in files_to_upload(run)]
    assert TRANSITIONS_FILE in names and "model.safetensors" in names
