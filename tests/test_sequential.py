"""Group-sequential boundaries: against published tables and against simulation."""

from __future__ import annotations

import numpy as np
import pytest

from squeezelab.analysis import sequential as seq

LOOKS = {k: [(i + 1) / k for i in range(k)] for k in (2, 3, 4, 5)}

# Lan-DeMets spending, one-sided alpha 0.025, equally spaced looks (as gsDesign prints them
# for sfLDOF / sfLDPocock; Jennison & Turnbull 2000, section 7.2).
LD_OBRIEN_FLEMING = {
    2: [2.9626, 1.9686],
    3: [3.7103, 2.5114, 1.9930],
    4: [4.3326, 2.9631, 2.3590, 2.0141],
    5: [4.8769, 3.3569, 2.6803, 2.2898, 2.0310],
}
LD_POCOCK = {
    2: [2.1570, 2.2010],
    5: [2.4380, 2.4268, 2.4101, 2.3966, 2.3859],
}
# The classical constants (two-sided 0.05, Jennison & Turnbull Table 2.1 and 2.3): Pocock's
# C_P(K) at every look; O'Brien & Fleming's C_B(K) at the last.
POCOCK_CONSTANT = {2: 2.178, 3: 2.289, 4: 2.361, 5: 2.413}
OBF_FINAL = {2: 1.977, 3: 2.004, 4: 2.024, 5: 2.040}


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_lan_demets_obrien_fleming_boundaries_match_the_published_ones(k: int) -> None:
    got = seq.boundaries(0.025, LOOKS[k], "obrien-fleming")
    assert got == pytest.approx(LD_OBRIEN_FLEMING[k], abs=2e-4)


@pytest.mark.parametrize("k", [2, 5])
def test_lan_demets_pocock_boundaries_match_the_published_ones(k: int) -> None:
    assert seq.boundaries(0.025, LOOKS[k], "pocock") == pytest.approx(LD_POCOCK[k], abs=2e-4)


@pytest.mark.parametrize("k", [2, 3, 4, 5])
def test_the_classical_constants_come_out_of_the_same_integration(k: int) -> None:
    # 0.025 one-sided: the lower crossing of the two-sided tables is below 1e-5
    pocock = seq.constant_boundaries(0.025, LOOKS[k], "pocock")
    assert pocock[0] == pytest.approx(POCOCK_CONSTANT[k], abs=1.5e-3)
    obf = seq.constant_boundaries(0.025, LOOKS[k], "obrien-fleming")
    assert obf[-1] == pytest.approx(OBF_FINAL[k], abs=1.5e-3)


def test_spending_reaches_alpha_at_full_information_and_crossing_matches_a_simulation() -> None:
    for spending in seq.SPENDING:
        assert seq.spent(0.05, 1.0, spending) == pytest.approx(0.05)
        assert seq.spent(0.05, 0.3, spending) < 0.05
    t = [0.25, 0.6, 1.0]  # unequal looks
    bounds = seq.boundaries(0.05, t, "pocock")
    assert sum(seq.crossing_probabilities(bounds, t)) == pytest.approx(0.05, abs=1e-6)
    # Brownian motion sampled at the looks, 400,000 paths: the first-crossing rate is alpha
    rng = np.random.default_rng(0)
    steps = np.sqrt(np.diff([0.0, *t]))
    score = np.cumsum(rng.standard_normal((400_000, 3)) * steps, axis=1)
    crossed = (score / np.sqrt(t) >= bounds).any(axis=1)
    assert crossed.mean() == pytest.approx(0.05, abs=0.0015)
    # and under a drift, the integration's power is the simulation's
    drift = 2.5
    power = sum(seq.crossing_probabilities(bounds, t, drift))
    moved = ((score + drift * np.asarray(t)) / np.sqrt(t) >= bounds).any(axis=1)
    assert power == pytest.approx(moved.mean(), abs=0.003)


def test_a_look_without_new_information_spends_nothing_and_bad_fractions_are_refused() -> None:
    assert seq.nominal_levels(0.05, [0.5, 1.0], "obrien-fleming")[0] < 0.01
    with pytest.raises(ValueError, match="increase"):
        seq.boundaries(0.05, [0.5, 0.5], "pocock")
    with pytest.raises(ValueError, match="spending must be one of"):
        seq.spent(0.05, 0.5, "haybittle")
    # a study that stops early: its looks' boundaries do not depend on looks it never took
    assert (
        seq.boundaries(0.05, [0.2, 0.4], "pocock")
        == seq.boundaries(0.05, [0.2, 0.4, 1.0], "pocock")[:2]
    )
