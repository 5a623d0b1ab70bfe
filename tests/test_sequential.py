"""Group-sequential boundaries: against published tables and against simulation."""

from __future__ import annotations

import dataclasses
import re

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


# --- studies that run until their claims are decided -------------------------------------------

SEQ_STUDY = """
description = "sequential: a treated model against its control"
seeds = [0, 1, 2]
[base]
data = "synthetic:100"
epochs = 2
[axes]
batch_norm = [false, true]
[[claims]]
id = "bn"
statement = "batch norm helps"
test = "welch"
field = "batch_norm"
treatment = true
control = false
min_effect = 1.0
[sequential]
max_seeds = 8
seeds_per_look = 1
spending = "obrien-fleming"
"""


class Scripted:
    """An executor that 'trains' by formula (a new executor is one class): each run's
    accuracy is ``accuracy(config)``; ``stop_after`` runs, it is interrupted."""

    def __init__(self, accuracy, stop_after: int | None = None) -> None:
        self.accuracy, self.stop_after, self.ran = accuracy, stop_after, 0

    def run(self, tasks, on_start):
        from squeezelab.studies.executors import RunOutcome

        for task in tasks:
            if self.stop_after is not None and self.ran >= self.stop_after:
                raise KeyboardInterrupt
            if not on_start(task):
                continue
            self.ran += 1
            acc = self.accuracy(task.config)
            result = {"val_acc": acc, "test_acc": acc, "val_loss": 1.0, "test_loss": 1.0,
                      "train_loss": 1.0, "epochs": task.config["epochs"], "train_s": 0.0,
                      "diverged": False}  # fmt: skip
            provenance = {"test_images": 10_000, "val_images": 5_000, "num_classes": 10}
            yield RunOutcome(task.key, None, result, [{"epoch": 1, "val_acc": acc}], provenance)


def _noise(config, sd: float) -> float:
    return float(
        np.random.default_rng(1000 + config["seed"] * 7 + config["batch_norm"]).normal(0, sd)
    )


def _run(
    tmp_path, monkeypatch, accuracy, text: str = SEQ_STUDY, stop_after=None, only=None, **design
):
    from squeezelab.studies import executors
    from squeezelab.studies.sequential import run_until_decided
    from squeezelab.studies.spec import parse_study

    spec = parse_study(text, "seq")
    if design:
        spec = dataclasses.replace(spec, sequential=dataclasses.replace(spec.sequential, **design))
    scripted = Scripted(accuracy, stop_after)
    monkeypatch.setitem(executors.EXECUTORS, "scripted", lambda w, a, r: scripted)
    out = run_until_decided(spec, tmp_path / "s.db", executor="scripted", only=only,
                            runs_dir=tmp_path / "runs", log=lambda m: None)  # fmt: skip
    return out, scripted


def test_a_huge_effect_stops_at_the_first_look(tmp_path, monkeypatch) -> None:
    out, scripted = _run(tmp_path, monkeypatch, lambda c: 60 + 20 * c["batch_norm"] + _noise(c, 1))
    assert (out.looks, out.stopped, out.verdicts) == (1, "decided", {"bn": "supported"})
    assert scripted.ran == 6 and out.run_epochs == 12 and out.fixed_run_epochs == 32


def test_no_effect_runs_to_max_seeds_and_only_open_claims_get_seeds(tmp_path, monkeypatch) -> None:
    from squeezelab.results import Store

    out, scripted = _run(tmp_path, monkeypatch, lambda c: 60 + _noise(c, 3))
    assert out.looks == 6 and out.stopped == "last look" and out.verdicts == {"bn": "inconclusive"}
    assert scripted.ran == 16
    with Store(tmp_path / "s.db") as store:
        looks = [r for r in store.looks("seq") if r["rule"] == "chance"]
    assert [r["seeds"] for r in looks] == [3, 4, 5, 6, 7, 8]
    assert [r["alpha_spent"] for r in looks] == sorted(r["alpha_spent"] for r in looks)
    assert looks[-1]["alpha_spent"] == pytest.approx(0.05) and looks[-1]["fraction"] == 1.0
    # the nominal level grows with the information (O'Brien-Fleming spends late)
    assert looks[0]["level"] < looks[-1]["level"] < 0.05


def test_resume_after_a_kill_between_looks_loses_and_repeats_no_look(tmp_path, monkeypatch) -> None:
    def accuracy(c):
        return 60 + _noise(c, 3)

    with pytest.raises(KeyboardInterrupt):  # killed during look 2 (after its first new run)
        _run(tmp_path, monkeypatch, accuracy, stop_after=7)
    from squeezelab.results import Store

    with Store(tmp_path / "s.db") as store:
        assert {r["look"] for r in store.looks("seq")} == {1}
    again, scripted = _run(tmp_path, monkeypatch, accuracy)
    assert again.looks == 6 and scripted.ran == 16 - 7  # nothing trained twice
    with Store(tmp_path / "s.db") as store:
        rows = store.looks("seq")
    assert sorted({r["look"] for r in rows}) == [1, 2, 3, 4, 5, 6] and len(rows) == 12
    # the same runs give the same decisions: a fresh store fed the same accuracies agrees
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    same, _ = _run(fresh, monkeypatch, accuracy)
    assert same.verdicts == again.verdicts and same.looks == again.looks


TWO_PAIRS = SEQ_STUDY.replace(
    "[axes]",
    """[axes]
model = ["squeezenet1_0", "squeezenet1_1"]""",
).replace(
    "min_effect = 1.0",
    """min_effect = 1.0
where = { model = "squeezenet1_0" }
[[claims]]
id = "bn11"
statement = "batch norm helps SqueezeNet 1.1"
test = "welch"
field = "batch_norm"
treatment = true
control = false
min_effect = 1.0
where = { model = "squeezenet1_1" }""",
)


def test_a_part_of_a_study_is_decided_on_its_own_and_holm_counts_the_rest(
    tmp_path, monkeypatch
) -> None:
    """--only model=...: one pair at a time; the family's other claim counts as never
    rejected, so the part's level is Holm's first step over the whole family."""
    from squeezelab.analysis.sequential import at_look
    from squeezelab.errors import ConfigError
    from squeezelab.results import Store
    from squeezelab.studies.spec import parse_study

    from .conftest import load_benchmark

    def accuracy(c):
        return 60 + _noise(c, 3)

    only = {"model": ("squeezenet1_0",)}
    out, scripted = _run(tmp_path, monkeypatch, accuracy, TWO_PAIRS, only=only)
    assert out.name == "seq[model=squeezenet1_0]" and out.verdicts == {"bn": "inconclusive"}
    assert scripted.ran == 16 and out.fixed_run_epochs == 32  # its own pair alone
    with Store(tmp_path / "s.db") as store:
        looks = [r for r in store.looks(out.name) if r["rule"] == "chance"]
        assert store.looks("seq") == []  # the whole study's looks stay apart
        models = {r.config.model for r in store.runs(out.name)}
    assert models == {"squeezenet1_0"} and {r["claim"] for r in looks} == {"bn"}
    first = looks[0]
    half = float(at_look([first["fraction"]], "obrien-fleming")(np.array([0.025]))[0])
    assert first["level"] == pytest.approx(half)  # alpha / 2 at the look, not alpha
    # the same pair as a study of its own (a family of one) looks at the full level
    (tmp_path / "x").mkdir()
    _run(tmp_path / "x", monkeypatch, accuracy)
    with Store(tmp_path / "x" / "s.db") as store:
        solo = next(r for r in store.looks("seq") if r["rule"] == "chance")
    assert solo["level"] > first["level"]
    from squeezelab.analysis.report import build_report

    report = build_report(tmp_path / "s.db", tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Sequential looks: seq[model=squeezenet1_0]" in md
    assert "seq-model-squeezenet1_0_looks.png" in report["figures"]
    assert (tmp_path / "r" / "looks_seq-model-squeezenet1_0.csv").is_file()
    # replayed from the store, the part decides as its looks did, at the same levels
    replay = load_benchmark("sequential_replay")
    with Store(tmp_path / "s.db") as store:
        runs, recorded = store.runs(out.name), store.looks(out.name)
    claims, absent = replay.looked_at(list(parse_study(TWO_PAIRS, "seq").claims), recorded)
    assert [c.id for c in claims] == ["bn"] and absent == {"claims": 1}
    rule_of = {c.id: c.diverged for c in claims}
    again = replay.replay(claims, runs, 3, "obrien-fleming", rule_of, absent)
    assert again["verdicts"] == out.verdicts and len(again["looks"]) == len(looks)
    assert [x["claims"]["bn"]["level"] for x in again["looks"]] == pytest.approx(
        [r["level"] for r in looks]
    )
    for bad, message in [
        ({"seed": (0,)}, "chooses the seeds look by look"),
        ({"batch_norm": (True,)}, r"holds every run of none .*bn \(3 of its 6 runs\)"),
    ]:
        with pytest.raises(ConfigError, match=message):
            _run(tmp_path, monkeypatch, accuracy, TWO_PAIRS, only=bad)


def test_a_budget_stops_the_study_and_says_what_stays_open(tmp_path, monkeypatch) -> None:
    logs: list[str] = []
    from squeezelab.studies import executors
    from squeezelab.studies.sequential import run_until_decided
    from squeezelab.studies.spec import parse_study

    spec = parse_study(SEQ_STUDY.replace("spending", "budget = 14\nspending"), "seq")
    monkeypatch.setitem(
        executors.EXECUTORS, "s", lambda w, a, r: Scripted(lambda c: 60.0 + _noise(c, 3))
    )
    out = run_until_decided(spec, tmp_path / "s.db", executor="s", runs_dir=tmp_path / "r",
                            log=logs.append)  # fmt: skip
    assert out.stopped == "budget" and out.looks == 1 and out.run_epochs == 12
    assert any("past the budget of 14" in m and "the open claims stay open" in m for m in logs)
    need = [m for m in logs if m.startswith("seq: open: bn: ")]
    assert len(need) == 1 and len(need[0]) > len("seq: open: bn: ") + 10  # what would decide it


def test_a_study_file_declares_its_sequential_design() -> None:
    from squeezelab.errors import ConfigError
    from squeezelab.studies.spec import parse_study

    spec = parse_study(SEQ_STUDY, "seq")
    assert spec.sequential.schedule == [3, 4, 5, 6, 7, 8] and spec.seeds_up_to(5) == (0, 1, 2, 3, 4)
    for old, new, message in [
        ("max_seeds = 8\n", "", "needs max_seeds"),
        ("max_seeds = 8", "max_seeds = 2", "at least the declared seeds"),
        ('"obrien-fleming"', '"haybittle"', "spending must be one of"),
        ("seeds_per_look", "seed_per_look", "did you mean 'seeds_per_look'"),
        ("max_seeds = 8", "max_seeds = 8\nbudget = -1", "budget must be a positive number"),
    ]:
        with pytest.raises(ConfigError, match=message):
            parse_study(SEQ_STUDY.replace(old, new), "seq")


def test_the_report_shows_each_claims_looks_and_reads_the_claim_as_its_last_look(
    tmp_path, monkeypatch
) -> None:
    from squeezelab.analysis.report import build_report
    from squeezelab.results import Store

    two = SEQ_STUDY.replace("[sequential]", """[[claims]]
id = "same"
statement = "momentum changes nothing"
test = "welch"
field = "batch_norm"
treatment = true
control = false
min_effect = 30.0
family = "other"
[sequential]""")  # fmt: skip
    out, _ = _run(tmp_path, monkeypatch, lambda c: 60 + 4 * c["batch_norm"] + _noise(c, 2), two)
    with Store(tmp_path / "s.db") as store:
        last = {r["claim"]: r for r in store.looks("seq") if r["rule"] == "chance"}
    report = build_report(tmp_path / "s.db", tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Sequential looks: seq" in md and "seq_looks.png" in report["figures"]
    assert f"{out.looks} look(s), obrien-fleming spending" in md
    assert f"would have used {out.fixed_run_epochs:g} " in md  # the runner's and the report's
    claims = {c["id"]: c for c in report["claims"] if c["rule"] == "chance"}
    # bn is decided at the last look, 'same' (a 30-point effect: absent) at the first
    assert out.verdicts == {"bn": "supported", "same": "contradicted"} and out.looks == 3
    assert claims["bn"]["verdict"] == "supported" and claims["same"]["verdict"] == "contradicted"
    assert claims["bn"]["level"] == pytest.approx(last["bn"]["level"])
    assert last["bn"]["level"] < 0.05
    assert last["same"]["level"] is None and not last["same"]["decided"]  # decided at look 1
    assert out.run_epochs < out.fixed_run_epochs
    assert (tmp_path / "r" / "looks_seq.csv").read_text().startswith("Claim,Look,Seeds")


def test_stalled_run_stopping_reaches_each_run_and_never_the_paper_preset(
    tmp_path, monkeypatch
) -> None:
    from squeezelab import reproduce
    from squeezelab.errors import ConfigError
    from squeezelab.studies import executors, run_study
    from squeezelab.studies.presets import load_preset
    from squeezelab.studies.spec import parse_study

    seen = []

    class Recording(Scripted):
        def run(self, tasks, on_start):
            seen.extend(t.stop_stalled_after for t in tasks)
            yield from super().run(tasks, on_start)

    monkeypatch.setitem(executors.EXECUTORS, "rec", lambda w, a, r: Recording(lambda c: 50.0))
    spec = parse_study("stop_stalled_after = 3\n" + SEQ_STUDY, "seq")
    run_study(spec, tmp_path / "s.db", executor="rec", runs_dir=tmp_path / "r", log=lambda m: None)
    assert seen == [3] * 6
    # the faithful preset counts stalled runs as the study did: a preset that asks is refused
    for preset, refused in (("paper", True), ("quick", False)):
        asked = load_preset(preset)
        asked["all"] = {**asked.get("all", {}), "stop_stalled_after": 3}
        monkeypatch.setattr(reproduce, "load_preset", lambda name, asked=asked: asked)
        if refused:
            with pytest.raises(ConfigError, match="stop_stalled_after is refused"):
                reproduce.resolve(preset)
        else:
            assert {s.stop_stalled_after for s in reproduce.resolve(preset)} == {3}
    monkeypatch.undo()
    assert {s.stop_stalled_after for s in reproduce.resolve("paper")} == {None}


@pytest.mark.slow
def test_modern_compare_runs_until_decided_on_synthetic_data(tmp_path) -> None:
    """The modern-compare shape end to end on the CPU at short epochs: the command line, the
    looks in the store, seeds only where claims are open, and the report."""
    from squeezelab.results import Store

    from .conftest import run_cli

    db = tmp_path / "mc.db"
    proc = run_cli("study", "run", "modern-compare", "--db", str(db), "--set",
                   "data=synthetic:600", "--set", "epochs=2", "--set", "image_size=64",
                   "--until-decided", "--max-seeds", "7")  # fmt: skip
    summary = proc.stdout.splitlines()[0]
    assert summary.startswith("modern-compare: ") and "stopped: " in summary
    with Store(db) as store:
        looks = store.looks("modern-compare")
        runs = store.runs("modern-compare")
    taken = sorted({r["look"] for r in looks})
    assert taken == list(range(1, len(taken) + 1)) and 1 <= len(taken) <= 3
    per_look = {k: {r["seeds"] for r in looks if r["look"] == k} for k in taken}
    assert [s.pop() for s in per_look.values()] == [5, 6, 7][: len(taken)]
    # runs added after the first look go only to conditions of claims open at the look before
    assert len(runs) < 4 * (4 + len(taken)) or len(taken) == 1
    report = run_cli("report", "--db", str(db), "--out", str(tmp_path / "r")).stdout
    assert "report" in report
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## Sequential looks: modern-compare" in md
    # conditions end with different seed counts; the fixed design is every one at the most
    fixed = re.search(r"a fixed design at the most seeds: (\d+)", summary).group(1)
    assert f"would have used {fixed} " in md


def test_a_merge_carries_a_sequential_studys_looks_and_refuses_two_histories(
    tmp_path, monkeypatch
) -> None:
    from squeezelab.results import Store, StoreError
    from squeezelab.results.merge import merge_stores

    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    # both decided at the first look on the same six runs: supported here, contradicted there
    assert _run(a, monkeypatch, lambda c: 60 + 20 * c["batch_norm"] + _noise(c, 1))[0].looks == 1
    assert _run(b, monkeypatch, lambda c: 60 + _noise(c, 0.05))[0].verdicts == {
        "bn": "contradicted"
    }
    merged = tmp_path / "m.db"
    merge_stores([a / "s.db"], merged)
    merge_stores([a / "s.db"], merged)  # the same looks again: nothing changes
    with Store(a / "s.db") as src, Store(merged) as dst:
        assert dst.looks("seq") == src.looks("seq")
    with pytest.raises(StoreError, match="run sequentially in both .* looks differ"):
        merge_stores([b / "s.db"], merged)
    with Store(merged) as dst, Store(a / "s.db") as src:
        assert dst.looks("seq") == src.looks("seq")  # the refused merge wrote nothing


def test_modern_compare_splits_into_parts_one_model_pair_at_a_time() -> None:
    from squeezelab.studies import load_study
    from squeezelab.studies.sequential import Part

    spec = load_study("modern-compare")
    bn = Part.of(spec, {"model": ("squeezenet1_0",)})
    assert bn.spec.name == "modern-compare[model=squeezenet1_0]"
    assert bn.ids == {"modern-bn"} and bn.absent == {"modern": 2}
    size = Part.of(spec, {"model": ("squeezenet1_0", "squeezenet1_1")})
    assert size.ids == {"modern-bn", "modern-size"} and size.absent == {"modern": 1}
