"""The pure RL functions against hand-computed values."""

import math

import pytest
import torch

from zerosearch.rl import algos

T = torch.tensor


def close(a, b, tol=1e-4):
    return torch.allclose(torch.as_tensor(a, dtype=torch.float32), torch.as_tensor(b, dtype=torch.float32), atol=tol)


def test_grpo_advantages_group_mean_and_std():
    r = T([1.0, 0.0, 0.5, 0.5])
    s = 1 / math.sqrt(2)  # (1 - 0.5) / unbiased std 0.7071
    assert close(algos.grpo_advantages(r, 2), [s, -s, 0, 0])
    assert close(algos.grpo_advantages(r, 2, norm_by_std=False), [0.5, -0.5, 0, 0])


def test_rloo_leave_one_out_baseline():
    assert close(algos.rloo_advantages(T([1.0, 0.0, 0.0]), 3), [1.0, -0.5, -0.5])


def test_outcome_reward_lands_on_last_policy_token():
    mask = T([[1, 1, 0, 1, 0], [0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])
    out = algos.outcome_rewards(T([2.0, 3.0, 4.0]), mask)
    assert close(out, [[0, 0, 0, 2, 0], [0, 0, 0, 0, 0], [4, 0, 0, 0, 0]])


def test_discounted_returns_skip_environment_tokens():
    mask = T([[1, 1, 0, 1]])
    out = algos.discounted_returns(T([[0.0, 0.0, 0.0, 2.0]]), mask, gamma=0.5)
    assert close(out, [[0.5, 1.0, 0.0, 2.0]])


def test_reinforce_pp_whitens_returns_over_the_batch():
    out = algos.reinforce_pp_advantages(T([1.0, 0.0]), T([[1, 1], [1, 0]]))
    # returns 1, 1, 0 on policy tokens: mean 2/3, std sqrt(2/9)
    assert close(out, [[0.7071, 0.7071], [-1.4142, 0.0]], tol=1e-3)


def test_gae_gamma_lambda_one_is_reward_minus_value():
    values, mask = T([[0.1, 0.2, 0.9, 0.4]]), T([[1, 1, 0, 1]])
    adv, ret = algos.gae_advantages(T([1.0]), values, mask, 1.0, 1.0, whiten=False)
    assert close(adv, [[0.9, 0.8, 0.0, 0.6]])
    assert close(ret, [[1.0, 1.0, 0.0, 1.0]])


def test_gae_with_discount():
    values, mask = T([[0.1, 0.2, 0.9, 0.4]]), T([[1, 1, 0, 1]])
    adv, _ = algos.gae_advantages(T([1.0]), values, mask, 0.5, 0.5, whiten=False)
    # t3: 1 - .4 = .6; t1: delta .5*.4 - .2 = 0, + .25*.6 = .15; t0: delta .5*.2 - .1 = 0, + .25*.15
    assert close(adv, [[0.0375, 0.15, 0.0, 0.6]])


def test_kl_estimators():
    logp, ref = T([math.log(0.5)]), T([math.log(0.25)])
    assert close(algos.kl_penalty(logp, ref, "k1"), [0.6931])
    assert close(algos.kl_penalty(logp, ref, "k2"), [0.5 * 0.6931**2])
    assert close(algos.kl_penalty(logp, ref, "k3"), [0.5 + 0.6931 - 1])
    with pytest.raises(ValueError):
        algos.kl_penalty(logp, ref, "k4")


def test_clipped_surrogate_and_dual_clip():
    logp, old = T([math.log(1.5)] * 2), T([0.0, 0.0])
    loss, clipped = algos.clipped_surrogate(logp, old, T([1.0, -1.0]), clip=0.2)
    assert close(loss, [-1.2, 1.5]) and close(clipped, [1.0, 0.0])
    loss, _ = algos.clipped_surrogate(T([math.log(5.0)]), T([0.0]), T([-1.0]), clip=0.2, dual_clip=3.0)
    assert close(loss, [3.0])


def test_aggregation_modes():
    values, mask = T([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]), T([[1, 1, 0], [1, 0, 0]])
    assert close(algos.aggregate(values, mask, "token-mean"), 7 / 3)
    assert close(algos.aggregate(values, mask, "seq-mean-token-sum"), 3.5)
    assert close(algos.aggregate(values, mask, "seq-mean-token-mean"), 2.75)
    assert close(algos.aggregate(values, mask, "token-mean", num_tokens=7), 1.0)


def test_entropy_and_token_logprobs():
    logits = torch.zeros(1, 4)
    assert close(algos.entropy(logits), [math.log(4)])
    assert close(algos.token_logprobs(logits, T([2])), [-math.log(4)])


def test_value_loss_clips_around_old_values():
    out = algos.value_loss(T([1.0]), T([0.0]), T([2.0]), clip=0.2)
    assert close(out, [0.5 * 1.8**2])  # the clipped value 0.2 is further from the return


@pytest.mark.parametrize("estimator", ["k2", "k3"])
def test_kl_penalty_pulls_the_policy_towards_the_reference(estimator):
    torch.manual_seed(0)
    ref_logits = T([2.0, 0.0, -1.0, 0.5, -2.0])
    theta = torch.zeros(5, requires_grad=True)

    def true_kl():
        p = torch.log_softmax(theta, -1)
        return (p.exp() * (p - torch.log_softmax(ref_logits, -1))).sum().item()

    before = true_kl()
    opt = torch.optim.SGD([theta], lr=0.5)
    for _ in range(20):
        samples = torch.multinomial(torch.softmax(theta.detach(), -1), 256, replacement=True).unsqueeze(0)
        logp = torch.log_softmax(theta, -1)[samples]
        ref = torch.log_softmax(ref_logits, -1)[samples]
        zeros = torch.zeros_like(logp)
        loss, stats = algos.policy_loss(
            logp, logp.detach(), zeros[:, 0], torch.ones_like(logp), ref_logp=ref, kl_coef=1.0, kl_estimator=estimator
        )
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert true_kl() < 0.5 * before
