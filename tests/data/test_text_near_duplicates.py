"""Near-duplicate texts: keys, shingles, MinHash LSH against brute force, clusters."""

from __future__ import annotations

import random
from itertools import combinations

import numpy as np
import pytest

from fitclass.data.grouping import merged_codes
from fitclass.data.text_near_duplicates import (
    NUM_PERM,
    NearDuplicates,
    bands_for,
    find_near_duplicates,
    near_key,
    shingle_matrix,
    shingle_size,
)

ENGLISH = ("a stirring , funny and finally transporting re-imagining of beauty and the beast "
           "and 1930s horror films")
KOREAN = "배우들 연기가 정말 좋았고 스토리도 탄탄해서 두 시간이 짧게 느껴졌다"


def shingles(text: str, size: int = 3) -> set[str]:
    key = near_key(text)
    return {key[i:i + size] for i in range(max(1, len(key) - size + 1))}


def jaccard(a: str, b: str, size: int = 3) -> float:
    first, second = shingles(a, size), shingles(b, size)
    return len(first & second) / len(first | second)


def test_key_ignores_case_punctuation_and_spacing() -> None:
    assert near_key("great movie!!") == near_key("Great  movie !") == "greatmovie"
    assert near_key("정말 재밌어요 ^^") == near_key("정말재밌어요!!") == "정말재밌어요"
    assert near_key("!!!") == "!!!"  # nothing but punctuation keeps it
    assert near_key(("first part", "second")) == "firstpartsecond"


ENGLISH_WORDS = ("the a of and to in is it that this film movie story was for with as but "
                 "not its his her they are an be by one all good bad funny dull great "
                 "characters plot acting director who more than so too much very")
KOREAN_WORDS = ("영화 정말 너무 진짜 재밌다 재미없다 최고 최악 배우 연기 스토리 감동 시간 "
                "아깝다 그냥 보고 봤는데 좋았다 별로 평점 완전 명작 드라마 감독 결말")


def _texts(words: str, length: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(words.split(), k=length)) for _ in range(200)]


def test_shingle_size_grows_until_unrelated_texts_share_little() -> None:
    korean = shingle_size([near_key(t) for t in _texts(KOREAN_WORDS, 3)])
    sentences = shingle_size([near_key(t) for t in _texts(ENGLISH_WORDS, 12)])
    documents = shingle_size([near_key(t) for t in _texts(ENGLISH_WORDS, 200)])
    assert korean == 2  # a syllable carries what two or three letters do
    assert 3 <= sentences < documents  # long texts share more short n-grams by chance
    assert shingle_size(["abc", "abd"]) == 3  # too few texts to measure


def test_shingles_pack_code_points_and_short_keys() -> None:
    matrix = shingle_matrix(["abcd", "bcd", "ab", "a", "", "한국어"])
    sizes = np.diff(matrix.indptr).tolist()
    assert sizes == [2, 1, 1, 1, 1, 1]  # a short key is one shingle, padded
    dense = matrix.toarray()
    assert dense[0] @ dense[1] == 1  # "bcd" is shared
    assert dense[2] @ dense[3] == 0 and dense[3] @ dense[4] == 0


def test_banding_reaches_the_threshold_with_high_probability() -> None:
    for threshold in (0.5, 0.7, 0.8, 0.9, 1.0):
        bands, rows = bands_for(threshold)
        assert bands * rows <= NUM_PERM
        assert 1 - (1 - threshold**rows) ** bands >= 0.98


def test_planted_pairs_found_and_unrelated_pair_not() -> None:
    english_edit = ENGLISH.replace("funny and finally", "finally and funny")  # words swapped
    korean_edit = KOREAN.replace("스토리도", "스토리가")
    assert jaccard(ENGLISH, english_edit) >= 0.8 and jaccard(KOREAN, korean_edit) >= 0.8
    texts = ["great movie!!", ENGLISH, "the worst film I have seen this year", KOREAN,
             "great movie !", english_edit, "주식 시장이 오늘 크게 떨어졌다", korean_edit,
             "a great film"]
    found = find_near_duplicates(texts, 0.8, size=3)
    assert found.shingle == 3
    clusters = found.clusters().tolist()
    assert clusters[0] == clusters[4]  # same key: punctuation and spacing only
    assert clusters[1] == clusters[5]
    assert clusters[3] == clusters[7]
    assert len(set(clusters)) == len(texts) - 3  # nothing else joins
    assert clusters[0] != clusters[8]  # "great movie" and "a great film" are not copies
    assert sorted(found.similarity.round(6).tolist()) == sorted(
        round(jaccard(a, b), 6) for a, b in ((ENGLISH, english_edit), (KOREAN, korean_edit)))


def _corpus(seed: int, n: int = 300) -> list[str]:
    """Random sentences, a third of them near copies (a word swapped or replaced) of others."""
    rng = random.Random(seed)
    words = [f"w{k}" for k in range(60)] + ["movie", "film", "good", "bad", "영화", "최고"]
    texts = [" ".join(rng.choices(words, k=rng.randint(3, 15))) for _ in range(n)]
    for _ in range(n // 3):
        tokens = rng.choice(texts).split()
        k = rng.randrange(len(tokens))
        if rng.random() < 0.5 and k + 1 < len(tokens):
            tokens[k], tokens[k + 1] = tokens[k + 1], tokens[k]
        else:
            tokens[k] = rng.choice(words)
        texts.append(" ".join(tokens))
    return texts


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("threshold", "size"), [(0.6, 3), (0.8, 3), (0.8, 2)])
def test_pairs_match_brute_force(seed: int, threshold: float, size: int) -> None:
    texts = _corpus(seed)
    keys = {near_key(t): t for t in texts}
    truth = {frozenset((near_key(a), near_key(b))) for a, b in combinations(keys.values(), 2)
             if jaccard(a, b, size) >= threshold}
    found = find_near_duplicates(texts, threshold, size=size)
    first = found.first_rows()
    reported = {frozenset((near_key(texts[first[a]]), near_key(texts[first[b]])))
                for a, b in found.pairs.tolist()}
    assert reported <= truth  # every reported pair is verified exactly
    assert len(truth) > 20 and len(reported) >= 0.97 * len(truth)


def test_restrict_and_best_match() -> None:
    texts = ["great movie!!", "an unrelated sentence here", ENGLISH, "great movie !",
             ENGLISH.replace("funny and finally", "finally and funny")]
    found = find_near_duplicates(texts, 0.8, size=3)
    train = np.array([True, True, True, False, False])
    match, score = found.best_match(~train, train)
    assert match.tolist() == [0, 2] and score[0] == 1.0 and 0.8 <= score[1] < 1.0
    inside = found.restrict(~train)
    assert isinstance(inside, NearDuplicates) and len(inside.key_of_row) == 2
    assert inside.clusters().tolist() == [0, 1] and len(inside.pairs) == 0
    none = found.best_match(train, np.zeros(5, dtype=bool))[0]
    assert none.tolist() == [-1, -1, -1]


def test_merged_codes_joins_rows_sharing_any_key() -> None:
    groups = np.array(["u1", "u1", "u2", "u3", "u4", "u4"])
    clusters = np.array([0, 1, 1, 2, 3, 4])
    # rows 0-1 share u1, rows 1-2 share cluster 1, rows 4-5 share u4
    assert merged_codes(groups, clusters).tolist() == [0, 0, 0, 1, 2, 2]
    assert merged_codes(clusters).tolist() == [0, 1, 1, 2, 3, 4]
