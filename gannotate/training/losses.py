"""The paper's loss terms as pure tensor functions, and the two objectives that weigh and apply them.

:class:`TripleConsistencyLoss` (GANnotation from scratch, triplets) and :class:`RefineLoss` (the
refiner, pairs over a geometric render) each compute one phase (``"D"`` or ``"G"``) and call
``backward()`` in ``accumulate_gradients(phase, batch)``; the training loop runs the optimisers.
The weights are :class:`~gannotate.training.config.LossWeights`, whose field names are the loss names.

Convention: images are float NCHW tensors in [-1, 1]; heatmaps are (B, K, H, W) in [0, 1];
discriminator outputs are raw scores (B,) or (B, 1) (no sigmoid: the hinge acts on scores).

Every function reduces with a *mean* over all elements (batch, channels, pixels), so a term's
value does not depend on the batch size or the image size and the paper's weights transfer from
128² to the 64² CPU preset. The paper writes ‖·‖²; the mean of squares is that norm divided by the
element count, a constant factor the weights absorb.

Triple consistency (Sanchez & Valstar): with Î = G(I; H(s_t)), the loss
‖G(Î; H(s_n)) − G(I; H(s_n))‖² lets gradients flow through *both* branches, as the released
training code does (``training/GANnotation.py``): the two-step and the one-step renderings are
pulled towards each other rather than one being a fixed target.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from typing import Any, Callable, ContextManager, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from gannotate import heatmaps
from gannotate.models.features import gram_matrix  # re-exported: the perceptual loss's style term
from gannotate.models.generator import group_heatmaps
from gannotate.render.resample import lookup_torch
from gannotate.training.config import LossWeights, RefineConfig
from gannotate.training.diffaug import diff_augment

__all__ = [
    "d_hinge",
    "g_hinge",
    "pixel_l2",
    "total_variation",
    "self_consistency",
    "triple_consistency",
    "identity_l1",
    "gram_matrix",
    "perceptual",
    "weighted_total",
    "autocast_for",
    "TripleConsistencyLoss",
    "RefineLoss",
    "FeatureNet",
]

log = logging.getLogger(__name__)

#: A frozen feature extractor: image (B, 3, H, W) in [-1, 1] → list of (B, C_l, H_l, W_l) features.
FeatureNet = Callable[[Tensor], Sequence[Tensor]]


# ---------------------------------------------------------------------------------------------
# Pure loss terms
# ---------------------------------------------------------------------------------------------


def d_hinge(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Discriminator hinge loss E[relu(1 − D(I))] + E[relu(1 + D(Î))] (a scalar)."""
    return F.relu(1.0 - real_scores).mean() + F.relu(1.0 + fake_scores).mean()


def g_hinge(fake_scores: Tensor) -> Tensor:
    """Generator hinge loss −E[D(Î)] (a scalar)."""
    return -fake_scores.mean()


def pixel_l2(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared difference of two (B, C, H, W) tensors (the paper's ‖x − y‖², mean-reduced)."""
    return (x - y).pow(2).mean()


def total_variation(x: Tensor) -> Tensor:
    """Anisotropic total variation of (B, C, H, W) images: mean |∂x| + mean |∂y| (neighbour differences)."""
    dx = (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
    dy = (x[..., 1:, :] - x[..., :-1, :]).abs().mean()
    return dx + dy


def self_consistency(back: Tensor, original: Tensor) -> Tensor:
    """‖G(G(I; H(s_t)); H(s_i)) − I‖²: rendering the result back to the input's shape recovers the input."""
    return pixel_l2(back, original)


def triple_consistency(two_step: Tensor, one_step: Tensor) -> Tensor:
    """‖G(Î; H(s_n)) − G(I; H(s_n))‖², gradient through both arguments (see the module docstring)."""
    return pixel_l2(two_step, one_step)


def identity_l1(feats_a: Sequence[Tensor], feats_b: Sequence[Tensor]) -> Tensor:
    """Σ_l mean |Φ_l(a) − Φ_l(b)| over paired feature lists (layer l: (B, ...))."""
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(f"identity_l1: need equal, non-empty feature lists, got {len(feats_a)} and {len(feats_b)}")
    return torch.stack([(a - b).abs().mean() for a, b in zip(feats_a, feats_b)]).sum()


def perceptual(
    feats_a: Sequence[Tensor],
    feats_b: Sequence[Tensor],
    gram_layer: int | None = 2,
    norm: str = "l1",
) -> Tensor:
    """The paper's eq. 9: Σ_l ‖Φ_l(a) − Φ_l(b)‖ + ‖Gram(Φ_g(a)) − Gram(Φ_g(b))‖.

    Args:
        feats_a, feats_b: feature lists, e.g. VGG-19 relu1_2, relu2_2, relu3_3, relu4_3.
        gram_layer: index of the layer whose Gram matrices are compared (2 = relu3_3), or None.
        norm: ``"l1"`` (mean absolute) or ``"l2"`` (mean squared), used for both parts.
    """
    if len(feats_a) != len(feats_b) or not feats_a:
        raise ValueError(f"perceptual: need equal, non-empty feature lists, got {len(feats_a)} and {len(feats_b)}")
    if norm not in ("l1", "l2"):
        raise ValueError(f"perceptual: norm must be 'l1' or 'l2', got {norm!r}")

    def dist(x: Tensor, y: Tensor) -> Tensor:
        d = x - y
        return d.abs().mean() if norm == "l1" else d.pow(2).mean()

    total = torch.stack([dist(a, b) for a, b in zip(feats_a, feats_b)]).sum()
    if gram_layer is not None:
        total = total + dist(gram_matrix(feats_a[gram_layer]), gram_matrix(feats_b[gram_layer]))
    return total


# ---------------------------------------------------------------------------------------------
# The weighted objectives
# ---------------------------------------------------------------------------------------------


def weighted_total(terms: Mapping[str, Tensor], weights: Mapping[str, float]) -> Tensor:
    """Σ weights[name] · term over the computed terms (names as :meth:`LossWeights.names`)."""
    return sum(weights[k] * v for k, v in terms.items())


def autocast_for(precision: str, device: torch.device) -> Callable[[], ContextManager[Any]]:
    """A context-manager factory for forward passes: bf16 autocast or nothing.

    ``precision``: ``"bf16"``, ``"fp32"`` or ``"auto"`` (bf16 on CUDA and on CPUs with native bf16).
    """
    from gannotate.render.gan import cpu_has_bf16

    use = precision == "bf16" or (precision == "auto" and (device.type == "cuda" or cpu_has_bf16()))
    if not use:
        return nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


class TripleConsistencyLoss:
    """Computes and back-propagates the GANnotation objective, one phase at a time.

    The batch is a mapping with ``image_a``, ``image_t``, ``image_n`` (B, 3, H, W) in [-1, 1]
    (input I, target I_t, third view I_n) and ``heat_a``, ``heat_t``, ``heat_n`` (B, K, H, W) in
    [0, 1], the heatmaps of their landmarks.

    Networks that are missing (``identity_net``/``perceptual_net`` None) switch their term off;
    :attr:`disabled` says which and why, so the trainer can log and record it.

    Args:
        G: generator, ``G(image, heatmaps) -> image``.
        D: discriminator, ``D(image) -> scores``.
        weights: the loss weights, kept as :attr:`w`; the trainer replaces :attr:`w` before each step
            (``GANTrainConfig.weights_at``: the consistency warm-up). A weight of 0 skips its term.
        identity_net: frozen feature extractor for the identity term, or None.
        perceptual_net: frozen feature extractor (4 layers) for the perceptual term, or None.
        disabled_reasons: why a network is missing, e.g. ``{"identity": "no SFace weights"}``.
        autocast: context-manager factory wrapping forward passes (AMP on CUDA), or None.
    """

    def __init__(
        self,
        G: torch.nn.Module,
        D: torch.nn.Module,
        weights: LossWeights = LossWeights(),
        identity_net: FeatureNet | None = None,
        perceptual_net: FeatureNet | None = None,
        disabled_reasons: Mapping[str, str] | None = None,
        autocast: Callable[[], object] | None = None,
    ):
        self.G, self.D, self.w = G, D, weights
        self.identity_net, self.perceptual_net = identity_net, perceptual_net
        self.autocast = autocast
        reasons = dict(disabled_reasons or {})
        self.disabled: dict[str, str] = {}
        self.networks: dict[str, str] = {}  # which network feeds each feature loss (set by the trainer, for the record)
        for name, net, weight in (
            ("identity", identity_net, weights.identity),
            ("perceptual", perceptual_net, weights.perceptual),
        ):
            if weight == 0:
                self.disabled[name] = "weight is 0"
            elif net is None:
                self.disabled[name] = reasons.get(name, "no feature network given")
        for name, why in self.disabled.items():
            log.warning("%s loss is OFF: %s", name, why)

    def _ctx(self):
        return self.autocast() if self.autocast is not None else nullcontext()

    def accumulate_gradients(self, phase: str, batch: Mapping[str, Tensor], scale: float = 1.0) -> dict[str, float]:
        """Run one phase's forward passes and ``backward()`` its weighted loss (gradients accumulate).

        Args:
            phase: ``"G"`` (generator objective; D's parameters get no gradient) or ``"D"``.
            batch: the triplet batch described in the class docstring.
            scale: multiplies the loss before backward (e.g. 1/accumulation steps).

        Returns:
            Every term by name (``Loss/G/pix``, ``Loss/G/triple``, ``Loss/D/real`` ...), unweighted,
            plus the weighted total (``Loss/G/total`` or ``Loss/D/total``) and, in the G phase,
            ``Ref/pix_copy`` (the pixel term of a copy of the input), as Python floats.
        """
        if phase == "G":
            terms, total = self._generator_terms(batch)
        elif phase == "D":
            terms, total = self._discriminator_terms(batch)
        else:
            raise ValueError(f"phase must be 'G' or 'D', got {phase!r}")
        (total * scale).backward()
        out = {k: float(v.detach()) for k, v in terms.items()}
        out[f"Loss/{phase}/total"] = float(total.detach())
        return out

    def with_fake(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """``batch`` plus ``"fake"`` = Î = G(I; H(s_t)), with its graph, for both phases of one step.

        Why: the D phase needs Î (detached) and the G phase needs it with gradients; computing it
        once saves one of the step's five generator forwards. The values are those the D phase
        would compute itself (G does not change between the two phases), so the step is the same.
        """
        with self._ctx():
            return {**batch, "fake": self.G(batch["image_a"], batch["heat_t"])}

    def _generator_terms(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        G, D, w = self.G, self.D, self.w
        img_a, img_t = batch["image_a"], batch["image_t"]
        h_a, h_t, h_n = batch["heat_a"], batch["heat_t"], batch["heat_n"]
        for p in D.parameters():
            p.requires_grad_(False)
        try:
            with self._ctx():
                fake = batch["fake"] if "fake" in batch else G(img_a, h_t)  # Î = G(I; H(s_t))   (B, 3, H, W)
                terms: dict[str, Tensor] = {}
                if w.adv:
                    terms["adv"] = g_hinge(D(fake).float())
                if w.pix:
                    terms["pix"] = pixel_l2(fake.float(), img_t.float())
                if w.self_:
                    terms["self"] = self_consistency(G(fake, h_a).float(), img_a.float())
                if w.triple:
                    terms["triple"] = triple_consistency(G(fake, h_n).float(), G(img_a, h_n).float())
                if w.tv:
                    terms["tv"] = total_variation(fake.float())
                if "identity" not in self.disabled:
                    terms["identity"] = identity_l1(
                        [f.float() for f in self.identity_net(img_a)], [f.float() for f in self.identity_net(fake)]
                    )
                if "perceptual" not in self.disabled:
                    terms["perceptual"] = perceptual(
                        [f.float() for f in self.perceptual_net(img_t)], [f.float() for f in self.perceptual_net(fake)]
                    )
        finally:
            for p in D.parameters():
                p.requires_grad_(True)
        total = weighted_total(terms, w.by_name())
        stats = {f"Loss/G/{k}": v for k, v in terms.items()}
        # What a copy of the input would score on the pixel term (not optimised): pix below it is
        # the evidence that G follows the target heatmaps rather than returning its input.
        stats["Ref/pix_copy"] = pixel_l2(img_a.detach().float(), img_t.float())
        return stats, total

    def _discriminator_terms(self, batch: Mapping[str, Tensor]) -> tuple[dict[str, Tensor], Tensor]:
        if "fake" in batch:
            fake = batch["fake"]
        else:
            with torch.no_grad(), self._ctx():
                fake = self.G(batch["image_a"], batch["heat_t"])
        with self._ctx():
            real_scores = self.D(batch["image_t"]).float()
            fake_scores = self.D(fake.detach()).float()
        real = F.relu(1.0 - real_scores).mean()
        fake_term = F.relu(1.0 + fake_scores).mean()
        total = real + fake_term  # d_hinge, split so both halves are logged
        return {"Loss/D/real": real, "Loss/D/fake": fake_term, "Loss/D/score_real": real_scores.mean(),
                "Loss/D/score_fake": fake_scores.mean()}, total


class RefineLoss:
    """The refiner's objective, one phase at a time: computes and back-propagates, the loop steps the optimisers.

    One step on a batch of pairs (``gannotate.training.pairs``: X source at s_x, Y the real image at
    s_y, P/V the base render of X at s_y and its validity, s_n a third shape)::

        b = loss.prepare(batch, step)                 # heatmaps and Î = G(P, V, H(s_y)), once for both phases
        opt_D.zero_grad(); stats = loss.accumulate_gradients("D", b); opt_D.step()
        opt_G.zero_grad(); stats |= loss.accumulate_gradients("G", b); opt_G.step()

    D (on image + the generator's heatmap grouping) is scored with the hinge loss, real = Y and
    fake = Î, both at H(s_y). G's terms are weighted by ``cfg.weights`` (:class:`LossWeights`) plus
    the mask prior ``mean(relu(M − V))`` by ``cfg.mask_prior``: adversarial, pixel (L1 or L2, Î vs Y),
    total variation, identity and perceptual (features of Î vs Y), **triple consistency**
    ‖G(G(X, s_n) → s_y) − G(X, s_y)‖² (the second pass resamples the generated image through the
    stored s_n → s_y geometry, so gradients reach both passes) and **self-consistency**
    ‖G(G(X, s_y) → s_x) − X‖² (clip pairs only), the last two on every ``consistency_every``-th step.

    Args:
        G, D: the refiner and its critic.
        cfg: the run's settings.
        device: where the batch goes.
        identity, perceptual_net: frozen feature extractors, or None (that term is off).
        disabled: why a feature network is missing (kept for the record).
    """

    def __init__(self, G: torch.nn.Module, D: torch.nn.Module, cfg: RefineConfig, device: torch.device,
                 identity: FeatureNet | None, perceptual_net: FeatureNet | None, disabled: dict[str, str]):
        self.G, self.D, self.cfg, self.device = G, D, cfg, device
        self.identity, self.perceptual_net, self.disabled = identity, perceptual_net, disabled
        self.ctx = autocast_for(cfg.precision, device)

    def heat(self, points: Tensor) -> Tensor:
        """(B, K, 2) crop points → (B, K, S, S) heatmaps on the loss's device."""
        return heatmaps.render(points.to(self.device), self.cfg.image_size, self.cfg.heatmap_sigma, "exact")

    def d_maps(self, h: Tensor) -> Tensor:
        """The heatmaps D is conditioned on: the generator's grouping, if it has one."""
        groups = self.G.cfg.heatmap_groups
        return h if groups is None else group_heatmaps(h, groups)

    def pix(self, a: Tensor, b: Tensor) -> Tensor:
        """The pixel term's distance (``cfg.pixel_norm``: mean |a − b| or mean (a − b)²)."""
        d = a.float() - b.float()
        return d.abs().mean() if self.cfg.pixel_norm == "l1" else d.pow(2).mean()

    def prepare(self, batch: Mapping[str, Any], step: int) -> dict[str, Any]:
        """``batch`` on the device plus what both phases use: heatmaps ``h_x/h_y/h_n``, D's maps ``d_h``,
        Î (``fake``, with its graph) and G's blend ``mask``, and the ``step`` (DiffAugment seeds, consistency cadence)."""
        b = {k: (v.to(self.device) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}
        b |= {"h_y": self.heat(b["pts_y"]), "h_x": self.heat(b["pts_x"]), "h_n": self.heat(b["pts_n"]), "step": step}
        with self.ctx():
            b["fake"], _, b["mask"] = self.G.forward_parts(b["p"], b["h_y"], b["v"])
            b["d_h"] = self.d_maps(b["h_y"])
        return b

    def accumulate_gradients(self, phase: str, b: Mapping[str, Any]) -> dict[str, float]:
        """Run one phase's forward passes and ``backward()`` its loss on a :meth:`prepare`-d batch.

        Returns:
            ``"D"``: ``Loss/D/real``, ``fake``, ``score_real``, ``score_fake`` and ``accuracy`` (the share
            of the batch the critic gets right; ≈ 0.5 all run long means it is blind). ``"G"``: every
            term as ``Loss/G/<name>``, ``Loss/G/total``, and on the same batch what the base render and
            a copy of X score on the pixel term (``Ref/pix_render``, ``Ref/pix_copy``) and the mask's
            mean overall and on invalid pixels (``Mask/mean``, ``Mask/invalid``).
        """
        if phase == "D":
            return self._discriminator(b)
        if phase == "G":
            return self._generator(b)
        raise ValueError(f"phase must be 'G' or 'D', got {phase!r}")

    def _critic_input(self, image: Tensor, maps: Tensor, seed: int) -> Tensor:
        """D's input: image and maps (DiffAugment-ed together with ``cfg.diffaug``) as one tensor."""
        if self.cfg.diffaug:
            image, maps = diff_augment(image, maps, seed=seed)
        return torch.cat([image, maps.to(image.dtype)], 1)

    def _discriminator(self, b: Mapping[str, Any]) -> dict[str, float]:
        step, d_h = b["step"], b["d_h"]
        with self.ctx():
            s_real = self.D(self._critic_input(b["y"], d_h, 2 * step)).float()
            s_fake = self.D(self._critic_input(b["fake"].detach(), d_h, 2 * step + 1)).float()
        d_real, d_fake = F.relu(1.0 - s_real).mean(), F.relu(1.0 + s_fake).mean()
        (d_real + d_fake).backward()
        return {"Loss/D/real": d_real.item(), "Loss/D/fake": d_fake.item(),
                "Loss/D/score_real": s_real.mean().item(), "Loss/D/score_fake": s_fake.mean().item(),
                "Loss/D/accuracy": 0.5 * ((s_real > 0).float().mean() + (s_fake < 0).float().mean()).item()}

    def _generator(self, b: Mapping[str, Any]) -> dict[str, float]:
        cfg, G, D, w = self.cfg, self.G, self.D, self.cfg.weights
        fake, mask, step = b["fake"], b["mask"], b["step"]
        for p in D.parameters():
            p.requires_grad_(False)
        try:
            terms: dict[str, Tensor] = {}
            with self.ctx():
                if w.adv:
                    terms["adv"] = g_hinge(D(self._critic_input(fake, b["d_h"], 2 * step + 1)).float())
                terms["pix"] = self.pix(fake, b["y"])
                terms["tv"] = total_variation(fake.float())
                terms["mask"] = F.relu(mask.float() - b["v"]).mean()
                if (w.triple or w.self_) and step % cfg.consistency_every == 0:
                    if w.triple:  # G(G(X, s_n) → s_y) vs G(X, s_y), gradients through both
                        fake_n = G(b["p_n"], b["h_n"], b["v_n"])
                        moved = lookup_torch(fake_n.float(), b["grid_ny"], b["w_ny"])
                        two = G(moved.to(fake.dtype), b["h_y"], b["v_ny"])
                        terms["triple"] = triple_consistency(two.float(), fake.float())
                    clip = b["clip"]
                    if w.self_ and bool(clip.any()):  # G(G(X, s_y) → s_x) vs X, real sources only
                        back_in = lookup_torch(fake[clip].float(), b["grid_yx"][clip], b["w_yx"][clip])
                        back = G(back_in.to(fake.dtype), b["h_x"][clip], b["v_yx"][clip])
                        terms["self"] = self_consistency(back.float(), b["x"][clip])
                if self.identity is not None and w.identity:
                    with torch.no_grad():
                        id_real = [f.float() for f in self.identity(b["y"])]
                    terms["identity"] = identity_l1(id_real, [f.float() for f in self.identity(fake)])
                if self.perceptual_net is not None and w.perceptual:
                    with torch.no_grad():
                        pp_real = [f.float() for f in self.perceptual_net(b["y"])]
                    terms["perceptual"] = perceptual(pp_real, [f.float() for f in self.perceptual_net(fake)])
            total = weighted_total(terms, w.by_name() | {"mask": cfg.mask_prior})
            total.backward()
        finally:
            for p in D.parameters():
                p.requires_grad_(True)
        stats = {f"Loss/G/{k}": float(v.item()) for k, v in terms.items()}
        stats["Loss/G/total"] = float(total.item())
        with torch.no_grad():  # on the same batch: what the base render and a copy of X score
            stats["Ref/pix_render"] = self.pix(b["p"], b["y"]).item()
            stats["Ref/pix_copy"] = self.pix(b["x"], b["y"]).item()
            invalid = 1.0 - b["v"]
            stats["Mask/mean"] = mask.float().mean().item()
            stats["Mask/invalid"] = float((mask.float() * invalid).sum() / invalid.sum().clamp_min(1.0))
        return stats
