"""Calcium indicators: rise, decay and saturation of the fluorescence a neuron's activity gives.

A neuron's activity ``a(t) >= 0`` (dimensionless: 1 is a strongly driven cell) is
filtered by the indicator's kinetics, a difference of two exponentials (rise
``tau_rise``, decay ``tau_decay``): the response to a brief burst rises with the
rise constant and falls with the decay constant, and a step of activity gives a
sigmoidal onset that settles at 1. The filtered activity ``c`` then saturates
through a Hill curve with the indicator's cooperativity ``n``::

    h(c)  = (c + c_rest)^n / ((c + c_rest)^n + K^n)
    F / F0 = 1 + dff_max * (h(c) - h(0)) / (1 - h(0))

so ``F0``, the neuron's resting fluorescence, is ``F`` at zero activity, and
ΔF/F = F/F0 - 1 rises steeply at first and flattens towards ``dff_max``.

Sources (the two time constants are solved so that a brief burst's response has the
published half-rise and half-decay times, :data:`PUBLISHED_MS`):

* GCaMP6s, GCaMP6f: Chen et al. 2013, Nature 499:295 (in vivo mouse V1, single
  action potentials, Fig. 2 / Extended Data Table 1: half-decay ~ 550 ms (6s) and
  ~ 140 ms (6f), time to peak ~ 180 ms (6s) and ~ 45 ms (6f); purified protein
  Hill coefficients 2.9 (6s) and 2.3 (6f), Table 1).
* jGCaMP7f: Dana et al. 2019, Nat. Methods 16:649 (cultured neurons, 1 AP:
  half-rise ~ 27 ms, half-decay ~ 265 ms; Hill coefficient ~ 3.1, Table 1).
* jGCaMP8m: Zhang et al. 2023, Nature 615:884 (half-rise ~ 7 ms, half-decay
  ~ 120 ms for 1 AP in cultured neurons; Hill coefficient ~ 1.9, Table 1 and Fig. 1).
* Nuclear (H2B-) variants, as in whole-brain zebrafish lines (elavl3:H2B-GCaMP;
  Vladimirov et al. 2014, Nat. Methods 11:883; Freeman et al. 2014, Nat. Methods
  11:941): the signal follows nuclear calcium, which rises and falls several times
  more slowly than cytosolic calcium; modelled as 3x slower decay and 2x slower
  rise than the cytosolic indicator (a model choice of that order, not a measured
  value).

**Verification (2026-12-04).** The numbers above are the papers' figures as recalled
when the model was written. A search of stored copies of the papers and their abstracts
confirmed none of them exactly; :data:`VERIFIED` records, per indicator, what was found
stated, and the validation page (docs/simulated-fish.md) prints it beside the figures:

* Chen et al. 2013: spikes in a burst are resolvable "if they were separated by an
  interval on the order of the rise time of the sensor or more (100-150 ms, GCaMP6s;
  75-100 ms, GCaMP6m; 50-75 ms, GCaMP6f ...)". The model's times to peak (180 ms, 45 ms)
  are of that order but are a different measure; the half-decay times and Hill
  coefficients were not found.
* Zhang et al. 2023 (abstract): the jGCaMP8 sensors "have ultra-fast kinetics (half-rise
  times of 2 ms)", for the family, not jGCaMP8m alone; its introduction: "In response to
  single APs in pyramidal neurons, most widely used GCaMPs have fluorescent half-rise times
  on the order of 100 ms" (in vivo, slower than the cultured-neuron figures used here for
  jGCaMP7f). jGCaMP8m's own half-rise (7 ms) and half-decay (120 ms) were not found.
* Dana et al. 2019 (jGCaMP7f): nothing found; unverified.
* The dataset's indicator: the ZAPBench pages found (abstract, blog) do not name the line;
  the default H2B-jGCaMP7f is unverified.

``dff_max`` (the in vivo saturating ΔF/F of a strongly driven cell) and ``K`` are model
choices: whole-brain light-sheet traces rarely exceed ΔF/F of a few units.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["INDICATORS", "PUBLISHED_MS", "VERIFIED", "Indicator", "exp_filter_matrix"]


@dataclass(frozen=True)
class Indicator:
    name: str
    tau_rise_s: float
    tau_decay_s: float
    hill: float
    dff_max: float
    #: Activity (filtered) at half saturation.
    k_half: float = 1.0
    #: Resting activity: the Hill curve's operating point at rest.
    c_rest: float = 0.15
    source: str = ""

    def dff(self, c: np.ndarray) -> np.ndarray:
        """ΔF/F for filtered activity ``c`` (>= 0), saturating at ``dff_max``."""
        n = self.hill
        kn = self.k_half**n
        x = (np.maximum(c, 0.0) + self.c_rest) ** n
        h0 = self.c_rest**n / (self.c_rest**n + kn)
        result: np.ndarray = self.dff_max * (x / (x + kn) - h0) / (1.0 - h0)
        return result

    def step_response(self, t: np.ndarray) -> np.ndarray:
        """Filtered activity after a unit step of activity at t = 0 (0 before, -> 1)."""
        tr, td = self.tau_rise_s, self.tau_decay_s
        t = np.maximum(t, 0.0)
        return 1.0 - (td * np.exp(-t / td) - tr * np.exp(-t / tr)) / (td - tr)

    def impulse_times(self) -> tuple[float, float, float]:
        """(half-rise, time to peak, half-decay after the peak) of the response to a brief
        burst, in seconds: what the validation page sets beside the papers' single-AP figures."""
        return _impulse_times(self.tau_rise_s, self.tau_decay_s)


def _impulse_times(tr: float, td: float) -> tuple[float, float, float]:
    t = np.linspace(0.0, 12.0 * td, 60_001)
    r = np.exp(-t / td) - np.exp(-t / tr)
    k = int(r.argmax())
    rise = int(np.searchsorted(r[: k + 1], 0.5 * r[k]))
    half = k + int(np.searchsorted(-r[k:], -0.5 * r[k]))
    return float(t[rise]), float(t[k]), float(t[half] - t[k])


def _nuclear(ind: Indicator) -> Indicator:
    return Indicator(
        "H2B-" + ind.name,
        ind.tau_rise_s * 2.0,
        ind.tau_decay_s * 3.0,
        ind.hill,
        ind.dff_max,
        source=ind.source + "; nuclear: Vladimirov et al. 2014, Freeman et al. 2014",
    )


#: What each source reports for a single action potential, ms: (the rise figure, which one
#: it is, half-decay). Chen et al. 2013 give the time to peak; Dana et al. 2019 and Zhang et
#: al. 2023 the half-rise time.
PUBLISHED_MS: dict[str, tuple[float, str, float]] = {
    "GCaMP6s": (180.0, "time to peak", 550.0),
    "GCaMP6f": (45.0, "time to peak", 140.0),
    "jGCaMP7f": (27.0, "half-rise", 265.0),
    "jGCaMP8m": (7.0, "half-rise", 120.0),
}
#: Per indicator of :data:`PUBLISHED_MS`, what a search of the sources found stated
#: (2026-12-04; module docstring): "unverified" where nothing was found.
VERIFIED: dict[str, str] = {
    "GCaMP6s": (
        "unverified; Chen et al. 2013 state a rise time on the order of 100-150 ms "
        "(spikes resolvable at that interval)"
    ),
    "GCaMP6f": (
        "unverified; Chen et al. 2013 state a rise time on the order of 50-75 ms "
        "(spikes resolvable at that interval)"
    ),
    "jGCaMP7f": (
        "unverified; Zhang et al. 2023 state half-rise times on the order of 100 ms for "
        "widely used GCaMPs in pyramidal neurons in vivo"
    ),
    "jGCaMP8m": (
        "unverified; Zhang et al. 2023 state half-rise times of 2 ms for the jGCaMP8 sensors "
        "(the family)"
    ),
}
# The time constants (s) reproduce those two figures exactly (solved by least squares on
# :func:`_impulse_times`; tests/test_simulated_fish.py checks them against PUBLISHED_MS).
_CYTOSOLIC = (
    Indicator("GCaMP6s", 0.0713, 0.6847, 2.9, 4.0, source="Chen et al. 2013"),
    Indicator("GCaMP6f", 0.0176, 0.1752, 2.3, 3.0, source="Chen et al. 2013"),
    Indicator("jGCaMP7f", 0.0655, 0.2789, 3.1, 3.5, source="Dana et al. 2019"),
    Indicator("jGCaMP8m", 0.0134, 0.1529, 1.9, 4.0, source="Zhang et al. 2023"),
)

#: Every indicator the simulated fish can express, by name (``fish.indicator``).
INDICATORS: dict[str, Indicator] = {
    i.name: i for i in (*_CYTOSOLIC, *(_nuclear(i) for i in _CYTOSOLIC))
}


def exp_filter_matrix(
    times: np.ndarray, t_prev: float, tau: float
) -> tuple[np.ndarray, np.ndarray]:
    """A unit-gain first-order low-pass sampled at ``times`` (s, increasing), as matrices.

    With the input held from each sample to the next (the value at ``times[j]``
    covering ``(times[j-1], times[j]]``), the state at the samples is
    ``M @ u + carry * s_prev``: ``M[p, j] = (1 - a_j) exp(-(t_p - t_j) / tau)`` for
    ``j <= p``, ``a_j = exp(-(t_j - t_{j-1}) / tau)``, ``carry[p] = exp(-(t_p - t_prev) /
    tau)``. One small matrix product filters a whole volume's planes, for any number
    of signals at once, with no loop over planes.
    """
    t = np.asarray(times, dtype=np.float64)
    gaps = np.diff(t, prepend=t_prev)
    a = np.exp(-gaps / tau)
    lag = t[:, None] - t[None, :]
    m = np.where(lag >= 0.0, np.exp(-np.maximum(lag, 0.0) / tau), 0.0) * (1.0 - a)[None, :]
    carry = np.exp(-(t - t_prev) / tau)
    return m, carry
