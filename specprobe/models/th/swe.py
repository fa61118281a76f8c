"""Shallow-water training data from torch-harmonics' own solver: geopotential height h and winds u, v.

The physics is ``torch_harmonics.examples.ShallowWaterSolver`` (spectral, rotating sphere, third-order
Adams-Bashforth, implicit hyperdiffusion of vorticity and divergence). Two things are added here:

* :func:`advance` is the solver's ``timestep`` with the field axis at -3 instead of 0, so a batch of
  trajectories is integrated at once (its transforms already take leading batch dims). It is a
  line-by-line transliteration; a test checks it against ``ShallowWaterSolver.timestep``.
* :func:`balanced_initial_condition` keeps the solver's random vorticity but sets divergence to zero
  and derives the geopotential from the nonlinear balance equation (the recipe of the solver's own
  Galewsky case). The solver's random initial condition has an unbalanced, spectrally white height
  field that turns into gravity-wave noise decorrelating within an hour; the balanced start evolves
  like weather (hours-scale changes) and has red spectra.

* :class:`StochasticForcing` (optional, the ``noisy`` bundled model): random vorticity forcing at
  high degrees, red in time with a memory (``tau_h``) much shorter than the sampling interval. It
  makes the small scales' 3-hour change mostly a new random draw, unpredictable from the state,
  while the large scales keep their deterministic evolution. :func:`check_regime` measures that on
  twin runs (same state, independent forcing) and raises if the regime is not there.

Channels are h = geopotential / g in metres and the winds in m/s, sampled on the data grid by inverse
transforms of the solver's coefficients (exact: the coefficients are band-limited). Vorticity and
divergence are not used as channels: their spectra are nearly white.

torch is imported inside the functions (this module is only needed to make data).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

CHANNELS = ("h", "u", "v")
UNITS = ("m", "m/s", "m/s")
LONG_NAMES = ("geopotential height", "eastward wind", "northward wind")


def make_solver(nlat: int, nlon: int, dt: float, *, lmax: int, grid: str = "legendre-gauss", double: bool = False):
    """A ``ShallowWaterSolver`` with a triangular truncation lmax = mmax, float32 unless ``double``.

    ``import fme`` swaps ``torch_harmonics.RealSHT`` and ``InverseRealSHT`` for its own float32 fork,
    and the solver looks them up when built; its transforms are rebuilt from torch-harmonics' own
    classes then, so the data never depends on what else the process imported.
    """
    import torch_harmonics as th
    from torch_harmonics import sht as original
    from torch_harmonics.examples import ShallowWaterSolver

    s = ShallowWaterSolver(nlat, nlon, dt, lmax=lmax, mmax=lmax, grid=grid)
    if th.RealSHT is not original.RealSHT or th.InverseRealSHT is not original.InverseRealSHT:
        kw = dict(lmax=lmax, mmax=lmax, grid=grid, csphase=False)  # what the solver builds
        s.sht, s.isht = original.RealSHT(nlat, nlon, **kw), original.InverseRealSHT(nlat, nlon, **kw)
        s.vsht = original.RealVectorSHT(nlat, nlon, **kw)
        s.ivsht = original.InverseRealVectorSHT(nlat, nlon, **kw)
    return s.double() if double else s.float()


def _tendency(s, uspec):
    """``ShallowWaterSolver.dudtspec`` for (..., 3, L, M) coefficients (phi, vorticity, divergence)."""
    import torch

    ugrid = s.spec2grid(uspec)
    uvgrid = s.getuv(uspec[..., 1:, :, :])
    tmpspec = s.vrtdivspec(uvgrid * (ugrid[..., 1:2, :, :] + s.coriolis))
    d_vrt = -tmpspec[..., 1, :, :]
    d_div = tmpspec[..., 0, :, :]
    d_phi = -s.vrtdivspec(uvgrid * ugrid[..., 0:1, :, :])[..., 1, :, :]
    energy = ugrid[..., 0, :, :] + 0.5 * (uvgrid[..., 0, :, :] ** 2 + uvgrid[..., 1, :, :] ** 2)
    d_div = d_div - s.lap * s.grid2spec(energy)
    return torch.stack((d_phi, d_vrt, d_div), dim=-3)


def advance(s, uspec, nsteps: int, forcing=None):
    """``ShallowWaterSolver.timestep`` for (..., 3, L, M): AB3 (Euler, AB2 to start), then hyperdiffusion.

    ``forcing`` (a :class:`ForcingState`) adds its random vorticity tendency after each step (operator
    splitting: the AB3 history holds only the solver's own tendencies); None is the solver, bit for bit.
    """
    import torch

    hist = []
    for it in range(nsteps):
        d = _tendency(s, uspec)
        # (newest, previous, oldest) exactly as the solver's ring buffer holds them: it restarts its
        # history on every call, and on its second step the "oldest" slot holds the newest tendency.
        hist = [d, d, d] if it == 0 else [d, hist[0], d] if it == 1 else [d, hist[0], hist[1]]
        uspec = uspec + s.dt * ((23.0 / 12.0) * hist[0] - (16.0 / 12.0) * hist[1] + (5.0 / 12.0) * hist[2])
        uspec = torch.cat((uspec[..., :1, :, :], s.hyperdiff * uspec[..., 1:, :, :]), dim=-3)
        if forcing is not None:
            uspec = forcing.apply(uspec)
    return uspec


@dataclass(frozen=True)
class StochasticForcing:
    """Random vorticity forcing on degrees ``lmin`` <= l < ``lmax`` (all orders m <= l), red in time.

    The forcing F (vorticity tendency, s^-2) is an Ornstein-Uhlenbeck process per (l, m) mode: every
    solver step F <- a F + sqrt(1 - a^2) sigma xi with a = exp(-dt / tau) and xi a fresh complex
    Gaussian, so F has a memory of ``tau_h`` hours, stationary from the start (F is drawn from its
    stationary law). Each step adds dt * F to the vorticity. The spectrum is white over the band
    (equal variance per mode); ``amplitude`` is F's root-mean-square over the sphere (s^-2).
    ``damping_h`` (optional) is a linear drag on the forced band's vorticity with that e-folding time,
    so the forced field saturates instead of growing for ever (the solver's hyperdiffusion is weak at
    mid degrees). Defaults: see docs/bundled_model.md ("The noisy model").
    """

    lmin: int = 40
    lmax: int | None = 64
    tau_h: float = 0.5
    amplitude: float = 1.0e-9
    damping_h: float | None = 12.0

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d) -> "StochasticForcing | None":
        return None if not d else cls(**{k: d[k] for k in ("lmin", "lmax", "tau_h", "amplitude", "damping_h") if k in d})

    def start(self, s, batch: int, generator):
        """A :class:`ForcingState` for ``batch`` trajectories on solver ``s``, drawing from ``generator``."""
        return ForcingState(self, s, batch, generator)


class ForcingState:
    """The running forcing of a batch of trajectories: its OU state F (batch, L, M) and random stream."""

    def __init__(self, spec: StochasticForcing, s, batch: int, generator):
        import torch

        self.spec, self.generator, self.batch = spec, generator, batch
        n_l, n_m = s.lmax, s.mmax
        self.dt = float(s.dt)
        l_idx = torch.arange(n_l).unsqueeze(-1)
        m_idx = torch.arange(n_m).unsqueeze(0)
        band = (l_idx >= spec.lmin) & (m_idx <= l_idx)
        if spec.lmax is not None:
            band &= l_idx < spec.lmax
        # Orthonormal harmonics: the mean square over the sphere is sum_l (|c_l0|^2 + 2 sum_m>0 |c_lm|^2) / 4pi,
        # so equal variance sigma^2 per mode (m > 0 counted twice) gives amplitude^2 = sigma^2 N_w / 4pi.
        weights = torch.where(m_idx == 0, 1.0, 2.0) * band
        n_w = float(weights.sum())
        if n_w == 0:
            raise ValueError(f"forcing lmin {spec.lmin}: no degree of the solver's l < {n_l} is forced")
        self.sigma = spec.amplitude * math.sqrt(4.0 * math.pi / n_w)
        self.band = band
        self.m0 = (m_idx == 0).expand(n_l, n_m)
        self.a = math.exp(-self.dt / (spec.tau_h * 3600.0))
        self.drag = 1.0 if spec.damping_h is None else math.exp(-self.dt / (spec.damping_h * 3600.0))
        self.ctype = torch.complex128 if s.lap.dtype == torch.float64 else torch.complex64
        self.f = self.draw()

    def draw(self):
        """Independent stationary draws: complex Gaussian of variance sigma^2 per mode (real for m = 0)."""
        import torch

        shape = (self.batch, *self.band.shape)
        re = torch.randn(shape, generator=self.generator, dtype=torch.float64)
        im = torch.randn(shape, generator=self.generator, dtype=torch.float64)
        im = torch.where(self.m0, 0.0, im)
        scale = torch.where(self.m0, 1.0, math.sqrt(0.5)) * self.sigma * self.band
        return torch.complex(re * scale, im * scale).to(self.ctype)

    def apply(self, uspec):
        import torch

        self.f = self.a * self.f + math.sqrt(1.0 - self.a**2) * self.draw()
        vrt = uspec[..., 1, :, :]
        if self.drag != 1.0:
            vrt = torch.where(self.band, vrt * self.drag, vrt)
        vrt = vrt + self.dt * self.f.to(vrt.dtype)
        return torch.stack((uspec[..., 0, :, :], vrt, uspec[..., 2, :, :]), dim=-3)

    def fork(self, generator):
        """A copy for a twin run: same spec, F redrawn from its stationary law, its own random stream."""
        twin = object.__new__(ForcingState)
        twin.__dict__.update(self.__dict__)
        twin.generator = generator
        twin.f = twin.draw()
        return twin


def balanced_initial_condition(s, *, mach: float):
    """The solver's random vorticity (draws from torch's global RNG), zero divergence, balanced phi."""
    import torch

    vrtdiv = s.random_initial_condition(mach=mach)[1:].clone()
    vrtdiv[1] = 0.0
    ugrid = s.getuv(vrtdiv)
    vrtgrid = s.spec2grid(vrtdiv[0])
    tmpspec = s.vrtdivspec(ugrid * (vrtgrid + s.coriolis))
    kinetic = s.grid2spec(0.5 * (ugrid**2).sum(dim=0))
    mean_phi = s.grid2spec(torch.full_like(vrtgrid, float(s.gravity * s.havg)))
    phispec = s.invlap * tmpspec[0] - kinetic + mean_phi
    return torch.tril(torch.stack((phispec, vrtdiv[0], vrtdiv[1])))


class GridSampler:
    """Turns solver coefficients into (h, u, v) on a data grid of any size, via exact inverse transforms."""

    def __init__(self, solver, nlat: int, nlon: int, grid: str):
        # A second solver object just for its transforms on the data grid; same truncation and
        # constants (csphase off, orthonormal), so the coefficients mean the same thing. A solver finer
        # than the data grid (lmax > nlat) is truncated to the data grid's degrees l < nlat first.
        self.lmax = min(int(solver.lmax), nlat)
        self.out = make_solver(nlat, nlon, solver.dt, lmax=self.lmax, grid=grid)
        self.gravity = float(solver.gravity)

    def __call__(self, uspec):
        import torch

        if uspec.shape[-2] > self.lmax:
            uspec = uspec[..., : self.lmax, : self.lmax]
        h = self.out.spec2grid(uspec[..., :1, :, :]) / self.gravity
        return torch.cat((h, self.out.getuv(uspec[..., 1:, :, :])), dim=-3).float()


def trajectories(n_traj: int, n_states: int, *, seed: int, interval_h: float, spinup_h: float,
                 nlat: int = 64, nlon: int = 128, grid: str = "equiangular", solver_nlat: int = 96,
                 solver_nlon: int = 192, lmax: int = 64, dt: float = 200.0, mach: float = 2.0,
                 forcing: StochasticForcing | dict | None = None, chunk: int = 8, progress=None):
    """States (n_traj, n_states, 3, nlat, nlon), float32, physical units, every ``interval_h`` hours.

    Trajectory k starts from the k-th balanced random state drawn after ``torch.manual_seed(seed)``
    (the global RNG is restored afterwards), is spun up for ``spinup_h`` hours, then sampled.
    The solver grid is Legendre-Gauss and big enough (solver_nlat >= 3 lmax / 2) for the quadratic
    terms not to alias. ``progress(done_hours, total_hours)`` is called as the integration goes.
    ``forcing`` (a :class:`StochasticForcing` or its dict) adds random small-scale vorticity forcing,
    drawn from its own stream seeded by ``seed`` (the initial states are those of the unforced run).
    """
    import torch

    per_interval, per_spinup = _steps(interval_h, dt), _steps(spinup_h, dt)
    s, sample, forcing, ics, stream = _seeded_start(n_traj, seed=seed, forcing=forcing, nlat=nlat, nlon=nlon,
                                                    grid=grid, solver_nlat=solver_nlat, solver_nlon=solver_nlon,
                                                    lmax=lmax, dt=dt, mach=mach)
    total_h, done_h = n_traj * (spinup_h + (n_states - 1) * interval_h), 0.0
    out = torch.empty(n_traj, n_states, len(CHANNELS), nlat, nlon)
    with torch.no_grad():
        for start, k, uspec, force in _spun_up(s, ics, chunk, per_spinup, forcing, stream):
            done_h += k * spinup_h
            for t in range(n_states):
                if t:
                    uspec = advance(s, uspec, per_interval, force)
                    done_h += k * interval_h
                out[start : start + k, t] = sample(uspec)
                if progress is not None:
                    progress(done_h, total_h)
    if not torch.isfinite(out).all():
        raise RuntimeError("shallow-water integration blew up (non-finite state); lower dt")
    return out


def _seeded_start(n_traj: int, *, seed: int, forcing, nlat, nlon, grid, solver_nlat, solver_nlon, lmax, dt, mach):
    """(solver, grid sampler, forcing, initial states, forcing stream) of ``seed``: what
    :func:`trajectories` and :func:`regime_statistics` both start from, so their runs are the same runs."""
    import torch

    s = make_solver(solver_nlat, solver_nlon, dt, lmax=lmax)
    sample = GridSampler(s, nlat, nlon, grid)
    forcing = StochasticForcing.from_dict(forcing) if isinstance(forcing, dict) else forcing
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ics = [balanced_initial_condition(s, mach=mach) for _ in range(n_traj)]
    return s, sample, forcing, ics, torch.Generator().manual_seed(_forcing_seed(seed))


def _spun_up(s, ics, chunk: int, per_spinup: int, forcing, stream):
    """Per chunk of initial states, in order: (first index, size, state after the spin-up, its forcing).

    The forcing of a chunk is started from ``stream`` before its spin-up, so :func:`trajectories` and
    :func:`regime_statistics` draw the same forcing for the same runs."""
    import torch

    for start in range(0, len(ics), chunk):
        uspec = torch.stack(ics[start : start + chunk])
        k = uspec.shape[0]
        force = None if forcing is None else forcing.start(s, k, stream)
        yield start, k, advance(s, uspec, per_spinup, force), force


def _forcing_seed(seed: int) -> int:
    return (int(seed) * 7919 + 104729) % (2**63)


class RegimeError(RuntimeError):
    """The forced data is not in the intended regime (unpredictable small scales, predictable large ones)."""


def regime_statistics(n_traj: int, n_states: int, *, seed: int, interval_h: float, spinup_h: float,
                      forcing: StochasticForcing | dict | None, nlat: int = 64, nlon: int = 128,
                      grid: str = "equiangular", solver_nlat: int = 96, solver_nlon: int = 192, lmax: int = 64,
                      dt: float = 200.0, mach: float = 2.0, chunk: int = 8) -> dict:
    """Per channel and degree, from twin runs: how much of the one-interval change is a random draw.

    ``n_traj`` trajectories (seeded as :func:`trajectories`) are spun up and then, at each of the
    ``n_states - 1`` sampling times, branched for one interval three ways: A continues the forcing,
    B draws the forcing afresh (its memory redrawn too, as the model cannot see it) and C runs without
    forcing. Power per degree (m > 0 doubled, the SHT of the data grid), summed over all branch points:

      state      E|x|^2_l                      change     E|y_A - x|^2_l
      twin       E|y_A - y_B|^2_l              forced     E|y_A - y_C|^2_l

    ``noise_fraction`` = 0.5 twin / change estimates Var(y | x) / E|y - x|^2: the share of the change no
    function of the state can predict (1 - the R2 of the best possible model; 0 without forcing).
    """
    import torch

    from ...spectral.sht import real_sht
    from ...spectral.spectra import degree_power

    per_interval, per_spinup = _steps(interval_h, dt), _steps(spinup_h, dt)
    s, sample, forcing, ics, stream = _seeded_start(n_traj, seed=seed, forcing=forcing, nlat=nlat, nlon=nlon,
                                                    grid=grid, solver_nlat=solver_nlat, solver_nlon=solver_nlon,
                                                    lmax=lmax, dt=dt, mach=mach)
    sht = real_sht(nlat, nlon, grid=grid, dtype=torch.float64)
    twin_stream = torch.Generator().manual_seed(_forcing_seed(seed) + 1)
    acc = {}

    def add(name, field):
        p = degree_power(sht(field.double())).sum(dim=0)  # (C, L) summed over the batch
        acc[name] = acc.get(name, 0.0) + p

    n = 0
    with torch.no_grad():
        for _, k, uspec, force in _spun_up(s, ics, chunk, per_spinup, forcing, stream):
            for _ in range(n_states - 1):
                x = sample(uspec)
                twin = None if force is None else force.fork(twin_stream)
                ya = advance(s, uspec, per_interval, force)
                yb = sample(advance(s, uspec, per_interval, twin))
                yc = sample(advance(s, uspec, per_interval, None))
                uspec = ya
                ya = sample(ya)
                add("state", x)
                add("change", ya - x)
                add("twin", ya - yb)
                add("forced", ya - yc)
                n += k
    out = {key: (v / n) for key, v in acc.items()}
    out["noise_fraction"] = 0.5 * out["twin"] / out["change"]
    out["pairs"] = n
    return out


# The default regime: the top quarter of the data grid's degrees must be at least this noise-dominated
# (model-free: the best possible model explains at most 1 - NOISE_FRACTION_MIN of the change), the
# large scales at most LARGE_SCALE_NOISE_MAX, and the small scales' change at least CHANGE_MIN of their
# power: the forcing renews them within an interval rather than nudging them (the unforced recipe's top
# quarter changes by 0.04 of its power in 3 h), and the probe's noise-dominated mask, which needs the change
# to be at least 0.1 of the state (spectral.predictability.DEFAULT_MIN_CHANGE), sees these degrees.
NOISE_FRACTION_MIN = 0.7
LARGE_SCALE_NOISE_MAX = 0.1
LARGE_SCALE_DEGREES = (1, 8)
CHANGE_MIN = 0.15


def check_regime(stats: dict, *, channels=CHANNELS, noise_fraction_min: float = NOISE_FRACTION_MIN,
                 large_scale_noise_max: float = LARGE_SCALE_NOISE_MAX,
                 large_scale_degrees: tuple[int, int] = LARGE_SCALE_DEGREES, change_min: float = CHANGE_MIN,
                 top_fraction: float = 0.25) -> dict:
    """Raise :class:`RegimeError` unless ``stats`` (from :func:`regime_statistics`) show the noisy regime.

    Over the top ``top_fraction`` of degrees, for the winds (the forced fields: vorticity forcing acts
    on u, v; h follows through the balance and gravity waves and is reported, not required): the
    noise fraction, averaged over the band's power, >= ``noise_fraction_min`` and the change's power >=
    ``change_min`` x the state's. Over ``large_scale_degrees``, every channel's band noise fraction <=
    ``large_scale_noise_max``. Returns the band numbers that were checked.
    """
    nf_num = 0.5 * stats["twin"]
    change, state = stats["change"], stats["state"]
    n_l = change.shape[-1]
    top = (n_l - max(1, round(top_fraction * n_l)), n_l - 1)
    lo, hi = large_scale_degrees
    band = lambda t, a, b: t[:, a : b + 1].sum(-1)  # noqa: E731
    summary = {"top_degrees": list(top), "large_scale_degrees": [lo, hi], "channels": {}}
    problems = []
    for c, name in enumerate(channels):
        nf_top = float(band(nf_num, *top)[c] / band(change, *top)[c])
        nf_large = float(band(nf_num, lo, hi)[c] / band(change, lo, hi)[c])
        change_ratio = float(band(change, *top)[c] / band(state, *top)[c])
        summary["channels"][name] = {"noise_fraction_top": nf_top, "noise_fraction_large": nf_large,
                                     "change_over_state_top": change_ratio}
        if name in ("u", "v"):
            if not nf_top >= noise_fraction_min:
                problems.append(f"{name}: noise fraction {nf_top:.2f} over l {top[0]}-{top[1]} "
                                f"(need >= {noise_fraction_min:g})")
            if not change_ratio >= change_min:
                problems.append(f"{name}: the one-interval change is {change_ratio:.2f} of the state's power over "
                                f"l {top[0]}-{top[1]} (need >= {change_min:g})")
        if not nf_large <= large_scale_noise_max:
            problems.append(f"{name}: noise fraction {nf_large:.2f} over l {lo}-{hi} (need <= {large_scale_noise_max:g})")
    if problems:
        raise RegimeError("the forced shallow-water data is not in the noisy regime (unpredictable small scales, "
                          "predictable large ones): " + "; ".join(problems))
    return summary


def _steps(hours: float, dt: float) -> int:
    n = round(hours * 3600.0 / dt)
    if abs(n * dt - hours * 3600.0) > 1e-6:
        raise ValueError(f"{hours} h is not a whole number of solver steps of {dt} s")
    return n


def pairs(states):
    """All consecutive (input, target) pairs of (K, T+1, C, H, W) states, trajectory-major: (K*T, C, H, W) x 2."""
    x = states[:, :-1].reshape(-1, *states.shape[2:])
    y = states[:, 1:].reshape(-1, *states.shape[2:])
    return x, y
