"""Episodes: reproducible from a seed, support and query disjoint, refused when data is short."""

import pytest
import torch

from kta_cli.errors import KtaError
from kta_cli.fewshot.episodes import check_episode_shape, member_table, sample_episodes

LABELS = torch.arange(8).repeat_interleave(torch.tensor([20, 21, 22, 23, 24, 25, 26, 30]))


def draw(seed: int):
    return sample_episodes(LABELS, ways=5, shots=5, queries=15, episodes=300, seed=seed)


def test_the_same_seed_draws_the_same_episodes_and_another_seed_others():
    first, again, other = draw(3), draw(3), draw(4)
    assert torch.equal(first.support, again.support) and torch.equal(first.query, again.query)
    assert not torch.equal(first.support, other.support)


def test_no_example_is_in_both_support_and_query_and_classes_match():
    episodes = draw(0)
    picked = torch.cat([episodes.support, episodes.query], dim=2)  # (E, N, K+Q)
    flat = picked.flatten(1)
    assert all(len(row.unique()) == flat.shape[1] for row in flat)  # all distinct per episode
    # every picked example belongs to the class its row stands for
    assert torch.equal(LABELS[picked], episodes.classes[:, :, None].expand_as(picked))
    assert all(len(row.unique()) == 5 for row in episodes.classes)  # five different classes


def test_member_table_lists_each_class_once():
    table, counts = member_table(torch.tensor([1, 0, 1, 2, 1]))
    assert counts.tolist() == [1, 3, 1]
    assert table.tolist() == [[1, -1, -1], [0, 2, 4], [3, -1, -1]]


def test_too_many_ways_or_too_few_examples_are_one_clear_error():
    names = [str(i) for i in range(8)]
    with pytest.raises(KtaError, match="ways=9 but the novel data has 8 classes"):
        check_episode_shape(LABELS, names, ways=9, shots=1, queries=1)
    with pytest.raises(KtaError, match="class '0' has 20 examples but shots \\+ queries"):
        check_episode_shape(LABELS, names, ways=5, shots=10, queries=15)
