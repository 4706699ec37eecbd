"""The main command's float line without transformers: ``models.floatbert`` on the
classifier's state gives the transformers model's logits (to float32 rounding) and the
same predictions; ``classifier_state`` is exactly the state ``load_classifier`` loads."""

import numpy as np
import torch

from models import checkpoint
from models.evaluate import float_predictions
from models.floatbert import logits

TEXTS = [
    "A gripping, beautifully acted film that stays with you long after it ends.",
    "Dull.",
    "The battery died after two days and support never answered.",
    "Not bad at all, though the ending drags.",
    "unbelievably OVERLONG and self-indulgent... 2/10 " * 6,
    "",
]


def test_state_is_what_load_classifier_loads(minilm):
    model, _ = minilm
    state = checkpoint.classifier_state()
    want = model.state_dict()
    assert set(state) == set(want)
    assert all(torch.equal(state[k], want[k]) for k in want)


def test_torch_forward_matches_transformers(minilm):
    from models.data import uci_sentences

    model, tok = minilm
    texts = TEXTS + [s[0] for s in uci_sentences()[:200]]
    state = checkpoint.classifier_state()
    for L in (8, 32):
        ours = logits(state, tok.backend_tokenizer, texts, L)
        pred, want = float_predictions(model, tok, texts, L)
        assert ours.shape == want.shape == (len(texts), 2)
        assert np.abs(ours - want).max() < 1e-4
        assert (ours.argmax(axis=1) == pred).all()
