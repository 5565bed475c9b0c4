"""Write verl parquet for ZeroSearch training: each row carries its question, gold answers and curriculum step
as the search tool's per-sample arguments (see docs/integrations.md).

    python examples/verl/make_data.py --train mini-world:train --val mini-world:test \
        --batch-size 64 --steps 203 --out data/verl

Train on the result with `data.shuffle=False`, `data.train_batch_size=<batch-size>` and
`trainer.total_training_steps=<steps>`: the rows are already in training order, one step per batch.
`--train`/`--val` take any question file zerosearch reads (ZeroSearch/Search-R1 parquet, FlashRAG jsonl, csv).
"""

import argparse
from pathlib import Path

from zerosearch.data import load_questions
from zerosearch.integrations.verl import write_parquet


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", default="mini-world:train", help="training questions")
    parser.add_argument("--val", default="mini-world:test", help="validation questions")
    parser.add_argument("--val-size", type=int, default=512, help="validation questions kept (a seeded subset)")
    parser.add_argument("--batch-size", type=int, default=64, help="= data.train_batch_size (questions per step)")
    parser.add_argument("--steps", type=int, default=203, help="= trainer.total_training_steps (m of Eq. 1)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("data/verl"))
    args = parser.parse_args()
    train = write_parquet(
        load_questions(args.train),
        args.out / "train.parquet",
        batch_size=args.batch_size,
        steps=args.steps,
        seed=args.seed,
    )
    val = write_parquet(
        load_questions(args.val, limit=args.val_size, seed=args.seed), args.out / "val.parquet", split="test"
    )
    print(f"{train} ({args.batch_size} x {args.steps} rows), {val}")


if __name__ == "__main__":
    main()
