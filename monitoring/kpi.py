"""The role's KPIs on one page (`make report`), with the numbers behind each.

    python -m monitoring.kpi [--projects fraud churn] [--pushgateway URL]

- **Production readiness**: projects whose champion is deployed *and* monitored (windows
  served by the current champion have been assessed) / all projects: every config under
  `configs/` and every registered `<project>-classifier` model (its config read from the run
  that registered it when no file exists).
- **Production model performance**: the champion's primary metric on the newest labelled
  window it served, against the logistic baseline scored on the same rows (%); the bar is to
  maintain or beat it. Each window shows its positives, the paired bootstrap interval of the
  champion's metric and of its gain over the baseline, and whether the positives are enough
  evidence (`monitoring.min_positives`) to act on.
- **Attribution drift**, beside data drift: for each window, whether the ranking of the
  features by mean |SHAP| on its sampled rows still matches the served version's training
  reference (`monitoring.attribution`: rank correlation, shared top k, `unavailable` when the
  version's explainer could not be loaded), and for the champion's newest window the features
  of either top k with their mean |SHAP| and rank on both sides.
- **Pipeline efficiency**: deployment lead time (registration to serving-ready, seconds) of
  the current champion, and the manual steps between raw data and that served model, counted
  from the champion's MLflow run (`manual_steps`): starting the run (none with a `schedule`),
  each training stage the run has no `stage_seconds.<stage>` for, and a deployment with no
  lead time recorded (the alias moved outside the pipeline).
- **Code quality**: line coverage from the last test run's report (`coverage.xml` at the
  repository root, whatever the working directory; `make test` writes it), with its date;
  n/a only when no report exists.

Markdown, HTML and PNG plots go to `reports/kpi/`; the gauges can be pushed for Grafana.
"""

from __future__ import annotations

import html
import json
import logging
import math
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from configs import CONFIG_DIR, ConfigError, load_config, parse_config
from configs.cli import cli_parser, fail, setup_logging
from configs.schema import ProjectConfig
from monitoring.attribution import AVAILABLE, REFERENCE, UNAVAILABLE, WINDOW, summary_text
from monitoring.contract import KPI_METRICS
from monitoring.monitor import INSUFFICIENT, REPORTS_ROOT, SHADOW_FILE
from serving.pushgateway import PushError, Sample, push

log = logging.getLogger(__name__)

KPI_ROOT = Path("reports/kpi")
COVERAGE_BAR = 0.85
REPO = Path(__file__).resolve().parents[1]
COVERAGE_XML = REPO / "coverage.xml"  # what `make test` leaves (pytest --cov-report=xml)
MODEL_SUFFIX = "-classifier"
START_STEP = "start the training run (make pipeline / make deploy; a config schedule removes it)"


@dataclass
class ProjectKpi:
    """One project's standing."""

    project: str
    champion: str | None
    deployed: bool
    monitored: bool
    primary_metric: str
    champion_value: float = math.nan
    baseline_value: float = math.nan
    vs_baseline_pct: float = math.nan
    evidence: dict[str, Any] = field(default_factory=dict)  # of that window (monitor's)
    lead_time_s: float = math.nan
    windows: list[dict[str, Any]] = field(default_factory=list)
    attribution: dict[str, Any] = field(default_factory=dict)  # champion's newest window's
    shadow: dict[str, Any] = field(default_factory=dict)  # live comparison, with a shadow
    manual_steps: list[str] | None = None  # None: no champion, nothing served to count for


@dataclass
class KpiReport:
    """All projects and the platform-wide numbers."""

    projects: list[ProjectKpi]
    coverage: float
    automated_stages: int
    coverage_source: str = ""

    @property
    def ready(self) -> int:
        return sum(p.deployed and p.monitored for p in self.projects)

    @property
    def readiness(self) -> float:
        return self.ready / len(self.projects) if self.projects else math.nan


def project_kpi(config: ProjectConfig, monitoring_root: Path = REPORTS_ROOT) -> ProjectKpi:
    """Registry and monitoring facts of one project."""
    import mlflow

    from models.registry import champion_version

    champion = champion_version(config.model_name)
    history_file = monitoring_root / config.name / "history.json"
    windows = json.loads(history_file.read_text()) if history_file.exists() else []
    primary = config.evaluation.primary_metric
    served = [w for w in windows if w["version"] == champion]
    kpi = ProjectKpi(
        project=config.name,
        champion=champion,
        deployed=champion is not None,
        monitored=bool(served),
        primary_metric=primary,
        windows=windows,
    )
    if served:
        kpi.attribution = served[-1].get("attribution") or {}
    shadow_file = monitoring_root / config.name / SHADOW_FILE
    if shadow_file.exists():
        kpi.shadow = json.loads(shadow_file.read_text())
    labelled = [w for w in served if "baseline" in w["quality"]]
    if labelled:
        latest = labelled[-1]["quality"]
        kpi.champion_value = latest["champion"][primary]
        kpi.baseline_value = latest["baseline"][primary]
        kpi.vs_baseline_pct = labelled[-1]["vs_baseline_pct"].get(primary, math.nan)
        kpi.evidence = labelled[-1].get("evidence", {})
    if champion is not None:
        run_id = mlflow.MlflowClient().get_model_version(config.model_name, champion).run_id
        metrics: dict[str, float] = {}
        if run_id:  # a version registered without a run has no lead time
            metrics = mlflow.get_run(run_id).data.metrics
            kpi.lead_time_s = metrics.get("deployment_lead_time_s", math.nan)
        kpi.manual_steps = manual_steps(config, metrics)
    return kpi


def manual_steps(config: ProjectConfig, run_metrics: dict[str, float]) -> list[str]:
    """The steps a person took between raw data and the served champion, from its run.

    Args:
        config: The project (a `schedule` starts runs without a person).
        run_metrics: The metrics of the run that registered the champion (empty if none).
    """
    from pipelines.stages import STAGES

    steps = [] if config.schedule else [START_STEP]
    steps += [
        f"{stage}: not run by the pipeline"
        for stage in STAGES
        if f"stage_seconds.{stage}" not in run_metrics
    ]
    if "deployment_lead_time_s" not in run_metrics:
        steps.append("deploy: the champion alias was moved outside the pipeline")
    return steps


def discover_projects(config_dir: Path = CONFIG_DIR) -> list[ProjectConfig]:
    """Every project: the configs in `config_dir` and every registered `*-classifier` model.

    A registered model without a config file gets the config its newest version's run
    logged (`config.yaml`); one whose run has none is skipped with a warning.
    """
    import mlflow

    configs = {c.name: c for c in (load_config(p) for p in sorted(config_dir.glob("*.yaml")))}
    client = mlflow.MlflowClient()
    for model in _registered_models(client):
        project = model.name.removesuffix(MODEL_SUFFIX)
        if not model.name.endswith(MODEL_SUFFIX) or project in configs:
            continue
        config = _logged_config(client, model.name)
        if config is None:
            log.warning(
                "registered model %s has no logged config.yaml: not on the KPI page", model.name
            )
        else:
            configs[config.name] = config
    return [configs[name] for name in sorted(configs)]


def _registered_models(client: Any) -> list[Any]:
    models, token = [], None
    while True:
        page = client.search_registered_models(max_results=1000, page_token=token)
        models += list(page)
        token = page.token
        if not token:
            return models


def _logged_config(client: Any, model_name: str) -> ProjectConfig | None:
    import mlflow
    import yaml

    versions = client.search_model_versions(f"name='{model_name}'")
    for version in sorted(versions, key=lambda v: -int(v.version)):
        if not version.run_id:
            continue
        try:
            text = mlflow.artifacts.load_text(f"runs:/{version.run_id}/config.yaml")
        except Exception as exc:  # noqa: BLE001 - any store's "no such artifact": try an older one
            log.debug("%s v%s: no config.yaml (%s)", model_name, version.version, exc)
            continue
        return parse_config(yaml.safe_load(text), source=f"{model_name} v{version.version} run")
    return None


def coverage_ratio(path: Path = COVERAGE_XML) -> float:
    """Line coverage of the last test run with coverage (`make test` writes `path`); NaN only
    when no report exists."""
    if not path.exists():
        return math.nan
    return float(ET.parse(path).getroot().get("line-rate", "nan"))  # noqa: S314 - our own file


def coverage_source(path: Path = COVERAGE_XML) -> str:
    """Which report the coverage came from, and when it was written."""
    if not path.exists():
        return f"no {path.name}: run make test"
    stamp = datetime.fromtimestamp(path.stat().st_mtime, UTC)
    return f"{path.name} of {stamp:%Y-%m-%d %H:%M} UTC"


def build_report(
    projects: Sequence[str] | None = None, coverage_file: Path = COVERAGE_XML
) -> KpiReport:
    """The KPIs of `projects` (names or YAML paths; None: `discover_projects()`)."""
    from pipelines.stages import STAGES

    configs = discover_projects() if projects is None else [load_config(p) for p in projects]
    return KpiReport(
        [project_kpi(c) for c in configs],
        coverage_ratio(coverage_file),
        len(STAGES),
        coverage_source(coverage_file),
    )


def samples(report: KpiReport) -> list[Sample]:
    """KPI gauges, named as in `monitoring.contract`."""
    out = [
        Sample("mlops_kpi_projects_total", len(report.projects)),
        Sample("mlops_kpi_projects_monitored", report.ready),
        Sample("mlops_kpi_production_readiness_ratio", report.readiness),
        Sample("mlops_kpi_test_coverage_ratio", report.coverage),
    ]
    for p in report.projects:
        label = {"project": p.project}
        out.append(Sample("mlops_kpi_model_performance_vs_baseline_pct", p.vs_baseline_pct, label))
        out.append(Sample("mlops_kpi_deployment_lead_time_seconds", p.lead_time_s, label))
    return out


def _fmt(value: float, spec: str = ".3f", suffix: str = "") -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:{spec}}{suffix}"


def evidence_text(evidence: dict[str, Any]) -> str:
    """The gain's interval and the positives behind it, e.g. `gain +0.042 [-0.010, +0.090]
    (95%), 18 positives: insufficient evidence (< 30)`; "" for a window without one."""
    if not evidence:
        return ""
    text = f"{evidence['positives']} positives"
    if evidence["state"] == INSUFFICIENT:
        text += f": insufficient evidence (< {evidence['min_positives']})"
    gain = evidence.get("gain")
    if gain is None:
        return text
    return f"gain {_span(gain)} ({evidence['confidence']:.0%}), {text}"


def _span(bounds: dict[str, float]) -> str:
    low, high = (_fmt(bounds[k], "+.3f") for k in ("low", "high"))
    return f"{_fmt(bounds['value'], '+.3f')} [{low}, {high}]"


def markdown(report: KpiReport, plots: dict[str, str]) -> str:
    """The one-page report."""
    lines = [
        "# KPI report",
        "",
        "| KPI | value | bar |",
        "|---|---|---|",
        f"| Production readiness | {report.ready}/{len(report.projects)} projects deployed and "
        f"monitored ({_fmt(report.readiness, '.0%')}) | all projects |",
    ]
    for p in report.projects:
        lines.append(
            f"| Model performance, {p.project} | {p.primary_metric} "
            f"{_fmt(p.champion_value)} vs baseline {_fmt(p.baseline_value)} "
            f"({_fmt(p.vs_baseline_pct, '+.1f', '%')}"
            + (f"; {evidence_text(p.evidence)}" if p.evidence else "")
            + ") | >= +0% (goal +2..5%) |"
        )
    for p in report.projects:
        lines.append(
            f"| Deployment lead time, {p.project} | {_fmt(p.lead_time_s, '.1f', ' s')} "
            "(registration to serving-ready) | |"
        )
    for p in report.projects:
        steps = p.manual_steps
        counted = (
            "n/a (no champion)"
            if steps is None
            else f"{len(steps)}"
            + (
                f": {'; '.join(steps)}"
                if steps
                else f" ({report.automated_stages} stages automated)"
            )
        )
        lines.append(f"| Manual steps, raw data to served model, {p.project} | {counted} | <= 1 |")
    source = f" ({report.coverage_source})" if report.coverage_source else ""
    lines += [
        f"| Test coverage | {_fmt(report.coverage, '.1%')}{source} | >= {COVERAGE_BAR:.0%} |",
        "",
        "## Projects",
        "",
        "| project | champion | deployed | monitored | windows | labelled windows |",
        "|---|---|---|---|---|---|",
    ]
    for p in report.projects:
        labelled = sum(1 for w in p.windows if w["quality"])
        lines.append(
            f"| {p.project} | {p.champion or '-'} | {'yes' if p.deployed else 'no'} | "
            f"{'yes' if p.monitored else 'no'} | {len(p.windows)} | {labelled} |"
        )
    for p in report.projects:
        if p.windows:
            lines += ["", f"## {p.project}: windows (before and after each model version)", ""]
            lines += ["| window | version | rows | drift share | dataset drift | "
                      "attribution ranking | "
                      f"{p.primary_metric} champion [interval] | baseline | vs baseline | "
                      "gain [interval] | positives | evidence |",
                      "|---|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
            for w in p.windows:
                q, evidence = w["quality"], w.get("evidence") or {}
                champ = q.get("champion", {}).get(p.primary_metric, math.nan)
                base = q.get("baseline", {}).get(p.primary_metric, math.nan)
                drifted = "yes" if w["drift"]["dataset_drift"] else "no"
                own = evidence.get("champion")
                gain = evidence.get("gain")
                lines.append(
                    f"| {w['start'][:16]} | {w['version']} | {w['rows']} | "
                    f"{w['drift']['drift_share']:.2f} | {drifted}"
                    f" | {summary_text(w.get('attribution'))}"
                    f" | {_fmt(champ)}"
                    + (f" [{_fmt(own['low'])}, {_fmt(own['high'])}]" if own else "")
                    + f" | {_fmt(base)} | "
                    f"{_fmt(w['vs_baseline_pct'].get(p.primary_metric, math.nan), '+.1f', '%')} | "
                    f"{_span(gain) if gain else '-'} | {evidence.get('positives', '-')} | "
                    f"{evidence.get('state', 'no labels' if not q else '-')} |"
                )
        lines += attribution_lines(p)
        lines += shadow_lines(p)
        if p.project in plots:
            lines += ["", f"![{p.project}]({plots[p.project]})"]
    return "\n".join(lines) + "\n"


def attribution_lines(project: ProjectKpi) -> list[str]:
    """The champion's newest window: the features of either top k, their mean |SHAP| and rank
    in the training reference and in the window, and the verdict ([] if never measured)."""
    found = project.attribution
    if not found or found.get("state") not in (AVAILABLE, UNAVAILABLE):
        return []
    title = f"## {project.project}: attribution drift (newest window of v{project.champion})"
    if found["state"] != AVAILABLE:
        return ["", title, "", f"Not measured: {found.get('error', 'no reason recorded')}."]
    k, margin = found["top_k"], found["margin"]
    pairs = ", ".join(f"{f} > {g} became {g} > {f}" for f, g in found["inverted_pairs"][:5])
    lines = ["", title, "",
             f"{summary_text(found)} on {found['sampled_rows']} sampled rows, against "
             f"{found['reference_rows']} rows of the training run ({found['explainer']} SHAP, "
             f"{found['space']}); changed means a pair of features with one in either top {k} "
             f"traded places by more than a {margin:.0%} margin"
             + (f": {pairs}." if pairs else "."),
             "",
             "| feature | reference mean abs SHAP | reference rank | window mean abs SHAP | "
             "window rank | window / reference |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    shown = dict.fromkeys([*found["reference_top"], *found["window_top"]])
    for feature in shown:
        before, after = found[REFERENCE][feature], found[WINDOW][feature]
        ratio = after / before if before > 0 else math.nan
        lines.append(
            f"| {feature} | {before:.4f} | {found['reference_rank'][feature]} | {after:.4f} | "
            f"{found['window_rank'][feature]} | {_fmt(ratio, '.2f', 'x')} |"
        )
    return lines


def shadow_lines(project: ProjectKpi) -> list[str]:
    """The shadow challenger's live comparison with the champion, when one is registered."""
    found = project.shadow
    if not found:
        return []
    title = (f"## {project.project}: shadow challenger v{found['challenger_version']} vs "
             f"champion v{found['champion_version']} on live rows")  # fmt: skip
    rows = (f"{found['rows']} labelled rows scored by both ({found['positives']} positive; "
            f"{found['shadow_rows']} mirrored in all)")  # fmt: skip
    c = found.get("comparison")
    if not c:
        return ["", title, "", f"{rows}: too few to compare yet."]
    verdict = "passes" if c["passed"] else "does not pass"
    text = (
        f"{rows}, {found['first'][:16]} .. {found['last'][:16]}: {project.primary_metric} "
        f"challenger {c['challenger']:.4f}, champion {c['opponent_value']:.4f}, gain "
        f"{c['gain']:+.4f} [{c['gain_low']:+.4f}, {c['gain_high']:+.4f}]; {verdict} the "
        f"required {c['required']:+.4f} (`python -m monitoring.shadow promote` decides)."
    )
    return ["", title, "", text]


def plot_windows(project: ProjectKpi, out: Path) -> str | None:
    """Drift share and labelled quality per window, one colour per model version."""
    if not project.windows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (drift_ax, quality_ax) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    x = list(range(len(project.windows)))
    versions = [w["version"] for w in project.windows]
    drift_ax.bar(x, [w["drift"]["drift_share"] for w in project.windows],
                 color=[f"C{sorted(set(versions)).index(v)}" for v in versions])  # fmt: skip
    drift_ax.set_ylabel("drifted feature share")
    drift_ax.set_ylim(0, 1)
    for model, style in (("champion", "o-"), ("baseline", "s--")):
        values = [w["quality"].get(model, {}).get(project.primary_metric, math.nan)
                  for w in project.windows]  # fmt: skip
        (line,) = quality_ax.plot(x, values, style, label=model)
        bounds = [(w.get("evidence") or {}).get(model, {}) for w in project.windows]
        low, high = ([b.get(k, math.nan) for b in bounds] for k in ("low", "high"))
        quality_ax.fill_between(x, low, high, color=line.get_color(), alpha=0.15)  # interval
    quality_ax.set_ylabel(project.primary_metric)
    quality_ax.legend()
    quality_ax.set_xticks(x, [f"{w['start'][5:10]} v{w['version']}" for w in project.windows],
                          rotation=45, ha="right", fontsize=7)  # fmt: skip
    fig.suptitle(f"{project.project}: windows by serving version")
    fig.tight_layout()
    name = f"{project.project}_windows.png"
    fig.savefig(out / name, dpi=90)
    plt.close(fig)
    return name


def to_html(markdown_text: str) -> str:
    """A small, dependency-free rendering of the report's Markdown (tables, headings, images)."""
    body, in_table = [], False
    for line in markdown_text.splitlines():
        if line.startswith("|"):
            cells = [html.escape(c.strip()) for c in line.strip("|").split("|")]
            if set("".join(cells)) <= {"-"}:
                continue
            tag = "th" if not in_table else "td"
            body.append(("<table>" if not in_table else "") + "<tr>"
                        + "".join(f"<{tag}>{c}</{tag}>" for c in cells) + "</tr>")  # fmt: skip
            in_table = True
            continue
        if in_table:
            body.append("</table>")
            in_table = False
        if line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{html.escape(line.lstrip('# '))}</h{level}>")
        elif line.startswith("!["):
            src = line[line.index("(") + 1 : -1]
            body.append(f'<img src="{html.escape(src)}" alt="{html.escape(src)}">')
        elif line:
            body.append(f"<p>{html.escape(line)}</p>")
    if in_table:
        body.append("</table>")
    style = "body{font-family:sans-serif;max-width:60em}td,th{border:1px solid #ccc;padding:4px}"
    return f"<!doctype html><title>KPI report</title><style>{style}</style>" + "\n".join(body)


def write_report(report: KpiReport, out: Path = KPI_ROOT) -> Path:
    """Write kpi.md, kpi.html, kpi.json and the plots; return the Markdown path."""
    out.mkdir(parents=True, exist_ok=True)
    plots = {p.project: name for p in report.projects if (name := plot_windows(p, out))}
    text = markdown(report, plots)
    (out / "kpi.md").write_text(text)
    (out / "kpi.html").write_text(to_html(text))
    projects = [asdict(p) | {"windows": len(p.windows)} for p in report.projects]
    facts = {"readiness": report.readiness, "coverage": report.coverage, "projects": projects}
    (out / "kpi.json").write_text(json.dumps(facts, indent=2, default=float))
    return out / "kpi.md"


def main(argv: Sequence[str] | None = None) -> int:
    parser = cli_parser(
        __doc__, prog="python -m monitoring.kpi", make="make report [PROJECT=name|path.yaml]"
    )
    parser.add_argument(
        "--projects",
        nargs="+",
        help="names or YAML paths (default: every config and every registered model)",
    )
    parser.add_argument("--out", type=Path, default=KPI_ROOT, help=f"default: {KPI_ROOT}")
    parser.add_argument(
        "--coverage",
        type=Path,
        default=COVERAGE_XML,
        help="coverage report of the last test run (default: coverage.xml at the repo root)",
    )
    parser.add_argument("--pushgateway", help="Pushgateway URL, e.g. http://127.0.0.1:9091")
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    from models.registry import RegistryError, configure_tracking

    try:
        configure_tracking(Path.cwd())
        report = build_report(args.projects, args.coverage)
        path = write_report(report, args.out)
        if args.pushgateway:
            push(args.pushgateway, "kpi", samples(report), {}, KPI_METRICS)
    except (ConfigError, PushError, RegistryError) as exc:
        return fail(exc)
    print(path.read_text().split("\n## ")[0])
    print(f"report: {path} and {path.with_suffix('.html')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
