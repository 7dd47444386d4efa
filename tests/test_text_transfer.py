"""The text chapter's helpers: fortune files, tokens, the small models, the language model, the experiment.

Most tests read a made-up fortune folder (``TLCOURSE_FORTUNES``) so they run in a second;
those marked ``real`` read Debian's ``fortunes`` package, which ``make test`` installs.
"""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

import tlcourse as tl
from tlcourse import text_budgets, text_lm
from tlcourse.data import DataUnavailableError

REAL = pytest.mark.skipif(not any((f / "science").is_file() for f in tl.FORTUNE_FOLDERS),
                          reason="Debian's fortunes package is not installed (make test installs it as root)")


def write_topic(folder, name, entries):
    (folder / name).write_text("\n%\n".join(entries) + "\n%\n")


@pytest.fixture
def fortunes(tmp_path, monkeypatch):
    """A fortune folder: the four task topics (one entry filed twice), two corpus topics, a left-out one."""
    for t in tl.TOPICS:
        write_topic(tmp_path, t, [f"{t} saying number {i}" for i in range(12)] + ["filed under two topics"])
    write_topic(tmp_path, "wisdom", ["a wise word", "science saying number 3", "a wise word"])
    write_topic(tmp_path, "zippy", ["Are we having fun yet?", "_\bb_\bo_\bl_\bd text"])
    write_topic(tmp_path, "ethnic", ["left out"])
    (tmp_path / "wisdom.dat").write_bytes(b"\0index")
    monkeypatch.setenv("TLCOURSE_FORTUNES", str(tmp_path))
    return tmp_path


def test_a_folder_without_fortunes_says_how_to_install_them(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_FORTUNES", str(tmp_path))
    with pytest.raises(DataUnavailableError, match="apt-get install fortunes"):
        tl.topic_task()


def test_fortune_files_are_read_cleaned_and_a_typo_raises(fortunes):
    assert tl.fortune_topics() == sorted([*tl.TOPICS, "ethnic", "wisdom", "zippy"])  # no .dat index
    assert tl.read_fortunes("zippy") == ["Are we having fun yet?", "bold text"]  # overstrike removed
    with pytest.raises(ValueError, match="did you mean 'science'"):
        tl.read_fortunes("sciense")


def test_the_task_holds_out_a_fixed_test_set_and_drops_what_two_topics_share(fortunes):
    task = tl.topic_task(test_per_class=3, seed=0)
    assert task.classes == tl.TOPICS
    assert len(task.test_texts) == 12 and len(task.pool_texts) == 36  # 12 per topic; the shared entry dropped
    assert "filed under two topics" not in task.pool_texts + task.test_texts
    assert not set(task.pool_texts) & set(task.test_texts)
    assert torch.bincount(task.test_labels).tolist() == [3, 3, 3, 3]
    assert tl.topic_task(test_per_class=3, seed=0).test_texts == task.test_texts  # the same every time
    assert tl.topic_task(test_per_class=3, seed=1).test_texts != task.test_texts
    idx = task.budget(2, seed=5)
    assert torch.bincount(task.pool_labels[idx]).tolist() == [2, 2, 2, 2]
    assert torch.equal(idx, task.budget(2, seed=5)) and len(task.budget(None, seed=0)) == 36
    with pytest.raises(ValueError, match="only 9 examples"):
        task.budget(10, seed=0)


def test_the_corpus_has_no_task_topic_no_left_out_topic_and_no_task_quotation(fortunes):
    corpus = tl.unlabelled_corpus(tl.topic_task(test_per_class=3))
    assert corpus == ["a wise word", "Are we having fun yet?", "bold text"]  # repeats and a science entry gone


def test_the_held_out_corpus_text_is_not_in_the_vocabulary(fortunes):
    material = tl.text_material(dataclasses.replace(SMALL, test_per_class=3))
    assert material.held_out == 1 and material.corpus[0] == "a wise word"
    wise = tl.token_ids(["wise"])[0]  # a piece only the held-out quotation uses
    assert material.vocab.encode(wise) == [tl.UNK] * len(wise)
    assert material.vocab.coverage(material.corpus_ids[1:]) == 1.0  # the rest is all in it


def test_wordllama_tokenizer_round_trips_real_text_and_its_embeddings_have_a_row_per_piece():
    tok = tl.wordllama_tokenizer()
    text = "It is a capital mistake to theorize before one has data. -- Sherlock Holmes"
    assert tok.decode(tl.token_ids([text])[0]) == text
    emb = tl.wordllama_embeddings()
    assert emb.shape == (tok.get_vocab_size(), 256) and emb.dtype == torch.float32
    assert torch.isfinite(emb).all() and emb.norm(dim=1).min() > 0


def test_a_vocabulary_keeps_the_most_used_pieces_and_counts_what_it_misses():
    v = tl.Vocabulary([[7, 7, 7, 9, 9, 4]], size=5)  # room for two pieces: 7 and 9
    assert len(v) == 5 and v.pieces == [-1, -1, -1, 7, 9]
    assert v.encode([9, 4, 7]) == [4, tl.UNK, 3]
    assert v.coverage([[7, 4], [9, 9]]) == 0.75
    rows = v.rows_of(torch.arange(20.0).view(10, 2))
    assert rows[3].tolist() == [14.0, 15.0] and rows[tl.PAD].tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="no tokens"):
        v.coverage([[]])
    assert tl.unknown_word_rate(["a b"], ["a c c d"]) == 0.75


def test_a_language_model_with_zero_weights_predicts_uniformly_so_its_loss_is_log_v():
    model = tl.LanguageModel(tl.LSTMEncoder(vocab_size=50, dim=8, hidden=8))
    with torch.no_grad():
        model.encoder.embed.weight.zero_()  # the tied decoder too
        model.decoder.bias.zero_()
    x, y = next(iter(tl.LMWindows([list(range(3, 40))], length=6, batch_size=4, shuffle=False)))
    assert x.shape == (4, 6) and torch.equal(y.view(4, 6)[:, :-1], x[:, 1:])  # y is x shifted by one
    loss = torch.nn.functional.cross_entropy(model.eval()(x), y)
    assert loss.item() == pytest.approx(math.log(50), abs=1e-6)
    assert model.decoder.weight is model.encoder.embed.weight


def test_padding_on_the_right_changes_no_classifier_output():
    torch.manual_seed(0)
    clf = tl.SequenceClassifier(tl.LSTMEncoder(vocab_size=30, dim=8, hidden=12), num_classes=3).eval()
    short = torch.tensor([[5, 6, 7]])
    padded = torch.tensor([[5, 6, 7, tl.PAD, tl.PAD]])
    assert torch.allclose(clf(short), clf(padded), atol=1e-6)
    bag = tl.MeanEmbeddingClassifier(torch.randn(30, 4), num_classes=3)
    assert torch.allclose(bag(short), bag(padded), atol=1e-6)


def test_frozen_pretrained_embeddings_stay_as_they_are_while_the_head_learns():
    emb = torch.randn(30, 4)
    bag = tl.MeanEmbeddingClassifier(emb, num_classes=2, freeze=True)
    head = bag.head.weight.detach().clone()
    batches = [(torch.tensor([[3, 4, 0], [5, 6, 7]]), torch.tensor([0, 1]))]
    tl.fine_tune(bag, batches, epochs=2, lr=0.1, device=torch.device("cpu"))
    assert torch.equal(bag.embed.weight, emb) and not torch.equal(bag.head.weight, head)


def test_gradual_unfreezing_names_every_layer_of_the_classifier():
    clf = tl.SequenceClassifier(tl.LSTMEncoder(vocab_size=30, dim=8, hidden=8), num_classes=2)
    stages = list(tl.unfreezing_stages(clf, tl.CLASSIFIER_LAYERS))
    assert stages[0] == ["head"] and stages[-1] == list(tl.CLASSIFIER_LAYERS)
    rates = [g["lr"] for g in tl.layerwise_lr_groups(clf, lr=1.0, decay=0.5, layers=tl.CLASSIFIER_LAYERS)]
    assert rates == [0.125, 0.25, 0.5, 1.0]


SMALL = dataclasses.replace(tl.TEXT_SETTINGS["quick"], vocab_size=40, dim=8, hidden=8, window=5, batch_size=4,
                            budgets=(2, None), seeds=(0, 1), min_steps=2, head_steps=5, max_length=8)


def test_a_language_model_trains_once_and_later_calls_load_it(tmp_path, monkeypatch):
    monkeypatch.setenv("TLCOURSE_CHECKPOINTS", str(tmp_path))
    texts = [[3 + (i * 7 + j) % 30 for j in range(9)] for i in range(20)]
    first = tl.train_language_model(texts[2:], texts[:2], SMALL, epochs=2)
    again = tl.train_language_model(texts[2:], texts[:2], SMALL, epochs=2)
    assert not first.loaded and again.loaded and again.history.epochs == 2
    assert all(torch.equal(a, b) for a, b in zip(first.model.state_dict().values(), again.model.state_dict().values()))
    assert first.perplexity == pytest.approx(math.exp(first.history.test_loss[-1]))
    stage2 = tl.train_language_model(texts[:2], texts[2:4], SMALL, epochs=1, start=first.model)
    assert not stage2.loaded and stage2.path != first.path  # started from stage 1: another checkpoint
    assert not list(tmp_path.glob("*.partial*"))


def test_a_language_model_interrupted_keeps_its_epochs_and_resumes_as_if_never_stopped(tmp_path, monkeypatch):
    """Ctrl-C during pretraining: the finished epochs are kept, and the next call resumes (tl.fit_once)."""
    monkeypatch.setenv("TLCOURSE_CHECKPOINTS", str(tmp_path))
    texts = [[3 + (i * 7 + j) % 30 for j in range(9)] for i in range(20)]
    started = []

    class Windows(tl.LMWindows):
        stop_at = 1  # the epoch that Ctrl-C interrupts as it starts; -1: none

        def set_epoch(self, epoch: int) -> None:  # tl.fit calls it on the training windows only
            started.append(epoch)
            if epoch == Windows.stop_at:
                raise KeyboardInterrupt
            super().set_epoch(epoch)

    monkeypatch.setattr(text_lm, "LMWindows", Windows)
    with pytest.raises(tl.SourceInterrupted, match=r"kept the language model's first 1 of 3 epochs .*the next "
                                                    r"train_language_model call"):
        tl.train_language_model(texts[2:], texts[:2], SMALL, epochs=3)
    Windows.stop_at = -1
    resumed = tl.train_language_model(texts[2:], texts[:2], SMALL, epochs=3)
    assert started == [0, 1, 1, 2] and not resumed.loaded, "the finished epoch was trained again"
    assert resumed.history.epochs == 3 and not list(tmp_path.glob("*.partial*"))
    monkeypatch.setenv("TLCOURSE_CHECKPOINTS", str(tmp_path / "whole"))
    whole = tl.train_language_model(texts[2:], texts[:2], SMALL, epochs=3)
    assert whole.history.test_loss == resumed.history.test_loss  # interrupted and resumed = trained in one go
    assert all(torch.equal(a, b) for a, b in zip(whole.model.state_dict().values(), resumed.model.state_dict().values()))


def test_a_language_model_is_not_trained_when_its_checkpoint_cannot_be_written(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("TLCOURSE_CHECKPOINTS", str(blocker / "checkpoints"))
    texts = [[3 + (i * 7 + j) % 30 for j in range(9)] for i in range(6)]
    with pytest.raises(tl.OutputNotWritableError, match=r"trained language model"):
        tl.train_language_model(texts[2:], texts[:2], SMALL, epochs=1)
    assert blocker.read_text() == "not a folder"


def fake_inputs(fortunes):
    material = tl.text_material(dataclasses.replace(SMALL, test_per_class=3))
    material = dataclasses.replace(material, vocab=tl.Vocabulary(material.pool_ids, size=SMALL.vocab_size))
    lm = tl.LanguageModel(tl.LSTMEncoder(SMALL.vocab_size, dim=SMALL.dim, hidden=SMALL.hidden))
    return tl.text_inputs(material, SMALL, lm)


def test_every_arm_of_a_seed_sees_the_same_quotations(fortunes):
    inputs = fake_inputs(fortunes)
    rows = [tl.run_text_arm(arm, inputs, budget=2, seed=3) for arm in tl.TEXT_ARMS]
    assert {r["labels"] for r in rows} == {8} and all(0 <= r["accuracy"] <= 1 for r in rows)
    assert tl.run_text_arm("scratch", inputs, budget=2, seed=3)["accuracy"] == rows[0]["accuracy"]  # seeded
    with pytest.raises(ValueError, match="did you mean 'fine-tuned'"):
        tl.run_text_arm("fine-tune", inputs, budget=2, seed=0)


def test_the_experiment_saves_each_run_and_a_rerun_computes_nothing(fortunes, tmp_path, monkeypatch):
    inputs, path = fake_inputs(fortunes), tmp_path / "runs.json"
    runs = tl.text_budget_experiment(inputs, arms=("scratch", "frozen encoder"), path=path, progress=False)
    assert len(runs) == 2 * 2 * 2 and set(runs["budget"]) == {"2", "all"}
    assert len(json.loads(path.read_text())["runs"]) == 8
    monkeypatch.setattr(text_budgets, "run_text_arm", lambda *a, **k: pytest.fail("recomputed a saved run"))
    again = tl.text_budget_experiment(inputs, arms=("scratch", "frozen encoder"), path=path, progress=False)
    assert again.equals(runs)
    saved = path.read_text()
    other = tl.text_inputs(inputs.material, dataclasses.replace(SMALL, min_steps=3), inputs.lm)
    with pytest.raises(ValueError, match="other settings"):
        tl.text_budget_experiment(other, path=path, progress=False)
    assert path.read_text() == saved  # refused: nothing changed


@REAL
def test_the_real_task_and_corpus_share_no_quotation(monkeypatch):
    monkeypatch.delenv("TLCOURSE_FORTUNES", raising=False)
    task = tl.topic_task()
    corpus = tl.unlabelled_corpus(task)
    assert task.classes == tl.TOPICS and len(task.test_texts) == 400 and task.smallest_class > 128
    assert not (set(task.pool_texts) | set(task.test_texts)) & set(corpus)
    assert len(corpus) > 10_000
