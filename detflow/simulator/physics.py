"""Frame-by-frame detector physics for the simulator.

The model, for every frame ``k`` read after a reset (0-based, read at
``(k + 1) * tframe``):

* charge ``Q`` (DN) accumulates Poisson electrons from sky, sources and dark
  current (``Q += Poisson((qe * scene + dark) * gain * tframe) / gain``) and the
  charge of cosmic rays arriving during the frame; it is capped at full well;
* the measured, bias-free signal is ``u = h^{-1}(Q)`` where ``h`` is the
  LINEARITY correction polynomial written to the reference file, so that the
  linearity step inverts the non-linearity exactly;
* NIR: inter-pixel capacitance couples ``u`` to the four neighbours (the IPC
  file holds the first-order inverse kernel);
* the raw read adds the per-pixel bias (the SUPERBIAS), per-amplifier and
  even/odd-column offsets that drift from frame to frame, 1/f noise correlated
  in readout time (common to all outputs, seen by the side reference pixels),
  and white read noise (``READNOISE / sqrt(2)`` per read);
* MIRI adds, instead of superbias/IPC/1-f, a reset anomaly in the first groups
  (the RESET file), an RSCD-like transient in the first groups of integrations
  after the first (groups the RSCD step flags), and a last-frame offset; optionally
  cosmic-ray showers (faint clouds of charge tens of pixels across, :func:`_showers`).
  In MIRI subarrays (where jwst runs no refpix) the amplifier offsets do not drift.

Frames are averaged into groups as the read pattern does (``nframes`` read,
``groupgap`` dropped) and rounded to ``uint16``.
"""

from dataclasses import dataclass

import numpy as np
from scipy.special import erf

from detflow import dqflags

RESET_NGROUPS = 12  # groups covered by the MIRI reset anomaly (and the RESET file)
RESET_NINTS = 2  # integrations in the MIRI RESET file
RSCD_SKIP_INT1 = 0  # MIRI RSCD: groups flagged in the first integration
RSCD_SKIP_INT2P = 4  # and in later integrations
LINEARITY_NCOEFFS = 4


@dataclass
class DetectorMaps:
    """Full-frame per-pixel properties of one detector, shapes ``(ny, nx)`` (DMS frame)."""

    bias: np.ndarray
    gain: np.ndarray
    readnoise: np.ndarray  # CDS noise, DN
    dark_rate: np.ndarray  # DN/s
    qe: np.ndarray
    alpha: np.ndarray  # quadratic term of the linearity correction, 1/DN
    beta: np.ndarray  # cubic term, 1/DN^2
    full_well: np.ndarray  # DN of charge where the response stops
    saturation: np.ndarray  # raw DN threshold (SATURATION file, bias included)
    mask_dq: np.ndarray  # uint32 MASK flags
    refpix: np.ndarray  # bool: reference pixel
    nan_sat: np.ndarray  # bool: NaN in the SATURATION file (NO_SAT_CHECK)
    nan_lin: np.ndarray  # bool: NaN coefficient in the LINEARITY file
    nan_bias: np.ndarray  # bool: NaN in the SUPERBIAS file
    reset_amp: np.ndarray | None = None  # MIRI reset anomaly amplitude, DN
    lastframe: np.ndarray | None = None  # MIRI last-frame offset, DN


def _bad_pixels(rng, shape, fraction, exclude):
    """A boolean map with ``fraction`` of the pixels set, avoiding ``exclude``."""
    ny, nx = shape
    n = int(round(fraction * ny * nx))
    flat = rng.choice(ny * nx, size=n * 2 + 8, replace=False)
    flat = flat[~exclude.ravel()[flat]][:n]
    out = np.zeros(ny * nx, bool)
    out[flat] = True
    return out.reshape(shape)


def make_detector_maps(det, seed):
    """Full-frame per-pixel maps of a detector, reproducible from ``seed``.

    The maps depend only on the detector and the seed, so every exposure
    simulated with the same seed shares one set of reference files.
    """
    rng = np.random.default_rng([seed, 0xDE7EC7])
    ny, nx = det.full_shape
    f32 = np.float32

    refpix = np.zeros((ny, nx), bool)
    if det.is_miri:
        refpix[:, :4] = True
        refpix[:, -4:] = True
    else:
        b = det.ref_border
        refpix[:b, :] = refpix[-b:, :] = True
        refpix[:, :b] = refpix[:, -b:] = True

    # bias: smooth gradient + column structure + per-pixel scatter
    yy, xx = np.mgrid[0:ny, 0:nx].astype(f32)
    bias = (
        det.bias
        + 300.0 * (yy / ny - 0.5)
        + rng.normal(0, 40, nx).astype(f32)[None, :]
        + rng.normal(0, 60, (ny, nx)).astype(f32)
    ).astype(f32)
    del yy, xx
    gain = (det.gain * (1 + 0.03 * rng.standard_normal((ny, nx), dtype=f32))).astype(f32)
    readnoise = (
        det.readnoise_cds * (1 + 0.08 * rng.standard_normal((ny, nx), dtype=f32))
    ).astype(f32)
    readnoise = np.clip(readnoise, 0.5 * det.readnoise_cds, None)
    dark_rate = np.abs(det.dark_rate * (1 + 0.3 * rng.standard_normal((ny, nx)))).astype(f32)
    qe = np.clip(1 + 0.02 * rng.standard_normal((ny, nx)), 0.8, 1.2).astype(f32)
    alpha = (det.nonlin_alpha * (1 + 0.05 * rng.standard_normal((ny, nx)))).astype(np.float64)
    beta = (det.nonlin_beta * (1 + 0.05 * rng.standard_normal((ny, nx)))).astype(np.float64)
    full_well = (det.sat_level * (1 + 0.02 * rng.standard_normal((ny, nx)))).astype(f32)

    mask = np.zeros((ny, nx), np.uint32)
    mask[refpix] |= dqflags.REFERENCE_PIXEL
    taken = refpix.copy()

    def pick(fraction):
        sel = _bad_pixels(rng, (ny, nx), fraction, taken)
        taken[sel] = True
        return sel

    dead = pick(2e-4)
    mask[dead] |= dqflags.DEAD | dqflags.DO_NOT_USE
    qe[dead] = 0.0
    hot = pick(3e-4)
    mask[hot] |= dqflags.HOT
    dark_rate[hot] = rng.uniform(0.5, 5.0, hot.sum()).astype(f32)
    lowqe = pick(3e-4)
    mask[lowqe] |= dqflags.LOW_QE
    qe[lowqe] = rng.uniform(0.3, 0.7, lowqe.sum()).astype(f32)
    # NaNs where the references have no value, as CRDS files have them; frequent
    # enough (about 5 of each in a 160 x 160 subarray) that every simulated region
    # has some, so each case of each step meets them
    nan_sat = pick(2e-4)
    nan_lin = pick(2e-4)
    nan_bias = pick(2e-4) if not det.is_miri else np.zeros((ny, nx), bool)
    nogain = pick(2e-4)
    gain[nogain] = 0.0
    gain[nogain & (rng.random((ny, nx)) < 0.5)] = np.nan  # no value: zero or NaN

    # reference pixels see no light and no dark current
    qe[refpix] = 0.0
    dark_rate[refpix] = 0.0

    # SATURATION threshold (raw DN): the raw level reached at 97 % of full well
    u_sat = invert_linearity(0.97 * full_well.astype(np.float64), alpha, beta)
    saturation = np.minimum(bias + u_sat, 65000.0).astype(f32)

    maps = DetectorMaps(
        bias=bias,
        gain=gain,
        readnoise=readnoise,
        dark_rate=dark_rate,
        qe=qe,
        alpha=alpha,
        beta=beta,
        full_well=full_well,
        saturation=saturation,
        mask_dq=mask,
        refpix=refpix,
        nan_sat=nan_sat,
        nan_lin=nan_lin,
        nan_bias=nan_bias,
    )
    if det.is_miri:
        maps.reset_amp = rng.uniform(20.0, 120.0, (ny, nx)).astype(f32)
        maps.lastframe = rng.normal(-15.0, 5.0, (ny, nx)).astype(f32)
    return maps


def linearity_correction(u, alpha, beta):
    """The LINEARITY correction ``h(u) = u + alpha u^2 + beta u^3`` (bias-free DN)."""
    return u + alpha * u * u + beta * u * u * u


def invert_linearity(q, alpha, beta, iterations=6):
    """Solve ``h(u) = q`` for ``u`` by Newton's method (``h`` increasing on the range used)."""
    u = np.array(q, dtype=np.float64)
    for _ in range(iterations):
        f = u + alpha * u * u + beta * u * u * u - q
        df = 1 + 2 * alpha * u + 3 * beta * u * u
        u = u - f / df
    return u


def inverse_linearity_coeffs(alpha, beta, qmax, ncoef=5, npoints=12):
    """Per-pixel polynomial in ``Q`` approximating ``u = h^{-1}(Q)`` on ``[0, qmax]``.

    These are the LINEARITY file's INV_COEFFS (linearised -> raw counts), used by
    jwst's read-level correction of frame-averaged groups. A least-squares fit on
    a fixed grid of ``npoints`` charges; the error is below 0.3 DN up to full well.

    Returns
    -------
    ndarray
        ``(ncoef,) + alpha.shape`` float64, lowest order first.
    """
    qs = np.linspace(0.0, qmax, npoints)
    vander = (qs[:, None] / qmax) ** np.arange(ncoef)[None, :]
    pinv = np.linalg.pinv(vander)  # (ncoef, npoints)
    a = alpha.ravel()
    b = beta.ravel()
    out = np.empty((ncoef, a.size))
    step = 1 << 19
    for s in range(0, a.size, step):
        aa, bb = a[s : s + step], b[s : s + step]
        u = np.stack([invert_linearity(np.full(aa.shape, q), aa, bb) for q in qs])
        out[:, s : s + step] = pinv @ u
    out /= (qmax ** np.arange(ncoef))[:, None]
    return out.reshape((ncoef,) + alpha.shape)


def make_scene(det, sub, seed, tframe):
    """Noiseless count rate (DN/s) on the subarray, ``(ny, nx)``: sky plus point sources.

    Source fluxes are log-uniform so that some pixels saturate part way up the
    ramp and a few from the first group. Returns ``(rate, sources)``.
    """
    rng = np.random.default_rng([seed, 0x5CE4E])
    ny, nx = sub.ysize, sub.xsize
    rate = np.full((ny, nx), det.sky, np.float64)
    # smooth sky gradient
    rate *= 1 + 0.1 * (np.arange(nx)[None, :] / nx - 0.5)
    area = ny * nx / (2048 * 2048)
    nsrc = max(3, int(400 * area))
    ys = rng.uniform(5, ny - 5, nsrc)
    xs = rng.uniform(5, nx - 5, nsrc)
    # total flux in DN/s, log-uniform between faint and bright enough to saturate frame 1
    fmax = 40 * det.sat_level / tframe
    flux = 10 ** rng.uniform(np.log10(5.0), np.log10(fmax), nsrc)
    sigma = rng.uniform(0.9, 1.6, nsrc)
    for y0, x0, f, s in zip(ys, xs, flux, sigma, strict=True):
        r = int(np.ceil(6 * s)) + 1
        ya, yb = max(0, int(y0) - r), min(ny, int(y0) + r + 1)
        xa, xb = max(0, int(x0) - r), min(nx, int(x0) + r + 1)
        yedges = np.arange(ya, yb + 1) - y0
        xedges = np.arange(xa, xb + 1) - x0
        py = np.diff(0.5 * (1 + erf(yedges / (np.sqrt(2) * s))))
        px = np.diff(0.5 * (1 + erf(xedges / (np.sqrt(2) * s))))
        rate[ya:yb, xa:xb] += f * py[:, None] * px[None, :]
    return rate, {"y": ys, "x": xs, "flux": flux, "sigma": sigma}


def _cosmic_rays(rng, shape, nframes_total, tframe, per_pixel_per_s=1.6e-5):
    """Cosmic-ray hits: a list per frame of (y, x, charge_DN-ish electrons, kind)."""
    ny, nx = shape
    n = rng.poisson(per_pixel_per_s * ny * nx * tframe * nframes_total)
    frames = rng.integers(0, nframes_total, n)
    ys = rng.integers(1, ny - 1, n)
    xs = rng.integers(1, nx - 1, n)
    electrons = np.minimum(rng.lognormal(np.log(600.0), 1.0, n), 2e5)
    return frames, ys, xs, electrons


def _snowballs(rng, shape, nframes_total, nints, count):
    """Large snowball events: (int, frame, y, x, radius)."""
    ny, nx = shape
    out = []
    for _ in range(count):
        out.append(
            (
                int(rng.integers(0, nints)),
                int(rng.integers(1, max(2, nframes_total - 1))),
                float(rng.uniform(30, ny - 30)) if ny > 80 else float(ny / 2),
                float(rng.uniform(30, nx - 30)),
                float(rng.uniform(4, 9)),
            )
        )
    return out


def one_over_f(rng, nsamples, rms):
    """A 1/f (pink) noise series of ``nsamples`` samples with the given rms."""
    nfreq = nsamples // 2 + 1
    f = np.arange(nfreq, dtype=np.float64)
    f[0] = 1.0
    spec = (rng.standard_normal(nfreq) + 1j * rng.standard_normal(nfreq)) / np.sqrt(f)
    spec[0] = 0.0
    series = np.fft.irfft(spec, n=nsamples)
    return (series * (rms / series.std())).astype(np.float32)


def _readout_index(det, sub):
    """For each subarray pixel, its time index (in pixel times) within a frame, ``(ny, nx)``."""
    ny, nx = sub.ysize, sub.xsize
    if sub.noutputs == 4:
        cols = 512 if not det.is_miri else nx // 4
    else:
        cols = nx
    row_len = cols + (0 if det.is_miri else 12)
    y = np.arange(ny)
    x = np.arange(nx)
    xdet = x if det.fastaxis > 0 else (nx - 1 - x)
    ydet = y if det.slowaxis > 0 else (ny - 1 - y)
    if det.is_miri:
        col_in_out = xdet // 4
    else:
        col_in_out = (xdet + (sub.xstart - 1)) % cols if sub.noutputs == 4 else xdet
    return (ydet[:, None] * row_len + col_in_out[None, :]).astype(np.int64), ny * row_len


def _amp_index(det, sub):
    """Output (amplifier) number and column parity of each subarray column, ``(nx,)``."""
    x_full = np.arange(sub.xsize) + sub.xstart - 1
    if det.is_miri:
        amp = x_full % 4
    elif sub.noutputs == 4:
        amp = x_full // 512
    else:
        amp = np.zeros(sub.xsize, int)
    parity = x_full % 2
    return amp, parity


def simulate_ramps(det, sub, readpatt, ngroups, nints, seed, maps, *, snowballs=2,
                   zeroframe=None, onef_rms=1.2, integrations=None, showers=0):
    """Simulate the raw ramps of one exposure, or of one segment of it.

    Parameters
    ----------
    det, sub : Detector, Subarray
    readpatt : str
    ngroups, nints : int
        ``nints`` is the whole exposure's number of integrations.
    seed : int
    maps : DetectorMaps
        Full-frame detector maps (cut to the subarray here).
    zeroframe : bool or None
        Record ZEROFRAME (default: when the read pattern averages frames).
    integrations : (int, int), optional
        The 0-based ``[start, stop)`` integrations recorded (a segment: INTSTART =
        ``start + 1``, INTEND = ``stop``); default all. The exposure is simulated from its
        first integration on, so a segment holds exactly the integrations the unsegmented
        exposure has (same noise, cosmic rays and detector history).
    showers : int
        Number of MIRI cosmic-ray showers (:func:`_showers`) to inject over the exposure.

    Returns
    -------
    dict
        ``sci`` uint16 ``(nrec, ngroups, ny, nx)`` (``nrec = stop - start``), ``zeroframe``
        uint16 ``(nrec, ny, nx)`` or None, ``refout`` uint16 ``(nrec, ngroups, ny/4, nx)``
        (MIRI) or None, ``truth`` float32 ``(ny, nx)`` DN/s, ``tframe``, ``nframes``,
        ``groupgap``, ``ncr`` (cosmic-ray hits in the recorded integrations), ``showers``
        (list of dicts: ``integration`` 1-based, ``frame`` 0-based, ``y``, ``x``
        subarray pixels, ``sigma`` px, ``amplitude`` DN), ``integrations``.
    """
    from detflow.simulator.instruments import frame_time

    nframes, groupgap = det.readpatts[readpatt]
    if zeroframe is None:
        zeroframe = (not det.is_miri) and nframes > 1
    tframe = frame_time(det, sub, readpatt)
    start, stop = integrations if integrations is not None else (0, nints)
    if not 0 <= start < stop <= nints:
        raise ValueError(f"integrations {integrations} outside 0..{nints}")
    nrec = stop - start
    ny, nx = sub.ysize, sub.xsize
    ys = slice(sub.ystart - 1, sub.ystart - 1 + ny)
    xs = slice(sub.xstart - 1, sub.xstart - 1 + nx)
    cut = {k: (v[ys, xs] if isinstance(v, np.ndarray) else v) for k, v in vars(maps).items()}

    scene, _ = make_scene(det, sub, seed, tframe)
    qe = cut["qe"].astype(np.float64)
    truth = (qe * scene).astype(np.float32)
    gain = np.where(cut["gain"] > 0, cut["gain"], det.gain).astype(np.float64)
    e_rate = (truth + cut["dark_rate"]) * gain  # electrons / s
    e_rate[cut["refpix"]] = 0.0
    bias = cut["bias"].astype(np.float32)
    sigma_read = (cut["readnoise"] / np.sqrt(2)).astype(np.float32)
    alpha, beta = cut["alpha"], cut["beta"]
    full = cut["full_well"].astype(np.float64)
    refpix = cut["refpix"]
    science = ~refpix

    rng = np.random.default_rng([seed, 0xF4A3E5])
    nframes_total = ngroups * (nframes + groupgap) - groupgap
    tidx, nsamples = _readout_index(det, sub)
    amp, parity = _amp_index(det, sub)
    namps = int(amp.max()) + 1

    sci = np.zeros((nrec, ngroups, ny, nx), np.uint16)
    zf = np.zeros((nrec, ny, nx), np.uint16) if zeroframe else None
    # MIRI records a fifth, dark "reference output" read alongside the four amplifiers; the
    # level-1b product stores it as (ny/4, nx) per group (the last 256 rows of a raw frame)
    refout = np.zeros((nrec, ngroups, ny // 4, nx), np.uint16) if det.is_miri else None
    cr_f, cr_y, cr_x, cr_e = _cosmic_rays(rng, (ny, nx), nframes_total * nints, tframe)
    cr_int, cr_f = cr_f // nframes_total, cr_f % nframes_total
    sbs = _snowballs(rng, (ny, nx), nframes_total, nints, snowballs if ny >= 64 else 0)
    ncr = int(((cr_int >= start) & (cr_int < stop)).sum())
    # showers come from a stream of their own, so asking for them changes nothing else
    shw = _showers(np.random.default_rng([seed, 0x5B0E7]), (ny, nx), nframes_total, nints,
                   showers)
    shower_charge = {(s["integration"] - 1, s["frame"]): [] for s in shw}
    for s in shw:
        shower_charge[(s["integration"] - 1, s["frame"])].append(_shower_charge((ny, nx), s))

    # per-amplifier and even/odd offsets: a random walk from frame to frame (NIR, and the
    # MIRI full frame, whose refpix step removes it); in MIRI subarrays, where jwst runs no
    # refpix, the offsets stay put (a drift common to an output would bias every slope)
    offsets = rng.normal(0, 30.0, (namps, 2))
    drift = not (det.is_miri and sub.name != "FULL")

    ipc_a = det.ipc_alpha
    for i in range(stop):
        r = i - start  # the recorded integration (negative: simulated, not recorded)
        q = np.zeros((ny, nx), np.float64)
        acc = np.zeros((ny, nx), np.float64)
        k = 0
        for g in range(ngroups):
            acc[...] = 0.0
            for j in range(nframes + groupgap):
                if g == ngroups - 1 and j >= nframes:
                    break
                q += rng.poisson(e_rate * tframe) / gain
                hits = (cr_int == i) & (cr_f == k)
                for yy, xx, e in zip(cr_y[hits], cr_x[hits], cr_e[hits], strict=True):
                    share = rng.uniform(0.04, 0.08)
                    dn = e / gain[yy, xx]
                    q[yy, xx] += dn * (1 - 4 * share)
                    q[yy - 1, xx] += dn * share
                    q[yy + 1, xx] += dn * share
                    q[yy, xx - 1] += dn * share
                    q[yy, xx + 1] += dn * share
                for si, sf, sy, sx, sr in sbs:
                    if si == i and sf == k:
                        _add_snowball(q, sy, sx, sr, full, refpix)
                for charge in shower_charge.get((i, k), ()):
                    q += charge
                q[refpix] = 0.0
                np.minimum(q, full, out=q)
                step = rng.normal(0, 0.6, offsets.shape)
                if drift:
                    offsets += step
                if j < nframes:
                    acc += _read_frame(
                        det, q, alpha, beta, bias, sigma_read, refpix, science, ipc_a,
                        offsets, amp, parity, tidx, nsamples, rng, onef_rms,
                    )
                    if zeroframe and k == 0 and r >= 0:
                        zf[r] = _to_uint16(acc)
                k += 1
            group = acc / nframes
            if det.is_miri:
                group = group + _miri_extras(det, maps, cut, i, g, ngroups, rng)
                level = det.bias + offsets.mean()
                ref_read = level + det.readnoise_cds / np.sqrt(2) * rng.standard_normal(
                    refout.shape[2:])
                if r >= 0:
                    refout[r, g] = _to_uint16(ref_read)
            if r >= 0:
                sci[r, g] = _to_uint16(group)
    return {
        "sci": sci,
        "zeroframe": zf,
        "refout": refout,
        "truth": truth,
        "tframe": tframe,
        "nframes": nframes,
        "groupgap": groupgap,
        "ncr": ncr,
        "showers": shw,
        "integrations": (start, stop),
    }


#: MIRI cosmic-ray showers per second over the full 1024 x 1032 array (approximate: of the
#: order the JWST documentation describes, about one a minute; not confirmed offline)
SHOWER_RATE_FULL = 1.0 / 60.0


def expected_showers(shape, exposure_seconds):
    """Mean number of MIRI showers in an exposure of ``exposure_seconds`` on ``shape``."""
    ny, nx = shape
    return SHOWER_RATE_FULL * exposure_seconds * (ny * nx) / (1024 * 1032)


def _showers(rng, shape, nframes_total, nints, count):
    """MIRI cosmic-ray showers: each a faint, extended cloud of charge (a Gaussian of
    ``sigma`` 8-30 px and peak 8-40 DN, reaching ~3 sigma: tens of pixels, far larger than
    a snowball's few-pixel core and halo) around a primary hit (a 3 x 3 core of a few
    thousand DN), all arriving in one frame. The clouds are only a few times the noise of a
    group difference per pixel: jwst finds them only with ``find_showers`` (a ring
    convolution, then regions of at least 90 pixels)."""
    ny, nx = shape
    out = []
    for _ in range(int(count)):
        out.append({
            "integration": int(rng.integers(0, nints)) + 1,
            "frame": int(rng.integers(1, max(2, nframes_total - 1))),
            "y": float(rng.uniform(0.2 * ny, 0.8 * ny)),
            "x": float(rng.uniform(0.2 * nx, 0.8 * nx)),
            "sigma": float(rng.uniform(8.0, 30.0)),
            "amplitude": float(rng.uniform(8.0, 40.0)),
            "core": float(rng.uniform(1000.0, 4000.0)),
        })
    return out


def _shower_charge(shape, shower):
    """The charge (DN) one shower deposits, ``(ny, nx)`` float64."""
    ny, nx = shape
    yy, xx = np.mgrid[0:ny, 0:nx]
    d2 = (yy - shower["y"]) ** 2 + (xx - shower["x"]) ** 2
    s2 = shower["sigma"] ** 2
    charge = shower["amplitude"] * np.exp(-0.5 * d2 / s2)
    charge[d2 > 9 * s2] = 0.0
    cy, cx = int(shower["y"]), int(shower["x"])
    charge[max(cy - 1, 0):cy + 2, max(cx - 1, 0):cx + 2] += shower["core"] / 9.0
    return charge


def _add_snowball(q, y0, x0, radius, full, refpix):
    """A snowball: a saturated core of ``radius/2`` and a charge halo out to ``radius``."""
    ny, nx = q.shape
    r = int(radius) + 2
    ya, yb = max(0, int(y0) - r), min(ny, int(y0) + r + 1)
    xa, xb = max(0, int(x0) - r), min(nx, int(x0) + r + 1)
    yy, xx = np.mgrid[ya:yb, xa:xb]
    d = np.hypot(yy - y0, xx - x0)
    core = d <= radius / 2
    halo = (d > radius / 2) & (d <= radius)
    box = q[ya:yb, xa:xb]
    box[core] = full[ya:yb, xa:xb][core]
    box[halo] += 2000.0 * np.exp(-(d[halo] - radius / 2))
    box[refpix[ya:yb, xa:xb]] = 0.0


def _read_frame(det, q, alpha, beta, bias, sigma_read, refpix, science, ipc_a, offsets,
                amp, parity, tidx, nsamples, rng, onef_rms):
    """One non-destructive read of the whole subarray, float64 ``(ny, nx)`` raw DN."""
    u = invert_linearity(q, alpha, beta)
    if ipc_a:
        coupled = u * (1 - 4 * ipc_a)
        coupled[1:, :] += ipc_a * u[:-1, :]
        coupled[:-1, :] += ipc_a * u[1:, :]
        coupled[:, 1:] += ipc_a * u[:, :-1]
        coupled[:, :-1] += ipc_a * u[:, 1:]
        u = np.where(science, coupled, 0.0)
    raw = bias + u
    raw += offsets[amp, parity][None, :]
    raw += sigma_read * rng.standard_normal(q.shape, dtype=np.float32)
    if not det.is_miri and onef_rms > 0:
        series = one_over_f(rng, nsamples, onef_rms)
        raw += series[tidx]
    return raw


def _miri_extras(det, maps, cut, i, g, ngroups, rng):
    """MIRI additive effects in group ``g`` of integration ``i``: reset, RSCD, last frame."""
    extra = np.zeros(cut["bias"].shape, np.float64)
    if g < RESET_NGROUPS:
        extra += reset_anomaly(cut["reset_amp"], min(i, RESET_NINTS - 1), g)
    skip = RSCD_SKIP_INT1 if i == 0 else RSCD_SKIP_INT2P
    if g < skip:
        extra += 40.0 * np.exp(-g / 2.0)
    if g == ngroups - 1 and ngroups > 2:
        extra += cut["lastframe"]
    return extra


def reset_anomaly(amplitude, int_index, g):
    """MIRI reset anomaly (DN) in group ``g`` for RESET integration ``int_index``.

    Exactly zero from :data:`RESET_NGROUPS` on, so the RESET file corrects it fully.
    """
    if g >= RESET_NGROUPS:
        return np.zeros_like(amplitude)
    scale = 1.0 if int_index == 0 else 0.6
    decay = np.exp(-g / 2.5) - np.exp(-RESET_NGROUPS / 2.5) * g / RESET_NGROUPS
    return (amplitude * scale * decay).astype(np.float32)


def _to_uint16(x):
    return np.clip(np.rint(x), 0, 65535).astype(np.uint16)
