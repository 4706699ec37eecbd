"""Fine-tune the top layers of MiniLM for binary sentiment and write the committed delta.

Recipe: start from the pip-installed all-MiniLM-L6-v2 (``models/checkpoint.py``), freeze the
embeddings and the lower encoder layers, train the top ``--layers`` layers + pooler + a new
2-way head on the Rotten Tomatoes sentences of ``models/data.py`` (10% held out for
validation; exact duplicates and sentences that also occur in the UCI test set removed), then
report float accuracy on the held-out movie sentences and on the 3,000 UCI sentences, and write
``delta.safetensors`` + ``meta.json`` into ``--out``. The delta is re-loaded through
:func:`models.checkpoint.load_classifier` and evaluated again at its stored precision.

    python -m models.train_sentiment            # ~5 min on 2 cores; writes the default artifact
    python -m models.train_sentiment --help
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import random
import re
import sys
import time
from pathlib import Path

import torch

from models import checkpoint
from models.checkpoint import (
    DEFAULT_MAX_LEN,
    DELTA_FORMAT,
    LABELS,
    MAX_DELTA_BYTES,
    META_NAME,
    evaluate,
)
from models.data import (
    MOVIE_MIN_ABS_SCORE,
    MOVIE_PIP_SPEC,
    UCI_NPM_SPEC,
    DataUnavailable,
    Sentence,
    movie_sentences,
    uci_sentences_by_source,
)

__all__ = ["evaluate", "main", "split_movie", "trainable_keys"]


def _norm(text: str) -> str:
    return re.sub(r"\W+", " ", text.lower()).strip()


def split_movie(
    movie: list[Sentence], exclude: list[Sentence], val_frac: float, seed: int
) -> tuple[list[Sentence], list[Sentence], dict[str, int]]:
    """Deduplicate, drop sentences also in ``exclude`` (the test set), shuffle, split off val."""
    banned = {_norm(t) for t, _ in exclude}
    seen: set[str] = set()
    kept: list[Sentence] = []
    dropped_dup = dropped_test = 0
    for text, label in movie:
        key = _norm(text)
        if key in banned:
            dropped_test += 1
        elif key in seen:
            dropped_dup += 1
        else:
            seen.add(key)
            kept.append((text, label))
    random.Random(seed).shuffle(kept)
    n_val = round(len(kept) * val_frac)
    stats = {"duplicates_dropped": dropped_dup, "in_test_set_dropped": dropped_test}
    return kept[n_val:], kept[:n_val], stats


def trainable_keys(model: torch.nn.Module, layers: int) -> list[str]:
    """State-dict names fine-tuned: the top ``layers`` encoder layers, the pooler, the head."""
    n = model.config.num_hidden_layers
    if not 0 <= layers <= n:
        raise ValueError(f"--layers must be in [0, {n}]")
    prefixes = [f"bert.encoder.layer.{i}." for i in range(n - layers, n)]
    prefixes += ["bert.pooler.", "classifier."]
    return [k for k, _ in model.named_parameters() if k.startswith(tuple(prefixes))]


def _batches(n: int, batch_size: int, gen: torch.Generator) -> list[list[int]]:
    perm = torch.randperm(n, generator=gen).tolist()
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def _collate(ids: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(x) for x in ids)
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for r, x in enumerate(ids):
        input_ids[r, : len(x)] = torch.tensor(x)
        mask[r, : len(x)] = 1
    return {"input_ids": input_ids, "attention_mask": mask}


def train(args: argparse.Namespace) -> dict:
    from safetensors.torch import save_file
    from tqdm import tqdm

    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)
    progress = not args.no_progress

    uci_by_source = uci_sentences_by_source()
    uci = [s for items in uci_by_source.values() for s in items]
    movie = movie_sentences()
    train_set, val_set, split_stats = split_movie(movie, uci, args.val_frac, args.seed)
    if args.limit:
        train_set, val_set = train_set[: args.limit], val_set[: args.limit]
    print(
        f"data: movie {len(movie)} -> train {len(train_set)}, val {len(val_set)} "
        f"({split_stats}); UCI test {len(uci)}",
        flush=True,
    )

    tok = checkpoint.load_tokenizer()
    model = checkpoint.base_classifier(num_labels=len(LABELS))
    base_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    keys = trainable_keys(model, args.layers)
    for name, p in model.named_parameters():
        p.requires_grad_(name in keys)
    params = [p for n, p in model.named_parameters() if n in keys]
    n_params = sum(p.numel() for p in params)
    print(f"fine-tuning {len(keys)} tensors, {n_params:,} parameters", flush=True)

    decay = [p for n, p in model.named_parameters() if n in keys and p.ndim >= 2]
    no_decay = [p for n, p in model.named_parameters() if n in keys and p.ndim < 2]
    opt = torch.optim.AdamW(
        [
            {"params": decay, "weight_decay": args.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=args.lr,
    )
    enc = tok([t for t, _ in train_set], truncation=True, max_length=args.max_len)["input_ids"]
    labels = torch.tensor([y for _, y in train_set])
    steps_per_epoch = math.ceil(len(train_set) / args.batch_size)
    total = steps_per_epoch * args.epochs
    warmup = max(1, round(total * args.warmup))

    def schedule(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        return max(0.0, (total - step) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule)
    gen = torch.Generator().manual_seed(args.seed)

    t0 = time.perf_counter()
    model.train()
    for epoch in range(args.epochs):
        batches = _batches(len(train_set), args.batch_size, gen)
        bar = tqdm(batches, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not progress)
        running = None
        for idx in bar:
            batch = _collate([enc[i] for i in idx], tok.pad_token_id)
            out = model(**batch, labels=labels[idx])
            opt.zero_grad(set_to_none=True)
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            sched.step()
            loss = out.loss.item()
            running = loss if running is None else 0.95 * running + 0.05 * loss
            bar.set_postfix(loss=f"{running:.3f}")
    train_s = time.perf_counter() - t0
    print(f"training took {train_s:.0f} s", flush=True)

    model.eval()
    ev = {"max_len": args.max_len, "progress": progress}
    acc32 = {"movie_val": evaluate(model, tok, val_set, **ev)}
    for source, items in uci_by_source.items():
        acc32[f"uci_{source}"] = evaluate(model, tok, items, **ev)
    acc32["uci"] = sum(acc32[f"uci_{s}"] * len(v) for s, v in uci_by_source.items()) / len(uci)
    print("fp32 accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc32.items()), flush=True)

    # ---- the delta: residuals for tensors in the base, values for new ones (the head)
    dtype = {"float16": torch.float16, "float32": torch.float32}[args.dtype]
    tuned = model.state_dict()
    add = sorted(k for k in keys if not k.startswith("classifier."))
    put = sorted(k for k in keys if k.startswith("classifier."))
    tensors = {k: (tuned[k] - base_state[k]).to(dtype).contiguous() for k in add}
    tensors |= {k: tuned[k].to(dtype).contiguous() for k in put}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    delta_path = out_dir / "delta.safetensors"
    save_file(tensors, str(delta_path), metadata={"format": DELTA_FORMAT, "dtype": args.dtype})
    delta_path.chmod(0o644)
    size = delta_path.stat().st_size
    if size > MAX_DELTA_BYTES:
        print(f"warning: delta is {size:,} bytes > {MAX_DELTA_BYTES:,} (too big to commit)")

    meta = {
        "format": DELTA_FORMAT,
        "task": "binary sentiment (0 negative, 1 positive)",
        "labels": list(LABELS),
        "num_labels": len(LABELS),
        "max_len": args.max_len,
        "base": checkpoint.base_fingerprint(),
        "delta": {
            "file": delta_path.name,
            "sha256": checkpoint.sha256_file(delta_path),
            "bytes": size,
            "dtype": args.dtype,
            "parameters": n_params,
            "add": add,
            "set": put,
        },
        "recipe": {
            "trained_layers": f"top {args.layers} of {model.config.num_hidden_layers}"
            " encoder layers + pooler + classifier; embeddings and lower layers frozen",
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": "AdamW",
            "lr": args.lr,
            "weight_decay": args.weight_decay,
            "schedule": f"linear warmup {args.warmup:.0%} then linear decay to 0",
            "grad_clip": 1.0,
            "max_len": args.max_len,
            "dropout": model.config.hidden_dropout_prob,
            "threads": args.threads,
            "seed": args.seed,
            "command": " ".join(["python -m models.train_sentiment", *sys.argv[1:]]),
        },
        "seed": args.seed,
        "data": {
            "train_source": f"PyPI {MOVIE_PIP_SPEC} sdist, movieReviewSnippets_GroundTruth.txt "
            f"(Hutto & Gilbert 2014; label score > 0, |score| >= {MOVIE_MIN_ABS_SCORE})",
            "test_source": f"npm {UCI_NPM_SPEC} test/fixtures (UCI Sentiment Labelled "
            "Sentences, Kotzias et al. 2015, CC BY 4.0)",
            "movie_sentences": len(movie),
            **split_stats,
            "train": len(train_set),
            "val": len(val_set),
            "val_frac": args.val_frac,
            "uci_test": len(uci),
        },
        "results": {"train_seconds": round(train_s, 1), "accuracy_fp32": acc32},
        "environment": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "transformers": _version("transformers"),
            "machine": platform.machine(),
        },
    }
    meta_file = out_dir / META_NAME
    meta_file.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")

    # ---- reload through the public loader: checks the round trip and the stored precision
    loaded, tok2 = checkpoint.load_classifier(delta_path)
    acc_st = {"movie_val": evaluate(loaded, tok2, val_set, **ev)}
    for source, items in uci_by_source.items():
        acc_st[f"uci_{source}"] = evaluate(loaded, tok2, items, **ev)
    acc_st["uci"] = sum(acc_st[f"uci_{s}"] * len(v) for s, v in uci_by_source.items()) / len(uci)
    sample = tok2(
        [t for t, _ in uci[:: max(1, len(uci) // 256)]], padding=True, return_tensors="pt"
    )
    with torch.inference_mode():
        diff = (loaded(**sample).logits - model(**sample).logits).abs().max().item()
    print(f"{args.dtype} accuracy: " + ", ".join(f"{k} {v:.4f}" for k, v in acc_st.items()))
    meta["results"][f"accuracy_{args.dtype}"] = acc_st
    meta["results"]["max_abs_logit_diff_vs_fp32"] = diff
    meta_file.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {delta_path} ({size / 1e6:.2f} MB) and {meta_file}; max |logit diff| {diff:.2e}")
    return meta


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m models.train_sentiment",
        description="Fine-tune the top layers of the pip-installed MiniLM on movie sentences "
        "and write delta.safetensors + meta.json (the committed sentiment classifier).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--epochs", type=int, default=1, help="passes over the training sentences")
    p.add_argument("--layers", type=int, default=2, help="number of top encoder layers to train")
    p.add_argument("--seed", type=int, default=0, help="seed for split, head init and batches")
    p.add_argument("--out", default=str(checkpoint.ARTIFACT_DIR), help="output directory")
    p.add_argument("--max-len", type=int, default=DEFAULT_MAX_LEN, help="truncate to N tokens")
    p.add_argument("--batch-size", type=int, default=32, help="sentences per step")
    p.add_argument("--lr", type=float, default=2e-4, help="peak AdamW learning rate")
    p.add_argument("--weight-decay", type=float, default=0.01, help="AdamW weight decay")
    p.add_argument("--warmup", type=float, default=0.06, help="warmup fraction of the steps")
    p.add_argument("--val-frac", type=float, default=0.1, help="movie sentences held out")
    p.add_argument(
        "--dtype", choices=("float16", "float32"), default="float16", help="stored precision"
    )
    p.add_argument("--limit", type=int, default=0, help="use only N train/val sentences (smoke)")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bars")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    try:
        train(args)
    except (DataUnavailable, checkpoint.CheckpointError) as e:
        sys.exit(f"error: {e}")


if __name__ == "__main__":
    main()
