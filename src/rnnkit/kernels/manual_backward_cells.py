"""Step maths of the manual-backward kernel (the design: :mod:`rnnkit.kernels.manual_backward`).

One ``torch.autograd.Function`` (``Recurrence``) runs a cell over time-major projected inputs;
``LSTM``, ``GRU`` and ``SimpleRNN`` hold each cell's forward step and hand-written backward,
``Proj`` the recurrent projection with optional per-gate recurrent dropout masks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from rnnkit import activations

Tensor = torch.Tensor
Activation = Callable[[Tensor], Tensor]


def _relu_out(x: Tensor, out: Tensor) -> Tensor:
    return torch.clamp(x, min=0.0, out=out)


# The in-place (``out=``) form of an activation's plain torch form (torch.relu has none).
_OUT_FORMS: dict[Any, Callable[..., Tensor]] = {torch.relu: _relu_out}


def _native(fn: Activation) -> Callable[..., Tensor] | None:
    """The plain torch form of ``fn`` (rnnkit's function or the torch one, per
    :data:`rnnkit.activations.ACTIVATIONS`), or ``None``."""
    found = activations.info(fn, torch_native=True)
    return None if found is None else found.torch_native


def _apply(fn: Activation, x: Tensor, out: Tensor) -> Tensor:
    """``out[...] = fn(x)``, written in place (no temporary) for the common activations."""
    native = _native(fn)
    if native is not None:
        return _OUT_FORMS.get(native, native)(x, out=out)
    return out.copy_(fn(x))


def _derivative(fn: Activation, x: Tensor, y: Tensor) -> Tensor:
    """Elementwise derivative ``fn'(x)`` given ``y = fn(x)``: closed form from ``y`` for the
    common activations (no transcendental recomputed), autograd at ``x`` for any other."""
    if fn is activations.tanh or fn is torch.tanh:
        return 1.0 - y * y
    if fn is activations.sigmoid or fn is torch.sigmoid:
        return y - y * y
    if fn is activations.relu or fn is torch.relu:
        return (y > 0).to(y.dtype)
    if fn is activations.linear:
        return torch.ones_like(y)
    if fn is activations.hard_sigmoid:
        return ((y > 0.0) & (y < 1.0)).to(y.dtype) / 6.0
    with torch.enable_grad():
        xx = x.detach().requires_grad_(True)
        yy = fn(xx)
        (d,) = torch.autograd.grad(yy, xx, torch.ones_like(yy))
    return d


def _mul_derivative(fn: Activation, x: Tensor, y: Tensor, factor: Tensor, out: Tensor) -> Tensor:
    """``out[...] = factor * fn'(x)`` given ``y = fn(x)``, in as few kernel calls as the
    activation allows (relu: one comparison and one ``where``)."""
    if fn is activations.relu or fn is torch.relu:
        return torch.mul(factor, torch.sign(y), out=out)  # y >= 0: sign(y) is relu'(x)
    if fn is activations.tanh or fn is torch.tanh:
        return torch.addcmul(factor, factor * y, y, value=-1.0, out=out)
    return torch.mul(factor, _derivative(fn, x, y), out=out)


class Proj:
    """``h -> h' U`` where ``h'`` is ``h`` times the recurrent dropout mask (if any).

    ``U``: ``(u, G u)``; ``mask``: ``None``, ``(B, u)`` shared by the G gates, or ``(G, B, u)``.
    """

    def __init__(self, U: Tensor, mask: Tensor | None) -> None:
        self.U, self.u = U, U.shape[0]
        self.G = U.shape[1] // self.u
        if mask is not None and mask.dim() == 3 and mask.shape[0] == 1:
            mask = mask[0]
        self.mask = mask
        self.Ut: Tensor | None = None
        self.per_gate = mask is not None and mask.dim() == 3
        if self.per_gate:
            self.Ug = U.reshape(self.u, self.G, self.u).permute(1, 0, 2).contiguous()

    def forward(self, h: Tensor, add: Tensor | None, out: Tensor) -> Tensor:
        """``out = add + h' U`` (``add`` broadcastable to ``(B, G u)`` or ``None``)."""
        if self.per_gate:
            assert self.mask is not None
            r = torch.bmm(h.unsqueeze(0) * self.mask, self.Ug).transpose(0, 1)
            B = h.shape[0]
            if add is None:
                out.view(B, self.G, self.u).copy_(r)
            else:
                torch.add(r, add.expand(B, -1).view(B, self.G, self.u), out=out.view(B, self.G, -1))
            return out
        if self.mask is not None:
            h = h * self.mask
        if add is None:
            return torch.mm(h, self.U, out=out)
        return torch.addmm(add, h, self.U, out=out)

    def backward(self, d: Tensor) -> Tensor:
        """Gradient with respect to ``h`` of ``<d, forward(h)>``."""
        if self.per_gate:
            assert self.mask is not None
            dg = torch.bmm(d.view(d.shape[0], self.G, self.u).transpose(0, 1), self.Ug.mT)
            return (dg * self.mask).sum(0)
        if self.Ut is None:  # a contiguous U^T measured 5-15% faster per step than a view
            self.Ut = self.U.t().contiguous()
        dh = d @ self.Ut
        return dh if self.mask is None else dh * self.mask

    def weight_grad(self, H: Tensor, D: Tensor) -> Tensor:
        """``dU`` for inputs ``H (T, B, u)`` and output gradients ``D (T, B, G u)``, all steps
        in one (batched) matmul."""
        u, G = self.u, self.G
        if self.per_gate:
            assert self.mask is not None
            HM = (H.unsqueeze(0) * self.mask.unsqueeze(1)).reshape(G, -1, u)
            Dg = D.reshape(-1, G, u).transpose(0, 1)
            return torch.bmm(HM.mT, Dg).permute(1, 0, 2).reshape(u, G * u)
        if self.mask is not None:
            H = H * self.mask
        return H.reshape(-1, u).t() @ D.reshape(-1, G * u)


def _prev(first: Tensor, seq: Tensor) -> Tensor:
    """``[first, seq[0], ..., seq[T-2]]``: the state entering each step."""
    return torch.cat([first.unsqueeze(0), seq[:-1]], dim=0)


def _buffers(like: Tensor, *widths: int) -> list[Tensor]:
    T, B = like.shape[:2]
    return [like.new_empty(T, B, w) for w in widths]


class LSTM:
    """LSTM step maths.

    Forward, per step: one ``addmm`` (recurrent matmul plus the step's input projection), one
    sigmoid over the four gates, and the cell update, every result written in place into
    preallocated buffers. When a gradient is needed, each step also writes, while its values
    are in cache, the factors the backward needs (``Q`` and ``ODtc`` below, masks folded in),
    so the backward does no pass over the whole ``(T, B, 4u)`` activations: measured at
    B=64, T=100, u=128 on one CPU thread, such passes (derivatives, products, ``cat``) cost
    33 ms of an 89 ms backward, the per-step form ~4 ms.

    With ``dc``, ``dh`` the gradients reaching ``c_t``, ``h_t``, the pre-activation gradient is
    ``dZ_t = [dc, dc, dc, dh] * Q_t`` with ``Q = [g σ'_i, c_{t-1} σ'_f, i a'_g, a(c_t) σ'_o]``
    (zero at masked steps), and ``dc += dh * ODtc`` with ``ODtc = o a'(c_t)``.
    """

    n_states = 2

    def __init__(self, act: Activation, rec_act: Activation) -> None:
        self.act, self.rec_act = act, rec_act

    def forward(self, xp, U, b_rec, m, M, states0, need_grad):
        T, B = xp.shape[:2]
        u = U.shape[0]
        # Default activations: tanh(x) = 2 sigmoid(2x) - 1, so with the g-gate columns of xp and
        # U doubled, one sigmoid over the contiguous (B, 4u) block gives all four gates. A tanh
        # on the strided g slice measured ~3x slower per element than that sigmoid on CPU.
        # Then a'(x_g) = 4 σ'(2 x_g), hence the factor 4 on i in Q's g slot.
        default = _native(self.act) is torch.tanh and _native(self.rec_act) is torch.sigmoid
        sigmoid_rec = _native(self.rec_act) is torch.sigmoid
        if default:
            scale = xp.new_ones(4 * u)
            scale[2 * u : 3 * u] = 2.0
            xp, U = xp * scale, U * scale
        proj = Proj(U, M)
        h, c = states0
        minus_one, one = xp.new_full((), -1.0), xp.new_ones(())
        Z = xp.new_empty(B, 4 * u)  # this step's pre-activations
        z_g = Z[:, 2 * u : 3 * u]
        Hbuf = xp.new_empty(T + 1, B, u)  # [h_0, h_1, ..., h_T]: Hbuf[:-1] enters each step
        Hbuf[0] = h
        Hs = Hbuf[1:]
        # Per-step views made up front by `unbind` (one call each): slicing in the loop cost
        # ~15% of the step at the guide's size.
        if need_grad:
            S = xp.new_empty(T, B, 4 * u)
            # Q[t] slots [i | f | g | o]: g, c_{t-1}, 4 i (or i a'_g), a(c_t), then times σ'.
            # The c state itself lives in the f slot of the next row (no copy per step).
            Q = xp.new_empty(T + 1, B, 4 * u)
            Q[0, :, u : 2 * u] = c
            ODTC = xp.new_empty(T, B, u)
            D = xp.new_empty(B, 4 * u)
            s_out, q_rows, od_rows = S.unbind(0), Q.unbind(0), ODTC.unbind(0)
            i_s, f_s, sg_s, o_s = (S[..., k * u : (k + 1) * u].unbind(0) for k in range(4))
            g_out, c_rows, qg_out, tc_out = (
                Q[..., k * u : (k + 1) * u].unbind(0) for k in range(4)
            )
            mf = None if m is None else m.to(xp.dtype).unbind(0)
        else:
            s_buf = xp.new_empty(B, 4 * u)
            s_out = [s_buf] * T
            i_s, f_s, sg_s, o_s = ([s_buf[:, k * u : (k + 1) * u]] * T for k in range(4))
            g_out, tc_out = [xp.new_empty(B, u)] * T, [xp.new_empty(B, u)] * T
            c_rows = [c.clone(), xp.new_empty(B, u)] * ((T + 2) // 2)
        x_s, h_s = xp.unbind(0), Hs.unbind(0)
        if m is not None:
            m_s = m.unbind(0)
            cn_buf, hn_buf = xp.new_empty(B, u), xp.new_empty(B, u)
        for t in range(T):
            c_prev, c_next = c_rows[t], c_rows[t + 1]
            z = proj.forward(h, x_s[t], Z)
            s = _apply(self.rec_act, z, s_out[t])
            i, f, o = i_s[t], f_s[t], o_s[t]
            if default:
                g = torch.addcmul(minus_one, sg_s[t], one, value=2.0, out=g_out[t])
            else:
                g = _apply(self.act, z_g, g_out[t])
            cn = torch.mul(f, c_prev, out=c_next if m is None else cn_buf).addcmul_(i, g)
            tc = _apply(self.act, cn, tc_out[t])
            hn = torch.mul(o, tc, out=h_s[t] if m is None else hn_buf)
            if m is not None:
                torch.where(m_s[t], hn, h, out=h_s[t])
                torch.where(m_s[t], cn, c_prev, out=c_next)
            h = h_s[t]
            if not need_grad:
                continue
            if default:
                torch.addcmul(o, hn, tc, value=-1.0, out=od_rows[t])  # o (1 - tanh(c)^2)
                torch.mul(i, 4.0, out=qg_out[t])
            else:
                _mul_derivative(self.act, cn, tc, o, od_rows[t])
            if sigmoid_rec:
                torch.addcmul(s, s, s, value=-1.0, out=D)
            else:
                D.copy_(_derivative(self.rec_act, z, s))
            if not default:  # Q's g slot: i a'(x_g), complete before the product with D
                _mul_derivative(self.act, z_g, g, i, qg_out[t])
                D[:, 2 * u : 3 * u] = 1.0
            if mf is not None:
                D.mul_(mf[t])
                od_rows[t].mul_(mf[t])
                torch.where(m_s[t], f, one, out=f)  # the backward's dc factor: 1 at masked steps
            q_rows[t].mul_(D)
        if not need_grad:
            return Hs, [c_rows[T]], ()
        return Hs, [c_rows[T].clone()], (Hbuf, S, Q, ODTC)

    def backward(self, xp, U, b_rec, m, M, states0, Hs, saved, dHs, dfinals):
        Hbuf, S, Q, ODTC = saved
        T, u = xp.shape[0], U.shape[0]
        proj = Proj(U, M)
        h0, c0 = states0
        F = S[..., u : 2 * u].unbind(0)  # forget gate (1 at masked steps)
        notm = None if m is None else (~m).to(xp.dtype).unbind(0)
        dh = torch.zeros_like(h0)
        dc = dfinals[0] if dfinals[0] is not None else torch.zeros_like(c0)
        DZ = torch.empty_like(xp)
        dz_rows, q_rows, od_rows = DZ.unbind(0), Q.unbind(0), ODTC.unbind(0)
        dh_rows = None if dHs is None else dHs.unbind(0)
        for t in range(T - 1, -1, -1):
            if dh_rows is not None:
                dh = dh + dh_rows[t]
            dc = torch.addcmul(dc, dh, od_rows[t])
            dZ = torch.mul(torch.cat([dc, dc, dc, dh], dim=1), q_rows[t], out=dz_rows[t])
            back = proj.backward(dZ)
            dh = back if notm is None else back.addcmul_(dh, notm[t])
            dc = dc * F[t]
        return DZ, proj.weight_grad(Hbuf[:-1], DZ), None, [dh, dc]


class GRU:
    """GRU step maths, ``reset_after`` True (one recurrent matmul, recurrent bias) or False
    (reset gate applied to ``h`` before the candidate's matmul: two matmuls per step).

    As for :class:`LSTM`, when a gradient is needed each step writes the backward's factors
    while its values are in cache (masks folded in), so the backward's loop is a few kernel
    calls per step and no pass over the whole sequence precedes it. With ``dh`` the gradient
    reaching ``h_t``, ``A1 = (h_{t-1} - hh) σ'_z`` and ``B1 = (1 - z) a'(ph)`` (``ph`` the
    candidate's pre-activation): ``dP_z = dh A1``, ``dP_h = dh B1``.
    """

    n_states = 1

    def __init__(self, act: Activation, rec_act: Activation, reset_after: bool) -> None:
        self.act, self.rec_act, self.reset_after = act, rec_act, reset_after

    def _projs(self, U: Tensor, M: Tensor | None) -> tuple[Proj, Proj]:
        u = U.shape[0]
        if M is not None and M.dim() == 2:
            return Proj(U[:, : 2 * u], M), Proj(U[:, 2 * u :], M)
        Mzr = None if M is None else M[:2]
        Mh = None if M is None else M[2:]
        return Proj(U[:, : 2 * u], Mzr), Proj(U[:, 2 * u :], Mh)

    def forward(self, xp, U, b_rec, m, M, states0, need_grad):
        T, B = xp.shape[:2]
        u = U.shape[0]
        (h,) = states0
        sigmoid_rec = _native(self.rec_act) is torch.sigmoid
        one = xp.new_ones(())
        Hbuf = xp.new_empty(T + 1, B, u)  # [h_0, ..., h_T]: Hbuf[:-1] enters each step
        Hbuf[0] = h
        Hs = Hbuf[1:]
        h_s, hp_s = Hs.unbind(0), Hbuf.unbind(0)
        x_zr, x_h = xp[..., : 2 * u].unbind(0), xp[..., 2 * u :].unbind(0)
        PZR, PH, HH, DIFF, D = (xp.new_empty(B, w) for w in (2 * u, u, u, u, 2 * u))
        # Per-step views, made up front by `unbind` (see LSTM.forward).
        if need_grad:
            S = xp.new_empty(T, B, 2 * u)
            s_out, z_s, r_s = S.unbind(0), S[..., :u].unbind(0), S[..., u:].unbind(0)
        else:
            s_buf = xp.new_empty(B, 2 * u)
            s_out, z_s, r_s = [s_buf] * T, [s_buf[:, :u]] * T, [s_buf[:, u:]] * T
        if m is not None:
            m_s = m.unbind(0)
            hn_buf = xp.new_empty(B, u)
            mf = m.to(xp.dtype).unbind(0)
        if self.reset_after:
            proj = Proj(U, M)
            REC = xp.new_empty(B, 3 * u)
            rec_zr, rec_h = REC[:, : 2 * u], REC[:, 2 * u :]
            if need_grad:
                # K[t] = [A1, B1 rec_h σ'_r, B1] (dP_zr, dP_h for dh = 1); Rm[t] = [1, 1, r].
                K = xp.new_empty(T, B, 3 * u)
                Rm = xp.new_empty(T, B, 3 * u)
                Rm[..., : 2 * u] = 1.0
                a1_s, kr_s, b1_s = (K[..., k * u : (k + 1) * u].unbind(0) for k in range(3))
                rm_s = Rm[..., 2 * u :].unbind(0)
        else:
            pzr_proj, h_proj = self._projs(U, M)
            if need_grad:
                A1, B1, C2, RH = (xp.new_empty(T, B, u) for _ in range(4))
                a1_s, b1_s, c2_s, rh_s = A1.unbind(0), B1.unbind(0), C2.unbind(0), RH.unbind(0)
            else:
                rh_s = [xp.new_empty(B, u)] * T
        for t in range(T):
            if self.reset_after:
                proj.forward(h, b_rec, REC)
                s = _apply(self.rec_act, torch.add(x_zr[t], rec_zr, out=PZR), s_out[t])
                z, r = z_s[t], r_s[t]
                ph = torch.addcmul(x_h[t], r, rec_h, out=PH)
            else:
                s = _apply(self.rec_act, pzr_proj.forward(h, x_zr[t], PZR), s_out[t])
                z, r = z_s[t], r_s[t]
                ph = h_proj.forward(torch.mul(r, h, out=rh_s[t]), x_h[t], PH)
            hh = _apply(self.act, ph, HH)
            diff = torch.sub(h, hh, out=DIFF)
            hn = torch.addcmul(hh, z, diff, out=h_s[t] if m is None else hn_buf)
            if m is not None:
                torch.where(m_s[t], hn, h, out=h_s[t])
            h = h_s[t]
            if not need_grad:
                continue
            if sigmoid_rec:
                torch.addcmul(s, s, s, value=-1.0, out=D)
            else:
                D.copy_(_derivative(self.rec_act, PZR, s))
            if m is not None:
                D.mul_(mf[t])
            d_z, d_r = D[:, :u], D[:, u:]
            torch.mul(diff, d_z, out=a1_s[t])
            dact = _derivative(self.act, ph, hh)
            b1 = torch.addcmul(dact, z, dact, value=-1.0, out=b1_s[t])  # (1 - z) a'(ph)
            if m is not None:
                b1.mul_(mf[t])
                torch.where(m_s[t], z, one, out=z)  # the backward's dh factor: 1 if masked
            if self.reset_after:
                torch.mul(b1, rec_h, out=kr_s[t]).mul_(d_r)
                rm_s[t].copy_(r)
            else:
                torch.mul(hp_s[t], d_r, out=c2_s[t])
        if not need_grad:
            return Hs, [], ()
        if self.reset_after:
            return Hs, [], (Hbuf, S, K, Rm)
        return Hs, [], (Hbuf, S, A1, B1, C2, RH)

    def backward(self, xp, U, b_rec, m, M, states0, Hs, saved, dHs, dfinals):
        u = U.shape[0]
        (h0,) = states0
        T = xp.shape[0]
        Hbuf, S = saved[:2]
        Zm = S[..., :u].unbind(0)  # z, or 1 at masked steps
        dh_rows = None if dHs is None else dHs.unbind(0)
        dh = torch.zeros_like(h0)
        DX = torch.empty_like(xp)
        dx_s = DX.unbind(0)
        if self.reset_after:
            K, Rm = saved[2:]
            proj = Proj(U, M)
            DR = torch.empty_like(K)
            k_s, rm_s, dr_s = K.unbind(0), Rm.unbind(0), DR.unbind(0)
            for t in range(T - 1, -1, -1):
                if dh_rows is not None:
                    dh = dh + dh_rows[t]
                dx = torch.mul(torch.cat([dh, dh, dh], dim=1), k_s[t], out=dx_s[t])
                dr = torch.mul(dx, rm_s[t], out=dr_s[t])
                dh = proj.backward(dr).addcmul_(dh, Zm[t])
            db = DR.sum(dim=(0, 1)) if b_rec is not None else None
            return DX, proj.weight_grad(Hbuf[:-1], DR), db, [dh]
        A1, B1, C2, RH = (x.unbind(0) for x in saved[2:])
        R = S[..., u:].unbind(0)
        pzr_proj, h_proj = self._projs(U, M)
        DZR, DPH = DX[..., : 2 * u], DX[..., 2 * u :]
        dzr_s, dz_s, dr_s, dph_s = (
            DZR.unbind(0), DX[..., :u].unbind(0), DX[..., u : 2 * u].unbind(0), DPH.unbind(0)
        )  # fmt: skip
        for t in range(T - 1, -1, -1):
            if dh_rows is not None:
                dh = dh + dh_rows[t]
            dph = torch.mul(dh, B1[t], out=dph_s[t])
            drh = h_proj.backward(dph)
            torch.mul(dh, A1[t], out=dz_s[t])
            torch.mul(drh, C2[t], out=dr_s[t])
            dh = pzr_proj.backward(dzr_s[t]).addcmul_(dh, Zm[t]).addcmul_(drh, R[t])
        Hp = Hbuf[:-1]
        dU = torch.cat([pzr_proj.weight_grad(Hp, DZR), h_proj.weight_grad(saved[5], DPH)], dim=1)
        return DX, dU, None, [dh]


class SimpleRNN:
    """SimpleRNN step maths: ``h_t = act(x_t W + b + h_{t-1} U)``."""

    n_states = 1

    def __init__(self, act: Activation) -> None:
        self.act = act

    def forward(self, xp, U, b_rec, m, M, states0, need_grad):
        proj = Proj(U, M)
        (h,) = states0
        P, Hs = _buffers(xp, xp.shape[2], xp.shape[2])
        Y = Hs if m is None else torch.empty_like(Hs)
        for t in range(xp.shape[0]):
            y = _apply(self.act, proj.forward(h, xp[t], P[t]), Y[t])
            h = y if m is None else torch.where(m[t], y, h, out=Hs[t])
        return Hs, [], (P, Y)

    def backward(self, xp, U, b_rec, m, M, states0, Hs, saved, dHs, dfinals):
        P, Y = saved
        proj = Proj(U, M)
        (h0,) = states0
        D = _derivative(self.act, P, Y)
        if m is not None:
            D = D * m.to(D.dtype)
            notm = 1.0 - m.to(D.dtype)
        dh = torch.zeros_like(h0)
        DP = torch.empty_like(P)
        for t in range(xp.shape[0] - 1, -1, -1):
            if dHs is not None:
                dh = dh + dHs[t]
            dp = torch.mul(dh, D[t], out=DP[t])
            back = proj.backward(dp)
            dh = back if m is None else back.addcmul_(dh, notm[t])
        return DP, proj.weight_grad(_prev(h0, Hs), DP), None, [dh]


class Recurrence(torch.autograd.Function):
    """Runs ``cell`` over time-major projected inputs ``xp (T, B, G u)``.

    Returns ``Hs (T, B, u)`` (the carried hidden state after each step) and the final extra
    states (LSTM: ``c_n``). Differentiable in ``xp``, ``U``, ``b_rec`` and the initial states.
    ``need_grad`` False (inference) skips saving what the backward needs.
    """

    @staticmethod
    def forward(ctx, cell, need_grad, xp, U, b_rec, m, M, *states0):
        Hs, finals, saved = cell.forward(xp, U, b_rec, m, M, states0, need_grad)
        ctx.cell = cell
        if need_grad:
            ctx.save_for_backward(xp, U, b_rec, m, M, Hs, *states0, *saved)
        return (Hs, *finals)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, dHs, *dfinals):
        cell = ctx.cell
        xp, U, b_rec, m, M, Hs, *rest = ctx.saved_tensors
        states0, saved = rest[: cell.n_states], rest[cell.n_states :]
        dxp, dU, db, dstates = cell.backward(
            xp, U, b_rec, m, M, states0, Hs, saved, dHs, list(dfinals)
        )
        return (None, None, dxp, dU, db, None, None, *dstates)
