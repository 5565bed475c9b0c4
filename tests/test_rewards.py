import pytest

from zerosearch.rewards import (
    cover_exact_match,
    exact_match,
    extract_answer,
    f1_score,
    format_reward,
    normalize_answer,
    score,
)


def test_normalize_drops_case_punctuation_articles_and_spaces():
    assert normalize_answer("  The  Beatles!  ") == "beatles"
    assert normalize_answer("An apple, a day") == "apple day"
    assert normalize_answer("theater") == "theater"  # articles only as whole words


def test_exact_match_is_strict_after_normalization():
    assert exact_match("The  Beatles!", ["beatles"]) == 1.0
    assert exact_match("The Beatles band", ["beatles"]) == 0.0
    assert exact_match("Paris", "paris") == 1.0


def test_cover_em_accepts_a_gold_inside_the_prediction():
    assert cover_exact_match("It is the Beatles band", ["beatles", "x"]) == 1.0
    assert cover_exact_match("Beat", ["beatles"]) == 0.0
    assert cover_exact_match("anything", [""]) == 0.0  # an empty gold never matches


def test_f1_hand_computed():
    # pred tokens [eiffel, tower], gold [eiffel, tower, in, paris]: P = 2/2, R = 2/4, F1 = 2PR/(P+R) = 2/3
    assert f1_score("the Eiffel Tower", ["Eiffel tower in Paris"]) == pytest.approx(2 / 3)
    # max over golds
    assert f1_score("red blue", ["green", "red blue green"]) == pytest.approx(2 * 1 * (2 / 3) / (1 + 2 / 3))
    assert f1_score("a", ["the"]) == 0.0  # both normalize to nothing


@pytest.mark.parametrize("pred", [None, "", "   "])
def test_missing_prediction_scores_zero(pred):
    for metric in (exact_match, cover_exact_match, f1_score):
        assert metric(pred, ["x"]) == 0.0


def test_extract_answer_takes_the_last_complete_block():
    assert extract_answer("<answer>a</answer> x <answer> b </answer>") == "b"
    assert extract_answer("<answer>multi\nline</answer>") == "multi\nline"
    assert extract_answer("<answer>unclosed") is None
    assert extract_answer(None) is None
    assert extract_answer("no tags") is None


def test_score_and_format_reward():
    full = {"em": 1.0, "cover_em": 1.0, "f1": 1.0, "reward": 1.0}
    assert score("<think>x</think><answer> Paris </answer>", ["paris"]) == full
    assert score("no answer", ["paris"]) == {"em": 0.0, "cover_em": 0.0, "f1": 0.0, "reward": 0.0}
    # the reward is the chosen metric plus the optional format bonus
    assert score("<answer>the Eiffel Tower</answer>", ["Eiffel tower in Paris"], "em", 0.1)["reward"] == 0.1
    assert score("<answer>Paris</answer>", ["paris"], "f1", 0.1)["reward"] == pytest.approx(1.1)
    with pytest.raises(ValueError):
        score("<answer>x</answer>", ["x"], "bleu")
    assert format_reward("<answer>x</answer>") == 0.1
    assert format_reward("<answer>x</answer> trailing") == 0.0
