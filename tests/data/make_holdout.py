"""Writes holdout_sessions.jsonl: a second set of sessions written by hand in the original design's schema,
never used to tune the generator, the model or the defaults (the first set, handwritten_sessions.jsonl,
was looked at while choosing them). Each is worded and laid out as its writer would, some with the log line
the real service writes, some with only symptoms; no `scenario` label. The true fault of each is in
holdout_truth.json. Run: python tests/data/make_holdout.py"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
T0, T1 = "2026-09-14T02:10:00+00:00", "2026-09-14T02:55:00+00:00"
QUERY = "SELECT ServiceName, countIf(StatusCode = 'Error') FROM otel_traces GROUP BY ServiceName"

# (truth, symptoms, affected, telemetry_context, error_signatures, root_cause, topology)
SESSIONS = [
    ("paymentFailure",
     ["Spike of failed purchases, roughly a third", "Only customers with gold loyalty status seem affected"],
     ["payment", "checkout"],
     {"spans": [{"name": "oteldemo.PaymentService/Charge", "status": "ERROR", "share": "0.33",
                 "attrs": {"app.loyalty.level": "gold"}}]},
     ["Payment request failed. Invalid token."],
     "Payment service rejects charge requests as having an invalid token for gold-tier users; checkout bubbles "
     "the error up to the buyer.", {"checkout": ["payment"]}),
    ("paymentFailure",
     ["PlaceOrder errors 'could not charge the card'", "card provider dashboards look fine"],
     ["checkout", "payment", "frontend"],
     {"checkout": {"errors_per_min": 41}, "payment": {"errors_per_min": 39, "p99": "180ms"}},
     ["could not charge the card: rpc error: code = Unknown desc = Payment request failed. Invalid token."],
     "The charge call fails inside the payment service itself (token rejected), not in the provider.",
     {"frontend": ["checkout"], "checkout": ["payment"]}),
    ("paymentUnreachable",
     ["100% of checkouts fail", "payment service has no incoming traffic at all"],
     ["checkout", "payment"],
     {"dns": "lookup of 'badAddress' fails", "payment_rps": 0.0, "checkout_error_rate": 1.0},
     ["name resolver error: produced zero addresses"],
     "Checkout is configured with a wrong payment address and cannot reach payment; payment is idle.",
     {"checkout": ["payment"]}),
    ("productCatalogFailure",
     ["One product detail page errors, everything else in the catalog is fine", "orders with that item fail"],
     ["product-catalog", "frontend", "checkout"],
     {"failing_product": "OLJCESPC7Z", "grpc_status": "INTERNAL", "db_latency_ms": 4},
     ["Product Catalog Fail Feature Flag Enabled"],
     "The catalog service deliberately fails GetProduct for product OLJCESPC7Z; the DB is healthy.",
     {"frontend": ["product-catalog"], "checkout": ["product-catalog"]}),
    ("cartFailure",
     ["'Empty cart' button throws an error for some shoppers", "adding to cart is fine"],
     ["cart", "frontend"],
     {"logs": {"cart": ["Wasn't able to connect to redis"]}, "ops": {"EmptyCart": "err 12%", "AddItem": "ok"}},
     ["Can't access cart storage"],
     "Cart's EmptyCart path talks to a broken Valkey/Redis connection and fails intermittently.",
     {"frontend": ["cart"], "cart": ["valkey-cart"]}),
    ("failedReadinessProbe",
     ["cart service shows 0 ready endpoints", "frontend: upstream connect error / no healthy upstream for cart"],
     ["cart", "frontend"],
     {"kubernetes": {"deployment/cart": {"ready": "0/1", "restarts": 0}}, "healthcheck": "NOT_SERVING"},
     ["no healthy upstream"],
     "The cart pod reports NOT_SERVING on its health endpoint, readiness fails, so Kubernetes removes it from "
     "the Service even though cart itself still works.", {"frontend": ["cart"]}),
    ("adFailure",
     ["ad banner missing on about one page in ten", "no latency change"],
     ["ad", "frontend"],
     {"ad": {"GetAds_errors": "~10%", "cpu": "normal"}},
     ["GetAds Failed with status Status{code=UNAVAILABLE}"],
     "Ad service returns UNAVAILABLE for a tenth of ad requests; nothing else is wrong.", {"frontend": ["ad"]}),
    ("adHighCpu",
     ["ad container pinned at its CPU limit", "ad responses 4x slower, no errors"],
     ["ad"],
     {"container_cpu_usage": {"ad": "100% of limit"}, "GetAds_p95_ms": 820},
     ["High CPU-Load problempattern enabled"],
     "Busy threads in the ad service burn all its CPU, slowing ad lookups.", {"frontend": ["ad"]}),
    ("adManualGc",
     ["ads take several seconds to appear", "JVM heap near max on the ad service, long GC pauses"],
     ["ad", "frontend"],
     {"jvm": {"ad": {"gc_pause_ms": 1900, "heap_used_pct": 97}}},
     ["The artificially triggered GCs took: 1900 ms"],
     "The ad service triggers full garbage collections on every request, pausing each one for seconds.",
     {"frontend": ["ad"]}),
    ("recommendationCacheFailure",
     ["recommendation memory grows steadily, then the pod is OOMKilled", "latency of recommendations creeps up"],
     ["recommendation"],
     {"memory_mb": {"recommendation": [180, 260, 410, 590]}, "restarts": {"recommendation": 2}},
     ["get_product_list: cache miss"],
     "The recommendation service's product cache keeps growing on every miss and never evicts, leaking memory "
     "until it gets killed.", {"frontend": ["recommendation"], "recommendation": ["product-catalog"]}),
    ("emailMemoryLeak",
     ["order confirmation mails stop intermittently", "email pod restarted by OOM killer twice"],
     ["email", "checkout"],
     {"email": {"rss": "climbing", "oom_kills": 2}, "checkout": {"warnings": "could not send confirmation"}},
     ["failed to send order confirmation"],
     "Email keeps every confirmation it sends in memory, leaks until OOM; orders themselves still go through.",
     {"checkout": ["email"]}),
    ("kafkaQueueProblems",
     ["fraud detection is hours behind", "accounting shows the same order several times"],
     ["kafka", "fraud-detection", "accounting", "checkout"],
     {"consumer_lag": {"fraud-detection/orders": 48000}, "produce_rate_orders": "10x normal"},
     ["overloading queue now"],
     "Checkout floods the orders topic with duplicate messages while the fraud-detection consumer processes "
     "slowly, so lag builds up on Kafka.", {"checkout": ["kafka"], "kafka": ["fraud-detection", "accounting"]}),
    ("imageSlowLoad",
     ["product pictures take 5+ seconds to show up", "image server itself answers in a few ms"],
     ["frontend-proxy", "image-provider"],
     {"envoy": {"route": "/images/products", "p95": "5.2s", "status": 200}, "image-provider": {"p95": "6ms"}},
     ["x-envoy-fault-delay-request"],
     "The Envoy front proxy injects an artificial delay on image requests; the image backend is fast.",
     {"frontend-proxy": ["image-provider"]}),
    ("intlShippingSlowdown",
     ["checkout very slow for customers outside the US", "US orders normal"],
     ["shipping", "checkout"],
     {"ship-order latency": {"country!=US": "7.5 s", "country=US": "40 ms"}},
     ["Delaying international shipment"],
     "The shipping service sleeps for several seconds for every non-US shipment.", {"checkout": ["shipping"]}),
    ("loadGeneratorVUs",
     ["request rate across the shop up ~8x in minutes", "no new error types, latency up on busy services"],
     ["load-generator", "frontend-proxy", "frontend"],
     {"rps": {"frontend-proxy": {"before": 40, "after": 330}}, "k6_vus": 50},
     [],
     "Synthetic load was increased: the load generator now runs many more virtual users; not a code bug.",
     {"load-generator": ["frontend-proxy"]}),
    ("loadGeneratorTraffic",
     ["traffic dropped to nearly zero everywhere", "no errors, no alerts besides low volume"],
     ["load-generator", "frontend-proxy"],
     {"requests_per_second": {"frontend-proxy": 0.1, "checkout": 0.0}},
     [],
     "The load generator stopped sending its synthetic traffic; nothing is broken.",
     {"load-generator": ["frontend-proxy"]}),
    ("none",
     ["currency conversions fail after the 14:00 release", "currency container exits with code 139"],
     ["currency", "frontend"],
     {"k8s_events": ["Back-off restarting failed container currency"]},
     ["Segmentation fault (core dumped)"],
     "Unknown: the new currency build segfaults on startup; needs investigation by the currency owners.",
     {"frontend": ["currency"]}),
    ("none",
     ["quote service p95 went from 30 ms to 2 s", "quote database CPU at 100%"],
     ["quote", "shipping"],
     {"quote": {"p95_ms": 2000}, "db": {"cpu": "100%"}},
     [],
     "Needs investigation: quote slowed down with its database saturated, no known fault matches.",
     {"shipping": ["quote"]}),
]


def main() -> None:
    records, truth = [], {}
    for i, (fault, symptoms, affected, telemetry, signatures, root_cause, topology) in enumerate(SESSIONS):
        sid = f"holdout-{i:03d}"
        truth[sid] = fault
        records.append({
            "id": sid, "timestamp": "2026-09-14T03:05:00+00:00", "telemetry_context": telemetry,
            "service_topology": topology, "time_range": [T0, T1], "symptoms": symptoms,
            "affected_services": affected, "error_signatures": signatures, "root_cause": root_cause,
            "diagnostic_query": QUERY,
            "critical_paths": [list(reversed(affected))], "remediation_steps": ["Roll back the change."],
            "human_validated": True, "confidence_score": 0.85, "corrections": None, "expert_notes": None,
            "time_to_identification": 900.0, "human_prompts_required": 3, "false_hypotheses": []})
    (HERE / "holdout_sessions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    (HERE / "holdout_truth.json").write_text(json.dumps(truth, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
