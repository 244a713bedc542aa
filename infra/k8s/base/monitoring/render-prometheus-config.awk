# Renders monitoring/prometheus/prometheus.yml, the platform's one scrape config (mounted
# unchanged from the ConfigMap prometheus-config), for the cluster. Like the local stack
# (monitoring/stack.py), it changes only where two jobs scrape; every other line is copied:
#   job pushgateway: its static target becomes ENVIRON["PUSHGATEWAY_TARGET"];
#   job triton:      its static target 127.0.0.1:PORT becomes dns_sd_configs on the A records
#                    of ENVIRON["TRITON_METRICS_DNS"] (a headless Service: one target per
#                    Triton pod, however many the autoscaler runs), same PORT.
#   job prometheus:  unchanged (127.0.0.1:9090 is Prometheus itself, in its own pod).
# Exits 1, naming what it did not find, when the file no longer has that shape: the init
# container then fails loudly instead of Prometheus scraping nothing. POSIX awk (busybox in
# the Prometheus image; the unit tests run this file with the system awk).
BEGIN {
    if (ENVIRON["PUSHGATEWAY_TARGET"] == "" || ENVIRON["TRITON_METRICS_DNS"] == "") {
        print "render: set PUSHGATEWAY_TARGET and TRITON_METRICS_DNS" > "/dev/stderr"
        failed = 1
        exit 1
    }
}
/^[ \t]*- job_name:/ {
    job = $0
    sub(/^[ \t]*- job_name:[ \t]*/, "", job)
    gsub(/["' \t]/, "", job)
}
job == "pushgateway" && /^[ \t]*- targets: \["127\.0\.0\.1:[0-9]+"\][ \t]*$/ {
    indent = $0
    sub(/-.*/, "", indent)
    print indent "- targets: [\"" ENVIRON["PUSHGATEWAY_TARGET"] "\"]"
    pushgateway++
    next
}
job == "triton" && /^[ \t]*static_configs:[ \t]*$/ {
    indent = $0
    sub(/static_configs:.*/, "", indent)
    print indent "dns_sd_configs:"
    triton_sd++
    next
}
job == "triton" && /^[ \t]*- targets: \["127\.0\.0\.1:[0-9]+"\][ \t]*$/ {
    indent = $0
    sub(/-.*/, "", indent)
    port = $0
    sub(/.*:/, "", port)
    sub(/".*/, "", port)
    print indent "- names: [\"" ENVIRON["TRITON_METRICS_DNS"] "\"]"
    print indent "  type: A"
    print indent "  port: " port
    triton++
    next
}
{ print }
END {
    if (failed) exit 1
    if (pushgateway != 1) {
        print "render: expected one static target 127.0.0.1:PORT in job pushgateway" > "/dev/stderr"
        exit 1
    }
    if (triton_sd != 1 || triton != 1) {
        print "render: expected static_configs with one target 127.0.0.1:PORT in job triton" > "/dev/stderr"
        exit 1
    }
}
