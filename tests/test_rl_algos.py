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


def test_low_var_kl_is_verls_clamped_k3():
    logp, ref = T([0.0, 0.0, math.log(0.5)]), T([20.0, -30.0, math.log(0.25)])
    # exp(20) - 21 is clamped to 10; r = -30 is clamped to -20 first: exp(-20) + 19 -> 10
    assert close(algos.kl_penalty(logp, ref, "low_var_kl"), [10.0, 10.0, 0.5 + 0.6931 - 1])
    assert torch.equal(algos.kl_penalty(logp, ref, "k3"), algos.kl_penalty(logp, ref, "low_var_kl"))


def test_group_baselines_leave_out_excluded_trajectories():
    rewards, valid = T([1.0, 0.0, 9.0, 0.5, 0.2, 0.2, 0.2, 0.2]), T([1, 1, 0, 1, 1, 1, 1, 1]).bool()
    adv = algos.grpo_advantages(rewards, 4, valid=valid)
    assert close(adv[:4], [*algos.grpo_advantages(T([1.0, 0.0, 0.5]), 3)[:2], 0.0, 0.0])  # the 9.0 is not in it
    assert close(adv[4:], [0, 0, 0, 0])
    loo = algos.rloo_advantages(rewards, 4, valid)
    assert close(loo[:4], [1.0 - 0.25, 0.0 - 0.75, 0.0, 0.5 - 0.5])
    assert algos.zero_std_fraction(rewards, 4, valid) == 0.5  # the second group: all equal
    assert algos.zero_std_fraction(T([1.0, 0.0, 1.0, 1.0]), 2, T([1, 0, 1, 1]).bool()) == 1.0


def test_every_registered_algorithm_zeroes_excluded_trajectories():
    from zerosearch.config import RLConfig

    rl = RLConfig(samples_per_prompt=2)
    rewards, mask, valid = T([1.0, 0.0, 3.0, 0.5]), T([[1, 1, 0], [1, 0, 0], [0, 0, 0], [1, 1, 1]]), T([1, 1, 0, 1])
    values = torch.full((4, 3), 0.1)
    for name, algo in algos.ALGOS.items():
        adv, returns = algo.advantages(rewards, mask, valid.bool(), values if algo.needs_values else None, rl)
        assert adv.shape == mask.shape and (adv[2] == 0).all() and (adv * (1 - mask) == 0).all(), name
        assert (returns is not None) == algo.needs_values, name


def test_plain_reinforce_is_the_raw_reward_on_policy_tokens():
    from zerosearch.config import RLConfig

    mask = T([[1, 1, 0], [1, 0, 0]])
    adv, _ = algos.get_algo("reinforce").advantages(T([0.5, 2.0]), mask, T([1, 1]).bool(), None, RLConfig())
    assert close(adv, [[0.5, 0.5, 0.0], [2.0, 0.0, 0.0]])


def test_the_registry_names_the_algorithms_and_accepts_new_ones():
    from zerosearch.config import RLConfig
    from zerosearch.errors import ConfigError

    assert {"grpo", "rloo", "reinforce", "reinforce_pp", "ppo"} <= set(algos.ALGOS)
    assert algos.get_algo("ppo").needs_values and algos.get_algo("grpo").group
    with pytest.raises(ConfigError, match="rl.algo must be one of"):
        algos.check(RLConfig(algo="a2c"))
    with pytest.raises(ConfigError, match="samples_per_prompt"):
        algos.check(RLConfig(algo="rloo", samples_per_prompt=1))
    with pytest.raises(ConfigError, match="number of processes"):
        algos.check(RLConfig(prompts_per_step=6), world=4)

    @algos.register_algo("dr_grpo_test", group=True)
    def dr_grpo(rewards, mask, valid, values, rl):
        return algos.grpo_advantages(rewards, rl.samples_per_prompt, norm_by_std=False, valid=valid)[
            :, None
        ] * mask, None

    try:
        algos.check(RLConfig(algo="dr_grpo_test"))
        with pytest.raises(ValueError, match="twice"):
            algos.register_algo("dr_grpo_test")(dr_grpo)
    finally:
        del algos.ALGOS["dr_grpo_test"]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_chunked_logprobs_and_entropy_equal_the_full_log_softmax(dtype):
    torch.manual_seed(0)
    logits = (torch.randn(3, algos.CHUNK // 2 + 7, 50) * 3).to(dtype)  # 3 rows: chunks cross row boundaries
    labels = torch.randint(0, 50, logits.shape[:-1])
    full = torch.log_softmax(logits.float(), -1)
    assert torch.allclose(algos.token_logprobs(logits, labels), full.gather(-1, labels[..., None])[..., 0], atol=1e-5)
    assert torch.allclose(algos.entropy(logits), -(full.exp() * full).sum(-1), atol=1e-4)
    assert torch.allclose(
        algos.token_logprobs(logits, labels, 0.5),
        torch.log_softmax(logits.float() / 0.5, -1).gather(-1, labels[..., None])[..., 0],
        atol=1e-5,
    )
