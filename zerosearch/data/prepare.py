"""The paper's seven QA datasets, from FlashRAG's files to the ZeroSearch / Search-R1 parquet.

FlashRAG (the source of Search-R1's and ZeroSearch's data) ships each dataset as `<name>/<split>.jsonl` rows of
`id`, `question`, `golden_answers`, both as a download and on the hub (`RUC-NLPIR/FlashRAG_datasets`). `prepare`
reads that layout from a local folder or from the hub and writes what Search-R1's `qa_search_train_merge.py` /
`qa_search_test_merge.py` write: `train.parquet`, the training splits of the training datasets (the paper: NQ +
HotpotQA), and `test.parquet`, for every dataset its `test` split, else its `dev` split (those with no public test
answers), in the paper's order. `extra_info.index` counts within each dataset, as theirs does. FlashRAG's
`metadata` (HotpotQA's context paragraphs among others) is not carried: it would multiply the files' size for
fields that neither training nor evaluation reads.
"""

from __future__ import annotations

from pathlib import Path

from zerosearch.data.formats import DataError, QAExample, read_questions, write_questions

# The paper's order (its Table 3), which report tables follow; the split of single-hop and multi-hop datasets.
SINGLE_HOP = ("nq", "triviaqa", "popqa")
MULTI_HOP = ("hotpotqa", "2wikimultihopqa", "musique", "bamboogle")
DATASETS = SINGLE_HOP + MULTI_HOP
PAPER_TRAIN = ("nq", "hotpotqa")
HUB_REPO = "RUC-NLPIR/FlashRAG_datasets"
TEST_SPLITS = ("test", "dev")  # the first one a dataset has is its test set (Search-R1's choice)


def _check_names(names: list[str] | tuple[str, ...], what: str) -> None:
    unknown = [n for n in names if n not in DATASETS]
    if unknown:
        raise DataError(f"unknown {what} {unknown[0]!r}: choose from {', '.join(DATASETS)}")


def _hub_listing() -> list[str]:
    from huggingface_hub import list_repo_files

    try:
        return list_repo_files(HUB_REPO, repo_type="dataset")
    except Exception as e:  # offline mode, no network, a proxy: several exception types, one meaning for the user
        raise DataError(
            f"cannot read {HUB_REPO} from the hub ({type(e).__name__}); download FlashRAG's datasets and pass "
            "--source DIR"
        ) from None


def _splits(name: str, folder: Path, listing: list[str] | None) -> dict[str, str]:
    """{split: file} of one dataset: paths in a local folder, or file names in the hub repository."""
    if listing is None:
        return {p.stem: str(p) for p in sorted((folder / name).glob("*.jsonl"))}
    return {Path(f).stem: f for f in listing if Path(f).parent.name == name and f.endswith(".jsonl")}


def _read(file: str, hub: bool, name: str, split: str) -> list[QAExample]:
    """One split's questions, tagged with their dataset, split and index within the split."""
    if hub:
        from huggingface_hub import hf_hub_download

        file = hf_hub_download(HUB_REPO, file, repo_type="dataset")  # into the hub's own cache
    examples = read_questions(file)
    for i, ex in enumerate(examples):
        ex.data_source, ex.meta = name, {"split": split, "index": i}
    return examples


def prepare(
    names: list[str] | tuple[str, ...],
    source: str | Path,
    out: str | Path,
    train: list[str] | tuple[str, ...] = PAPER_TRAIN,
    log=print,
) -> dict:
    """Write OUT/train.parquet (train splits of `names` that are in `train`) and OUT/test.parquet; returns counts.

    `source` is a FlashRAG-layout folder or "hub". A dataset with no split at all is an error; a training dataset
    without a train split is skipped with a message (a test-only download is a normal thing to have).
    """
    _check_names(names, "dataset")
    _check_names(train, "training dataset")
    names = [n for n in DATASETS if n in names]  # the paper's order, once each
    listing = _hub_listing() if str(source) == "hub" else None
    folder = Path(source).expanduser()
    if listing is None and not folder.is_dir():
        raise DataError(f"--source {source}: no such folder (a FlashRAG download: NAME/train.jsonl, NAME/test.jsonl…)")
    test, training, counts = [], [], {"train": {}, "test": {}}
    for name in names:
        files = _splits(name, folder, listing)
        if not files:
            where = f"{HUB_REPO} on the hub" if listing is not None else f"{folder / name}/"
            raise DataError(f"{name}: no split found in {where} (expected {name}/test.jsonl or {name}/dev.jsonl …)")
        split = next((s for s in TEST_SPLITS if s in files), None)
        if split is None:
            raise DataError(f"{name}: no test or dev split (found {', '.join(sorted(files))})")
        examples = _read(files[split], listing is not None, name, split)
        test += examples
        counts["test"][name] = {"split": split, "questions": len(examples)}
        if name in train and "train" not in files:
            log(f"{name}: no train split, so not in train.parquet")
        elif name in train:
            examples = _read(files["train"], listing is not None, name, "train")
            training += examples
            counts["train"][name] = len(examples)
    out = Path(out)
    if training:
        write_questions(training, out / "train.parquet", split="train")
    write_questions(test, out / "test.parquet", split="test")
    return counts
