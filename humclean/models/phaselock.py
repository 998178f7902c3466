"""Phase lock over every hum line: harmonic-synchronous analysis and a joint common-phase correction.

The mains tracker (:meth:`.dsp.DspCanceller.track`) fits its phase to the few strongest lines; under music
it errs by 0.1 to 0.2 rad at the fundamental within a chunk, which is k times that at harmonic k. Demodulated
by the tracked phase, line ``k`` is a slowly varying complex number per 50 ms frame (:func:`analyse_lines`);
a phase error common to all lines rotates line ``k`` by ``k theta``, so every line's frames together pin
``theta`` far better than any one line (:func:`refine_phase`). Used inside the harmonic envelope network
(``phase_refine``) and by the ``dsp`` canceller (:func:`lock_phase`). No weights.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def frame_window(hop: int) -> torch.Tensor:
    """Hann window of ``2 hop`` taps centred on a frame's centre, summing to 1."""
    window = torch.hann_window(2 * hop + 1, periodic=False)[1:]
    return window / window.sum()


def unit_phasor(phi: torch.Tensor, scale: float = 1.0) -> torch.Tensor:
    """``exp(j scale phi)`` as complex64. ``phi`` (float64, thousands of radians over a chunk) is wrapped
    in float64 first, so float32 sines keep about 3e-7 rad and cost a third of float64 ones."""
    turn = 2 * math.pi
    a = phi * scale
    whole = torch.floor(a * (1 / turn)).mul_(turn)  # floor-based wrap: torch.remainder is 3x slower
    arg = a.sub_(whole).float()
    return torch.complex(torch.cos(arg), torch.sin(arg))


def analyse_lines(
    x: torch.Tensor, phi: torch.Tensor, window: torch.Tensor, harmonics: int, between: bool = False
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Line envelopes ``z [B, K, F]`` (and with ``between``, programme between the lines ``w``), complex64.

    ``z_k[f]`` is the ``window``-weighted sum of ``x exp(-j k phi)`` over the ``2 hop`` samples centred on
    sample ``f hop`` (``F = T / hop + 1``; ``T`` a multiple of ``hop``); ``w_k`` the same at
    ``(k + 1/2) phi``. Each segment of ``hop`` samples is the falling half of one frame and the rising half
    of the next, so both halves are formed once per segment; each harmonic costs one complex product (the
    next power of ``exp(-j phi)``), and a block of powers meets the segment rows in one complex matrix
    product. On the CPU rows go one at a time (a row's block of powers stays in cache: 20 against 48 ms
    for 4 rows at once).
    """
    if x.device.type == "cpu" and x.shape[0] > 1:
        pairs = [_analyse_rows(x[i : i + 1], phi[i : i + 1], window, harmonics, between) for i in range(x.shape[0])]
        z = torch.cat([p[0] for p in pairs])
        return z, (torch.cat([p[1] for p in pairs]) if between else None)  # type: ignore[misc]
    return _analyse_rows(x, phi, window, harmonics, between)


# Harmonics whose phasor powers are formed into one buffer and summed by one complex matrix product:
# a product per harmonic (two output columns) ran at a tenth of the GEMM's speed; 20 powers of one
# row are 10 MB, and larger blocks gained nothing.
_HARMONIC_BLOCK = 20


def _analyse_rows(
    x: torch.Tensor, phi: torch.Tensor, window: torch.Tensor, harmonics: int, between: bool
) -> tuple[torch.Tensor, torch.Tensor | None]:
    b, t = x.shape
    h = window.shape[0] // 2
    segs = t // h
    q = unit_phasor(phi, -1.0).reshape(b, segs, h)
    xs = x.reshape(b, segs, h).float()
    window = window.to(xs)
    fall, rise = xs * window[h:], xs * window[:h]  # falling half of frame f, rising half of frame f + 1
    rows = [torch.complex(fall, torch.zeros_like(fall)), torch.complex(rise, torch.zeros_like(rise))]
    if between:
        half = unit_phasor(phi, -0.5).reshape(b, segs, h)
        rows += [fall * half, rise * half]
    parts = torch.stack(rows, 2)  # [B, S, R, hop]
    block = min(harmonics, _HARMONIC_BLOCK)
    powers = torch.empty(b, segs, block, h, dtype=q.dtype, device=x.device)
    sums = []
    prev = q
    with torch.autocast(x.device.type, enabled=False):  # lines 60 dB under the programme need float32
        for k0 in range(0, harmonics, block):
            n = min(block, harmonics - k0)
            for j in range(n):
                if k0 + j:
                    torch.mul(prev, q, out=powers[:, :, j])  # exp(-j (k0 + j + 1) phi), written in place
                else:
                    powers[:, :, 0] = q
                prev = powers[:, :, j]
            # the next block's first power reads the last slot while writing the first: no copy needed
            sums.append(torch.matmul(parts, powers[:, :, :n].transpose(2, 3)))  # [B, S, R, n]
    prod = torch.cat(sums, -1).permute(0, 3, 1, 2)  # [B, K, S, R]
    z = F.pad(prod[..., 0], (0, 1)) + F.pad(prod[..., 1], (1, 0))
    if not between:
        return z, None
    return z, F.pad(prod[..., 2], (0, 1)) + F.pad(prod[..., 3], (1, 0))


def _box(padded: torch.Tensor, width: int) -> torch.Tensor:
    """Mean of every ``width`` consecutive values along the last axis of ``padded`` (float64): a difference
    of running sums, whose cost does not grow with ``width`` (a pooling layer adds up the whole window for
    every output)."""
    c = F.pad(padded.cumsum(-1), (1, 0))
    return (c[..., width:] - c[..., :-width]) / width


def tri_pool(v: torch.Tensor, width: int) -> torch.Tensor:
    """Triangular moving average along the last axis (a box of ``width`` applied twice), zero-padded.

    The sums run in float64: weights span e^20, and float32 differences of large running sums would swamp
    the small values next to them."""
    pad = width // 2
    shape = v.shape
    u = v.reshape(-1, shape[-1]).double()
    for _ in range(2):
        u = _box(F.pad(u, (pad, pad)), width)
    return u.to(v.dtype).reshape(shape)


def box_mean(v: torch.Tensor, width: int) -> torch.Tensor:
    """Moving average of odd ``width`` along the last axis, edges padded with the end values, from float64
    running sums like :func:`tri_pool` (0.8 ms per 8 s chunk less than a pooling layer in the harmonic
    network, for a 41-frame window)."""
    pad = width // 2
    shape = v.shape
    padded = F.pad(v.reshape(-1, 1, shape[-1]).double(), (pad, pad), mode="replicate")
    return _box(padded, width).to(v.dtype).reshape(shape)


def k_phasor(k: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """``exp(j k theta)`` for ``k [1, K, 1]`` and ``theta [B, 1, F]``: ``[B, K, F]`` complex64."""
    arg = k * theta
    return torch.polar(torch.ones_like(arg), arg)


def refine_phase(
    z: torch.Tensor,
    m: torch.Tensor,
    iters: int = 4,
    wide: int = 41,
    smooth: int = 5,
    k_first: int = 6,
    residual_width: int = 5,
) -> torch.Tensor:
    """Common phase correction ``theta [B, 1, F]`` (fundamental radians) for demodulated lines ``z [B, K, F]``.

    Model: ``z_k[f] = c_k exp(j k theta_f) + programme``, ``c_k`` moving slowly (a ``wide``-frame
    triangular mean). Each iteration takes one Gauss-Newton step for ``theta`` per frame, every line
    weighted by ``k^2 |c_k|^2`` over its local residual power (a line with a note on it, or one that
    is not there, counts little), smoothed over ``smooth`` frames. The first step uses only lines up to
    ``k_first`` (their phase cannot wrap). ``m [B, F]``: 1 on frames of real audio, 0 on padding.
    """
    k = torch.arange(1, z.shape[1] + 1, device=z.device, dtype=torch.float32)[None, :, None]
    theta = torch.zeros(z.shape[0], 1, z.shape[-1], device=z.device)
    mw = m[:, None, :].to(torch.float32)
    norm = tri_pool(mw, wide) + 1e-6
    for it in range(iters):
        zc = z * k_phasor(k, -theta)
        ri = tri_pool(torch.view_as_real(zc * mw).permute(0, 3, 1, 2), wide) / norm[:, None]  # [B, 2, K, F]
        c = torch.complex(ri[:, 0], ri[:, 1])
        power = c.abs().pow(2)
        # residual floor: 30 dB under the line's mean power, so a clean line is not trusted infinitely
        resid = tri_pool((zc - c).abs().pow(2) * mw, residual_width) + 1e-3 * power.mean(-1, keepdim=True) + 1e-12
        use = mw if it else mw * (k <= k_first)
        g = (use * k * (zc * torch.conj(c)).imag / resid).sum(1, keepdim=True)
        h = (use * k * k * power / resid).sum(1, keepdim=True)
        step = tri_pool(g, smooth) / (tri_pool(h, smooth) + 1e-12)
        theta = theta + step.clamp(-0.3, 0.3)
    return theta


def lock_phase(
    x: np.ndarray, phi: np.ndarray, valid: np.ndarray, hop: int, harmonics: int, wide: int = 41
) -> np.ndarray:
    """``phi [n]`` (the tracker's phase of chunk ``x [n]``) corrected by :func:`refine_phase` over
    ``harmonics`` lines in frames of ``hop`` samples (``wide``: its amplitude span in frames); ``valid [n]``
    is 0 on zero padding."""
    n = x.shape[0]
    t = -(-n // hop) * hop
    xp = np.zeros(t, dtype=np.float32)
    xp[:n] = x * valid
    step = phi[-1] - phi[-2] if n > 1 else 0.0
    php = np.concatenate([phi, phi[-1] + step * np.arange(1, t - n + 1)])  # straight on past the end
    vp = np.zeros(t, dtype=np.float32)
    vp[:n] = valid
    with torch.no_grad():
        z, _ = analyse_lines(torch.from_numpy(xp)[None], torch.from_numpy(php)[None], frame_window(hop), harmonics)
        centres = np.minimum(np.arange(z.shape[-1]) * hop, t - 1)
        theta = refine_phase(z, torch.from_numpy(vp[centres])[None], wide=wide)[0, 0].double().numpy()
    return phi + np.interp(np.arange(n), np.arange(theta.size) * hop, theta)
