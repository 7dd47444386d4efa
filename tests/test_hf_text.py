"""The Hugging Face path (tlcourse.hf_text) on a tiny stand-in checkpoint: no network, no download."""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import pytest
import torch

import tlcourse as tl

CPU = torch.device("cpu")
LABELS = ["neg", "pos"]
GOOD, BAD = ["a good", "a great", "a lovely", "a fine", "a superb"], ["a bad", "an awful", "a poor", "a dull", "a weak"]
NOUNS = ["film", "book", "song", "play", "show"]
TEXTS = [f"{adj} {noun}, really!" for adj in GOOD + BAD for noun in NOUNS]  # 50 texts, separable by the adjective
TARGETS = ["pos" if any(t.startswith(g + " ") for g in GOOD) else "neg" for t in TEXTS]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One stand-in checkpoint for the whole module (each test loads its own classifier from it)."""
    return tl.tiny_text_checkpoint(tmp_path_factory.mktemp("hf") / "tiny", TEXTS, labels=LABELS, max_length=16)


def _load(folder: Path) -> tl.HFTextClassifier:
    torch.manual_seed(0)  # dropout during training
    return tl.hf_text_classifier(folder, labels=LABELS)


def test_tiny_checkpoint_round_trip(tiny_folder: Path) -> None:
    marker = json.loads((tiny_folder / tl.STANDIN_MARKER).read_text())
    assert "stand-in" in marker["why"] and marker["made_from"]["labels"] == LABELS
    clf = _load(tiny_folder)
    assert clf.standin and clf.labels == LABELS and clf.max_length == 16
    assert "STAND-IN" in repr(clf) and "never a finding" in clf.describe()
    assert type(clf.model).__name__ == "DistilBertForSequenceClassification"
    assert clf.model.config.id2label == {0: "neg", 1: "pos"}
    ids = clf.encode("A Great Film, really!")[0].tolist()  # uncased, like distilbert-base-uncased
    assert ids[0] == clf.tokenizer.cls_token_id and ids[-1] == clf.tokenizer.sep_token_id
    assert clf.tokenizer.unk_token_id not in ids
    assert clf.tokenizer.decode(ids, skip_special_tokens=True) == "a great film, really!"


def test_a_fine_tuned_copy_of_a_standin_stays_a_standin(tiny_folder: Path, tmp_path: Path) -> None:
    clf = _load(tiny_folder)
    clf.model.save_pretrained(tmp_path / "copy")  # what a learner saves after fine-tuning: no marker file
    clf.tokenizer.save_pretrained(tmp_path / "copy")
    assert not (tmp_path / "copy" / tl.STANDIN_MARKER).exists()
    assert tl.hf_text_classifier(tmp_path / "copy", labels=LABELS).standin  # the config says so


def test_an_existing_folder_is_reused_never_overwritten(tiny_folder: Path, tmp_path: Path) -> None:
    weights = tiny_folder / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert tl.tiny_text_checkpoint(tiny_folder, TEXTS, labels=LABELS, max_length=16) == tiny_folder
    assert weights.stat().st_mtime_ns == before  # reused, not rebuilt
    with pytest.raises(ValueError, match="other seed"):
        tl.tiny_text_checkpoint(tiny_folder, TEXTS, labels=LABELS, max_length=16, seed=1)
    own = tmp_path / "mine"
    own.mkdir()
    (own / "notes.txt").write_text("keep me")
    with pytest.raises(ValueError, match="not a complete tiny_text_checkpoint"):
        tl.tiny_text_checkpoint(own, TEXTS, labels=LABELS)
    assert [p.name for p in own.iterdir()] == ["notes.txt"]
    assert weights.stat().st_mtime_ns == before
    assert not [p for p in tiny_folder.parent.iterdir() if p.name.startswith(".")]  # no temporary left


def test_the_same_arguments_build_the_same_checkpoint(tiny_folder: Path, tmp_path: Path) -> None:
    again = tl.tiny_text_checkpoint(tmp_path / "again", TEXTS, labels=LABELS, max_length=16)
    a, b = _load(tiny_folder), _load(again)
    assert a.tokenizer.get_vocab() == b.tokenizer.get_vocab()
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_forward_shapes_and_padding_changes_nothing(tiny_folder: Path) -> None:
    clf = _load(tiny_folder).eval()
    ids = clf.encode(["a good film", "an awful song, really!"])
    assert ids.dtype == torch.long and ids.shape == (2, 8)  # [CLS] an awful song , really ! [SEP]
    assert clf(ids).shape == (2, 2)
    assert clf.encode(["film " * 100]).shape == (1, 16)  # truncated at max_length
    short = clf.encode(["a good film"])  # (1, 5): no padding
    padded = clf.encode(["a good film"], padding="max_length")  # (1, 16): 11 [PAD]s
    assert short.shape == (1, 5) and (padded == clf.tokenizer.pad_token_id).sum() == 11
    with torch.no_grad():
        torch.testing.assert_close(clf(padded), clf(short), atol=1e-5, rtol=0)
        unmasked = clf.model(input_ids=padded).logits  # what the mask prevents: attending to padding
    assert (unmasked - clf(short)).abs().max() > 1e-4
    with pytest.raises(ValueError, match="int64 token ids"):
        clf(ids.float())


def test_fine_tune_and_evaluate_train_it_unchanged(tiny_folder: Path) -> None:
    clf = _load(tiny_folder)
    loader = tl.text_batches(clf, TEXTS, TARGETS, batch_size=10, shuffle=True, seed=0)
    ids, y = next(iter(loader))
    assert ids.shape[0] == 10 and y.dtype == torch.long
    before = {n: p.detach().clone() for n, p in clf.named_parameters()}
    first = tl.fine_tune(clf, loader, epochs=1, lr=3e-3, device=CPU)
    assert len(first) == 1
    assert all(not torch.equal(before[n], p) for n, p in clf.named_parameters())  # every layer moved
    losses = first + tl.fine_tune(clf, loader, epochs=7, lr=3e-3, device=CPU)
    assert losses[-1] < 0.5 * losses[0]
    assert tl.evaluate(clf, loader, CPU)["accuracy"] == 1.0


def test_layer_names_cover_every_parameter(tiny_folder: Path) -> None:
    clf = _load(tiny_folder)
    layers = tl.hf_layer_names(clf)
    assert layers == ["model.distilbert.embeddings", "model.distilbert.transformer.layer.0",
                      "model.distilbert.transformer.layer.1", ["model.pre_classifier", "model.classifier"]]
    groups = tl.layerwise_lr_groups(clf, lr=1e-3, decay=0.5, layers=layers)
    assert [g["lr"] for g in groups] == [1.25e-4, 2.5e-4, 5e-4, 1e-3]
    grouped = [id(p) for g in groups for p in g["params"]]
    assert sorted(grouped) == sorted(id(p) for p in clf.parameters())  # each parameter once
    first_stage = next(tl.unfreezing_stages(clf, layers))
    assert first_stage == ["model.pre_classifier+model.classifier"]
    assert {n.split(".")[1] for n, p in clf.named_parameters() if p.requires_grad} == {"pre_classifier", "classifier"}


def test_layer_names_of_bert_and_of_an_unknown_architecture(tiny_folder: Path) -> None:
    from transformers import BertConfig, BertForSequenceClassification, GPT2Config, GPT2ForSequenceClassification

    tokenizer = _load(tiny_folder).tokenizer
    bert = BertForSequenceClassification(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=2, intermediate_size=64))
    clf = tl.HFTextClassifier(bert, tokenizer, labels=LABELS, name="tiny bert", standin=True, max_length=16)
    assert "STAND-IN" in repr(clf)
    clf.standin = False
    assert repr(clf).startswith("tiny bert: a BertForSequenceClassification from a real checkpoint")
    layers = tl.hf_layer_names(clf)
    assert layers == ["model.bert.embeddings", "model.bert.encoder.layer.0", "model.bert.encoder.layer.1",
                      "model.bert.pooler", ["model.classifier"]]
    tl.layerwise_lr_groups(clf, lr=1e-3, decay=0.5, layers=layers)  # raises if a parameter is left out
    gpt2 = GPT2ForSequenceClassification(GPT2Config(vocab_size=len(tokenizer), n_embd=32, n_layer=1, n_head=2))
    with pytest.raises(ValueError, match="GPT2ForSequenceClassification is neither"):
        tl.hf_layer_names(tl.HFTextClassifier(gpt2, tokenizer, labels=LABELS, name="gpt2", standin=True,
                                              max_length=16))


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[tuple]:
    """An empty Hugging Face cache, and every attempt to resolve a name or open a connection recorded and refused."""
    from huggingface_hub import constants

    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))  # read once, at import
    attempts: list[tuple] = []

    def refuse(*args: object, **kwargs: object) -> None:
        attempts.append(args)
        raise OSError("network access in a test")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    return attempts


def test_a_hub_name_with_downloads_off_fails_fast_and_offline(no_network: list[tuple],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "0")
    start = time.perf_counter()
    with pytest.raises(tl.HFCheckpointUnavailableError) as err:
        tl.hf_text_classifier("distilbert-base-uncased", labels=LABELS)
    assert time.perf_counter() - start < 3
    message = str(err.value)
    assert "not in the Hugging Face cache" in message and "TLCOURSE_DOWNLOAD=0" in message
    assert "TLCOURSE_DOWNLOAD=1" in message and "tl.tiny_text_checkpoint(" in message
    monkeypatch.setenv(tl.DOWNLOAD_ENV, "1")
    with pytest.raises(tl.HFCheckpointUnavailableError, match="download=False"):
        tl.hf_text_classifier("distilbert-base-uncased", labels=LABELS, download=False)
    assert no_network == []


def test_a_cached_hub_name_loads_offline(tiny_folder: Path, no_network: list[tuple], tmp_path: Path) -> None:
    """With downloads off, a checkpoint already in the Hugging Face cache loads without a request."""
    commit = "0" * 40
    repo = tmp_path / "hf" / "hub" / "models--tlcourse-test--tiny"  # the cache's layout for repo tlcourse-test/tiny
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(tiny_folder, repo / "snapshots" / commit)
    clf = tl.hf_text_classifier("tlcourse-test/tiny", labels=LABELS, download=False)
    assert clf.name == "tlcourse-test/tiny" and clf.standin  # its config still says what it is
    assert clf(clf.encode(["a good film"])).shape == (1, 2)
    assert no_network == []


def test_missing_folders_and_bad_names_raise(tiny_folder: Path, no_network: list[tuple]) -> None:
    with pytest.raises(tl.HFCheckpointUnavailableError, match="did you mean 'tiny'"):
        tl.hf_text_classifier(tiny_folder.parent / "tinny", labels=LABELS)
    with pytest.raises(tl.HFCheckpointUnavailableError, match="no config.json"):
        tl.hf_text_classifier(tiny_folder.parent, labels=LABELS)
    with pytest.raises(tl.HFCheckpointUnavailableError, match="no valid hub name"):
        tl.hf_text_classifier("distil bert", labels=LABELS, download=False)
    assert no_network == []


def test_labels_are_checked(tiny_folder: Path) -> None:
    with pytest.raises(ValueError, match=r"trained for the labels \['neg', 'pos'\]"):
        tl.hf_text_classifier(tiny_folder, labels=["pos", "neg"])
    with pytest.raises(ValueError, match="two or more distinct"):
        tl.hf_text_classifier(tiny_folder, labels=["pos"])
    with pytest.raises(ValueError, match="max_length must be between 3 and"):
        tl.hf_text_classifier(tiny_folder, labels=LABELS, max_length=17)
    clf = _load(tiny_folder)
    with pytest.raises(ValueError, match="did you mean 'pos'"):
        tl.text_batches(clf, ["a good film"], ["poss"], batch_size=1)
    with pytest.raises(ValueError, match="unknown label 2"):
        tl.text_batches(clf, ["a good film"], [2], batch_size=1)
    _, y = next(iter(tl.text_batches(clf, ["good", "bad", "good"], torch.tensor([1, 0, 1]), batch_size=3)))
    assert y.tolist() == [1, 0, 1]  # indices may come as a tensor (or numpy array)
    with pytest.raises(ValueError, match="1 texts but 2 labels"):
        tl.text_batches(clf, ["a good film"], ["pos", "neg"], batch_size=1)
