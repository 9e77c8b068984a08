"""Faults of the OpenTelemetry Demo (Astronomy Shop), told in several independently written phrasing banks.

Each fault is one flagd feature flag of the demo (curated from `otel_demo_facts.json`): the component
at fault, how it shows in traces, metrics and logs (`signals`), the log lines the real services write
(`logs`: the only place a flag name may appear in a session's input, because the real system writes
it there), who is affected, the critical paths, how to fix it and the wrong turns people take.

Every wording comes in banks `a`, `b`, `c` and `d`, written separately in different styles: `a` terse
dashboard notes, `b` plain sentences, `c` alert and ticket text with OpenTelemetry identifiers, `d`
incident-channel chat with other units. The generator never trains on bank `d` (the phrasing-shift
split), so a model is scored on wording it has never seen.

Templates use `{v}` (variant label), `{pct}` (observed error percent), `{ratio}` (the same as a
fraction), `{ms}` / `{secs}` (observed latency) and `{n}` (a count or factor).
"""

from __future__ import annotations

from dataclasses import dataclass, field

BANKS = ("a", "b", "c", "d")
TRAINING_BANKS = ("a", "b", "c")
SHIFT_BANK = "d"
NONE = "none"  # the label of an incident outside the catalog: the right answer is "needs investigation"


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
class Signal:
    """One observable effect of a fault, in each bank's words. `telling`: on its own it points at the fault
    (a session may show none of the telling ones: partial observability)."""

    says: dict[str, tuple[str, ...]]
    telling: bool = False


@dataclass(frozen=True)
class Profile:
    """What the telemetry looks like: error ratio per service (a multiple of the observed {pct}), p95 latency
    per service (in ms, or 'secs' to follow the variant), traffic factors, memory pressure."""

    errors: dict[str, float] = field(default_factory=dict)
    slow: dict[str, str] = field(default_factory=dict)  # service -> 'ms' | 'secs'
    traffic: dict[str, float] = field(default_factory=dict)  # service -> request rate factor
    memory: tuple[str, ...] = ()  # services whose memory climbs
    cpu: tuple[str, ...] = ()  # services whose CPU climbs


@dataclass(frozen=True)
class Fault:
    id: str  # the flag name (or an out-of-catalog id)
    service: str  # the component at fault
    name: str  # a short name for people
    description: str  # what happens, for the fault catalog (label inference) and reviewers
    keywords: tuple[str, ...]  # distinctive words and phrases (label inference)
    affected: tuple[str, ...]
    variants: tuple[tuple[str, float], ...]
    profile: Profile
    logs: tuple[tuple[str, str, str], ...]  # (service, severity, body) as the real services write them
    signals: tuple[Signal, ...]
    root_causes: dict[str, tuple[str, ...]]
    remediation: dict[str, tuple[str, ...]]
    paths: tuple[tuple[str, ...], ...]
    queries: tuple[Query, ...]
    false_hypotheses: tuple[str, ...]
    difficulty: float = 1.0
    error_rate: bool = False  # {pct} follows the variant value
    latency_secs: bool = False  # {secs} follows the variant value
    in_catalog: bool = True

    @property
    def lead(self) -> str:
        """How every answer about this fault begins, whatever its bank: the fault first, then the telling, then
        the evidence."""
        return f"{self.id} in {self.service}:" if self.in_catalog else ""


def _banks(a, b, c, d) -> dict[str, tuple[str, ...]]:
    def norm(value):
        return (value,) if isinstance(value, str) else tuple(value)

    return {"a": norm(a), "b": norm(b), "c": norm(c), "d": norm(d)}


def S(a, b, c, d, telling: bool = False) -> Signal:  # noqa: N802  (reads as data)
    return Signal(_banks(a, b, c, d), telling)


CHECKOUT_PATH = ("frontend-proxy", "frontend", "checkout")

FAULTS: tuple[Fault, ...] = (
    Fault(
        id="productCatalogFailure", service="product-catalog",
        name="GetProduct fails for one product id",
        description="product-catalog returns gRPC INTERNAL from GetProduct for the single product id OLJCESPC7Z "
                    "('Product Catalog Fail Feature Flag Enabled'); pages and checkouts fail only when that product "
                    "is involved, the database and other products are healthy.",
        keywords=("oljcespc7z", "one product", "single product", "product catalog fail", "getproduct",
                  "failed to get product", "particular product", "one sku", "specific product"),
        affected=("product-catalog", "frontend", "checkout", "frontend-proxy"),
        variants=(("on", 1.0),),
        profile=Profile(errors={"product-catalog": 0.3, "frontend": 0.2, "checkout": 0.25}),
        logs=(("product-catalog", "ERROR", "Product Catalog Fail Feature Flag Enabled"),
              ("checkout", "ERROR", 'failed to prepare order: failed to get product #"OLJCESPC7Z"')),
        signals=(
            S("GetProduct errors only for demo.product.id=OLJCESPC7Z",
              "Every failing GetProduct call is for the same product, OLJCESPC7Z; other products load fine.",
              "ALERT product-catalog GetProduct StatusCode=Error, all failed spans carry demo.product.id=OLJCESPC7Z",
              "only one item in the shop is broken - anything touching OLJCESPC7Z blows up, the rest is fine",
              telling=True),
            S("frontend GET /api/products/OLJCESPC7Z -> HTTP 500, other product pages 200",
              "The product page for OLJCESPC7Z answers with a server error while the other pages open normally.",
              "frontend-proxy access log: 500 on /api/products/OLJCESPC7Z, 200 elsewhere",
              "folks get an error page when they open that one telescope, every other page works", telling=True),
            S("checkout PlaceOrder fails for carts containing OLJCESPC7Z",
              "Orders fail, but only when the cart holds that product.",
              "checkout PlaceOrder StatusCode=Error when an item lookup for OLJCESPC7Z fails",
              "orders with that item in the basket don't go through"),
            S("rpc.grpc.status_code 13 on product-catalog server spans",
              "The catalog service answers INTERNAL (status 13) on the failing calls.",
              "SpanAttributes rpc.grpc.status_code=13 on oteldemo.ProductCatalogService/GetProduct",
              "grpc code 13 coming back from the catalog"),
            S("astronomy-db query latency normal",
              "The catalog database looks healthy: its queries are as fast as usual.",
              "PostgreSQL astronomy-db spans OK, no slow queries",
              "db is fine, checked it twice"),
        ),
        root_causes=_banks(
            ("product-catalog GetProduct fails with INTERNAL for the single product OLJCESPC7Z "
             "(productCatalogFailure on); other products and the database are fine.",
             "productCatalogFailure makes product-catalog reject GetProduct for OLJCESPC7Z only, so pages and "
             "orders with that item fail."),
            ("The product catalog fails lookups of one product, OLJCESPC7Z, because the productCatalogFailure "
             "flag is on; everything else in the catalog works.",),
            ("Per-product fault in product-catalog: GetProduct(OLJCESPC7Z) errors with status 13 while "
             "productCatalogFailure is enabled; the database is healthy.",),
            ("product-catalog is deliberately failing requests for product OLJCESPC7Z (productCatalogFailure); "
             "the rest of the catalog is healthy.",)),
        remediation=_banks(
            ("Turn productCatalogFailure off in flagd-ui.", "Check GetProduct errors for OLJCESPC7Z drop to zero.",
             "In a real system: roll back the bad catalog change for that SKU."),
            ("Switch the productCatalogFailure flag off.", "Confirm the OLJCESPC7Z page and orders work again.",
             "Otherwise hide the product until its record is fixed."),
            ("flagd: productCatalogFailure -> off.", "Verify oteldemo.ProductCatalogService/GetProduct error "
             "count returns to 0.", "Fix or roll back the catalog entry for OLJCESPC7Z."),
            ("Flip productCatalogFailure off.", "Re-test the OLJCESPC7Z page and a checkout with it.",
             "Longer term, repair that product's data.")),
        paths=(("frontend-proxy", "frontend", "product-catalog"),
               ("frontend-proxy", "frontend", "checkout", "product-catalog")),
        queries=(Query("attribute", ("product-catalog",), span="oteldemo.ProductCatalogService/GetProduct",
                       attribute="demo.product.id"),
                 Query("error_rate", ("product-catalog", "frontend", "checkout")),
                 Query("logs", ("checkout",), text="failed to get product")),
        false_hypotheses=("astronomy-db PostgreSQL is overloaded or down", "a bad frontend release broke the "
                          "product page", "currency Convert is failing for product prices"),
        difficulty=1.1,
    ),
    Fault(
        id="paymentFailure", service="payment",
        name="payment rejects charges with Invalid token",
        description="The payment service throws 'Payment request failed. Invalid token.' for a share of Charge "
                    "requests before card validation; failing charge spans carry loyalty_level=gold, checkout "
                    "cannot charge the card and those orders fail.",
        keywords=("invalid token", "loyalty_level", "loyalty level", "gold", "rejects charge", "reject charge",
                  "token", "declin"),
        affected=("payment", "checkout", "frontend"),
        variants=(("10%", 0.1), ("25%", 0.25), ("50%", 0.5), ("75%", 0.75), ("90%", 0.95), ("100%", 1.0)),
        profile=Profile(errors={"payment": 1.0, "checkout": 1.0, "frontend": 0.9}),
        logs=(("payment", "WARN", "Payment request failed. Invalid token. demo.user_context.loyalty_level=gold"),
              ("checkout", "ERROR", "failed to charge card: could not charge the card: rpc error: code = Unknown "
                                    "desc = Payment request failed. Invalid token.")),
        signals=(
            S("payment Charge error rate {pct}% ('Invalid token')",
              "About {pct} percent of card charges handled by payment end in an invalid-token error.",
              "ALERT grpc.oteldemo.PaymentService/Charge status=ERROR ratio={ratio} exception='Payment request "
              "failed. Invalid token.'",
              "payment keeps saying the token is invalid, like {pct} in 100 charges", telling=True),
            S("all failing charge spans: demo.user_context.loyalty_level=gold",
              "Every failed charge belongs to a gold-tier customer.",
              "SpanAttributes demo.user_context.loyalty_level=gold on 100% of StatusCode=Error charge spans",
              "weird: only gold members get the failures", telling=True),
            S("checkout PlaceOrder INTERNAL 'failed to charge card' for {pct}% of orders",
              "Checkout reports that it could not charge the card for roughly {pct}% of orders.",
              "checkout PlaceOrder StatusCode=Error, message 'failed to charge card'",
              "checkout says it can't charge cards for a chunk of orders"),
            S("POST /api/checkout -> HTTP 500 on a share of checkouts",
              "A part of the checkouts end with a server error for the shopper.",
              "frontend-proxy 5xx on POST /api/checkout",
              "customers get an error when they pay, sometimes"),
            S("payment Charge latency unchanged",
              "Charges are not slower than usual, they just fail.",
              "PaymentService/Charge p95 within baseline",
              "it's not slow, it's failing"),
            S("demo_payment_transactions_total rate drops",
              "Fewer successful transactions are counted than usual.",
              "metric demo.payment.transactions rate below baseline",
              "successful payment count dipped"),
        ),
        root_causes=_banks(
            ("payment rejects about {v} of Charge requests with 'Invalid token' (paymentFailure at {v}); checkout "
             "cannot charge the card and those orders fail.",
             "paymentFailure ({v}) makes payment throw 'Payment request failed. Invalid token.' before card "
             "validation; failing charges all carry loyalty_level=gold."),
            ("The payment service fails a {v} share of card charges with an invalid-token exception because "
             "paymentFailure is set to {v}; the failures reach checkout and the shopper.",),
            ("Payment service fault: PaymentService/Charge errors for ~{v} of calls ('Invalid token') with "
             "paymentFailure enabled; checkout PlaceOrder fails as a consequence.",),
            ("payment is refusing roughly {v} of charges with invalid-token errors (paymentFailure at {v}), "
             "which breaks those checkouts.",)),
        remediation=_banks(
            ("Set paymentFailure to off.", "Verify payment Charge errors return to 0.",
             "In a real system: roll back the payment release or fix the provider credentials."),
            ("Turn the paymentFailure flag off.", "Check that successful transactions recover.",
             "Look at whether one customer tier (gold) is targeted before closing."),
            ("flagd: paymentFailure -> off.", "Verify PaymentService/Charge StatusCode=Error count drops to 0.",
             "Rotate or fix the payment token/credentials upstream."),
            ("Switch paymentFailure off.", "Watch checkouts succeed again.",
             "Then chase the token problem with the payment provider.")),
        paths=(CHECKOUT_PATH + ("payment",),),
        queries=(Query("error_rate", ("payment", "checkout")),
                 Query("attribute", ("payment",), span="charge", attribute="demo.user_context.loyalty_level"),
                 Query("logs", ("payment",), text="Invalid token")),
        false_hypotheses=("the payment service is unreachable from checkout", "currency conversion returns "
                          "wrong amounts", "a network partition between checkout and payment"),
        error_rate=True,
    ),
    Fault(
        id="paymentUnreachable", service="checkout",
        name="checkout dials a bad payment address",
        description="checkout sends Charge to the non-existent host badAddress instead of the payment service, "
                    "so every order fails with Unavailable / name resolution errors; payment itself is healthy "
                    "and receives no calls.",
        keywords=("badaddress", "unreachable", "zero addresses", "name resolver", "name resolution", "dns",
                  "cannot reach payment", "can't reach payment", "not reaching payment", "no traffic",
                  "wrong address", "endpoint", "never reached", "dial", "does not resolve", "doesn't resolve",
                  "payment host", "payment address"),
        affected=("checkout", "frontend", "payment"),
        variants=(("on", 1.0),),
        profile=Profile(errors={"checkout": 1.0, "frontend": 0.95}, traffic={"payment": 0.0}),
        logs=(("checkout", "ERROR", "failed to charge card: could not charge the card: rpc error: code = "
                                    "Unavailable desc = name resolver error: produced zero addresses"),),
        signals=(
            S("checkout -> PaymentService/Charge client spans fail, no server span in payment",
              "Checkout's calls to payment fail before they ever arrive: payment records none of them.",
              "oteldemo.PaymentService/Charge CLIENT spans StatusCode=Error with no matching SERVER span",
              "checkout tries to call payment but payment never sees the requests", telling=True),
            S("payment request rate 0, payment error rate 0",
              "The payment service is idle: no requests and no errors.",
              "payment ServiceName span count = 0 in the window",
              "payment is totally quiet, zero traffic", telling=True),
            S("checkout PlaceOrder error rate {pct}%",
              "Nearly all orders fail ({pct}%).",
              "checkout PlaceOrder StatusCode=Error ratio={ratio}",
              "pretty much every order fails"),
            S("name resolution error for badAddress inside the PlaceOrder error",
              "The order errors mention an address that does not resolve, badAddress.",
              "exception: name resolver error: produced zero addresses (badAddress:50051)",
              "the error talks about 'badAddress' not resolving", telling=True),
            S("POST /api/checkout -> HTTP 500",
              "Shoppers see a server error when placing an order.",
              "frontend-proxy 5xx on POST /api/checkout",
              "checkout page errors out"),
        ),
        root_causes=_banks(
            ("checkout dials the non-existent host badAddress:50051 instead of payment (paymentUnreachable on); "
             "every order fails while payment is healthy and idle.",
             "Caller-side fault: with paymentUnreachable on, checkout cannot reach payment (bad address), so "
             "all PlaceOrder calls fail."),
            ("Checkout uses a wrong payment address (badAddress) because paymentUnreachable is on, so it never "
             "reaches the payment service and every order fails.",),
            ("paymentUnreachable: checkout's payment endpoint resolves to nothing (badAddress:50051), gRPC "
             "Unavailable on every Charge; the payment service is fine.",),
            ("checkout can't reach payment at all - it's pointed at badAddress (paymentUnreachable) - so no "
             "order goes through; payment itself is fine.",)),
        remediation=_banks(
            ("Set paymentUnreachable to off.", "Verify Charge server spans reappear in payment.",
             "In a real system: fix PAYMENT_ADDR / service discovery in checkout."),
            ("Turn the paymentUnreachable flag off.", "Check that orders succeed again.",
             "Review DNS and network policies between checkout and payment."),
            ("flagd: paymentUnreachable -> off.", "Verify payment span count > 0 and PlaceOrder errors stop.",
             "Correct the payment endpoint configuration in checkout."),
            ("Flip paymentUnreachable off.", "Place a test order.", "Fix the payment address checkout uses.")),
        paths=(CHECKOUT_PATH + ("payment",),),
        queries=(Query("traffic", ("payment", "checkout")),
                 Query("error_rate", ("checkout",), span="oteldemo.PaymentService/Charge")),
        false_hypotheses=("the payment service crashed", "payment rejects cards with an invalid token",
                          "the payment provider is rate limiting"),
        difficulty=1.3,
    ),
    Fault(
        id="cartFailure", service="cart",
        name="EmptyCart uses a bad Valkey connection",
        description="cart EmptyCart fails for a share of calls with 'Can't access cart storage' because it uses "
                    "a broken Redis/Valkey connection; AddItem and GetCart keep working and orders succeed.",
        keywords=("emptycart", "empty cart", "cart storage", "redis", "valkey", "connect to redis",
                  "can't access cart", "badhost"),
        affected=("cart", "checkout", "frontend"),
        variants=(("10%", 0.1), ("25%", 0.25), ("50%", 0.5), ("75%", 0.75), ("90%", 0.9), ("100%", 1.0)),
        profile=Profile(errors={"cart": 0.5, "frontend": 0.2}, slow={"cart": "ms"}),
        logs=(("cart", "ERROR", "Can't access cart storage. System.ApplicationException: Wasn't able to connect "
                                "to redis"),),
        signals=(
            S("cart EmptyCart error rate {pct}% ('Can't access cart storage')",
              "About {pct}% of EmptyCart calls fail because cart cannot reach its storage.",
              "ALERT oteldemo.CartService/EmptyCart status=FAILED_PRECONDITION ratio={ratio}",
              "emptying the cart fails about {pct}% of the time, storage errors", telling=True),
            S("checkout EmptyCart client spans error, PlaceOrder OK",
              "Orders still succeed, but the cart cleanup after an order fails.",
              "checkout span oteldemo.CartService/EmptyCart StatusCode=Error under a successful PlaceOrder",
              "orders are fine, carts just don't get emptied after"),
            S("DELETE /api/cart -> HTTP 500",
              "The Empty Cart button gives an error.",
              "frontend-proxy 5xx on DELETE /api/cart",
              "the 'empty cart' button is broken"),
            S("failing EmptyCart calls take ~{ms} ms (connection retries)",
              "The failing cart calls hang for a while before failing.",
              "EmptyCart error spans Duration p95 {ms} ms",
              "those failures are slow too, {ms}ms or so"),
            S("AddItem and GetCart healthy",
              "Adding to the cart and viewing it work normally.",
              "CartService/AddItem and CartService/GetCart StatusCode=Ok",
              "adding stuff to the cart works"),
        ),
        root_causes=_banks(
            ("cart EmptyCart fails for about {v} of calls ('Can't access cart storage') because cartFailure "
             "routes them to a bad Valkey host; AddItem, GetCart and orders keep working.",
             "cartFailure ({v}) makes EmptyCart use a broken Redis/Valkey connection, so emptying carts fails."),
            ("The cart service cannot reach its Redis store when emptying carts (cartFailure at {v}), so EmptyCart "
             "fails while the rest of the cart works.",),
            ("cartFailure: CartService/EmptyCart -> FAILED_PRECONDITION for ~{v}, 'Wasn't able to connect to "
             "redis'; other cart RPCs fine.",),
            ("cart's empty-cart call is talking to a broken redis (cartFailure at {v}); adding items and checkout "
             "are unaffected.",)),
        remediation=_banks(
            ("Set cartFailure to off.", "Verify EmptyCart errors stop.",
             "In a real system: fix the Valkey connection string and restart cart."),
            ("Turn the cartFailure flag off.", "Check that carts are emptied after orders.",
             "Repair the cart storage connection on that code path."),
            ("flagd: cartFailure -> off.", "Verify CartService/EmptyCart StatusCode=Error count is 0.",
             "Check valkey-cart connectivity from cart."),
            ("Flip cartFailure off.", "Try the empty-cart button again.", "Fix the redis connection settings.")),
        paths=(CHECKOUT_PATH + ("cart", "valkey-cart"), ("frontend-proxy", "frontend", "cart", "valkey-cart")),
        queries=(Query("error_rate", ("cart", "checkout"), span="oteldemo.CartService/EmptyCart"),
                 Query("logs", ("cart",), text="connect to redis")),
        false_hypotheses=("valkey-cart is down for every cart operation", "checkout orders are failing",
                          "the frontend cart page has a JavaScript bug"),
        error_rate=True,
    ),
    Fault(
        id="failedReadinessProbe", service="cart",
        name="cart readiness check reports NOT_SERVING",
        description="cart's gRPC health check answers NOT_SERVING, so the readiness probe takes the cart pods "
                    "out of service: cart traffic drops to zero and callers fail with Unavailable / no healthy "
                    "upstream, although the cart RPCs themselves work.",
        keywords=("not_serving", "not serving", "readiness", "health check", "healthcheck", "no healthy upstream",
                  "notready", "not ready", "probe"),
        affected=("cart", "frontend", "checkout"),
        variants=(("on", 1.0),),
        profile=Profile(errors={"frontend": 0.7, "checkout": 0.8}, traffic={"cart": 0.0}),
        logs=(("cart", "INFO", "Received health check request for service oteldemo.CartService: NOT_SERVING"),
              ("frontend", "ERROR", "rpc error: code = Unavailable desc = no healthy upstream")),
        signals=(
            S("cart traffic 0; frontend -> cart calls fail UNAVAILABLE",
              "Nothing reaches the cart service any more, and callers get 'unavailable'.",
              "cart ServiceName span count = 0; CLIENT spans to CartService StatusCode=Error (UNAVAILABLE)",
              "cart is getting no traffic and everyone calling it gets unavailable", telling=True),
            S("cart pods NotReady, removed from endpoints",
              "The cart pods are marked not ready and taken out of the service.",
              "k8s: pod cart-* Readiness probe failed, endpoints empty",
              "the cart pods show NotReady in kubectl", telling=True),
            S("/api/cart and /api/checkout -> HTTP 5xx",
              "Both the cart page and checkout return server errors.",
              "frontend-proxy 5xx on /api/cart and /api/checkout",
              "cart page and checkout both error"),
            S("no error spans on cart RPCs that do get through",
              "The few cart calls that arrive succeed.",
              "CartService SERVER spans StatusCode=Ok",
              "when a call does land on cart it works fine"),
        ),
        root_causes=_banks(
            ("cart's gRPC health check reports NOT_SERVING (failedReadinessProbe on), so the readiness probe "
             "removes cart from service and callers fail with UNAVAILABLE.",
             "failedReadinessProbe makes cart report not-ready; its endpoints are removed and cart traffic drops "
             "to zero."),
            ("The cart service says it is not ready (failedReadinessProbe), so it is taken out of rotation and "
             "every call to it fails, although its code works.",),
            ("failedReadinessProbe: grpc.health.v1 NOT_SERVING for CartService -> pods NotReady -> 'no healthy "
             "upstream' for frontend and checkout.",),
            ("cart is failing its readiness check on purpose (failedReadinessProbe), so k8s pulled it out and "
             "nobody can reach it.",)),
        remediation=_banks(
            ("Set failedReadinessProbe to off.", "Confirm cart endpoints come back.",
             "In a real system: fix the dependency the readiness check relies on."),
            ("Turn the failedReadinessProbe flag off.", "Check kubectl describe pod for readiness events.",
             "Make sure the health check reflects real readiness."),
            ("flagd: failedReadinessProbe -> off.", "Verify cart endpoints and span count recover.",
             "Review the readiness probe definition."),
            ("Flip failedReadinessProbe off.", "Watch the cart pods go Ready.", "Then check why it reported "
             "not serving.")),
        paths=(("frontend-proxy", "frontend", "cart"), CHECKOUT_PATH + ("cart",)),
        queries=(Query("traffic", ("cart", "frontend")), Query("logs", ("cart",), text="health check")),
        false_hypotheses=("valkey-cart lost its data", "cart crashed with an out-of-memory error",
                          "a bad frontend release"),
        difficulty=1.6,
    ),
    Fault(
        id="adFailure", service="ad",
        name="ad GetAds fails about 1 in 10 calls",
        description="The ad service fails about one in ten GetAds calls with gRPC UNAVAILABLE; the frontend ads "
                    "request /api/data returns errors while latency, CPU and the rest of the shop are fine.",
        keywords=("getads failed", "unavailable", "adfailure", "1 in 10", "one in ten", "10%", "ads fail",
                  "ad requests fail", "ten percent", "a tenth"),
        affected=("ad", "frontend"),
        variants=(("on", 0.1),),
        profile=Profile(errors={"ad": 1.0, "frontend": 0.9}),
        logs=(("ad", "WARN", "GetAds Failed with status Status{{code=UNAVAILABLE, description=null, cause=null}}"),),
        signals=(
            S("ad GetAds error rate ~{pct}%, status UNAVAILABLE",
              "Roughly one ad request in ten fails with 'unavailable'.",
              "ALERT oteldemo.AdService/GetAds status=UNAVAILABLE ratio={ratio}",
              "ads error out now and then, maybe 1 in 10", telling=True),
            S("GET /api/data -> HTTP 500 on ~{pct}%",
              "The frontend's ad request fails now and then.",
              "frontend-proxy 5xx on GET /api/data",
              "the ad banner fails to load sometimes"),
            S("no latency or CPU change on ad",
              "The ad service is neither slow nor busy.",
              "AdService/GetAds p95 and process.cpu.utilization within baseline",
              "ad isn't slow and the cpu is normal", telling=True),
            S("rest of the shop healthy",
              "Browsing, cart and checkout all work.",
              "no other ServiceName with StatusCode=Error above baseline",
              "everything else is fine"),
        ),
        root_causes=_banks(
            ("ad GetAds throws UNAVAILABLE for about 1 in 10 calls (adFailure on); the frontend ads request "
             "fails while everything else works.",
             "adFailure makes the ad service randomly fail ~10% of GetAds with UNAVAILABLE; no latency change."),
            ("The ad service fails around one request in ten with an 'unavailable' status because adFailure is "
             "on; the rest of the shop is unaffected.",),
            ("adFailure: AdService/GetAds -> UNAVAILABLE for ~10% of calls; /api/data 5xx; no resource "
             "pressure.",),
            ("ad is failing about a tenth of its requests on purpose (adFailure); it's not slow, just erroring.",)),
        remediation=_banks(
            ("Set adFailure to off.", "Verify GetAds errors stop.",
             "Make the ad call non-critical in the frontend (timeout and fallback)."),
            ("Turn the adFailure flag off.", "Check the ad banner loads every time.",
             "Degrade gracefully when ads fail."),
            ("flagd: adFailure -> off.", "Verify AdService/GetAds StatusCode=Error count is 0.",
             "Add a fallback for the ads widget."),
            ("Flip adFailure off.", "Reload a product page a few times.", "Make ads optional for page rendering.")),
        paths=(("frontend-proxy", "frontend", "ad"),),
        queries=(Query("error_rate", ("ad", "frontend"), span="oteldemo.AdService/GetAds"),
                 Query("logs", ("ad",), text="GetAds Failed")),
        false_hypotheses=("ad is CPU starved", "the frontend-proxy is dropping requests", "a memory leak in ad"),
        error_rate=True,
    ),
    Fault(
        id="adHighCpu", service="ad",
        name="busy threads saturate the ad service's CPU",
        description="The ad service starts busy-spinning threads that saturate its CPU ('High CPU-Load "
                    "problempattern'); GetAds and the frontend ads request get slower, with no errors.",
        keywords=("cpu", "high cpu", "busy thread", "spinning", "cpu-load", "hot thread", "cores", "saturat"),
        affected=("ad", "frontend"),
        variants=(("on", 1.0),),
        profile=Profile(slow={"ad": "ms", "frontend": "ms"}, cpu=("ad",)),
        logs=(("ad", "INFO", "High CPU-Load problempattern enabled"),),
        signals=(
            S("ad CPU up ~{n} cores",
              "The ad service is using about {n} more CPU cores than usual.",
              "metric process.cpu.utilization ServiceName=ad above baseline (+{n} cores)",
              "ad is eating cpu, like {n} extra cores", telling=True),
            S("ad GetAds p95 {ms} ms, no errors",
              "Ad requests are slow ({ms} ms) but they succeed.",
              "oteldemo.AdService/GetAds Duration p95 {ms} ms, StatusCode=Ok",
              "ads take forever (~{ms}ms) but don't fail"),
            S("node CPU high where ad runs",
              "The machine hosting ad is busy.",
              "k8s node CPU > 85% on the ad node",
              "the node with ad on it is pegged", telling=True),
            S("frontend /api/data slower",
              "The ads part of product pages loads slowly.",
              "frontend GET /api/data Duration above baseline",
              "ad banner is slow to show up"),
        ),
        root_causes=_banks(
            ("The ad service runs busy-spinning threads (adHighCpu on) that saturate its CPU; GetAds gets slower "
             "with no errors.",
             "adHighCpu starts hot threads in ad, CPU saturates and GetAds latency climbs."),
            ("A CPU-load problem in the ad service (adHighCpu): extra threads burn CPU, so ad requests slow "
             "down without failing.",),
            ("adHighCpu: 'High CPU-Load problempattern enabled' -> process.cpu.utilization up on ad -> GetAds "
             "Duration up, no errors.",),
            ("ad is burning cpu on purpose (adHighCpu) and that's what makes the ads slow; nothing is failing.",)),
        remediation=_banks(
            ("Set adHighCpu to off.", "Confirm ad CPU returns to baseline.",
             "In a real system: profile the hot threads, set CPU limits, scale out."),
            ("Turn the adHighCpu flag off.", "Watch the ad service's CPU fall.", "Take a thread dump if it "
             "comes back."),
            ("flagd: adHighCpu -> off.", "Verify process.cpu.utilization and GetAds p95 recover.",
             "Add CPU limits and an autoscaler for ad."),
            ("Flip adHighCpu off.", "Check ad cpu and latency.", "Profile it if it happens again.")),
        paths=(("frontend-proxy", "frontend", "ad"),),
        queries=(Query("latency", ("ad", "frontend"), span="oteldemo.AdService/GetAds"),
                 Query("metric", ("ad",), metric="process.cpu.utilization")),
        false_hypotheses=("garbage collection pauses in ad", "a traffic surge from the load generator",
                          "a slow network between frontend and ad"),
        difficulty=1.2,
    ),
    Fault(
        id="adManualGc", service="ad",
        name="forced full garbage collections in the ad service",
        description="The ad service forces full garbage collections inside the GetAds request path, with the "
                    "heap near its limit; each call pauses for seconds, so ads and product pages are slow.",
        keywords=("garbage collection", "gc", "manual gc", "system.gc", "heap", "pause", "jvm", "full gc"),
        affected=("ad", "frontend"),
        variants=(("on", 1.0),),
        profile=Profile(slow={"ad": "secs", "frontend": "secs"}, memory=("ad",)),
        logs=(("ad", "WARN", "Feature Flag adManualGc enabled, performing a manual gc now"),
              ("ad", "INFO", "The artificially triggered GCs took: 1840 ms")),
        signals=(
            S("ad GetAds spans ~{secs} s",
              "Ad requests take about {secs} seconds each.",
              "oteldemo.AdService/GetAds Duration p95 {secs} s",
              "ads take like {secs} seconds to come back"),
            S("ad JVM GC count and duration spike, heap ~90%",
              "The ad service spends its time in garbage collection with an almost full heap.",
              "metric jvm.gc.duration ServiceName=ad spiking; jvm.memory.used near max",
              "the ad jvm is doing full GCs constantly, heap almost full", telling=True),
            S("frontend /api/data latency up",
              "Product pages wait on the ads.",
              "frontend GET /api/data Duration above baseline",
              "pages hang on the ad part"),
            S("no errors on ad",
              "Nothing fails; it is only slow.",
              "AdService/GetAds StatusCode=Ok",
              "no errors, just slow"),
        ),
        root_causes=_banks(
            ("The ad service forces full garbage collections in the GetAds request path (adManualGc on), so "
             "each call pauses for seconds.",
             "adManualGc triggers manual full GCs on every GetAds with the heap near its limit; ads become slow."),
            ("Forced garbage collection in the ad service (adManualGc): every ad request waits for a full GC, "
             "which makes it take seconds.",),
            ("adManualGc: System.gc() per GetAds, jvm.gc.duration spikes, GetAds Duration in seconds, no "
             "errors.",),
            ("ad is running a manual full gc on every request (adManualGc), that's the multi-second pauses.",)),
        remediation=_banks(
            ("Set adManualGc to off.", "Verify GC time and GetAds latency return to baseline.",
             "In a real system: remove explicit System.gc() calls and tune the heap."),
            ("Turn the adManualGc flag off.", "Watch garbage-collection time drop.", "Review heap settings."),
            ("flagd: adManualGc -> off.", "Verify jvm.gc.duration and GetAds p95 recover.",
             "Remove forced GC from the request path."),
            ("Flip adManualGc off.", "Check ad latency.", "Get rid of the manual GC code.")),
        paths=(("frontend-proxy", "frontend", "ad"),),
        queries=(Query("latency", ("ad",), span="oteldemo.AdService/GetAds"),
                 Query("logs", ("ad",), text="manual gc")),
        false_hypotheses=("ad CPU saturated by busy threads", "a memory leak in the frontend",
                          "GetAds failing with UNAVAILABLE"),
        difficulty=1.2,
        latency_secs=True,
    ),
    Fault(
        id="recommendationCacheFailure", service="recommendation",
        name="leaky cache in the recommendation service",
        description="recommendation's in-memory product cache leaks: every cache miss grows a list that never "
                    "shrinks, so memory and per-request work climb until the process is OOM-killed and restarts.",
        keywords=("cache", "leak", "memory", "oom", "cache miss", "grows", "recommendation memory",
                  "product.count", "restart"),
        affected=("recommendation", "frontend"),
        variants=(("on", 1.0),),
        profile=Profile(slow={"recommendation": "ms", "frontend": "ms"}, memory=("recommendation",)),
        logs=(("recommendation", "INFO", "get_product_list: cache miss"),),
        signals=(
            S("recommendation memory climbing toward its 500M limit",
              "The recommendation service's memory keeps growing until it nears its limit.",
              "metric process.runtime.cpython.memory ServiceName=recommendation rising monotonically",
              "recommendation's memory just keeps going up", telling=True),
            S("ListRecommendations p95 growing to {ms} ms",
              "Recommendations get slower and slower ({ms} ms).",
              "oteldemo.RecommendationService/ListRecommendations Duration p95 {ms} ms and rising",
              "recommendations getting slower over time, {ms}ms now"),
            S("get_product_list spans: demo.product.count grows without bound",
              "Each request processes a longer product list than the one before.",
              "SpanAttributes demo.product.count increasing on get_product_list",
              "the product list it works on keeps getting longer", telling=True),
            S("recommendation restarts (OOM)",
              "The recommendation service restarts every so often.",
              "k8s: container recommendation OOMKilled, restart count up",
              "recommendation pod got OOMKilled a couple times"),
        ),
        root_causes=_banks(
            ("recommendation's product cache leaks (recommendationCacheFailure on): every cache miss grows a "
             "list that never shrinks, so memory and latency climb until it is OOM-killed.",
             "recommendationCacheFailure makes the recommendation cache grow without bound; requests slow down "
             "and the pod restarts at its memory limit."),
            ("A leaking cache in the recommendation service (recommendationCacheFailure): memory grows with "
             "every miss until the service runs out and restarts.",),
            ("recommendationCacheFailure: cached_ids grows per cache miss -> memory up, ListRecommendations "
             "Duration up, OOMKilled.",),
            ("the recommendation cache leaks (recommendationCacheFailure), so memory balloons and it keeps "
             "getting OOM-killed.",)),
        remediation=_banks(
            ("Set recommendationCacheFailure to off.", "Restart recommendation to free the leaked memory.",
             "In a real system: bound or evict the cache."),
            ("Turn the recommendationCacheFailure flag off.", "Restart the service.", "Put a size limit on the "
             "cache."),
            ("flagd: recommendationCacheFailure -> off.", "Restart recommendation; verify memory flat.",
             "Fix the unbounded cache growth."),
            ("Flip recommendationCacheFailure off.", "Bounce the recommendation pod.", "Cap that cache.")),
        paths=(("frontend-proxy", "frontend", "recommendation", "product-catalog"),),
        queries=(Query("latency", ("recommendation",), span="get_product_list"),
                 Query("metric", ("recommendation",), metric="process.runtime.cpython.memory")),
        false_hypotheses=("product-catalog ListProducts is slow", "astronomy-db is slow", "a traffic surge"),
        difficulty=1.4,
    ),
    Fault(
        id="emailMemoryLeak", service="email",
        name="email service keeps sent mails in memory",
        description="The email service keeps every sent order confirmation in memory, so its memory climbs with "
                    "each order until it is OOM-killed and restarts; checkout only logs a warning that it could "
                    "not send the confirmation and orders still succeed.",
        keywords=("email", "mail", "confirmation", "memory leak", "leak", "oom", "send_order_confirmation"),
        affected=("email", "checkout"),
        variants=(("1x", 1), ("10x", 10), ("100x", 100), ("1000x", 1000)),
        profile=Profile(slow={"email": "ms"}, memory=("email",), errors={"email": 0.2}),
        logs=(("checkout", "WARN", "failed to send order confirmation: connection refused"),),
        signals=(
            S("email memory climbing toward its 100M limit with each checkout",
              "The email service's memory rises with every order it confirms.",
              "metric container.memory.usage ServiceName=email rising with order rate",
              "email's memory goes up every time someone orders", telling=True),
            S("email restarts repeatedly",
              "The email service keeps restarting.",
              "k8s: container email OOMKilled, restart count up",
              "the email pod restarts over and over", telling=True),
            S("checkout WARN 'failed to send order confirmation'",
              "Checkout cannot always send the confirmation mail.",
              "checkout log SeverityText=WARN 'failed to send order confirmation'",
              "confirmation emails are not going out sometimes"),
            S("orders keep succeeding",
              "Orders themselves are fine.",
              "checkout PlaceOrder StatusCode=Ok",
              "people can still order"),
        ),
        root_causes=_banks(
            ("The email service keeps every sent confirmation in memory (emailMemoryLeak at {v}), so memory "
             "climbs with each order until it is OOM-killed; orders still succeed.",
             "emailMemoryLeak ({v}) leaks delivered mails in email; it restarts repeatedly near its memory limit."),
            ("A memory leak in the email service (emailMemoryLeak): it never frees sent mails, grows with every "
             "order and is killed when it runs out of memory.",),
            ("emailMemoryLeak: deliveries never cleared -> container.memory.usage up per order -> OOMKilled; "
             "checkout WARN on failed confirmations.",),
            ("email is leaking memory on every confirmation (emailMemoryLeak) and keeps getting OOM-killed; "
             "orders are fine.",)),
        remediation=_banks(
            ("Set emailMemoryLeak to off.", "Restart email to free memory.",
             "In a real system: fix the unbounded collection and roll back."),
            ("Turn the emailMemoryLeak flag off.", "Restart the email service.", "Fix the leak before raising "
             "limits."),
            ("flagd: emailMemoryLeak -> off.", "Restart email; verify memory flat.",
             "Find the unbounded collection in the mailer."),
            ("Flip emailMemoryLeak off.", "Bounce the email pod.", "Then fix the leak.")),
        paths=(CHECKOUT_PATH + ("email",),),
        queries=(Query("metric", ("email",), metric="container.memory.usage"),
                 Query("logs", ("checkout",), text="failed to send order confirmation")),
        false_hypotheses=("the SMTP relay is down", "checkout is failing orders", "Kafka consumers are lagging"),
        difficulty=1.3,
    ),
    Fault(
        id="kafkaQueueProblems", service="kafka",
        name="Kafka producer storm and slow consumer",
        description="checkout floods the Kafka topic 'orders' with extra copies of every order while the "
                    "fraud-detection consumer sleeps per record, so consumer lag grows and accounting sees "
                    "duplicates; the checkout path itself works.",
        keywords=("kafka", "consumer lag", "lag", "queue", "orders topic", "topic", "fraud-detection",
                  "overloading queue", "consumer"),
        affected=("kafka", "fraud-detection", "accounting", "checkout"),
        variants=(("on", 100.0),),
        profile=Profile(slow={"fraud-detection": "ms"}, traffic={"kafka": 100.0}),
        logs=(("checkout", "INFO", "Warning: FeatureFlag 'kafkaQueueProblems' is activated, overloading queue "
                                   "now."),
              ("fraud-detection", "INFO", "FeatureFlag 'kafkaQueueProblems' is enabled, sleeping 1 second")),
        signals=(
            S("consumer lag of fraud-detection on topic orders rising",
              "The fraud-detection consumer falls further and further behind on the orders topic.",
              "metric kafka.consumer.lag group=fraud-detection topic=orders increasing",
              "fraud detection is way behind on the orders queue", telling=True),
            S("topic 'orders' message rate ~{n}x the order rate",
              "Far more messages land on the orders topic than there are orders ({n} times).",
              "orders publish span rate = {n} x PlaceOrder rate",
              "the orders topic gets like {n}x more messages than orders", telling=True),
            S("fraud-detection consumer spans >= 1 s",
              "Each order takes the fraud-detection consumer at least a second.",
              "span 'orders process' ServiceName=fraud-detection Duration >= 1 s",
              "fraud detection takes a second per message"),
            S("accounting logs duplicate order ids",
              "Accounting sees the same order several times.",
              "accounting log 'duplicate order id'",
              "accounting is getting dupes"),
            S("checkouts keep succeeding",
              "Shoppers can still check out.",
              "checkout PlaceOrder StatusCode=Ok",
              "checkout itself works"),
        ),
        root_causes=_banks(
            ("checkout publishes many extra copies of every order to Kafka topic 'orders' while fraud-detection "
             "sleeps per record (kafkaQueueProblems on), so consumer lag grows; checkout works.",
             "kafkaQueueProblems floods the orders topic and slows the fraud-detection consumer, so the queue "
             "backs up."),
            ("A Kafka queue problem (kafkaQueueProblems): the orders topic is overloaded by checkout and the "
             "fraud-detection consumer is too slow, so the backlog keeps growing.",),
            ("kafkaQueueProblems: producer storm on topic orders + 1 s sleep per record in fraud-detection -> "
             "kafka.consumer.lag rising; accounting duplicates.",),
            ("the orders queue in kafka is flooded and fraud-detection can't keep up (kafkaQueueProblems), so "
             "lag explodes.",)),
        remediation=_banks(
            ("Set kafkaQueueProblems to off; the lag drains.", "Verify consumer lag falls.",
             "In a real system: stop the producer storm, scale consumers."),
            ("Turn the kafkaQueueProblems flag off.", "Watch the backlog shrink.", "Deduplicate messages in "
             "accounting."),
            ("flagd: kafkaQueueProblems -> off.", "Verify kafka.consumer.lag returns to ~0.",
             "Add partitions or consumers; fix the slow consumer."),
            ("Flip kafkaQueueProblems off.", "Let the lag drain.", "Fix the slow fraud-detection consumer.")),
        paths=(("checkout", "kafka", "fraud-detection"), ("checkout", "kafka", "accounting")),
        queries=(Query("latency", ("fraud-detection",), span="orders process"),
                 Query("traffic", ("checkout", "fraud-detection"), span="orders publish"),
                 Query("logs", ("checkout", "fraud-detection"), text="kafkaQueueProblems")),
        false_hypotheses=("the Kafka broker is down", "accounting's PostgreSQL is slow",
                          "checkout orders are failing"),
        difficulty=1.4,
    ),
    Fault(
        id="imageSlowLoad", service="frontend-proxy",
        name="Envoy fault delay on product images",
        description="Envoy in frontend-proxy injects a fault delay on product image requests (/images/products), "
                    "so product-card images load after several seconds with HTTP 200 while image-provider itself "
                    "stays fast and nothing errors.",
        keywords=("image", "images", "envoy", "fault delay", "x-envoy-fault", "image-provider", "pictures",
                  "/images/products"),
        affected=("frontend-proxy", "frontend-web"),
        variants=(("5sec", 5.0), ("10sec", 10.0)),
        profile=Profile(slow={"frontend-proxy": "secs", "frontend-web": "secs"}),
        logs=(("frontend-proxy", "INFO", "GET /images/products/NationalParkFoundationExplorascope.jpg 200 "
                                         "x-envoy-fault-delay-request"),),
        signals=(
            S("frontend-proxy /images/products/* ~{secs} s, HTTP 200",
              "Product images take about {secs} seconds through the proxy but succeed.",
              "frontend-proxy span GET /images/products/*.jpg Duration {secs} s, http.status_code=200",
              "product pictures take {secs} sec to show up", telling=True),
            S("image-provider spans fast",
              "The image server itself answers quickly.",
              "image-provider SERVER spans Duration < 10 ms",
              "image-provider is quick when you hit it directly", telling=True),
            S("browser fetch spans for product images slow",
              "Shoppers see product cards without pictures for a while.",
              "frontend-web fetch spans /images/products Duration high",
              "the shop looks broken, images missing for ages"),
            S("no error rate change",
              "Nothing is failing anywhere.",
              "no StatusCode=Error increase",
              "no errors anywhere"),
        ),
        root_causes=_banks(
            ("Envoy in frontend-proxy delays product-card images by {secs} s (imageSlowLoad injects a fault "
             "delay); image-provider is fast and nothing errors.",
             "imageSlowLoad ({v}) adds a fault delay for /images/products in frontend-proxy; images load slowly "
             "with HTTP 200."),
            ("Product images are slowed down on purpose by the proxy (imageSlowLoad): Envoy holds each image "
             "request for {secs} seconds while the image server is fine.",),
            ("imageSlowLoad: x-envoy-fault-delay-request on GET /images/products -> {secs} s per image, "
             "image-provider healthy.",),
            ("the proxy is delaying images on purpose (imageSlowLoad, {secs}s); image-provider is fine.",)),
        remediation=_banks(
            ("Set imageSlowLoad to off.", "Verify image latency drops.",
             "In a real system: remove the fault-injection rule."),
            ("Turn the imageSlowLoad flag off.", "Reload the home page and check the pictures.",
             "Review the proxy configuration for fault rules."),
            ("flagd: imageSlowLoad -> off.", "Verify /images/products Duration back to ms.",
             "Audit Envoy fault filters."),
            ("Flip imageSlowLoad off.", "Check images load fast.", "Remove the delay rule.")),
        paths=(("frontend-web", "frontend-proxy", "image-provider"),),
        queries=(Query("latency", ("frontend-proxy", "image-provider")),),
        false_hypotheses=("image-provider nginx is slow", "the images are too large", "a CDN outage"),
        difficulty=1.3,
        latency_secs=True,
    ),
    Fault(
        id="intlShippingSlowdown", service="shipping",
        name="shipping delays international orders",
        description="shipping sleeps several seconds in /ship-order for every non-US address, so checkouts of "
                    "international customers are slow; US orders and quotes are unaffected, nothing errors.",
        keywords=("international", "non-us", "ship-order", "ship_order", "shipping", "intl", "overseas",
                  "abroad", "delaying international"),
        affected=("shipping", "checkout", "frontend"),
        variants=(("5sec", 5.0), ("10sec", 10.0)),
        profile=Profile(slow={"shipping": "secs", "checkout": "secs"}),
        logs=(("shipping", "INFO", "Delaying international shipment due to intlShippingSlowdown feature flag"),),
        signals=(
            S("shipping /ship-order ~{secs} s only for non-US orders",
              "Shipping takes about {secs} seconds to book a shipment, but only for addresses outside the US.",
              "shipping span /ship-order Duration {secs} s where shipping.address.country != US",
              "shipping is slow only for overseas addresses, {secs}s", telling=True),
            S("checkout PlaceOrder p99 up, p50 unchanged",
              "Some orders are much slower while the typical order is not.",
              "checkout PlaceOrder Duration p99 >> p50 (bimodal)",
              "some checkouts are slow, most are normal"),
            S("US orders and /get-quote unaffected",
              "Domestic orders and shipping quotes are as fast as ever.",
              "shipping /get-quote Duration within baseline",
              "US orders are fine", telling=True),
            S("no errors",
              "Nothing fails.",
              "no StatusCode=Error increase",
              "no errors, just slow"),
        ),
        root_causes=_banks(
            ("shipping sleeps {secs} s in /ship-order for every non-US address (intlShippingSlowdown at {v}), "
             "so international checkouts are slow; US orders are fine.",
             "intlShippingSlowdown adds a {secs} s delay to ship_order for international orders; PlaceOrder "
             "latency becomes bimodal."),
            ("International shipments are delayed on purpose in the shipping service (intlShippingSlowdown): "
             "each non-US order waits {secs} seconds.",),
            ("intlShippingSlowdown: /ship-order +{secs} s for country != US -> checkout p99 up, no errors.",),
            ("shipping is holding overseas orders for {secs}s (intlShippingSlowdown); domestic orders are "
             "fine.",)),
        remediation=_banks(
            ("Set intlShippingSlowdown to off.", "Verify /ship-order latency for non-US orders drops.",
             "In a real system: add timeouts or make shipment booking asynchronous."),
            ("Turn the intlShippingSlowdown flag off.", "Place an international test order.",
             "Look at the international carrier integration."),
            ("flagd: intlShippingSlowdown -> off.", "Verify checkout PlaceOrder p99 recovers.",
             "Decouple shipment booking from checkout."),
            ("Flip intlShippingSlowdown off.", "Try an overseas order.", "Move shipment booking off the hot "
             "path.")),
        paths=(CHECKOUT_PATH + ("shipping",),),
        queries=(Query("latency", ("shipping", "checkout")),
                 Query("logs", ("shipping",), text="Delaying international shipment")),
        false_hypotheses=("quote service is slow", "payment Charge latency", "database contention in checkout"),
        difficulty=1.2,
        latency_secs=True,
    ),
    Fault(
        id="loadGeneratorVUs", service="load-generator",
        name="synthetic load multiplied",
        description="Not a code fault: the load generator was raised to many more virtual users, multiplying "
                    "request rates across all services; latency and memory pressure rise in services with tight "
                    "limits, with no new errors.",
        keywords=("virtual users", "vus", "vu ", "load generator", "load-generator", "k6", "traffic surge",
                  "more traffic", "request rate up", "surge", "load test", "simulated users", "more users",
                  "locust"),
        affected=("frontend-proxy", "frontend", "checkout", "product-catalog", "currency"),
        variants=(("25", 25.0), ("50", 50.0)),
        profile=Profile(slow={"checkout": "ms", "product-catalog": "ms", "currency": "ms"},
                        traffic={"frontend-proxy": 5.0, "frontend": 5.0, "checkout": 5.0, "product-catalog": 5.0}),
        logs=(("load-generator", "INFO", "entrypoint.sh: VU flag changed (5 -> {v}), restarting k6"),),
        signals=(
            S("request rates up ~{n}x everywhere",
              "Every service is getting about {n} times its usual traffic.",
              "span count per ServiceName x{n} vs baseline across frontend-proxy and backends",
              "traffic is up like {n}x across the board", telling=True),
            S("p95 latency up in checkout, product-catalog, currency",
              "Several backends are slower under the extra load.",
              "Duration p95 above baseline for checkout, product-catalog, currency",
              "a bunch of services got slower"),
            S("CPU and memory up in small-limit services",
              "Services with small resource limits are under pressure.",
              "container.memory.usage near limit for 20M services",
              "the small pods are near their limits"),
            S("no new error signatures",
              "No new kinds of errors show up.",
              "no new StatusMessage values",
              "no new errors"),
        ),
        root_causes=_banks(
            ("Not a code fault: load-generator was raised to {v} virtual users (loadGeneratorVUs), multiplying "
             "traffic; latency rises in small-limit services.",
             "Traffic surge from load-generator ({v} VUs via loadGeneratorVUs); no component is broken."),
            ("The load generator was turned up to {v} virtual users (loadGeneratorVUs), so every service sees "
             "several times its usual traffic; nothing is broken.",),
            ("loadGeneratorVUs={v}: k6 restarted with more VUs -> request rate xN, Duration up, no new errors.",),
            ("it's just load - someone bumped the load generator to {v} users (loadGeneratorVUs); nothing is "
             "actually broken.",)),
        remediation=_banks(
            ("Set loadGeneratorVUs back to 5.", "Verify request rates return to baseline.",
             "In a real system: rate-limit or scale out the saturated services."),
            ("Turn loadGeneratorVUs back down.", "Check request rates.", "Size the services for the peak "
             "load."),
            ("flagd: loadGeneratorVUs -> 5.", "Verify span rates back to baseline.", "Add autoscaling."),
            ("Dial loadGeneratorVUs back to 5.", "Watch traffic settle.", "Plan capacity for real peaks.")),
        paths=(("load-generator", "frontend-proxy", "frontend", "product-catalog"),),
        queries=(Query("traffic", ("frontend-proxy", "frontend", "checkout")),),
        false_hypotheses=("a memory leak in checkout", "product-catalog database regression"),
        difficulty=1.1,
    ),
    Fault(
        id="loadGeneratorTraffic", service="load-generator",
        name="synthetic traffic paused",
        description="Not a fault: the load generator's synthetic traffic was paused, so request rates at "
                    "frontend-proxy and every backend fell to about zero without any errors.",
        keywords=("traffic dropped", "traffic drop", "no traffic", "zero traffic", "paused", "stopped sending",
                  "load generator", "load-generator", "request rate dropped", "requests stopped",
                  "synthetic traffic", "synthetic load", "load was stopped"),
        affected=("load-generator", "frontend-proxy"),
        variants=(("off", 0.0),),
        profile=Profile(traffic={"frontend-proxy": 0.0, "frontend": 0.0, "checkout": 0.0, "cart": 0.0}),
        logs=(("load-generator", "INFO", "Feature flag loadGeneratorTraffic evaluated to 0"),),
        signals=(
            S("request rate at frontend-proxy and backends ~0",
              "Traffic to the shop has almost stopped.",
              "span count per ServiceName ~0 from frontend-proxy down",
              "traffic fell off a cliff, basically zero", telling=True),
            S("only load-generator feature_flag.evaluate spans remain",
              "The only activity left is the load generator checking its flag.",
              "remaining spans: ServiceName=load-generator feature_flag.evaluate",
              "all I see is the load generator polling flags", telling=True),
            S("no error spans or error logs",
              "Nothing is failing.",
              "no StatusCode=Error, no SeverityText=ERROR",
              "no errors at all"),
        ),
        root_causes=_banks(
            ("Not a fault: load-generator synthetic traffic was paused (loadGeneratorTraffic off), so request "
             "rates fell to about zero without errors.",
             "load-generator stopped sending traffic (loadGeneratorTraffic off); the drop is expected."),
            ("The synthetic load was switched off (loadGeneratorTraffic), so the shop simply has no traffic; "
             "no service is failing.",),
            ("loadGeneratorTraffic=0: k6 paused -> request rate ~0 everywhere, no errors.",),
            ("nothing's broken, the load generator was paused (loadGeneratorTraffic) so there's no traffic.",)),
        remediation=_banks(
            ("Set loadGeneratorTraffic back on if synthetic traffic is wanted.",
             "Check real user traffic before declaring an outage."),
            ("Turn loadGeneratorTraffic back on.", "Confirm real users are unaffected."),
            ("flagd: loadGeneratorTraffic -> on.", "Verify span rates return."),
            ("Turn the load generator back on if you want traffic.", "Check real users first.")),
        paths=(("load-generator", "frontend-proxy", "frontend"),),
        queries=(Query("traffic", ("frontend-proxy", "frontend")),),
        false_hypotheses=("frontend-proxy (Envoy) is down", "a DNS outage",
                          "the OpenTelemetry collector stopped exporting"),
    ),
)


def _outside(id, service, affected, profile, logs, signals, causes, remediation, paths, queries):
    """An incident outside the catalog: the right answer names no known fault and asks for investigation."""
    return Fault(id=id, service=service, name=id, description="", keywords=(), affected=affected,
                 variants=(("n/a", 1.0),), profile=profile, logs=logs, signals=signals, root_causes=causes,
                 remediation=remediation, paths=paths, queries=queries, false_hypotheses=(), in_catalog=False)


# The same lead in every bank: the answer says first that no known fault matches (as a catalog fault's
# answer leads with the fault's id), then tells the evidence in its bank's words.
UNKNOWN_LEAD = "Unknown: no known fault matches, needs investigation."
UNKNOWN_PREFIX = {bank: UNKNOWN_LEAD for bank in BANKS}
ESCALATE = _banks(("Escalate to the owning team with the evidence above.", "Compare with the last deploy."),
                  ("Hand it to the service owners with this evidence.", "Check recent changes."),
                  ("Open an incident for the owning team.", "Correlate with recent deployments."),
                  ("Ping the owners with what we found.", "Look at what changed recently."))

OUTSIDE: tuple[Fault, ...] = (
    _outside("currencyCrashLoop", "currency", ("currency", "frontend", "checkout"),
             Profile(errors={"currency": 1.0, "frontend": 0.4, "checkout": 0.5}),
             (("currency", "ERROR", "terminate called after throwing an instance of 'std::out_of_range'"),),
             (S("currency restarts every few minutes", "The currency service keeps crashing and restarting.",
                "k8s: container currency CrashLoopBackOff", "currency pod is crash looping", telling=True),
              S("Convert errors {pct}%", "About {pct}% of conversions fail.",
                "oteldemo.CurrencyService/Convert StatusCode=Error ratio={ratio}", "conversions failing a lot")),
             _banks(("{p} currency crashes with std::out_of_range and restarts.",),
                    ("{p} The currency service keeps crashing.",),
                    ("{p} currency CrashLoopBackOff.",), ("{p} currency keeps dying.",)),
             ESCALATE, (CHECKOUT_PATH + ("currency",),), (Query("error_rate", ("currency", "frontend")),)),
    _outside("quoteFatal", "quote", ("quote", "shipping", "frontend"),
             Profile(errors={"quote": 1.0, "shipping": 0.9, "frontend": 0.3}),
             (("quote", "ERROR", "PHP Fatal error: Allowed memory size of 134217728 bytes exhausted"),),
             (S("quote /getquote returns 500", "Shipping quotes fail.",
                "quote SERVER span /getquote http.status_code=500", "quotes are broken", telling=True),
              S("shipping /get-quote errors {pct}%", "The shipping quote call fails about {pct}% of the time.",
                "shipping /get-quote StatusCode=Error ratio={ratio}", "shipping quote errors")),
             _banks(("{p} quote hits PHP fatal errors on memory.",),
                    ("{p} The quote service fails with a PHP memory error.",),
                    ("{p} quote PHP Fatal error (memory exhausted).",), ("{p} quote is throwing PHP fatals.",)),
             ESCALATE, (("frontend", "shipping", "quote"),), (Query("error_rate", ("quote", "shipping")),)),
    _outside("catalogDbPool", "product-catalog", ("product-catalog", "frontend", "recommendation"),
             Profile(slow={"product-catalog": "ms", "frontend": "ms"}, errors={"product-catalog": 0.3}),
             (("product-catalog", "ERROR", "pq: sorry, too many clients already"),),
             (S("product-catalog queries wait for DB connections", "Catalog queries queue for a database "
                "connection.", "astronomy-db client spans waiting on connection pool",
                "catalog is waiting on db connections", telling=True),
              S("ListProducts p95 {ms} ms", "Listing products takes {ms} ms.",
                "ListProducts Duration p95 {ms} ms", "product lists are slow")),
             _banks(("{p} astronomy-db refuses connections ('too many clients').",),
                    ("{p} The catalog database runs out of client connections.",),
                    ("{p} PostgreSQL 'too many clients' from product-catalog.",),
                    ("{p} db is out of connections.",)),
             ESCALATE, (("frontend", "product-catalog", "astronomy-db"),),
             (Query("latency", ("product-catalog",)),)),
    _outside("collectorDrops", "otel-collector", ("otel-collector", "frontend"),
             Profile(traffic={"frontend": 0.4, "checkout": 0.4}),
             (("otel-collector", "WARN", "Dropping data because sending_queue is full"),),
             (S("span volume down ~60% with no traffic change", "We receive far fewer spans than requests.",
                "otelcol_exporter_send_failed_spans rising", "telemetry is missing, traffic isn't", telling=True),
              S("collector queue full", "The collector's export queue is full.",
                "otelcol_exporter_queue_size at capacity", "collector queue maxed out")),
             _banks(("{p} the otel-collector drops data (sending_queue full).",),
                    ("{p} The collector is dropping telemetry.",),
                    ("{p} otel-collector sending_queue full.",), ("{p} collector is losing data.",)),
             ESCALATE, (("frontend", "otel-collector"),), (Query("traffic", ("frontend", "checkout")),)),
    _outside("valkeyEviction", "valkey-cart", ("cart", "frontend"),
             Profile(errors={"cart": 0.1}),
             (("cart", "WARN", "cart not found for user, returning empty cart"),),
             (S("carts come back empty for some users", "Some shoppers find their cart emptied.",
                "cart GetCart returns 0 items for existing users", "people's carts disappear", telling=True),
              S("valkey evicted_keys rising", "The cart store evicts keys.",
                "valkey evicted_keys counter increasing", "valkey evicting keys")),
             _banks(("{p} valkey-cart evicts cart keys (maxmemory).",),
                    ("{p} The cart store drops carts when it is full.",),
                    ("{p} valkey evicted_keys up, carts lost.",), ("{p} valkey is evicting carts.",)),
             ESCALATE, (("frontend", "cart", "valkey-cart"),), (Query("error_rate", ("cart",)),)),
    _outside("shippingTls", "shipping", ("shipping", "checkout", "frontend"),
             Profile(errors={"shipping": 0.8, "checkout": 0.8, "frontend": 0.7}),
             (("shipping", "ERROR", "error sending request: invalid peer certificate: Expired"),),
             (S("shipping -> quote calls fail with TLS errors", "Shipping cannot talk to quote over TLS.",
                "shipping CLIENT spans error 'invalid peer certificate'", "cert errors between shipping and quote",
                telling=True),
              S("checkout PlaceOrder errors {pct}%", "About {pct}% of orders fail.",
                "checkout PlaceOrder StatusCode=Error ratio={ratio}", "orders failing")),
             _banks(("{p} an expired certificate breaks shipping -> quote.",),
                    ("{p} A TLS certificate expired between shipping and quote.",),
                    ("{p} shipping 'invalid peer certificate: Expired'.",), ("{p} expired cert on quote.",)),
             ESCALATE, (CHECKOUT_PATH + ("shipping", "quote"),), (Query("error_rate", ("shipping", "checkout")),)),
)
OUTSIDE = tuple(Fault(**{**f.__dict__, "root_causes": {b: tuple(t.replace("{p}", UNKNOWN_PREFIX[b]) for t in ts)
                                                       for b, ts in f.root_causes.items()}}) for f in OUTSIDE)

# Blips from healthy services, per bank: noise a diagnosis must see past.
NOISE: dict[str, tuple[tuple[str, str], ...]] = {
    "a": (("currency", "currency Convert p99 +8% (normal daily range)"),
          ("frontend-proxy", "burst of 404 on /favicon.ico"),
          ("quote", "quote /getquote p95 35 ms, unchanged"),
          ("accounting", "accounting consumer restarted 3 h before the window"),
          ("otel-collector", "otel-collector dropped 0.2% of spans in one batch"),
          ("email", "email sends follow the order rate")),
    "b": (("currency", "Currency conversions are a little slower than usual, within their daily range."),
          ("frontend-proxy", "There was a short burst of 404s for the favicon."),
          ("quote", "Shipping quotes are as fast as last week."),
          ("accounting", "The accounting consumer restarted a few hours earlier."),
          ("product-catalog", "The catalog logged a routine database reconnect."),
          ("email", "Confirmation emails go out at the usual pace.")),
    "c": (("currency", "INFO currency Convert Duration p99 +8% vs 7d baseline"),
          ("frontend-proxy", "frontend-proxy 404 GET /favicon.ico x40"),
          ("quote", "quote /getquote Duration p95 35 ms (baseline 34 ms)"),
          ("valkey-cart", "valkey-cart used_memory 40% of maxmemory, flat"),
          ("otel-collector", "otelcol_processor_dropped_spans 0.2% in one batch"),
          ("recommendation", "recommendation cache hit ratio 0.5")),
    "d": (("currency", "currency a tiny bit slower but that's normal for this time of day"),
          ("frontend-proxy", "saw a few favicon 404s, ignore"),
          ("quote", "quote looks the same as always"),
          ("accounting", "accounting bounced once this morning, unrelated probably"),
          ("product-catalog", "catalog reconnected to the db once, routine"),
          ("email", "emails look normal")),
}

HEALTHY_LOGS: tuple[tuple[str, str, str], ...] = (
    ("payment", "INFO", "Transaction complete."),
    ("email", "INFO", "Order confirmation email sent"),
    ("cart", "INFO", "GetCartAsync called with userId"),
    ("product-catalog", "INFO", "Loaded 10 products"),
    ("currency", "INFO", "Conversion request successful"),
    ("shipping", "INFO", "Get quote request received"),
    ("recommendation", "INFO", "Receive ListRecommendations for product ids"),
    ("ad", "INFO", "Targeted ad request received for [telescopes]"),
)


def by_id() -> dict[str, Fault]:
    return {f.id: f for f in FAULTS + OUTSIDE}
