"""A transformers classifier, built from a config (nothing downloaded), trained on dict batches.

Its forward takes `input_ids` and `attention_mask` and returns a `ModelOutput` whose one key is
`logits`: one output, unnamed, as Keras counts a dict output with one key.
"""

from __future__ import annotations

import pytest
import torch

import torch_keras_metrics as tkm

transformers = pytest.importorskip("transformers")

N, SEQ, VOCAB, BATCH = 96, 12, 50, 16


def _model():
    torch.manual_seed(0)
    config = transformers.BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=SEQ, num_labels=2, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
    )  # fmt: skip
    return transformers.BertForSequenceClassification(config)


def _batches():
    """What a tokenizer and a collator give: dicts of input_ids, attention_mask and labels."""
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, VOCAB, (N, SEQ), generator=g)
    lengths = torch.randint(4, SEQ + 1, (N,), generator=g)
    mask = (torch.arange(SEQ)[None, :] < lengths[:, None]).long()
    ids = ids * mask
    labels = (ids[:, 0] > VOCAB // 2).long()
    rows = [{"input_ids": ids[i], "attention_mask": mask[i], "labels": labels[i]} for i in range(N)]
    return torch.utils.data.DataLoader(rows, batch_size=BATCH)


def test_a_bert_classifier_trains_on_dict_batches_with_keras_epoch_numbers():
    model = _model()
    loader = _batches()
    trainer = tkm.Trainer(
        model,
        torch.optim.AdamW(model.parameters(), lr=1e-3),
        tkm.KerasLoss("sparse_categorical_crossentropy", from_logits=True),
        metrics=["accuracy"],
        target_keys="labels",
        device="cpu",
    )
    history = trainer.fit(loader, epochs=2, verbose=0)
    assert sorted(history.history) == ["accuracy", "loss"]
    for epoch, record in enumerate(history.batches):
        weighted = sum(a * n for a, n in zip(record["accuracy"], record["size"])) / sum(record["size"])
        assert history.history["accuracy"][epoch] == pytest.approx(weighted, abs=1e-6)

    got = trainer.evaluate(loader, verbose=0, return_dict=True)
    model.eval()
    hits = seen = 0
    loss_sum = 0.0
    with torch.inference_mode():
        for batch in loader:
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
            loss_sum += torch.nn.functional.cross_entropy(logits, batch["labels"], reduction="sum").item()
            hits += (logits.argmax(-1) == batch["labels"]).sum().item()
            seen += len(batch["labels"])
    assert got["accuracy"] == pytest.approx(hits / seen, abs=1e-6)
    assert got["loss"] == pytest.approx(loss_sum / seen, abs=1e-5)
    predicted = trainer.predict(loader, verbose=0)
    assert list(predicted) == ["logits"] and predicted["logits"].shape == (N, 2)
