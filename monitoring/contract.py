"""The metric contract between the monitor, the KPI job, Triton, alert rules and dashboards.

The monitor pushes its gauges to the Pushgateway under job `monitor` with the grouping label
`project`; the KPI job pushes under job `kpi`. Triton's own metrics are scraped from its
metrics port (names verified against tritonserver 2.51 started with
`--metrics-config=summary_latencies=true`). Alert rules and dashboards may only use the
names in `METRIC_NAMES` (tests/unit/monitoring/test_rules.py checks it).
"""

from __future__ import annotations

from serving import deploy as deploy_metrics

MONITOR_JOB = "monitor"
KPI_JOB = "kpi"
GROUPING_LABEL = "project"

# name -> labels besides the grouping label `project` (job/instance are added by the scrape).
MONITOR_METRICS: dict[str, tuple[str, ...]] = {
    "mlops_window_end_timestamp_seconds": (),
    "mlops_window_rows": (),
    "mlops_window_labelled_rows": (),
    "mlops_serving_model_version": (),
    "mlops_drift_share": (),
    "mlops_dataset_drift": (),  # 0 or 1
    "mlops_feature_drift_score": ("feature", "method"),
    "mlops_feature_drift_detected": ("feature",),
    "mlops_prediction_drift_score": (),
    # model: champion|baseline; metric: f1|pr_auc|roc_auc
    "mlops_model_quality": ("metric", "model"),
    "mlops_model_quality_vs_baseline_pct": ("metric", "primary"),  # primary: "true"|"false"
    # Evidence behind the quality numbers (primary metric only; labelled windows only):
    # positives among the labelled rows; 1 when they reach monitoring.min_positives, else 0;
    # paired bootstrap bounds of each model's metric (bound: low|high) and of the champion's
    # gain over the baseline on the metric's scale (bound: estimate|low|high).
    "mlops_window_positives": (),
    "mlops_quality_evidence_sufficient": (),
    "mlops_model_quality_interval": ("metric", "model", "bound"),
    "mlops_model_quality_gain": ("metric", "bound"),
    # Attribution drift (monitoring/attribution.py): 1 when the served version's attributions
    # were measured on the window, 0 when they could not be (then none of the others is
    # pushed); rows explained; mean |SHAP| and rank (1 = most attributed) per raw feature of
    # the window and of the version's training reference (source: window|reference); the
    # verdict of the ranking rule (0/1), Spearman's rank correlation and the shared share of
    # the top k.
    "mlops_attribution_available": (),
    "mlops_attribution_sampled_rows": (),
    "mlops_attribution_mean_abs": ("feature", "source"),
    "mlops_attribution_rank": ("feature", "source"),
    "mlops_attribution_rank_changed": (),
    "mlops_attribution_rank_correlation": (),
    "mlops_attribution_top_k_overlap": (),
    "mlops_input_missing_values": ("feature",),
    "mlops_input_unseen_categories": ("feature",),
    "mlops_monitor_last_success_timestamp_seconds": (),
}

SHADOW_JOB = "shadow"
# name -> labels besides the grouping label `project`, pushed under job `shadow` by the
# monitor (monitoring/shadow.py): the labelled rows both the champion and the shadow
# challenger scored, their positives, the primary metric of each (model: champion|challenger)
# and the challenger's paired gain (bound: estimate|low|high), and 1 when the rows suffice.
SHADOW_METRICS: dict[str, tuple[str, ...]] = {
    "mlops_shadow_labelled_rows": ("champion", "challenger"),
    "mlops_shadow_positives": ("champion", "challenger"),
    "mlops_shadow_quality": ("metric", "model", "champion", "challenger"),
    "mlops_shadow_gain": ("metric", "bound", "champion", "challenger"),
    "mlops_shadow_evidence_sufficient": ("champion", "challenger"),
}

CANARY_JOB = "canary"
# name -> labels besides the grouping label `project`, pushed under job `canary` by the canary
# controller (monitoring/canary.py) after each decision: the share of requests routed to the
# canary challenger (0 once promoted or rolled back), and its state (1 for the current one of
# running|promoted|rolled_back).
CANARY_METRICS: dict[str, tuple[str, ...]] = {
    "mlops_canary_share": ("champion", "challenger"),
    "mlops_canary_state": ("state", "champion", "challenger"),
}

# name -> labels (pushed under job `kpi`; `project` is a plain label here, not a grouping key).
KPI_METRICS: dict[str, tuple[str, ...]] = {
    "mlops_kpi_projects_total": (),
    "mlops_kpi_projects_monitored": (),
    "mlops_kpi_production_readiness_ratio": (),
    "mlops_kpi_model_performance_vs_baseline_pct": ("project",),
    "mlops_kpi_deployment_lead_time_seconds": ("project",),
    "mlops_kpi_test_coverage_ratio": (),
}

# Triton's per-model metrics (labels model, version; failures also carry `reason`:
# OTHER|BACKEND|CANCELED|REJECTED). Counters are cumulative since the model loaded; the
# *_summary_us families are summaries with quantile 0.5|0.9|0.95|0.99|0.999.
TRITON_METRICS: dict[str, tuple[str, ...]] = {
    "nv_inference_request_success": ("model", "version"),
    "nv_inference_request_failure": ("model", "version", "reason"),
    "nv_inference_count": ("model", "version"),
    "nv_inference_exec_count": ("model", "version"),
    "nv_inference_request_duration_us": ("model", "version"),
    "nv_inference_queue_duration_us": ("model", "version"),
    "nv_inference_compute_infer_duration_us": ("model", "version"),
    "nv_inference_request_summary_us": ("model", "version", "quantile"),
    "nv_inference_queue_summary_us": ("model", "version", "quantile"),
}

# The deploy sidecar's metrics are declared where it pushes them (the serving floor).
DEPLOY_METRICS = deploy_metrics.DEPLOY_METRICS

METRIC_NAMES: frozenset[str] = (
    frozenset(MONITOR_METRICS)
    | frozenset(KPI_METRICS)
    | frozenset(TRITON_METRICS)
    | frozenset(DEPLOY_METRICS)
    | frozenset(SHADOW_METRICS)
    | frozenset(CANARY_METRICS)
)
