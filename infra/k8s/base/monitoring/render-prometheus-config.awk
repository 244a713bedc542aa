# Renders monitoring/prometheus/prometheus.yml, the platform's one scrape config (mounted
# unchanged from the ConfigMap prometheus-config), for the cluster. Like the local stack
# (monitoring/stack.py), it changes only where three jobs scrape; every other line is copied:
#   job pushgateway: its static target becomes ENVIRON["PUSHGATEWAY_TARGET"];
#   job triton:      its static target 127.0.0.1:PORT becomes dns_sd_configs on the A records
#                    of ENVIRON["TRITON_METRICS_DNS"] (a headless Service: one target per
#                    serving pod, however many the autoscaler runs), same PORT;
#   job gateway:     the same with ENVIRON["GATEWAY_METRICS_DNS"] (the gateway runs in the
#                    serving pod beside Triton), same PORT.
#   job prometheus:  unchanged (127.0.0.1:9090 is Prometheus itself, in its own pod).
# Exits 1, naming what it did not find, when the file no longer has that shape: the init
# container then fails loudly instead of Prometheus scraping nothing. POSIX awk (busybox in
# the Prometheus image; the unit tests run this file with the system awk).
BEGIN {
    dns["triton"] = ENVIRON["TRITON_METRICS_DNS"]
    dns["gateway"] = ENVIRON["GATEWAY_METRICS_DNS"]
    if (ENVIRON["PUSHGATEWAY_TARGET"] == "" || dns["triton"] == "" || dns["gateway"] == "") {
        print "render: set PUSHGATEWAY_TARGET, TRITON_METRICS_DNS and GATEWAY_METRICS_DNS" > "/dev/stderr"
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
(job in dns) && /^[ \t]*static_configs:[ \t]*$/ {
    indent = $0
    sub(/static_configs:.*/, "", indent)
    print indent "dns_sd_configs:"
    sd[job]++
    next
}
(job in dns) && /^[ \t]*- targets: \["127\.0\.0\.1:[0-9]+"\][ \t]*$/ {
    indent = $0
    sub(/-.*/, "", indent)
    port = $0
    sub(/.*:/, "", port)
    sub(/".*/, "", port)
    print indent "- names: [\"" dns[job] "\"]"
    print indent "  type: A"
    print indent "  port: " port
    targets[job]++
    next
}
{ print }
END {
    if (failed) exit 1
    if (pushgateway != 1) {
        print "render: expected one static target 127.0.0.1:PORT in job pushgateway" > "/dev/stderr"
        exit 1
    }
    for (name in dns) {
        if (sd[name] != 1 || targets[name] != 1) {
            print "render: expected static_configs with one target 127.0.0.1:PORT in job " name > "/dev/stderr"
            exit 1
        }
    }
}
