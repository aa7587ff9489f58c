"""Loss terms on toy tensors with values computed by hand."""

from __future__ import annotations

import pytest
import torch

from gannotate.training import losses as L
from gannotate.training.config import LossWeights


class TestAdversarial:
    def test_d_hinge_hand_values(self):
        real = torch.tensor([2.0, 0.5, -1.0])  # relu(1 - r) = 0, 0.5, 2  → mean 5/6
        fake = torch.tensor([-2.0, 0.0])  # relu(1 + f) = 0, 1 → mean 0.5
        assert float(L.d_hinge(real, fake)) == pytest.approx(5 / 6 + 0.5, abs=1e-7)

    def test_g_hinge_is_negative_mean_score(self):
        assert float(L.g_hinge(torch.tensor([1.0, 3.0, -1.0]))) == pytest.approx(-1.0, abs=1e-7)


class TestPixelTerms:
    def test_pixel_l2_mean_of_squares(self):
        x = torch.zeros(1, 1, 2, 2)
        y = torch.tensor([[[[1.0, 2.0], [0.0, -1.0]]]])
        assert float(L.pixel_l2(x, y)) == pytest.approx((1 + 4 + 0 + 1) / 4, abs=1e-7)

    def test_total_variation_hand_values(self):
        x = torch.tensor([[[[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]]])  # (1, 1, 2, 3)
        # horizontal |diffs|: 1, 2, 0, 0 → mean 0.75; vertical: 2, 1, 1 → mean 4/3
        assert float(L.total_variation(x)) == pytest.approx(0.75 + 4 / 3, abs=1e-6)

    def test_total_variation_of_constant_is_zero(self):
        assert float(L.total_variation(torch.full((2, 3, 5, 4), 0.3))) == 0.0

    def test_self_and_triple_are_l2(self):
        a, b = torch.ones(2, 3, 4, 4), torch.zeros(2, 3, 4, 4)
        assert float(L.self_consistency(a, b)) == 1.0
        assert float(L.triple_consistency(2 * a, b)) == 4.0

    def test_triple_gradient_flows_through_both_branches(self):
        a = torch.tensor([1.0, 2.0], requires_grad=True)
        b = torch.tensor([0.0, 0.0], requires_grad=True)
        L.triple_consistency(a, b).backward()
        assert torch.allclose(a.grad, torch.tensor([1.0, 2.0]))  # d/da mean((a-b)^2) = (a-b)
        assert torch.allclose(b.grad, -a.grad)


class TestFeatureTerms:
    def test_identity_sums_layer_means(self):
        fa = [torch.zeros(1, 2), torch.zeros(1, 1, 2, 2)]
        fb = [torch.tensor([[1.0, 3.0]]), torch.full((1, 1, 2, 2), 0.5)]
        assert float(L.identity_l1(fa, fb)) == pytest.approx(2.0 + 0.5, abs=1e-7)

    def test_gram_matrix_hand_values(self):
        f = torch.tensor([[[[1.0, 2.0]], [[3.0, 0.0]]]])  # (1, C=2, H=1, W=2)
        g = L.gram_matrix(f)
        expected = torch.tensor([[[5.0, 3.0], [3.0, 9.0]]]) / 4.0
        assert torch.allclose(g, expected)

    def test_perceptual_features_plus_gram(self):
        z = [torch.zeros(1, 2, 1, 2) for _ in range(4)]
        o = [torch.ones(1, 2, 1, 2) for _ in range(4)]
        # features: 4 layers × mean |1| = 4; Gram of ones (C=2, HW=2): all entries 2/4 = 0.5 → mean 0.5
        assert float(L.perceptual(o, z)) == pytest.approx(4.5, abs=1e-6)
        assert float(L.perceptual(o, z, gram_layer=None)) == pytest.approx(4.0, abs=1e-6)
        assert float(L.perceptual(o, z, norm="l2")) == pytest.approx(4.0 + 0.25, abs=1e-6)

    def test_mismatched_lists_fail(self):
        with pytest.raises(ValueError):
            L.identity_l1([torch.zeros(1)], [])


class _ToyG(torch.nn.Module):
    """out = tanh(conv(image) + sum(heatmaps)) — enough to test the loss object's plumbing."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, 1)

    def forward(self, image, heat):
        return torch.tanh(self.conv(image) + heat.sum(1, keepdim=True))


class _ToyD(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(3 * 4 * 4, 1)

    def forward(self, x):
        return self.lin(x.flatten(1)).squeeze(1)


def _batch():
    g = torch.Generator().manual_seed(0)
    b = {f"image_{k}": torch.rand(2, 3, 4, 4, generator=g) * 2 - 1 for k in "atn"}
    b.update({f"heat_{k}": torch.rand(2, 5, 4, 4, generator=g) for k in "atn"})
    return b


class TestTripleConsistencyLoss:
    def test_generator_phase_reports_every_term_and_leaves_D_alone(self):
        torch.manual_seed(0)
        G, D = _ToyG(), _ToyD()
        loss = L.TripleConsistencyLoss(G, D, disabled_reasons={"identity": "no weights"})
        stats = loss.accumulate_gradients("G", _batch())
        for k in ("adv", "pix", "self", "triple", "tv"):
            assert f"Loss/G/{k}" in stats
        assert "Loss/G/identity" not in stats and loss.disabled["identity"] == "no weights"
        w = LossWeights()
        expected = sum(
            wt * stats[f"Loss/G/{k}"]
            for k, wt in (("adv", w.adv), ("pix", w.pix), ("self", w.self_), ("triple", w.triple), ("tv", w.tv))
        )
        assert stats["Loss/G/total"] == pytest.approx(expected, rel=1e-5)
        assert G.conv.weight.grad is not None and G.conv.weight.grad.abs().sum() > 0
        assert D.lin.weight.grad is None
        assert all(p.requires_grad for p in D.parameters())

    def test_discriminator_phase_leaves_G_alone(self):
        torch.manual_seed(0)
        G, D = _ToyG(), _ToyD()
        stats = L.TripleConsistencyLoss(G, D).accumulate_gradients("D", _batch())
        assert stats["Loss/D/total"] == pytest.approx(stats["Loss/D/real"] + stats["Loss/D/fake"], rel=1e-6)
        assert G.conv.weight.grad is None and D.lin.weight.grad.abs().sum() > 0

    def test_feature_nets_are_used_when_given(self):
        torch.manual_seed(0)
        G, D = _ToyG(), _ToyD()
        feats = lambda x: [x, x.mean(1, keepdim=True), x * 2, x.pow(2)]  # noqa: E731
        loss = L.TripleConsistencyLoss(G, D, identity_net=feats, perceptual_net=feats)
        stats = loss.accumulate_gradients("G", _batch())
        assert stats["Loss/G/identity"] > 0 and stats["Loss/G/perceptual"] > 0 and not loss.disabled

    def test_shared_fake_gives_the_same_step(self):
        """with_fake() computes Î once for both phases; the gradients equal those of two separate passes."""
        grads = []
        for shared in (False, True):
            torch.manual_seed(0)
            G, D = _ToyG(), _ToyD()
            opt_D = torch.optim.Adam(D.parameters(), lr=0.1)
            loss = L.TripleConsistencyLoss(G, D)
            b = loss.with_fake(_batch()) if shared else _batch()
            stats = loss.accumulate_gradients("D", b)
            opt_D.step()  # D changes between the phases, as in the trainer
            stats |= loss.accumulate_gradients("G", b)
            grads.append((stats, [p.grad.clone() for p in (*G.parameters(), *D.parameters())]))
        (sa, ga), (sb, gb) = grads
        assert sa == sb
        for a, b in zip(ga, gb):
            assert torch.equal(a, b)

    def test_zero_weight_switches_a_term_off(self):
        G, D = _ToyG(), _ToyD()
        loss = L.TripleConsistencyLoss(G, D, LossWeights(triple=0.0))
        assert "Loss/G/triple" not in loss.accumulate_gradients("G", _batch())

    def test_bad_phase(self):
        with pytest.raises(ValueError):
            L.TripleConsistencyLoss(_ToyG(), _ToyD()).accumulate_gradients("X", _batch())
