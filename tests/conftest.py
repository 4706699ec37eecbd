"""Test-wide settings: one BLAS thread per party thread (the parties share 2 cores); the
float MiniLM classifier, loaded once for the tests that compare against it."""

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))  # benchmarks/ is not installed


@pytest.fixture(scope="session")
def minilm():
    """(transformers classifier, tokenizer) of the bundled float model, or skip."""
    from models import checkpoint

    try:
        return checkpoint.load_classifier()
    except checkpoint.CheckpointError as e:
        pytest.skip(f"models.checkpoint.load_classifier unavailable: {e}")
