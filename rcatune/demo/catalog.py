"""Fault scenarios of the OpenTelemetry Demo (Astronomy Shop), curated from `otel_demo_facts.json`.

Each scenario is one flagd feature flag of the demo: the component at fault, what it does, how it
shows in traces, metrics and logs, who is affected, the critical paths it breaks, how to fix it and
the wrong turns people take. Templates use `{v}` (variant label), `{pct}` (observed error %),
`{ms}` / `{secs}` (observed latency) and `{n}` (a count); the generator fills them with seeded noise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Query:
    """A diagnostic query shape, rendered to ClickHouse SQL by `rcatune.demo.queries`."""

    kind: str  # error_rate | latency | logs | attribute | traffic | metric
    services: tuple[str, ...]
    span: str = ""
    text: str = ""
    attribute: str = ""
    metric: str = ""


@dataclass(frozen=True)
class Scenario:
    flag: str
    service: str
    mechanism: str  # short label of the failure mechanism, used in exact-match scoring
    variants: tuple[tuple[str, float], ...]
    root_causes: tuple[str, ...]
    symptoms: tuple[str, ...]
    extra_symptoms: tuple[str, ...]
    error_signatures: tuple[str, ...]
    affected: tuple[str, ...]
    paths: tuple[tuple[str, ...], ...]
    remediation: tuple[str, ...]
    queries: tuple[Query, ...]
    false_hypotheses: tuple[str, ...]
    difficulty: float = 1.0  # scales time to identification
    error_rate: bool = False  # True when {pct} tracks the variant value
    latency_secs: bool = False  # True when {secs} tracks the variant value


CHECKOUT_PATH = ("frontend-proxy", "frontend", "checkout")

SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        flag="productCatalogFailure",
        service="product-catalog",
        mechanism="GetProduct fails for one product id",
        variants=(("on", 1.0),),
        root_causes=(
            "product-catalog returns gRPC INTERNAL 'Product Catalog Fail Feature Flag Enabled' from GetProduct "
            "for the single product id OLJCESPC7Z (flag productCatalogFailure on); every other product and "
            "ListProducts work, so pages and checkouts fail only when that product is involved.",
            "The productCatalogFailure flag makes product-catalog GetProduct fail for product OLJCESPC7Z "
            "before the database is queried; frontend and checkout surface it as HTTP 500 and failed orders "
            "for carts that contain that item.",
            "A per-product fault in product-catalog: GetProduct for id OLJCESPC7Z errors with status 13 "
            "(INTERNAL) because productCatalogFailure is enabled; the database and other ids are healthy.",
        ),
        symptoms=(
            "product-catalog GetProduct error rate {pct}% and all failing spans carry demo.product.id=OLJCESPC7Z",
            "frontend GET /api/products/OLJCESPC7Z returns HTTP 500 while other product pages load",
            "checkout PlaceOrder fails with 'failed to prepare order: failed to get product #\"OLJCESPC7Z\"'",
        ),
        extra_symptoms=(
            "span event 'Error: Product Catalog Fail Feature Flag Enabled' on oteldemo.ProductCatalogService/GetProduct",
            "frontend /api/recommendations and /api/cart spans show errors when OLJCESPC7Z is in the list",
            "rpc.grpc.status_code 13 on product-catalog server spans",
        ),
        error_signatures=(
            "Error: Product Catalog Fail Feature Flag Enabled",
            "failed to prepare order: failed to get product #\"OLJCESPC7Z\"",
        ),
        affected=("product-catalog", "frontend", "checkout", "frontend-proxy"),
        paths=(
            ("frontend-proxy", "frontend", "product-catalog"),
            ("frontend-proxy", "frontend", "checkout", "product-catalog"),
        ),
        remediation=(
            "Turn the productCatalogFailure flag off in flagd-ui (/feature) or set its targeting back to 'off'.",
            "Confirm GetProduct errors for OLJCESPC7Z drop to zero and checkouts with that item succeed.",
            "In a real system: roll back the bad catalog change for that SKU or hide the product until fixed.",
        ),
        queries=(
            Query("attribute", ("product-catalog",), span="oteldemo.ProductCatalogService/GetProduct",
                  attribute="demo.product.id"),
            Query("error_rate", ("product-catalog", "frontend", "checkout")),
            Query("logs", ("checkout",), text="failed to get product"),
        ),
        false_hypotheses=(
            "astronomy-db PostgreSQL is overloaded or down",
            "a bad frontend release broke the product page",
            "currency Convert is failing for product prices",
            "network problems between frontend and product-catalog",
        ),
        difficulty=1.1,
    ),
    Scenario(
        flag="paymentFailure",
        service="payment",
        mechanism="Charge rejects a share of requests with Invalid token",
        variants=(("10%", 0.1), ("25%", 0.25), ("50%", 0.5), ("75%", 0.75), ("90%", 0.95), ("100%", 1.0)),
        root_causes=(
            "payment rejects about {v} of Charge requests with 'Payment request failed. Invalid token.' "
            "(flag paymentFailure at {v}); checkout cannot charge the card, so those orders fail with HTTP 500.",
            "The paymentFailure flag ({v}) makes the payment service throw 'Invalid token' in charge() before card "
            "validation; the failing charge spans all carry demo.user_context.loyalty_level=gold.",
            "Payment service fault: a {v} share of Charge calls errors with an invalid-token exception "
            "(paymentFailure enabled), which propagates to checkout PlaceOrder and the frontend checkout API.",
        ),
        symptoms=(
            "payment Charge error rate about {pct}% with exception 'Payment request failed. Invalid token.'",
            "checkout PlaceOrder returns INTERNAL 'failed to charge card' for about {pct}% of orders",
            "frontend POST /api/checkout returns HTTP 500 for a share of checkouts",
        ),
        extra_symptoms=(
            "every failing charge span has demo.user_context.loyalty_level=gold",
            "demo_payment_transactions_total rate drops while browsing and cart traffic are normal",
            "no shipping /ship-order, email or Kafka publish after the failed charges",
            "latency of payment Charge is unchanged",
        ),
        error_signatures=(
            "Payment request failed. Invalid token. demo.user_context.loyalty_level=gold",
            "failed to charge card: could not charge the card",
        ),
        affected=("payment", "checkout", "frontend"),
        paths=(CHECKOUT_PATH + ("payment",),),
        remediation=(
            "Set the paymentFailure flag to off.",
            "Verify the payment Charge error rate returns to 0 and demo_payment_transactions_total recovers.",
            "In a real system: roll back the payment release or fix the token/credential problem with the provider.",
            "Check whether one customer segment (loyalty_level=gold) is targeted before closing the incident.",
        ),
        queries=(
            Query("error_rate", ("payment", "checkout")),
            Query("attribute", ("payment",), span="charge", attribute="demo.user_context.loyalty_level"),
            Query("logs", ("payment",), text="Invalid token"),
        ),
        false_hypotheses=(
            "the payment service is unreachable from checkout",
            "currency conversion returns wrong amounts",
            "cart GetCart fails during checkout",
            "a network partition between checkout and payment",
        ),
        error_rate=True,
    ),
    Scenario(
        flag="paymentUnreachable",
        service="checkout",
        mechanism="checkout dials a bad payment address",
        variants=(("on", 1.0),),
        root_causes=(
            "checkout sends Charge to the non-existent host badAddress:50051 (flag paymentUnreachable on), so every "
            "order fails with 'failed to charge card'; the payment service is healthy and simply receives no calls.",
            "Caller-side fault in checkout: with paymentUnreachable enabled it dials badAddress:50051 instead of "
            "payment, so PlaceOrder fails for all orders while payment shows no traffic and no errors.",
            "The payment endpoint used by checkout is wrong (badAddress:50051 via paymentUnreachable): the callee is "
            "fine but never reached, and all checkouts fail.",
        ),
        symptoms=(
            "checkout client span oteldemo.PaymentService/Charge fails with no child span in payment",
            "payment Charge request rate drops to 0 while payment's own error rate stays 0",
            "checkout PlaceOrder error rate about {pct}%",
        ),
        extra_symptoms=(
            "frontend POST /api/checkout returns HTTP 500",
            "grpc name-resolution error for server.address badAddress inside the PlaceOrder error",
            "shipping ship-order, email and Kafka 'orders' traffic drop to 0",
        ),
        error_signatures=(
            "failed to charge card: could not charge the card: rpc error: code = Unavailable",
            "name resolver error: produced zero addresses (badAddress:50051)",
        ),
        affected=("checkout", "frontend", "payment"),
        paths=(CHECKOUT_PATH + ("payment",),),
        remediation=(
            "Set the paymentUnreachable flag to off.",
            "Verify checkout reaches payment again: Charge server spans reappear and PlaceOrder errors stop.",
            "In a real system: fix the payment endpoint / DNS / service discovery (PAYMENT_ADDR) in checkout and "
            "check network policies.",
        ),
        queries=(
            Query("traffic", ("payment", "checkout")),
            Query("error_rate", ("checkout",), span="oteldemo.PaymentService/Charge"),
        ),
        false_hypotheses=(
            "the payment service crashed",
            "payment rejects cards with an invalid token",
            "the payment provider is rate limiting",
        ),
        difficulty=1.3,
    ),
    Scenario(
        flag="cartFailure",
        service="cart",
        mechanism="EmptyCart uses a bad Valkey connection",
        variants=(("10%", 0.1), ("25%", 0.25), ("50%", 0.5), ("75%", 0.75), ("90%", 0.9), ("100%", 1.0)),
        root_causes=(
            "cart EmptyCart fails for about {v} of calls with FAILED_PRECONDITION 'Can't access cart storage' because "
            "the cartFailure flag routes them to a bad Valkey host (badhost:1234); AddItem and GetCart keep working "
            "and orders still succeed.",
            "The cartFailure flag ({v}) sends EmptyCart to a broken Redis/Valkey store, so emptying the cart fails "
            "('Wasn't able to connect to redis'); checkout ignores the error, so only the Empty Cart button and "
            "post-order cart cleanup break.",
        ),
        symptoms=(
            "cart EmptyCart error rate about {pct}% with 'Can't access cart storage'",
            "checkout client span oteldemo.CartService/EmptyCart errors but PlaceOrder stays OK",
            "frontend DELETE /api/cart returns HTTP 500",
        ),
        extra_symptoms=(
            "failing EmptyCart calls take several seconds (connection retries)",
            "carts are not emptied after successful orders",
            "cart ERROR log 'Wasn't able to connect to redis'",
        ),
        error_signatures=(
            "Can't access cart storage. System.ApplicationException: Wasn't able to connect to redis",
        ),
        affected=("cart", "checkout", "frontend"),
        paths=(CHECKOUT_PATH + ("cart", "valkey-cart"), ("frontend-proxy", "frontend", "cart", "valkey-cart")),
        remediation=(
            "Set the cartFailure flag to off.",
            "Verify EmptyCart errors stop and carts empty after orders.",
            "In a real system: fix the bad Redis/Valkey connection string or instance on that code path and restart "
            "cart.",
        ),
        queries=(
            Query("error_rate", ("cart", "checkout"), span="oteldemo.CartService/EmptyCart"),
            Query("logs", ("cart",), text="connect to redis"),
        ),
        false_hypotheses=(
            "valkey-cart is down for every cart operation",
            "checkout orders are failing",
            "the frontend cart page has a JavaScript bug",
        ),
        error_rate=True,
    ),
    Scenario(
        flag="failedReadinessProbe",
        service="cart",
        mechanism="gRPC health check reports NOT_SERVING",
        variants=(("on", 1.0),),
        root_causes=(
            "cart's gRPC health check answers NOT_SERVING (flag failedReadinessProbe on): the RPCs themselves work, "
            "but the Kubernetes readiness probe takes the cart pods out of service, so frontend and checkout calls "
            "to cart fail with UNAVAILABLE.",
            "The failedReadinessProbe flag makes cart report not-ready; with a readiness probe the cart endpoints are "
            "removed and cart traffic drops to zero, which surfaces as 5xx on /api/cart and /api/checkout.",
        ),
        symptoms=(
            "cart traffic drops to 0 and frontend calls to cart fail with UNAVAILABLE",
            "frontend /api/cart and /api/checkout return HTTP 5xx",
            "no error spans on CartService RPCs that do reach cart",
        ),
        extra_symptoms=(
            "cart pods are NotReady and removed from the service endpoints",
            "cart INFO logs 'Received health check request for service' on every probe",
        ),
        error_signatures=(
            "grpc.health.v1 status NOT_SERVING for oteldemo.CartService",
            "rpc error: code = Unavailable desc = no healthy upstream",
        ),
        affected=("cart", "frontend", "checkout"),
        paths=(("frontend-proxy", "frontend", "cart"), CHECKOUT_PATH + ("cart",)),
        remediation=(
            "Set the failedReadinessProbe flag to off.",
            "Check kubectl describe pod / events for readiness failures and confirm cart endpoints come back.",
            "In a real system: fix the dependency the readiness check relies on.",
        ),
        queries=(
            Query("traffic", ("cart", "frontend")),
            Query("logs", ("cart",), text="health check"),
        ),
        false_hypotheses=(
            "valkey-cart lost its data",
            "cart crashed with an out-of-memory error",
            "a bad frontend release",
        ),
        difficulty=1.6,
    ),
    Scenario(
        flag="adFailure",
        service="ad",
        mechanism="GetAds fails about 1 in 10 calls with UNAVAILABLE",
        variants=(("on", 0.1),),
        root_causes=(
            "The ad service throws gRPC UNAVAILABLE in about 1 of 10 GetAds calls (flag adFailure on); the frontend "
            "ads widget request /api/data fails with HTTP 500 while the rest of the shop works.",
            "adFailure is enabled: ad GetAds randomly fails with UNAVAILABLE (~10%), which the frontend surfaces as "
            "500s on /api/data; latency and resources are unchanged.",
        ),
        symptoms=(
            "ad GetAds error rate about {pct}% with status UNAVAILABLE",
            "frontend GET /api/data returns HTTP 500 for about {pct}% of requests",
            "ad WARN log 'GetAds Failed with status Status{{code=UNAVAILABLE'",
        ),
        extra_symptoms=(
            "demo.ad.requests keeps counting during the failures",
            "no latency or CPU change on ad",
        ),
        error_signatures=("GetAds Failed with status Status{{code=UNAVAILABLE, description=null, cause=null}}",),
        affected=("ad", "frontend"),
        paths=(("frontend-proxy", "frontend", "ad"),),
        remediation=(
            "Set the adFailure flag to off.",
            "Verify ad GetAds errors stop.",
            "Make the ad call non-critical in the frontend (timeout and fallback) so ads cannot break pages.",
        ),
        queries=(
            Query("error_rate", ("ad", "frontend"), span="oteldemo.AdService/GetAds"),
            Query("logs", ("ad",), text="GetAds Failed"),
        ),
        false_hypotheses=(
            "ad is CPU starved",
            "the frontend-proxy is dropping requests",
            "a memory leak in ad",
        ),
        error_rate=True,
    ),
    Scenario(
        flag="adHighCpu",
        service="ad",
        mechanism="busy threads saturate CPU",
        variants=(("on", 1.0),),
        root_causes=(
            "The ad service runs 4 busy-spinning threads (flag adHighCpu on), pushing its JVM CPU up by several "
            "cores; GetAds and frontend /api/data get slower, with no errors.",
            "adHighCpu is enabled: a CPU-load problem pattern starts four hot threads in ad, so CPU saturates and "
            "GetAds latency climbs.",
        ),
        symptoms=(
            "ad process CPU utilisation up by about {n} cores",
            "ad GetAds p95 latency up to {ms} ms with no errors",
            "ad INFO log 'High CPU-Load problempattern enabled' on every GetAds",
        ),
        extra_symptoms=(
            "frontend /api/data slower",
            "host CPU up on the node running ad",
        ),
        error_signatures=("High CPU-Load problempattern enabled",),
        affected=("ad", "frontend"),
        paths=(("frontend-proxy", "frontend", "ad"),),
        remediation=(
            "Set the adHighCpu flag to off (the threads stop on the next GetAds).",
            "Take a thread dump or profile to find the hot threads and confirm CPU returns to baseline.",
            "In a real system: roll back, set CPU limits and scale out.",
        ),
        queries=(
            Query("latency", ("ad", "frontend"), span="oteldemo.AdService/GetAds"),
            Query("metric", ("ad",), metric="process.cpu.utilization"),
        ),
        false_hypotheses=(
            "garbage collection pauses in ad",
            "a traffic surge from the load generator",
            "a slow network between frontend and ad",
        ),
        difficulty=1.2,
    ),
    Scenario(
        flag="adManualGc",
        service="ad",
        mechanism="forced full garbage collections in the request path",
        variants=(("on", 1.0),),
        root_causes=(
            "The ad service forces full garbage collections inside the GetAds request thread (flag adManualGc on); "
            "each call fills the heap to 90% and runs System.gc(), so GetAds takes seconds.",
            "adManualGc is enabled: ad triggers manual full GCs on every GetAds, causing multi-second pauses and "
            "heap near its limit; frontend /api/data becomes slow.",
        ),
        symptoms=(
            "ad GetAds spans take {secs} s",
            "ad JVM GC count and duration spike with heap near 90%",
            "ad WARN log 'Feature Flag adManualGc enabled, performing a manual gc now'",
        ),
        extra_symptoms=(
            "frontend /api/data latency up",
            "log 'The artificially triggered GCs took: {ms} ms'",
            "possible ad restarts after OOM",
        ),
        error_signatures=("Feature Flag adManualGc enabled, performing a manual gc now",),
        affected=("ad", "frontend"),
        paths=(("frontend-proxy", "frontend", "ad"),),
        remediation=(
            "Set the adManualGc flag to off.",
            "Verify GC duration and GetAds latency return to baseline.",
            "In a real system: remove explicit System.gc() and finalizers, tune the heap and GC.",
        ),
        queries=(
            Query("latency", ("ad",), span="oteldemo.AdService/GetAds"),
            Query("logs", ("ad",), text="manual gc"),
        ),
        false_hypotheses=(
            "ad CPU saturated by busy threads",
            "a memory leak in the frontend",
            "GetAds failing with UNAVAILABLE",
        ),
        difficulty=1.2,
    ),
    Scenario(
        flag="recommendationCacheFailure",
        service="recommendation",
        mechanism="leaky in-memory cache grows without bound",
        variants=(("on", 1.0),),
        root_causes=(
            "recommendation's product-id cache leaks (flag recommendationCacheFailure on): every cache miss appends "
            "to a list that never shrinks, so memory and per-request work grow until the process is OOM-killed.",
            "A leaky cache in recommendation (recommendationCacheFailure): cached_ids grows about x1.25 per miss, "
            "ListRecommendations latency climbs and the pod restarts near its 500M memory limit.",
        ),
        symptoms=(
            "recommendation memory grows steadily toward its 500M limit",
            "ListRecommendations latency p95 grows over time to {ms} ms",
            "get_product_list spans show demo.product.count growing without bound",
        ),
        extra_symptoms=(
            "recommendation restarts (container uptime resets) and /api/recommendations fails during restarts",
            "recommendation INFO logs alternate 'get_product_list: cache miss' and 'cache hit'",
        ),
        error_signatures=("get_product_list: cache miss",),
        affected=("recommendation", "frontend"),
        paths=(("frontend-proxy", "frontend", "recommendation", "product-catalog"),),
        remediation=(
            "Set the recommendationCacheFailure flag to off.",
            "Restart recommendation to free the leaked list.",
            "In a real system: bound or evict the cache and fix the leak.",
        ),
        queries=(
            Query("latency", ("recommendation",), span="get_product_list"),
            Query("attribute", ("recommendation",), span="get_product_list", attribute="demo.product.count"),
            Query("metric", ("recommendation",), metric="process.runtime.cpython.memory"),
        ),
        false_hypotheses=(
            "product-catalog ListProducts is slow",
            "astronomy-db is slow",
            "a traffic surge",
        ),
        difficulty=1.4,
    ),
    Scenario(
        flag="emailMemoryLeak",
        service="email",
        mechanism="sent mails kept in memory",
        variants=(("1x", 1), ("10x", 10), ("100x", 100), ("1000x", 1000), ("10000x", 10000)),
        root_causes=(
            "The email service keeps every sent confirmation in memory (flag emailMemoryLeak at {v}), so its memory "
            "climbs with each order until it is OOM-killed; checkout only logs a warning and orders still succeed.",
            "emailMemoryLeak ({v}) leaks delivered mails in email (deliveries never cleared, bodies padded), "
            "memory rises per checkout toward the 100M limit and email restarts repeatedly.",
        ),
        symptoms=(
            "email container memory climbs steadily toward its 100M limit, rising with each checkout",
            "email restarts repeatedly (container uptime resets)",
            "checkout WARN 'failed to send order confirmation' while email is down",
        ),
        extra_symptoms=(
            "POST /send_order_confirmation gets slower as memory grows",
            "orders keep succeeding",
        ),
        error_signatures=("failed to send order confirmation: connection refused",),
        affected=("email", "checkout"),
        paths=(CHECKOUT_PATH + ("email",),),
        remediation=(
            "Set the emailMemoryLeak flag to off.",
            "Restart email to free memory.",
            "In a real system: fix the unbounded collection, raise memory limits short-term, roll back.",
        ),
        queries=(
            Query("metric", ("email",), metric="container.memory.usage"),
            Query("logs", ("checkout",), text="failed to send order confirmation"),
        ),
        false_hypotheses=(
            "the SMTP relay is down",
            "checkout is failing orders",
            "Kafka consumers are lagging",
        ),
        difficulty=1.3,
    ),
    Scenario(
        flag="kafkaQueueProblems",
        service="kafka",
        mechanism="producer storm and slow consumer build lag",
        variants=(("on", 100.0),),
        root_causes=(
            "checkout publishes 100 extra copies of every order to Kafka topic 'orders' while fraud-detection sleeps "
            "1 s per record (flag kafkaQueueProblems on), so consumer lag for group fraud-detection grows and "
            "accounting sees duplicate order ids; the checkout path itself keeps working.",
            "kafkaQueueProblems is enabled: checkout floods Kafka topic 'orders' with 101 messages per order while "
            "the fraud-detection consumer sleeps 1 s per record, so consumer lag spikes.",
        ),
        symptoms=(
            "Kafka consumer-group lag for fraud-detection on topic orders keeps rising",
            "topic 'orders' message rate about {n}x the order rate",
            "fraud-detection consumer spans take at least 1 s each",
        ),
        extra_symptoms=(
            "checkout INFO \"Warning: FeatureFlag 'kafkaQueueProblems' is activated, overloading queue now.\"",
            "accounting logs duplicate order ids",
            "user checkouts keep succeeding",
        ),
        error_signatures=(
            "Warning: FeatureFlag 'kafkaQueueProblems' is activated, overloading queue now.",
            "FeatureFlag 'kafkaQueueProblems' is enabled, sleeping 1 second",
        ),
        affected=("kafka", "fraud-detection", "accounting", "checkout"),
        paths=(("checkout", "kafka", "fraud-detection"), ("checkout", "kafka", "accounting")),
        remediation=(
            "Set the kafkaQueueProblems flag to off; the lag drains at the consumer's rate.",
            "In a real system: stop the producer storm (idempotent producer, dedupe), scale consumers or partitions "
            "and fix the slow consumer.",
        ),
        queries=(
            Query("latency", ("fraud-detection",), span="orders process"),
            Query("traffic", ("checkout", "fraud-detection"), span="orders publish"),
            Query("logs", ("checkout", "fraud-detection"), text="kafkaQueueProblems"),
        ),
        false_hypotheses=(
            "the Kafka broker is down",
            "accounting's PostgreSQL is slow",
            "checkout orders are failing",
        ),
        difficulty=1.4,
    ),
    Scenario(
        flag="imageSlowLoad",
        service="frontend-proxy",
        mechanism="Envoy fault delay on product images",
        variants=(("5sec", 5.0), ("10sec", 10.0)),
        root_causes=(
            "Envoy in frontend-proxy delays every product-card image request by {secs} s (flag imageSlowLoad sets "
            "x-envoy-fault-delay-request); image-provider itself stays fast and there are no errors.",
            "imageSlowLoad ({v}) injects a fault delay in frontend-proxy for /images/products/*: images load after "
            "{secs} s with HTTP 200 while nginx in image-provider answers quickly.",
        ),
        symptoms=(
            "frontend-proxy spans for /images/products/*.jpg take about {secs} s with HTTP 200",
            "browser fetch spans for product images are slow",
            "image-provider spans stay fast",
        ),
        extra_symptoms=(
            "no error rate change anywhere",
            "only product-card images are slow; the product detail main image is fast",
        ),
        error_signatures=("x-envoy-fault-delay-request header on GET /images/products",),
        affected=("frontend-proxy", "frontend-web"),
        paths=(("frontend-web", "frontend-proxy", "image-provider"),),
        remediation=(
            "Set the imageSlowLoad flag to off.",
            "In a real system: remove the fault-injection or bad proxy rule and check CDN/proxy latency.",
        ),
        queries=(
            Query("latency", ("frontend-proxy", "image-provider")),
        ),
        false_hypotheses=(
            "image-provider nginx is slow",
            "the images are too large",
            "a CDN outage",
        ),
        difficulty=1.3,
        latency_secs=True,
    ),
    Scenario(
        flag="intlShippingSlowdown",
        service="shipping",
        mechanism="ship-order sleeps for non-US addresses",
        variants=(("5sec", 5.0), ("10sec", 10.0)),
        root_causes=(
            "shipping sleeps {secs} s in /ship-order for every non-US address (flag intlShippingSlowdown at {v}), so "
            "checkouts of international customers take {secs} s longer; US orders and /get-quote are unaffected.",
            "intlShippingSlowdown adds a {secs} s delay to shipping ship_order for international orders, making "
            "checkout PlaceOrder latency bimodal with no errors.",
        ),
        symptoms=(
            "shipping /ship-order spans take about {secs} s only for non-US orders",
            "checkout PlaceOrder p99 latency up while p50 is unchanged",
            "shipping INFO 'Delaying international shipment due to intlShippingSlowdown feature flag'",
        ),
        extra_symptoms=(
            "the gap in PlaceOrder sits between the 'charged' and 'shipped' span events",
            "about 11% of synthetic checkouts slow down",
        ),
        error_signatures=("Delaying international shipment due to intlShippingSlowdown feature flag",),
        affected=("shipping", "checkout", "frontend"),
        paths=(CHECKOUT_PATH + ("shipping",),),
        remediation=(
            "Set the intlShippingSlowdown flag to off.",
            "In a real system: investigate the international carrier integration, add timeouts or make shipment "
            "booking asynchronous.",
        ),
        queries=(
            Query("latency", ("shipping", "checkout")),
            Query("logs", ("shipping",), text="Delaying international shipment"),
        ),
        false_hypotheses=(
            "quote service is slow",
            "payment Charge latency",
            "database contention in checkout",
        ),
        difficulty=1.2,
        latency_secs=True,
    ),
    Scenario(
        flag="loadGeneratorVUs",
        service="load-generator",
        mechanism="synthetic load multiplied",
        variants=(("25", 25.0), ("50", 50.0)),
        root_causes=(
            "Not a code fault: load-generator was raised to {v} virtual users (flag loadGeneratorVUs), "
            "multiplying traffic; latency and memory pressure appear in small-limit services.",
            "Traffic surge from load-generator ({v} VUs via loadGeneratorVUs): request rates rise across all "
            "services and the tight-memory services slow down; no component is broken.",
        ),
        symptoms=(
            "request rates up about {n}x across frontend-proxy and all backends",
            "latency p95 up in checkout, product-catalog and currency",
            "load-generator log 'VU flag changed, restarting k6'",
        ),
        extra_symptoms=(
            "CPU and memory up in services with 20M limits",
            "no new error signatures",
        ),
        error_signatures=("entrypoint.sh: VU flag changed (5 -> {v}), restarting k6",),
        affected=("frontend-proxy", "frontend", "checkout", "product-catalog", "currency"),
        paths=(("load-generator", "frontend-proxy", "frontend", "product-catalog"),),
        remediation=(
            "Set loadGeneratorVUs back to 5.",
            "In a real system: rate-limit or scale out the saturated services.",
        ),
        queries=(
            Query("traffic", ("frontend-proxy", "frontend", "checkout")),
        ),
        false_hypotheses=(
            "a memory leak in checkout",
            "product-catalog database regression",
        ),
        difficulty=1.1,
    ),
    Scenario(
        flag="loadGeneratorTraffic",
        service="load-generator",
        mechanism="synthetic traffic paused",
        variants=(("off", 0.0),),
        root_causes=(
            "Not a fault: load-generator synthetic traffic was paused (flag loadGeneratorTraffic off), so request rates at "
            "frontend-proxy and every backend fell to about zero without any errors.",
            "load-generator stopped sending traffic (loadGeneratorTraffic turned off); the drop in request rate "
            "is expected and no service is failing.",
        ),
        symptoms=(
            "request rate at frontend-proxy and all backends drops to about 0",
            "only load-generator 'feature_flag.evaluate' spans remain",
            "no error spans or error logs",
        ),
        extra_symptoms=(
            "load-generator logs 'Feature flag loadGeneratorTraffic evaluated to 0'",
        ),
        error_signatures=("Feature flag loadGeneratorTraffic evaluated to 0",),
        affected=("load-generator", "frontend-proxy"),
        paths=(("load-generator", "frontend-proxy", "frontend"),),
        remediation=(
            "Set loadGeneratorTraffic back to on if synthetic traffic is wanted.",
            "Check real user traffic separately before declaring an outage.",
        ),
        queries=(
            Query("traffic", ("frontend-proxy", "frontend")),
        ),
        false_hypotheses=(
            "frontend-proxy (Envoy) is down",
            "a DNS outage",
            "the OpenTelemetry collector stopped exporting",
        ),
        difficulty=1.0,
    ),
)

RED_HERRINGS: tuple[tuple[str, str], ...] = (
    ("currency", "currency Convert p99 up 8% (within its normal daily range)"),
    ("frontend-proxy", "a short burst of HTTP 404 on /favicon.ico at frontend-proxy"),
    ("valkey-cart", "valkey-cart memory at {n}0% of its limit, flat over the window"),
    ("ad", "one ad GC pause of 120 ms"),
    ("quote", "quote /getquote p95 at 35 ms, unchanged from last week"),
    ("accounting", "accounting consumer restarted once 3 hours before the window"),
    ("product-catalog", "product-catalog logs 'Database connection established' after a routine restart"),
    ("otel-collector", "otel-collector dropped 0.2% of spans in one batch"),
    ("recommendation", "recommendation cache hit ratio at 50%"),
    ("email", "email 'Order confirmation email sent' log volume follows the order rate"),
)

