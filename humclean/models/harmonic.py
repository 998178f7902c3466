"""Tracker-fed harmonic envelope network: DSP finds the mains phase, a small CNN estimates the hum.

Hum is a sum of lines at ``k * f0(t)`` whose complex amplitudes ``c_k(t)`` change slowly. The
adaptive canceller (:mod:`.dsp`) already tracks the fundamental's phase ``phi(t)`` precisely; what
limits it is estimating ``c_k(t)`` when speech or music has energy at the same frequency (its
least-squares fit cannot tell the two apart). This model keeps the tracker and replaces the fit:

1. ``phi(t)`` per chunk from :meth:`DspCanceller.track` (numpy, no gradient).
2. Harmonic-synchronous analysis: ``x(t) exp(-j k phi(t))`` low-passed by a Hann window and sampled at
   ``frame_rate`` (20 frames/s) for ``k = 1..K`` gives ``z_k(f)``: the line's envelope plus the
   programme within a few Hz of it. The same at ``(k + 1/2) phi`` (between two lines) measures the
   programme alone near each line.
3. A 2-D CNN over (harmonic, frame) with dilations up to 16 frames in time and 4 harmonics across sees
   seconds of context and the whole harmonic series. It never outputs an amplitude: per harmonic and
   frame it gives a log-weight (how far this frame can be trusted: low where a speech burst or a
   passing note fills the band), a choice among triangular windows of 0.25 to 4 s (how fast this
   line's envelope may move) and a gain (shrinks lines that are not hum). The envelope is the
   weighted local mean of ``z_k``: a learned version of the canceller's least-squares fit, which
   weighs every frame alike and picks one smoothness per chunk.
4. ``hum(t) = sum_k Re(c_k(t) exp(j k phi(t)))`` with ``c_k`` linearly interpolated between frames.

With ``phase_refine`` on, step 2 is followed by a joint phase lock (:func:`.phaselock.refine_phase`):
the tracker's phase, fitted to a few strong harmonics, errs by 0.1 to 0.2 rad under music (k times that
at harmonic k); every line's frames together pin the common phase far better. ``refine_wide`` frames is
how long the lock takes each line's amplitude as constant: over the whole chunk (161 frames) it pins the
phase better than over 2 s (41, what the weights were trained with), at no cost. ``track_knot_seconds`` is
the tracker's first-pass knot spacing (0.25 s in training; 2 s follows the programme on the low lines less).

With ``common_widths`` set, the pooled envelopes get a second candidate: every line fitted at once as one
gain shared by all lines times a slow amplitude per line (:func:`common_envelope`; hum's lines come from one
waveform and rise and fall together), which one more output blends in per line and frame. A line buried
under a note for seconds then follows the others' movement instead of a guess across the gap.

``[B, T] -> [B, T]`` hum at ``sample_rate`` (8 kHz by default, 6 kHz for harmonic-v11: any rate from 6 kHz
sees every line, and they end below 2.5 kHz). Chunks whose tracker finds no mains lines get zero hum. ``T``
must be a multiple of ``sample_rate / frame_rate``.
"""

from __future__ import annotations

import copy
import functools
import math
import threading
from collections.abc import Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .dsp import DspCanceller
from .phaselock import analyse_lines, box_mean, frame_window, k_phasor, refine_phase, tri_pool, unit_phasor

_RMS_FLOOR = 1e-7
_CPU_INFERENCE_ROWS = 4
_BF16_LOCK = threading.Lock()


@functools.cache
def _cpu_bf16() -> bool:
    """Whether this CPU runs bfloat16 convolutions natively (oneDNN: AVX512-BF16 or AMX)."""
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def _edge_mask(x: np.ndarray, rel: float = 1e-4) -> np.ndarray:
    """1 except on the near-silent runs at both ends of a chunk: the zero padding before and after a
    file, which after resampling holds the filter's ringing (about -90 dB) rather than exact zeros."""
    level = rel * math.sqrt(float(np.mean(x * x)))
    loud = np.flatnonzero(np.abs(x) > level)
    mask = np.zeros(x.shape[0], dtype=np.float32)
    if loud.size:
        mask[loud[0] : loud[-1] + 1] = 1.0
    return mask


def _phasor_powers(phi: torch.Tensor, k: int) -> Iterator[torch.Tensor]:
    """``exp(j m phi)`` for ``m = 1..k`` (complex64), one complex product per step instead of an
    exponential per harmonic; complex64 keeps 40 chained products accurate to about 1e-6 rad."""
    base = unit_phasor(phi)
    p = base
    yield p
    for _ in range(k - 1):
        p = p * base
        yield p


def _pool_complex(v: torch.Tensor, width: int) -> torch.Tensor:
    """:func:`.phaselock.tri_pool` of a complex ``[..., F]`` tensor."""
    return torch.view_as_complex(tri_pool(torch.view_as_real(v).movedim(-1, -2), width).movedim(-2, -1).contiguous())


def common_envelope(
    z: torch.Tensor, trust: torch.Tensor, line_width: int, gain_width: int, iters: int = 3
) -> torch.Tensor:
    """Lines ``z [B, K, F]`` (complex) fitted as ``c_k(f) = a_k(f) g(f)``: one gain for all lines.

    Every hum line comes from the same waveform, so when its level moves (the load, the supply) all
    lines move together. ``g`` is fitted from every line at once, each weighted by how well the fit
    explains it (a line under a note counts little), and the per-line amplitudes ``a_k`` need only
    follow what ``g`` does not: a triangular window of ``line_width`` frames, far longer than one line
    alone could afford. ``g`` is smoothed over ``gain_width`` frames. Alternating least squares,
    ``iters`` rounds, from ``g = 1``. ``trust [B, K, F]`` (>= 0) weighs frames within each line.
    Returns ``c [B, K, F]`` (complex64). Runs in float64: the weights span e^20.
    """
    zd = z.to(torch.complex128)
    w = trust.double()
    w = w / (w.mean(-1, keepdim=True) + 1e-12)  # within-line weights: their scale across lines is arbitrary
    g = torch.ones(z.shape[0], 1, z.shape[-1], dtype=zd.dtype, device=z.device)
    a = zd
    for _ in range(iters):
        a = _pool_complex(w * zd * g.conj(), line_width) / (tri_pool(w * g.abs().pow(2), line_width) + 1e-12)
        power = a.abs().pow(2)
        # per-line residual power, floored 30 dB under the line: a line the fit explains fully is not
        # trusted infinitely
        resid = (w * (zd - a * g).abs().pow(2)).mean(-1, keepdim=True) + 1e-3 * power.mean(-1, keepdim=True) + 1e-12
        q = w / resid
        num = (q * a.conj() * zd).sum(1, keepdim=True)
        den = (q * power).sum(1, keepdim=True)
        g = _pool_complex(num, gain_width) / (tri_pool(den, gain_width) + 1e-12)
        g = g / (g.abs().mean(-1, keepdim=True) + 1e-12)  # a and g trade scale freely: keep g near 1
    return (a * g).to(torch.complex64)


_SWITCH_CONFIRM_DB = 6.0
_SWITCH_LINES = 5  # the low lines a switch is looked for in (and confirmed on)
_SWITCH_SIDE = 20  # frames each way of a switch that are compared


def switch_frames(
    z: torch.Tensor,
    m: torch.Tensor,
    lines: int = _SWITCH_LINES,
    half: int = 5,
    side: int = _SWITCH_SIDE,
    min_side: int = 10,
    ratio_db: float = 10.0,
) -> torch.Tensor:
    """Per row, the frame at which hum may switch on or off inside the chunk, or -1 ``[B]`` (int64).

    The first ``lines`` lines' coherent power (``|mean z_k|^2`` over ``2 half + 1`` frames: programme averages
    down, a line does not) is, over every window wholly on one side, at least ``ratio_db`` above its largest
    value on the other side, for ``min_side`` to ``side`` frames each way. Speech rarely passes (it comes in
    bursts and is not coherent); a note starting on a line does. ``z [B, K, F]`` demodulated lines, ``m [B, F]``
    1 on frames of real audio.
    """
    zs = torch.view_as_real(z[:, :lines].detach()).movedim(-1, -2).contiguous()  # [B, K, 2, F]
    mean = box_mean(zs, 2 * half + 1)
    power = (mean.pow(2).sum((1, 2)) * m).double().cpu().numpy()  # [B, F]
    valid = m.cpu().numpy() > 0
    width = side - half
    lo_f, hi_f = min_side + half, z.shape[-1] - min_side - half + 1
    out = np.full(z.shape[0], -1, dtype=np.int64)
    if hi_f <= lo_f:
        return torch.from_numpy(out).to(z.device)
    f = np.arange(lo_f, hi_f)

    def windows(v: np.ndarray, fill: float, before: bool) -> np.ndarray:
        # row f: frames f - side .. f - half - 1 (before) or f + half .. f + side - 1 (after), ``fill`` beyond
        pad = np.full((v.shape[0], side), fill)
        padded = np.concatenate([pad, v] if before else [v, pad], axis=1)
        view = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)
        return view[:, f] if before else view[:, f + half]

    scores = []
    for before in (True, False):
        n_ok = windows(valid.astype(np.float64), 0.0, before).sum(-1)
        top = windows(np.where(valid, power, -np.inf), -np.inf, before).max(-1)
        bottom = windows(np.where(valid, power, np.inf), np.inf, before).min(-1)
        scores.append((n_ok >= min_side - half, top, bottom))
    (ok_l, top_l, bot_l), (ok_r, top_r, bot_r) = scores
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.maximum(bot_r / np.maximum(top_l, 1e-30), bot_l / np.maximum(top_r, 1e-30))
    score = np.where(ok_l & ok_r, score, 0.0)
    best = np.argmax(score, axis=1)
    hit = score[np.arange(score.shape[0]), best] > 10 ** (ratio_db / 10)
    out[hit] = f[best[hit]]
    return torch.from_numpy(out).to(z.device)


class _Block(nn.Module):
    def __init__(self, channels: int, dil_k: int, dil_t: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=(dil_k, dil_t), dilation=(dil_k, dil_t))
        self.conv2 = nn.Conv2d(channels, channels, 1)
        self.norm = nn.GroupNorm(4, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm(self.conv1(x))
        if h.dtype == torch.bfloat16 and h.is_contiguous(memory_format=torch.channels_last):
            # the channels-last copy of ``_cnn``: GELU on the same memory seen as a contiguous
            # [B, H, W, C] tensor takes torch's vectorised path, 2x faster than its channels-last
            # one (which rounds float32 GELU exactly; this path differs by an ulp in 1e-4 of values)
            h = F.gelu(h.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
        else:
            h = F.gelu(h)
        return x + self.conv2(h)


class HarmonicEnvelopeNet(nn.Module):
    """See the module docstring. ``forward(x [B, T], f0_hz [B] | None) -> hum [B, T]``."""

    takes_f0 = True

    def __init__(
        self,
        sample_rate: int = 8000,
        harmonics: int = 40,
        frame_rate: int = 20,
        channels: int = 32,
        dilations_t: tuple[int, ...] = (1, 2, 4, 8, 16, 1, 2, 4, 8, 16),
        dilations_k: tuple[int, ...] = (1, 1, 2, 2, 4, 1, 1, 2, 2, 4),
        baseline_seconds: float = 2.0,
        pool_widths: tuple[int, ...] = (3, 5, 11, 21, 41),
        line_gain: bool = True,
        phase_refine: bool = False,
        common_widths: tuple[int, int] | None = None,
        refine_wide: int = 41,
        track_knot_seconds: float = 0.25,
        switch_split: bool = False,
    ) -> None:
        super().__init__()
        if sample_rate % frame_rate:
            raise ValueError("sample_rate must be a multiple of frame_rate")
        self.sample_rate = int(sample_rate)
        self.harmonics = int(harmonics)
        self.hop = self.sample_rate // int(frame_rate)
        self.baseline_frames = max(1, int(round(baseline_seconds * frame_rate))) | 1
        # the tracker's first-pass knot spacing: 0.25 s is what harmonic-v1 to v8 were trained with; 2 s
        # (the canceller's own default since) follows programme on the low lines far less
        self.tracker = DspCanceller(sample_rate=self.sample_rate, first_knot_seconds=track_knot_seconds)
        self.register_buffer("window", frame_window(self.hop), persistent=False)
        self.inp = nn.Conv2d(7, channels, 1)
        self.blocks = nn.Sequential(
            *[_Block(channels, dk, dt) for dk, dt in zip(dilations_k, dilations_t, strict=True)]
        )
        self.pool_widths = tuple(int(w) for w in pool_widths)
        self.line_gain = bool(line_gain)
        self.phase_refine = bool(phase_refine)
        # frames over which the phase lock takes each line's amplitude as constant (odd; 41 is 2 s, what
        # harmonic-v5 was trained with): a longer span averages more programme out of the common phase
        self.refine_wide = int(refine_wide) | 1
        # (line, gain) window widths of the common-envelope candidate (see ``common_envelope``), which
        # one more output blends into the pooled estimate per line and frame
        self.common_widths = None if common_widths is None else (int(common_widths[0]), int(common_widths[1]))
        # pool each side of a hum switched on or off inside the chunk on its own (see ``switch_frames``)
        self.switch_split = bool(switch_split)
        self.out = nn.Conv2d(channels, len(self.pool_widths) + 2 + (self.common_widths is not None), 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)
        # bfloat16 copy of the layers for CPU inference (see ``_cnn``); in a list so that it is not a
        # submodule: never saved, never trained
        self._bf16: list[nn.Module] = []
        self.register_load_state_dict_post_hook(lambda module, keys: module._drop_bf16())

    def _drop_bf16(self) -> None:
        self._bf16.clear()

    def inherit(self, other: HarmonicEnvelopeNet) -> None:
        """Start from ``other``'s weights (fine-tuning), also when the window widths differ.

        Every layer but the output is copied. Output rows for widths ``other`` has are copied; a new
        width starts as a copy of the nearest (in log width) with its logit 2 lower, so the model starts
        close to ``other`` (where it chose that width, mostly still does) and the new choice gets gradient.
        A common-envelope blend (``common_widths``) that ``other`` lacks starts even (zero row and bias).
        """
        state = other.state_dict()
        weight, bias = state["out.weight"], state["out.bias"]
        old = other.pool_widths
        rows = [0]
        offsets = [0.0]
        for width in self.pool_widths:
            nearest = min(range(len(old)), key=lambda i: abs(math.log(old[i] / width)))
            rows.append(1 + nearest)
            offsets.append(0.0 if old[nearest] == width else -2.0)
        rows.append(1 + len(old))
        offsets.append(0.0)
        out_w = weight[rows].clone()
        out_b = bias[rows] + torch.tensor(offsets, dtype=bias.dtype)
        if self.common_widths is not None:
            if other.common_widths is not None:
                out_w = torch.cat([out_w, weight[-1:]])
                out_b = torch.cat([out_b, bias[-1:]])
            else:  # the blend starts even: half the pooled estimate, half the common-envelope one
                out_w = torch.cat([out_w, torch.zeros_like(weight[:1])])
                out_b = torch.cat([out_b, torch.zeros_like(bias[:1])])
        state["out.weight"], state["out.bias"] = out_w, out_b
        self.load_state_dict(state)

    def train(self, mode: bool = True) -> HarmonicEnvelopeNet:
        self._drop_bf16()
        return super().train(mode)

    # ------------------------------------------------------------------ tracking
    def _phases(self, x: torch.Tensor, f0_hz: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``phi [B, T]`` float64, ``valid [B, T]`` float32 (0 on zero padding at file edges) and
        ``found [B]`` bool from the DSP tracker (no gradient)."""
        xs = x.detach().float().cpu().numpy().astype(np.float64)
        hints = f0_hz.detach().cpu().numpy().astype(np.float64) if f0_hz is not None else np.full(xs.shape[0], math.nan)
        phis = np.zeros(xs.shape)
        valid = np.ones(xs.shape, dtype=np.float32)
        found = np.zeros(xs.shape[0], dtype=bool)
        for b in range(xs.shape[0]):
            tr = self.tracker.track(xs[b], 0, float(hints[b]))
            if tr is not None:
                phis[b], valid[b] = tr[0], tr[1] * _edge_mask(xs[b])
                found[b] = True
        dev = x.device
        return torch.from_numpy(phis).to(dev), torch.from_numpy(valid).to(dev), torch.from_numpy(found).to(dev)

    # ------------------------------------------------------------------ analysis / synthesis
    def _analyse(self, x: torch.Tensor, phi: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Line envelopes ``z [B, K, F]`` and between-line programme ``w [B, K, F]`` (complex64): see
        :func:`.phaselock.analyse_lines`."""
        z, w = analyse_lines(x, phi, self.window, self.harmonics, between=True)
        assert w is not None
        return z, w

    def _synthesise(self, c: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        """``sum_k Re(c_k(t) exp(j k phi))`` with ``c [B, K, F]`` complex linearly interpolated.

        Frame ``f``'s centre is sample ``f * hop``. Between two centres the envelope is a straight
        line, so the sum is ``(1 - u) Re(P_f(e^{j phi})) + u Re(P_{f+1}(e^{j phi}))`` with the
        polynomials ``P_f(z) = sum_k c_k[f] z^k``. Without gradients they are evaluated by Horner's
        rule, one row at a time on the CPU (the working set stays in cache: about 5x faster); training
        keeps two batched matrix products against the ``[2K, T]`` phasor basis, whose backward pass
        needs no per-step intermediates.
        """
        if torch.is_grad_enabled() and c.requires_grad:
            return self._synthesise_basis(c, phi)
        if c.device.type == "cpu":
            return torch.cat([self._synthesise_horner(c[i : i + 1], phi[i : i + 1]) for i in range(c.shape[0])])
        return self._synthesise_horner(c, phi)

    def _synthesise_horner(self, c: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        b, k, f = c.shape
        t, seg = phi.shape[-1], f - 1
        z = unit_phasor(phi).reshape(b, 1, seg, self.hop)
        coef = torch.stack([c[:, :, :-1], c[:, :, 1:]], 1)[..., None]  # [B, 2, K, F-1, 1]: both ends
        acc = coef[:, :, k - 1] * z
        for i in range(k - 2, -1, -1):
            acc.add_(coef[:, :, i]).mul_(z)  # in place: a fresh 1 MB tensor per step costs page faults
        u = torch.arange(self.hop, device=c.device, dtype=torch.float32) / self.hop
        return ((1 - u) * acc[:, 0].real + u * acc[:, 1].real).reshape(b, seg * self.hop)[:, :t]

    def _synthesise_basis(self, c: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
        b, k, f = c.shape
        t = phi.shape[-1]
        seg = f - 1
        with torch.no_grad():
            ph = torch.stack(list(_phasor_powers(phi, k)), 1)  # [B, K, T]: exp(j k phi)
            basis = torch.cat([ph.real, ph.imag], 1)  # [B, 2K, T]
            basis = basis.reshape(b, 2 * k, seg, self.hop).permute(0, 2, 1, 3)  # [B, F-1, 2K, hop]
        # Re(c P) = c_re P_re - c_im P_im
        coef = torch.cat([c.real, -c.imag], 1).transpose(1, 2)  # [B, F, 2K]
        left = (coef[:, :-1, None, :] @ basis).squeeze(2)  # [B, F-1, hop]
        right = (coef[:, 1:, None, :] @ basis).squeeze(2)
        u = torch.arange(self.hop, device=c.device, dtype=left.dtype) / self.hop
        return ((1 - u) * left + u * right).reshape(b, seg * self.hop)[:, :t]

    def _pooled(self, zr: torch.Tensor, o: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        """Envelopes ``[B, 2, K, F]`` as learned weighted local means of the demodulated lines.

        ``o`` holds, per harmonic and frame, a log-weight (how much this frame can be trusted: low
        where programme fills the band), logits choosing among triangular windows of 0.25 to 4 s
        (how fast this line's envelope may move) and a gain logit (shrinks lines that are not hum).
        All three are scale-free, so the network never has to output an amplitude; with the output
        layer zero-initialised the model starts as an even mix of plain moving averages. With
        ``line_gain`` off, the gain is 1 and only the weights decide (see ``__init__``). With
        ``common_widths``, a last logit blends in :func:`common_envelope`'s fit (same frame weights).
        """
        n_scales = len(self.pool_widths)
        weight = torch.exp(o[:, 0].clamp(-10.0, 10.0)) * m[:, None]  # [B, K, F]; ``m``: frames on real audio
        alpha = torch.softmax(o[:, 1 : 1 + n_scales], dim=1)  # [B, S, K, F]
        # line_gain=False ignores the gain output (the layer keeps its shape so that weights trained
        # with it still load): one 8 s chunk's gain can switch a real line off for the whole chunk.
        gain = torch.sigmoid(o[:, 1 + n_scales] + 6.0) if self.line_gain else torch.ones_like(weight)
        num = zr * weight[:, None]
        est = torch.zeros_like(zr)
        for i, width in enumerate(self.pool_widths):
            est = est + alpha[:, i, None] * tri_pool(num, width) / (tri_pool(weight, width)[:, None] + 1e-6)
        if self.common_widths is not None:
            common = common_envelope(torch.complex(zr[:, 0], zr[:, 1]), weight, *self.common_widths)
            blend = torch.sigmoid(o[:, 2 + n_scales])[:, None]
            est = est + blend * (torch.view_as_real(common).movedim(-1, 1) - est)
        return est * gain[:, None]

    def _split_at_switch(
        self, z: torch.Tensor, zr: torch.Tensor, o: torch.Tensor, m: torch.Tensor, c_ri: torch.Tensor
    ) -> torch.Tensor:
        """``c_ri`` pooled again on each side of a switch where :func:`switch_frames` finds one that the
        envelopes themselves confirm: the hum they estimate across the whole chunk is at least
        ``_SWITCH_CONFIRM_DB`` stronger on one side than on the other (a switch smeared by the windows). A note
        starting on the mains frequency shows the same jump in the lines, but the network estimates no hum under
        it (or the same hum on both sides, where hum runs on under it): no split, the note stays protected."""
        at = switch_frames(z, m)
        if not bool((at >= 0).any()):
            return c_ri
        power = c_ri[:, :, :_SWITCH_LINES].pow(2).sum((1, 2))  # [B, F]: the estimate of the low lines
        frames = torch.arange(m.shape[-1], device=m.device)[None, :]
        before = (frames < at[:, None]) & (frames >= at[:, None] - _SWITCH_SIDE) & (m > 0)
        after = (frames >= at[:, None]) & (frames < at[:, None] + _SWITCH_SIDE) & (m > 0)
        p_before = (power * before).sum(-1) / before.sum(-1).clamp_min(1)
        p_after = (power * after).sum(-1) / after.sum(-1).clamp_min(1)
        ratio = 10 ** (_SWITCH_CONFIRM_DB / 10)
        confirmed = (at >= 0) & ((p_after > ratio * p_before) | (p_before > ratio * p_after))
        if not bool(confirmed.any()):
            return c_ri
        side = ((frames >= at[:, None]) & confirmed[:, None]).to(m.dtype)  # [B, F]: 1 after a confirmed switch
        split = (
            self._pooled(zr, o, m * (1 - side)) * (1 - side)[:, None, None]
            + self._pooled(zr, o, m * side) * side[:, None, None]
        )
        return torch.where(confirmed[:, None, None, None], split, c_ri)

    # ------------------------------------------------------------------ network
    def _cnn(self, feats: torch.Tensor) -> torch.Tensor:
        """The CNN's outputs ``[B, S + 2, K, F]`` (float32).

        Inference on a CPU with native bfloat16 (AVX512-BF16 or AMX) runs a bfloat16 channels-last copy
        of the layers, about 2.5x faster; its outputs are only weights and window choices, the
        envelopes themselves are pooled in float32. The copy is made on first use in eval mode and
        dropped by ``train()``, ``eval()`` and ``load_state_dict`` (weights change only around those)."""
        if self.training or torch.is_grad_enabled() or feats.device.type != "cpu" or not _cpu_bf16():
            return self.out(self.blocks(self.inp(feats)))
        with _BF16_LOCK:  # engine workers may call concurrently
            if not self._bf16:
                layers = nn.Sequential(self.inp, self.blocks, self.out)
                self._bf16.append(copy.deepcopy(layers).to(torch.bfloat16).to(memory_format=torch.channels_last))
        x = feats.to(torch.bfloat16).contiguous(memory_format=torch.channels_last)
        return self._bf16[0](x).float().contiguous()

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor, f0_hz: torch.Tensor | None = None) -> torch.Tensor:
        # Inference on the CPU runs 4 rows at a time (the analysis and synthesis loop over single rows
        # inside): per 16 chunks, one thread, 377 ms in rows of 4 against 400 ms all at once; rows of 1
        # were 5-8 % slower than rows of 4 (the CNN and the pooling prefer a few rows).
        rows = _CPU_INFERENCE_ROWS
        if x.device.type == "cpu" and not torch.is_grad_enabled() and x.shape[0] > rows:
            parts = [
                self._forward(x[i : i + rows], None if f0_hz is None else f0_hz[i : i + rows])
                for i in range(0, x.shape[0], rows)
            ]
            return torch.cat(parts)
        return self._forward(x, f0_hz)

    def _forward(self, x: torch.Tensor, f0_hz: torch.Tensor | None) -> torch.Tensor:
        x = x.float()
        b, t = x.shape
        if t % self.hop:
            raise ValueError(f"chunk length {t} is not a multiple of {self.hop}")
        phi, valid, found = self._phases(x, f0_hz)
        n_valid = valid.sum(dim=1, keepdim=True).clamp_min(1.0)
        rms = ((x.pow(2) * valid).sum(dim=1, keepdim=True) / n_valid).sqrt().clamp_min(_RMS_FLOOR)
        xn = x / rms
        z, w = self._analyse(xn, phi)
        # Frames centred on the zero padding at file edges carry no signal: they get zero weight,
        # their level features are set to the chunk's mean and the long mean skips them (the
        # network never saw padding in training, where every crop is real audio).
        centres = torch.clamp(torch.arange(z.shape[-1], device=x.device) * self.hop, max=t - 1)
        m = valid[:, centres]  # [B, F]
        k_idx = torch.arange(1, self.harmonics + 1, device=x.device, dtype=torch.float32)
        k_col = k_idx[None, :, None]
        theta = None
        if self.phase_refine:
            # a DSP step like the tracker: no gradient flows into it
            theta = refine_phase(z.detach(), m, wide=self.refine_wide)
            z = z * k_phasor(k_col, -theta)
            w = w * k_phasor(k_col + 0.5, -theta)
        z2 = 2.0 * z  # a line Re(c e^{j k phi}) demodulates to c / 2
        zr = torch.view_as_real(z2).permute(0, 3, 1, 2)  # [B, 2, K, F]

        mk = m[:, None, None, :]
        base = box_mean(zr * mk, self.baseline_frames) / box_mean(mk, self.baseline_frames).clamp_min(1e-6)

        def level(v: torch.Tensor) -> torch.Tensor:
            lv = torch.log(v.abs().pow(2) + 1e-8)  # [B, K, F]
            mean = (lv * m[:, None]).sum(-1, keepdim=True) / m.sum(-1).clamp_min(1.0)[:, None, None]
            return torch.where(m[:, None] > 0, lv, mean)[:, None]

        # lines beyond 0.45 * rate (61 Hz mains) do not exist at this rate
        f0_est = (phi[:, -1] - phi[:, 0]) / (2 * math.pi) * self.sample_rate / max(t - 1, 1)
        alive = (k_idx[None, :] * f0_est[:, None].float() < 0.45 * self.sample_rate).float()  # [B, K]
        feats = torch.cat(
            [
                zr,
                base,
                level(z2),
                level(2.0 * w),
                (k_idx / self.harmonics)[None, None, :, None].expand(b, 1, self.harmonics, zr.shape[-1]),
            ],
            dim=1,
        )
        o = self._cnn(feats)
        c_ri = self._pooled(zr, o, m)
        if self.switch_split and not torch.is_grad_enabled():
            c_ri = self._split_at_switch(z2, zr, o, m, c_ri)
        c_ri = c_ri * alive[:, None, :, None]
        c = torch.complex(c_ri[:, 0], c_ri[:, 1])
        if theta is not None:
            c = c * k_phasor(k_col, theta)
        hum = self._synthesise(c, phi) * rms
        return hum * valid * found[:, None].to(hum.dtype)
