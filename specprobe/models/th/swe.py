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

Channels are h = geopotential / g in metres and the winds in m/s, sampled on the data grid by inverse
transforms of the solver's coefficients (exact: the coefficients are band-limited). Vorticity and
divergence are not used as channels: their spectra are nearly white.

torch is imported inside the functions (this module is only needed to make data).
"""

from __future__ import annotations

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


def advance(s, uspec, nsteps: int):
    """``ShallowWaterSolver.timestep`` for (..., 3, L, M): AB3 (Euler, AB2 to start), then hyperdiffusion."""
    import torch

    hist = []
    for it in range(nsteps):
        d = _tendency(s, uspec)
        # (newest, previous, oldest) exactly as the solver's ring buffer holds them: it restarts its
        # history on every call, and on its second step the "oldest" slot holds the newest tendency.
        hist = [d, d, d] if it == 0 else [d, hist[0], d] if it == 1 else [d, hist[0], hist[1]]
        uspec = uspec + s.dt * ((23.0 / 12.0) * hist[0] - (16.0 / 12.0) * hist[1] + (5.0 / 12.0) * hist[2])
        uspec = torch.cat((uspec[..., :1, :, :], s.hyperdiff * uspec[..., 1:, :, :]), dim=-3)
    return uspec


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
        # constants (csphase off, orthonormal), so the coefficients mean the same thing.
        self.out = make_solver(nlat, nlon, solver.dt, lmax=solver.lmax, grid=grid)
        self.gravity = float(solver.gravity)

    def __call__(self, uspec):
        import torch

        h = self.out.spec2grid(uspec[..., :1, :, :]) / self.gravity
        return torch.cat((h, self.out.getuv(uspec[..., 1:, :, :])), dim=-3).float()


def trajectories(n_traj: int, n_states: int, *, seed: int, interval_h: float, spinup_h: float,
                 nlat: int = 64, nlon: int = 128, grid: str = "equiangular", solver_nlat: int = 96,
                 solver_nlon: int = 192, lmax: int = 64, dt: float = 200.0, mach: float = 2.0,
                 chunk: int = 8, progress=None):
    """States (n_traj, n_states, 3, nlat, nlon), float32, physical units, every ``interval_h`` hours.

    Trajectory k starts from the k-th balanced random state drawn after ``torch.manual_seed(seed)``
    (the global RNG is restored afterwards), is spun up for ``spinup_h`` hours, then sampled.
    The solver grid is Legendre-Gauss and big enough (solver_nlat >= 3 lmax / 2) for the quadratic
    terms not to alias. ``progress(done_hours, total_hours)`` is called as the integration goes.
    """
    import torch

    per_interval, per_spinup = _steps(interval_h, dt), _steps(spinup_h, dt)
    s = make_solver(solver_nlat, solver_nlon, dt, lmax=lmax)
    sample = GridSampler(s, nlat, nlon, grid)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        ics = [balanced_initial_condition(s, mach=mach) for _ in range(n_traj)]
    total_h, done_h = n_traj * (spinup_h + (n_states - 1) * interval_h), 0.0
    out = torch.empty(n_traj, n_states, len(CHANNELS), nlat, nlon)
    with torch.no_grad():
        for start in range(0, n_traj, chunk):
            uspec = torch.stack(ics[start : start + chunk])
            k = uspec.shape[0]
            uspec = advance(s, uspec, per_spinup)
            done_h += k * spinup_h
            for t in range(n_states):
                if t:
                    uspec = advance(s, uspec, per_interval)
                    done_h += k * interval_h
                out[start : start + k, t] = sample(uspec)
                if progress is not None:
                    progress(done_h, total_h)
    if not torch.isfinite(out).all():
        raise RuntimeError("shallow-water integration blew up (non-finite state); lower dt")
    return out


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
