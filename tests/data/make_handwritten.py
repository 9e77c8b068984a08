"""Writes handwritten_sessions.jsonl: sessions written by hand in the original design's schema, worded unlike the
built-in generator, with no `scenario` label. The true fault of each is in handwritten_truth.json; the tests
check that label inference recovers it. Run: python tests/data/make_handwritten.py"""

import json
from pathlib import Path

HERE = Path(__file__).resolve().parent
T0 = "2026-06-01T09:00:00+00:00"
T1 = "2026-06-01T09:40:00+00:00"

SESSIONS = [
    ("paymentFailure",
     ["Roughly half of all purchase attempts end in an error page", "payment pod logs show token validation errors"],
     ["payment", "checkout", "frontend"],
     {"traces": {"payment.charge": {"error_pct": 48}}, "logs": ["Payment request failed. Invalid token."]},
     ["Payment request failed. Invalid token."],
     "Card charges are being declined by the payment service because it considers the token invalid for about "
     "half of requests; checkout just propagates the failure."),
    ("paymentFailure",
     ["Checkout success rate down to 70%", "errors concentrated on premium (gold) loyalty customers"],
     ["checkout", "payment"],
     {"metrics": {"checkout_success_ratio": 0.7}, "traces": {"PaymentService/Charge": "status ERROR on 30%"}},
     [],
     "The payment charge step throws an exception for a subset of users - all of them gold tier - before the "
     "card is validated. This is the payment failure flag at 25%."),
    ("paymentUnreachable",
     ["All orders failing since 14:02", "payment service dashboards show zero requests"],
     ["checkout", "payment", "frontend"],
     {"traces": {"checkout.PlaceOrder": {"error_pct": 100}, "payment": {"requests": 0}},
      "logs": ["rpc error: code = Unavailable desc = name resolver error: produced zero addresses"]},
     ["code = Unavailable desc = name resolver error"],
     "Checkout is trying to call the payment backend at an address that does not resolve, so no request ever "
     "arrives; payment is healthy but unreachable."),
    ("paymentUnreachable",
     ["checkout cannot talk to payment"], ["checkout", "payment"],
     {"logs": ["dial tcp: lookup badAddress: no such host"]}, ["lookup badAddress: no such host"],
     "Misconfigured payment endpoint in checkout (points to badAddress), making payment unreachable."),
    ("productCatalogFailure",
     ["Product page of one telescope (OLJCESPC7Z) returns 500", "Orders including that SKU fail"],
     ["product-catalog", "frontend", "checkout"],
     {"traces": {"ProductCatalogService/GetProduct": {"failing_ids": ["OLJCESPC7Z"]}}}, [],
     "The catalog service refuses lookups for that single product id while all other products work; it is the "
     "injected catalog failure."),
    ("productCatalogFailure",
     ["grpc INTERNAL from catalog for some product lookups"], ["product-catalog", "frontend"],
     {"logs": ["Product Catalog Fail Feature Flag Enabled"]}, ["Product Catalog Fail Feature Flag Enabled"],
     "productCatalogFailure is on: GetProduct for id OLJCESPC7Z fails."),
    ("cartFailure",
     ["Users cannot clear their shopping cart", "cart service errors when emptying"],
     ["cart", "frontend"],
     {"logs": ["Wasn't able to connect to redis"], "traces": {"CartService/EmptyCart": {"error_pct": 40}}},
     ["Wasn't able to connect to redis"],
     "Emptying carts fails because the cart service connects to a bad Redis (Valkey) instance on that code path; "
     "adding items still works."),
    ("failedReadinessProbe",
     ["Cart endpoints removed from the Kubernetes service", "frontend gets 'no healthy upstream' for cart calls"],
     ["cart", "frontend", "checkout"],
     {"k8s": {"cart": "0/1 ready"}, "logs": ["no healthy upstream"]}, ["no healthy upstream"],
     "The cart pods fail their readiness probe (health check returns NOT_SERVING), so Kubernetes stops routing "
     "traffic to them even though the service code itself works."),
    ("adFailure",
     ["Advertisement widget intermittently missing", "about one in ten ad requests fails"],
     ["ad", "frontend"],
     {"traces": {"AdService/GetAds": {"error_pct": 10, "p95_ms": 40}}},
     ["GetAds Failed with status Status{code=UNAVAILABLE}"],
     "The ads backend randomly returns UNAVAILABLE for roughly 10% of ad requests; there is no resource "
     "problem."),
    ("adHighCpu",
     ["Ad service CPU pinned at 100% of its limit", "ad responses slow, no errors"],
     ["ad", "frontend"],
     {"metrics": {"ad_cpu_pct": 100}, "traces": {"GetAds": {"p95_ms": 2400}}}, [],
     "Runaway busy-loop threads inside the ad service are saturating its CPU, which slows every ad request."),
    ("adManualGc",
     ["Ads take 3-4 seconds", "JVM of the ad service shows long stop-the-world pauses"],
     ["ad", "frontend"],
     {"metrics": {"jvm_gc_pause_ms": 3400, "heap_used_pct": 91}},
     ["performing a manual gc now"],
     "The ad service triggers full garbage collections on each request, causing multi-second pauses."),
    ("recommendationCacheFailure",
     ["Recommendation service memory grows linearly, pod restarted twice", "recommendations slower each hour"],
     ["recommendation", "frontend"],
     {"metrics": {"recommendation_rss_mb": [210, 320, 460]}, "logs": ["get_product_list: cache miss"]},
     ["get_product_list: cache miss"],
     "A cache in the recommendation service never evicts entries and leaks memory until the container is "
     "OOM-killed."),
    ("emailMemoryLeak",
     ["Confirmation emails sometimes not sent", "email container OOMKilled repeatedly"],
     ["email", "checkout"],
     {"metrics": {"email_memory_mb": 99}, "logs": ["failed to send order confirmation"]},
     ["failed to send order confirmation: connection refused"],
     "The email sender retains every message it has sent in memory, so it runs out of memory and restarts; "
     "orders themselves complete."),
    ("kafkaQueueProblems",
     ["Fraud checks lag hours behind orders", "orders topic receives about 100 messages per order"],
     ["kafka", "fraud-detection", "checkout"],
     {"metrics": {"consumer_lag_fraud_detection": 52000}},
     ["overloading queue now"],
     "The Kafka orders queue is overloaded by duplicate publishes from checkout while the fraud-detection "
     "consumer processes slowly, so lag builds up."),
    ("imageSlowLoad",
     ["Product thumbnails take 10 seconds to appear", "no errors; image server itself responds fast"],
     ["frontend-proxy", "frontend-web"],
     {"traces": {"envoy /images": {"p95_s": 10.2}, "image-provider": {"p95_ms": 3}}}, [],
     "The Envoy proxy is injecting an artificial delay on product image requests."),
    ("intlShippingSlowdown",
     ["Orders to Canada and Germany take 5 extra seconds", "domestic US orders unaffected"],
     ["shipping", "checkout"],
     {"traces": {"shipping /ship-order": {"p95_s": 5.3, "only": "non-US"}}}, [],
     "Shipping deliberately waits several seconds before booking shipments to non-US addresses."),
    ("loadGeneratorVUs",
     ["Request volume 10x normal across every service", "no new error types"],
     ["frontend-proxy", "frontend", "checkout", "product-catalog"],
     {"metrics": {"rps_frontend_proxy": 950, "baseline_rps": 95}}, [],
     "A traffic surge generated by the load generator, which was configured with many more virtual users; "
     "nothing is broken."),
    ("loadGeneratorTraffic",
     ["Traffic dropped to zero at 03:00", "no errors anywhere"],
     ["load-generator", "frontend-proxy"],
     {"metrics": {"rps_frontend_proxy": 0}}, [],
     "The synthetic load generator stopped sending requests (its traffic was paused), so the drop is expected."),
    ("none",
     ["Currency conversions fail and the currency pod restarts every few minutes"],
     ["currency", "frontend"],
     {"k8s": {"currency": "CrashLoopBackOff"}}, ["std::bad_alloc"],
     "Unknown - this is not one of the known failure modes; needs investigation of the currency crash."),
    ("none",
     ["The quote service returns HTTP 500 for every request after the PHP upgrade"],
     ["quote", "shipping"],
     {"logs": ["PHP Fatal error: Uncaught TypeError"]}, ["PHP Fatal error: Uncaught TypeError"],
     "No known fault matches: the quote service breaks after an upgrade; needs investigation."),
]


def main() -> None:
    records, truth = [], {}
    for index, (fault, symptoms, services, telemetry, signatures, root_cause) in enumerate(SESSIONS):
        session_id = f"hand-{index:03d}"
        truth[session_id] = fault
        records.append({
            "id": session_id, "timestamp": "2026-06-01T10:00:00+00:00", "telemetry_context": telemetry,
            "service_topology": {services[0]: services[1:]}, "time_range": [T0, T1], "symptoms": symptoms,
            "affected_services": services, "error_signatures": signatures, "root_cause": root_cause,
            "diagnostic_query": f"SELECT SpanName, count() FROM otel_traces WHERE ServiceName = '{services[0]}' "
                                "GROUP BY SpanName",
            "critical_paths": [services[::-1]], "remediation_steps": ["Investigate and roll back."],
            "human_validated": True, "confidence_score": 0.9, "corrections": None, "expert_notes": None,
            "time_to_identification": 600.0, "human_prompts_required": 2, "false_hypotheses": []})
    (HERE / "handwritten_sessions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (HERE / "handwritten_truth.json").write_text(json.dumps(truth, indent=1) + "\n")


if __name__ == "__main__":
    main()
