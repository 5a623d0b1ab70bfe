"""Analysis: statistics against scipy, the report from a store made here, reproduce via CLI."""

from __future__ import annotations

import csv
import dataclasses
import math
import warnings
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from squeezelab.analysis import build_report, holm, paired_test, pearson, summarize
from squeezelab.analysis.metrics import METRICS
from squeezelab.results import Store, StoreError
from squeezelab.studies.spec import builtin_studies, load_study
from squeezelab.training import RunConfig

from .conftest import last_json, run_cli

PUBLISHED = Path(__file__).parents[1] / "src" / "squeezelab" / "analysis" / "published"

# --- statistics ----------------------------------------------------------------------------


def test_summarize_matches_scipy_t_interval() -> None:
    x = [61.2, 63.5, 59.8, 64.1, 62.0]
    s = summarize(x)
    lo, hi = stats.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=stats.sem(x))
    assert s.n == 5 and s.mean == pytest.approx(np.mean(x))
    assert s.sd == pytest.approx(np.std(x, ddof=1))
    assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi))
    assert math.isnan(summarize([3.0]).sd)


def test_an_interval_is_cut_at_the_values_an_accuracy_can_take() -> None:
    """Two seeds near 80% and one stuck at 50%: the t interval runs past 100%."""
    s = summarize([80.14, 50.72, 81.48])
    assert s.ci_high > 100.0 and s.runs_past(0.0, 100.0)
    cut = s.within(0.0, 100.0)
    assert cut.ci_high == 100.0 and cut.ci_low == s.ci_low and cut.mean == s.mean
    assert not cut.runs_past(0.0, 100.0)
    one = summarize([42.0])
    assert one.within(0.0, 100.0) == one and not one.runs_past(0.0, 100.0)
    # Each metric knows its bounds: accuracies are cut, a loss (unbounded) is left as it is.
    assert METRICS["val_acc"].cut(s) == (cut, True)
    assert METRICS["test_acc"].cut(cut) == (cut, False)
    loss = summarize([-0.5, 2.0, 2.5])
    assert METRICS["train_loss"].cut(loss) == (loss, False)


def test_pearson_matches_scipy() -> None:
    x, y = [1.0, 2.0, 3.0, 4.0, 5.0, 7.0], [2.1, 3.9, 6.2, 8.1, 9.7, 15.0]
    c = pearson(x, y)
    ref = stats.pearsonr(x, y)
    assert (c.r, c.p, c.n) == pytest.approx((ref.statistic, ref.pvalue, 6))


def test_paired_test_matches_scipy_and_effect_size() -> None:
    a = [45.1, 50.3, 38.2, 61.0, 55.5, 47.7, 52.9]
    b = [41.0, 49.9, 35.1, 58.2, 56.0, 44.1, 48.8]
    t = paired_test(a, b)
    ref = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b)
    d = np.subtract(a, b)
    assert (t.t, t.p) == pytest.approx((ref.statistic, ref.pvalue))
    assert (t.wilcoxon_w, t.wilcoxon_p) == pytest.approx((w.statistic, w.pvalue))
    assert t.cohen_dz == pytest.approx(d.mean() / d.std(ddof=1))
    assert t.mean_diff == pytest.approx(d.mean()) and t.n == 7
    one = paired_test(a, b, alternative="greater")
    assert one.p == pytest.approx(stats.ttest_rel(a, b, alternative="greater").pvalue)


def test_paired_test_degenerate_differences() -> None:
    same = paired_test([1.0, 2.0, 3.0], [1.0, 2.0, 3.0])
    assert (same.t, same.p, same.cohen_dz, same.wilcoxon_p) == (0.0, 1.0, 0.0, 1.0)
    shifted = paired_test([2.0, 3.0, 4.0], [1.0, 2.0, 3.0], alternative="less")
    assert shifted.t == math.inf and shifted.p == 1.0 and shifted.mean_diff == 1.0


def test_holm_matches_hand_computation() -> None:
    # p sorted: 0.01 (x4 = 0.04), 0.02 (x3 = 0.06), 0.03 (x2 = 0.06), 0.04 (x1 = 0.04 -> 0.06)
    assert holm([0.04, 0.01, 0.03, 0.02]) == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])


# --- report from a store made here ---------------------------------------------------------


OFFLINE_SOURCE = "pretrained here on synthetic:3000 (ImageNet weights unavailable offline)"


def _spec(study: str) -> dict:
    """The stored spec of a study: the built-in file's, claims and [report] included."""
    if study in builtin_studies():
        notes = {"transfer_source": OFFLINE_SOURCE} if study == "transfer" else {}
        return {**dataclasses.asdict(load_study(study)), "notes": notes}
    return {"name": study}


def _add(
    store: Store,
    study: str,
    cfg: RunConfig,
    acc: float,
    role: str = "run",
    diverged: bool = False,
    curve: list[float] | None = None,
    precision: str = "fp32",
    machine: dict | None = None,
) -> None:
    store.add_study(study, _spec(study), [(cfg.key(), cfg.to_dict(), role)])
    curve = curve or [acc]
    history = [
        {
            "epoch": i + 1,
            "val_acc": v,
            "test_acc": v,
            "train_loss": 1.0,
            "val_loss": 1.0,
            "lr": cfg.lr,
            "epoch_s": 1.0,
        }
        for i, v in enumerate(curve)
    ]
    result = {
        "val_acc": acc,
        "test_acc": acc,
        "val_loss": 1.0,
        "test_loss": 1.0,
        "train_loss": 1.0,
        "epochs": len(curve),
        "train_s": 1.0,
        "diverged": diverged,
    }
    recipe = {
        "config": cfg.to_dict(),
        "device": "cpu",
        "device_name": "cpu",
        "precision": precision,
        "torch": "x",
        "squeezelab": "0.1.0",
        "num_classes": 10,
        **(machine or {}),
    }
    store.finish_run(cfg.key(), result, history, recipe)


@pytest.fixture
def full_store(tmp_path: Path) -> Path:
    db = tmp_path / "s.db"
    rng = np.random.default_rng(0)
    with Store(db) as s:
        for model in ("squeezenet1_0", "alexnet"):
            for bs in (64, 512):
                for lr in (0.05, 0.01):
                    diverged = model == "alexnet" and lr == 0.05 and bs == 64
                    acc = 10.0 if diverged else float(rng.uniform(30, 60))
                    _add(
                        s,
                        "grid",
                        RunConfig(model=model, batch_size=bs, lr=lr),
                        acc,
                        diverged=diverged,
                    )
        for seed in range(3):
            for model, base in (("squeezenet1_0", 60.0), ("alexnet", 61.0)):
                curve = [base - 20 + 5 * e + seed for e in range(5)]
                cfg = RunConfig(
                    model=model, seed=seed, scheduler="step", epochs=5, test_each_epoch=True
                )
                _add(s, "compare", cfg, curve[-1], curve=curve)
        for delta in (-2, -1, 0, 1, 2):
            for lr in (0.05, 0.01):
                for m in (0.9, 0.5):
                    _add(
                        s,
                        "macro",
                        RunConfig(fire_delta=delta, lr=lr, momentum=m, seed=7),
                        40 + delta + 10 * lr + m,
                    )
        for lr in (0.1, 0.05, 0.01):
            for m in (0.9, 0.5):
                # Seeds keep each study's runs distinct: identical configs share one run.
                bn = RunConfig(batch_norm=True, lr=lr, momentum=m, seed=3)
                _add(s, "batchnorm", bn, 55 + 10 * lr + m)
                _add(s, "batchnorm", bn.replace(batch_norm=False), 45 + 20 * lr)
                _add(s, "transfer", RunConfig(init="/src", lr=lr, momentum=m, seed=5), 50 + lr)
                _add(s, "transfer", RunConfig(lr=lr, momentum=m, seed=5), 50 - lr + m)
        for sr in (0.125, 0.5):
            _add(s, "squeeze-ratio", RunConfig(squeeze_ratio=sr, batch_norm=True), 50 + sr)
        for kind in ("none", "simple", "complex"):
            _add(s, "bypass", RunConfig(bypass=kind, seed=9), 50.0)
    return db


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        return list(csv.DictReader(f))


def test_report_has_every_section_and_store_numbers(full_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "report"
    summary = build_report(full_store, out)
    md = (out / "report.md").read_text()
    for heading in (
        "What these results are",
        "Protocol, as declared",
        "Objective 1",
        "Objective 2",
        "Objective 3",
        "Objective 4",
        "Objective 5",
        "Paper: squeeze ratio",
        "Paper: bypass",
        "Model size",
        "Table 1: training time",
        "The claims, tested",
        "The study's own data, re-analysed",
    ):
        assert heading in md
    figures = {"compare_curves.png", "macro_relative.png", "squeeze-ratio_design.png"}
    assert figures | {"grid_heatmap.png"} <= set(summary["figures"])
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == len(summary["figures"])
    # The grid table holds the store's numbers beside the study's, diverged runs marked.
    with Store(full_store) as s:
        grid = {
            (r.config["model"], r.config["batch_size"], r.config["lr"]): r for r in s.runs("grid")
        }
    a1 = {
        (r["model"], int(r["batch_size"]), float(r["lr"])): r["test_acc"]
        for r in _csv(PUBLISHED / "table_a1.csv")
        if float(r["momentum"]) == 0.9 and float(r["weight_decay"]) == 0.0
    }
    rows = _csv(out / "table_grid.csv")
    assert len(rows) == 4
    for row in rows:
        key = ("squeezenet1_0", int(row["batch_size"]), float(row["lr"]))
        ours = float(row["SqueezeNet 1.0: test acc (%)"])
        assert ours == pytest.approx(grid[key].result.test_acc)
        assert row["SqueezeNet 1.0: study (%)"] == a1[key]  # as published, "nan" kept
        if a1[key] != "nan":
            diff = float(row["SqueezeNet 1.0: ours - study"])
            assert diff == pytest.approx(ours - float(a1[key]))
    assert any(row["AlexNet: test acc (%)"].endswith("†") for row in rows)
    # Batch norm: paired t over the study's conditions (lr 0.05 / 0.01 here) equals scipy's.
    bn = next(c for c in summary["claims"] if c["id"] == "batch-norm" and c["rule"] == "chance")
    lr_m = [(lr, m) for lr in (0.05, 0.01) for m in (0.9, 0.5)]
    ref = stats.ttest_rel(
        [55 + 10 * lr + m for lr, m in lr_m],
        [45 + 20 * lr for lr, m in lr_m],
        alternative="greater",
    )
    assert bn["n"] == 4 and bn["p"] == pytest.approx(ref.pvalue)
    assert bn["verdict"] == "supported"
    assert len(_csv(out / "table_batchnorm.csv")) == 6
    assert f"Source weights: {OFFLINE_SOURCE}" in md
    transfer = [c for c in summary["claims"] if c["id"] == "transfer"]
    assert transfer and all("not tested as the study did" in c["verdict"] for c in transfer)
    # Holm within each (family, rule), over the conclusive claims only.
    for fam in ("study", "paper"):
        for rule in ("chance", "exclude"):
            members = [
                c for c in summary["claims"]
                if c["family"] == fam and c["rule"] == rule and c["p"] is not None
            ]  # fmt: skip
            assert [c["p_holm"] for c in members] == pytest.approx(holm([c["p"] for c in members]))
    sizes = _csv(out / "model_size.csv")
    assert {r["Model"] for r in sizes} == {"AlexNet", "SqueezeNet 1.0"}


def test_report_on_empty_store_says_so(tmp_path: Path) -> None:
    Store(tmp_path / "e.db").close()
    build_report(tmp_path / "e.db", tmp_path / "r")
    assert "holds no finished runs yet" in (tmp_path / "r" / "report.md").read_text()
    with pytest.raises(StoreError, match="no store at"):
        build_report(tmp_path / "missing.db", tmp_path / "r2")


def test_report_cli(full_store: Path, tmp_path: Path) -> None:
    summary = last_json(
        run_cli("report", "--db", str(full_store), "--out", str(tmp_path / "r"), "--json").stdout
    )
    ids = {c["id"] for c in summary["claims"]}
    assert {"alexnet-level", "size-vs-accuracy", "batch-norm", "transfer"} <= ids
    assert Path(summary["report"]).is_file()
    md = (tmp_path / "r" / "report.md").read_text()
    for name in ("paper", "rigorous"):  # both protocols of record, described for reference
        assert f"**Preset {name}** (for reference, not run here)" in md


@pytest.mark.slow
def test_reproduce_quick_on_tiny_synthetic(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    args = [
        "reproduce",
        "--data",
        "synthetic:120",
        "--out",
        str(out),
        "--json",
        "--set",
        "epochs=1",
        "--set",
        "train_subset=60",
    ]
    summary = last_json(run_cli(*args).stdout)
    md = (out / "report" / "report.md").read_text()
    for heading in ("Objective 1", "Objective 2", "Objective 3", "Objective 4", "Objective 5"):
        assert heading in md
    assert {"compare_curves.png", "macro_relative.png"} <= set(summary["figures"])
    with Store(out / "squeezelab.db") as s:
        assert set(s.studies()) == {"grid", "compare", "macro", "batchnorm", "transfer"}
        counts = {n: s.status_counts(n) for n in s.studies()}
    assert all(c["left"] == 0 and c["running"] == 0 for c in counts.values())
    # Re-running continues: nothing left to run, and the same report (tables, verdicts).
    tables = {p.name: p.read_text() for p in (out / "report").glob("*.csv")}
    again = run_cli(*args)
    assert "0 to run" in again.stderr and "1 to run" not in again.stderr
    assert last_json(again.stdout)["claims"] == summary["claims"] and summary["claims"]
    assert {p.name: p.read_text() for p in (out / "report").glob("*.csv")} == tables
    assert len(tables) >= 5


@pytest.mark.parametrize(
    ("epochs", "images", "says"),
    [
        (10, 40_000, "these runs are shorter than the study's: at most 10 epochs on 40,000 "
         "images, 89% of its grid's"),
        (3, 2_000, "these runs are far shorter than the study's: at most 3 epochs on 2,000 "
         "images, 1% of its grid's"),
        (30, 40_000, "these runs train on fewer images than the study's, for longer: at most "
         "30 epochs on 40,000 images, 267% of its grid's"),
    ],
)  # fmt: skip
def test_report_says_how_the_runs_budget_differs_from_the_studys(
    tmp_path: Path, epochs: int, images: int, says: str
) -> None:
    with Store(tmp_path / "b.db") as s:
        for seed in (0, 1):
            _add(s, "x", RunConfig(epochs=epochs, train_subset=images, seed=seed), 50.0 + seed)
    build_report(tmp_path / "b.db", tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert says in md
    assert ("shorter than the study's" in md) == (epochs * images < 10 * 45_000)


def test_model_size_table_reports_the_best_cell_over_its_seeds_not_the_luckiest_seed(
    tmp_path: Path,
) -> None:
    """One lucky seed (90%) in a cell whose other seed failed (30%) must not stand for the
    model: the table takes the cell with the best mean validation accuracy (65 vs 60) and
    reports its seeds' mean, SD and interval."""
    with Store(tmp_path / "m.db") as s:
        for lr, accs in ((0.1, (60.0, 70.0)), (0.01, (90.0, 30.0))):
            for seed, acc in enumerate(accs):
                _add(s, "x", RunConfig(lr=lr, seed=seed), acc)
    build_report(tmp_path / "m.db", tmp_path / "r")
    (row,) = _csv(tmp_path / "r" / "model_size.csv")
    assert row["Model"] == "SqueezeNet 1.0" and float(row["Test acc (%)"]) == 65.0
    assert float(row["SD"]) == pytest.approx(math.sqrt(50.0))
    assert row["n (seeds)"] == "2" and row["Plain runs"] == "4"
    low, high = row["95% CI"].split(" to ")  # 65 +- 63.5 over two seeds: cut at 100
    assert float(low) < 65.0 and high == "100.00‡"


def test_model_size_table_sets_best_cells_of_equal_seed_counts_side_by_side(
    tmp_path: Path,
) -> None:
    """AlexNet has a cell of one seed (a lucky 90%) beside cells of three; SqueezeNet has
    cells of one seed only. Every best cell then averages one seed: AlexNet's best is chosen
    among its cells' lowest seeds, not the luckiest single seed against a mean of three."""
    with Store(tmp_path / "e.db") as s:
        for seed, acc in enumerate((70.0, 71.0, 72.0)):
            _add(s, "x", RunConfig(model="alexnet", lr=0.01, seed=seed), acc)
        _add(s, "x", RunConfig(model="alexnet", lr=0.05, seed=0), 65.0)
        _add(s, "x", RunConfig(lr=0.01, seed=0), 60.0)
        _add(s, "x", RunConfig(lr=0.05, seed=0), 62.0)
    build_report(tmp_path / "e.db", tmp_path / "r")
    rows = {r["Model"]: r for r in _csv(tmp_path / "r" / "model_size.csv")}
    assert {r["n (seeds)"] for r in rows.values()} == {"1"}
    assert float(rows["AlexNet"]["Test acc (%)"]) == 70.0  # lr 0.01's seed 0, not a mean of 3
    assert float(rows["SqueezeNet 1.0"]["Test acc (%)"]) == 62.0
    assert "cells of 1 seed(s) each for every model" in (tmp_path / "r" / "report.md").read_text()


def test_report_html_escapes_what_study_files_and_paths_bring(tmp_path: Path) -> None:
    """A claim statement, a description and a data path are text, never markup: opened in a
    browser, report.html must not run what a study file or a path smuggles in."""
    evil = "<img src=x onerror=alert(1)>"
    spec = {
        "name": "x",
        "description": f"desc {evil}",
        "claims": [
            {
                "id": "c",
                "statement": f"claim {evil}",
                "test": "paired",
                "field": "batch_norm",
                "treatment": True,
                "control": False,
            },
        ],
        "report": {"title": f"title {evil}"},
    }
    with Store(tmp_path / "x.db") as s:
        for lr in (0.1, 0.05, 0.01):
            for bn, acc in ((True, 70.0 + 100 * lr), (False, 60.0)):
                cfg = RunConfig(lr=lr, batch_norm=bn, data=f"synthetic:100{evil}")
                s.add_study("x", spec, [(cfg.key(), cfg.to_dict(), "run")])
                result = {"val_acc": acc, "test_acc": acc, "epochs": 1}
                history = [{"epoch": 1, "val_acc": acc, "train_loss": 1.0}]
                s.finish_run(cfg.key(), result, history, {"num_classes": 10})
    build_report(tmp_path / "x.db", tmp_path / "r")
    page = (tmp_path / "r" / "report.html").read_text()
    assert "<img src=x" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count("&lt;img src=x") >= 3  # the claim, the description, the data path


def test_one_statement_of_the_studys_figure_4_protocol() -> None:
    """compare.toml, modern-compare.toml and the paper preset say the same of Figure 4."""
    from importlib import resources

    from squeezelab.analysis.published import FIGURE_4

    folder = resources.files("squeezelab.studies")
    texts = [
        (folder / "builtin" / "compare.toml").read_text(),
        (folder / "builtin" / "modern-compare.toml").read_text(),
        (folder / "presets" / "paper.toml").read_text(),
    ]
    assert all(FIGURE_4 in t for t in texts)
    assert not any("one run per model and scheduler" in t for t in texts)


def test_a_study_computed_at_two_precisions_says_so(tmp_path: Path) -> None:
    """`auto` is bf16 on a GPU or an AMX CPU and fp32 on an AVX2 CPU: a store that merged runs
    from both says so beside the study's table, and the claims comparing them say it too."""
    with Store(tmp_path / "p.db") as s:
        for seed in (0, 1):
            _add(s, "x", RunConfig(seed=seed), 60.0 + seed, precision="bf16")
            _add(s, "x", RunConfig(seed=seed, lr=0.1), 50.0 + seed, precision="fp32")
            _add(s, "y", RunConfig(seed=seed, lr=0.2), 40.0 + seed, precision="bf16")
    build_report(tmp_path / "p.db", tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert md.count("Computed at more than one precision (bf16 x 2, fp32 x 2)") == 1


def test_table_1_times_each_machine_apart(tmp_path: Path) -> None:
    """A store merged from a GPU and a CPU holds epoch times one median must not pool."""
    cpu = {"device": "cpu", "device_name": "AMD EPYC", "threads": 1}
    gpu = {"device": "cuda:0", "device_name": "NVIDIA H100", "threads": 16}
    with Store(tmp_path / "t.db") as s:
        _add(s, "x", RunConfig(seed=0), 60.0, machine=cpu)
        _add(s, "x", RunConfig(seed=1), 61.0, machine=cpu)
        _add(s, "x", RunConfig(seed=2), 62.0, precision="bf16", machine=gpu)
    build_report(tmp_path / "t.db", tmp_path / "r")
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Computed on: AMD EPYC, fp32, 1 thread (2 runs); NVIDIA H100, bf16 (1 runs)." in md
    rows = _csv(tmp_path / "r" / "table_1_time.csv")
    assert [(r["Device"], r["Epochs timed"]) for r in rows] == [
        ("AMD EPYC, fp32, 1 thread", "2"),
        ("NVIDIA H100, bf16", "1"),
    ]


def test_a_table_interval_past_100_percent_is_cut_and_marked(tmp_path: Path) -> None:
    """Seeds 80 / 50 / 82 give a t interval up to about 121%: the table shows it cut at 100
    and marked, with the footnote saying why; the figures' bands are cut the same way."""
    with Store(tmp_path / "m.db") as s:
        for seed, acc in enumerate((80.0, 50.0, 82.0)):
            _add(s, "x", RunConfig(seed=seed), acc)
    build_report(tmp_path / "m.db", tmp_path / "r")
    (row,) = _csv(tmp_path / "r" / "model_size.csv")
    low, high = row["95% CI"].split(" to ")
    assert high == "100.00‡" and 0.0 < float(low) < 70.67
    md = (tmp_path / "r" / "report.md").read_text()
    assert "‡ the t interval ran past 0 or 100%" in md


def test_a_run_shared_by_studies_counts_once(tmp_path: Path) -> None:
    """The store lists a run once per study that holds it (a grid run is also the macro and
    batch-norm studies' plain cell): the header, Table 1 and the model-size table take each
    run once, so one run is not three seeds."""
    cfg = RunConfig(seed=0)
    with Store(tmp_path / "s.db") as s:
        for study in ("grid", "macro", "batchnorm"):
            _add(s, study, cfg, 50.0, curve=[40.0, 50.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # macro's relative figure has no variant: not drawn
        build_report(tmp_path / "s.db", tmp_path / "r")
    # macro's other figures are drawn; only the relative one, with nothing to compare, is not
    figures = {p.name for p in (tmp_path / "r").glob("*.png")}
    assert "macro_best_curves.png" in figures and "grid_heatmap.png" in figures
    assert not [f for f in figures if "relative" in f]
    md = (tmp_path / "r" / "report.md").read_text()
    assert "Data: synthetic (1 runs)." in md and " 1 finished runs;" in md
    (size,) = _csv(tmp_path / "r" / "model_size.csv")
    assert size["n (seeds)"] == "1" and size["Plain runs"] == "1"
    (timing,) = _csv(tmp_path / "r" / "table_1_time.csv")
    assert timing["Epochs timed"] == "2"
