"""What-if simulation: where every request goes under failures.

Pure (no Pulumi, no network): the input is the deployed fleet — each model's facts from the resolve
step (:mod:`fleetkit.resolve`: service, version, pool, GPU class, weights; replica bounds from its
autoscaler policy, engine arguments from its plan), the routing from each stack's rendered
manifests, and the mesh topology (:mod:`.fleet`, :mod:`.source`; a preview directory is read from
its manifests alone) — a request class (:class:`.core.Request`) and a :class:`.scenarios.Scenario`;
the output is a distribution of :class:`.core.Outcome` s (served by cluster/model/version/GPU
class, or an HTTP error with its reason). :mod:`.report` runs classes × scenarios,
:mod:`.capacity` adds the capacity view, :mod:`.diagram` / :mod:`.markdown` draw it,
:mod:`.command` is ``fleetkit simulate``; :mod:`fleetkit.review.behaviour` diffs two revisions.

The rules, in the order a request meets them (Istio 1.30 / Envoy 1.36; numbers used in
:mod:`.engine`):

R1  Ingress. A request enters at the ingress gateway of its origin cluster; if that cluster (its
    region or network) is down the request fails there ("ingress cluster down"). Each cluster's
    istiod programs its gateway from *its own* cluster's Istio config (multi-primary: config is not
    shared, endpoints are — Istio docs "Install Multi-Primary on different networks").
R2  Edge filters (:mod:`.edge`). Client-sent copies of headers a first Lua filter removes are gone;
    ``RequestAuthentication.outputClaimToHeaders`` adds claim headers — Envoy ``jwt_authn``
    ``claim_to_headers`` appends, so a forged copy stays and an exact header match then sees the
    comma-joined values (Envoy ``config.route.v3.HeaderMatcher``). A body router (issue #13's edge:
    OpenAI body ``model`` → model header, unknown model → 404 at the edge; tier from a claim via its
    map, else the default tier; cohort from a known claim, else a sticky hash of the subject — a
    class of many subjects splits by the cohorts' percentages) is read from its Lua config table.
    Without a body router the body's model does not influence routing.
R3  VirtualService routes are evaluated in order and the first whose ``match`` list has a matching
    entry wins; conditions inside one entry are ANDed (Istio ``HTTPRoute``/``HTTPMatchRequest``
    reference). Headers: ``exact``/``prefix``/``regex`` (RE2 full match); ``withoutHeaders``; ``uri``;
    ``method``. No match → 404 "no route" (Envoy route table with no matching route returns 404 NR).
R4  Weighted destinations split by ``weight``; each (host, subset) is its own Envoy cluster
    ``outbound|port|subset|host`` — subsets never fail over to each other (istio/istio#41787) and a
    weighted subset with no endpoints returns 503 for its share (istio/istio#27092). A subset the
    origin's DestinationRule does not define has no cluster: 503. ``mirror`` does not change where
    the request is answered.
R5  Endpoints come from every cluster whose Service of that name selects pods; a subset filters by
    the pods' real labels (EDS builder). On another network, istiod replaces each remote cluster's
    endpoints by one east-west gateway endpoint whose weight is the number of endpoints it stands
    for and whose labels are only ``topology.istio.io/cluster`` and ``topology.istio.io/network``
    (istio/istio ``pilot/pkg/xds/endpoints/ep_filters.go`` ``EndpointsByNetworkFilter``:
    ``labelutil.AugmentLabels(nil, gw.Cluster, "", "", gw.Network)``) — custom labels and
    region/zone labels are lost. The remote east-west gateway (``AUTO_PASSTHROUGH``) then balances
    over that cluster's pods of the subset with the same DestinationRule, seen from itself.
R6  Outlier detection ejects failing hosts, at most ``maxEjectionPercent`` of the cluster's hosts
    (Istio default 10 %), and at least one regardless (Envoy ``outlier_detection.max_ejection_percent``);
    failing hosts it may not eject keep receiving their share ("failing endpoint not ejected").
    Istio sets ``healthy_panic_threshold`` to ``minHealthPercent`` (0: panic routing off) when
    outlier detection is configured (``cluster_traffic_policy.go`` ``applyOutlierDetection``), so a
    cluster with every host ejected answers 503 rather than spreading over unhealthy hosts.
R7  Priorities: only with outlier detection (``ApplyLocalityLoadBalancer`` ``enableFailover``).
    ``failoverPriority`` (``loadbalancer.go`` ``applyFailoverPriorityPerLocality``): an endpoint's
    priority is 0 when every listed label equals the proxy's (or the ``label=value`` override),
    else ``len(labels) − j`` for the first mismatching label j; priorities are then compacted.
    Without it, region/zone locality (``applyLocalityFailover``: same zone 0, same region 2, other
    region 3, or 4 when a ``failover`` from→to names another region). Envoy priority load: a level's
    health is ``min(100, 1.4 × healthy/total hosts)`` (overprovisioning factor 1.4); levels take load
    in order up to their health, normalised when the sum is below 100 (Envoy "Priority levels").
    Within a level hosts are chosen by weight (LEAST_REQUEST with equal load ≈ weighted random).
R8  An Envoy aggregate cluster (EnvoyFilter ``CLUSTER`` ``ADD`` of ``envoy.clusters.aggregate``,
    a route re-pointed by ``HTTP_ROUTE`` ``MERGE``) linearises its members' priority levels in
    member order (Envoy "Aggregate Cluster").
R9  Circuit breakers are per Envoy cluster and per proxy (each gateway replica counts alone, Envoy
    "Circuit breaking"): with ``concurrency`` in-flight requests of a class at one replica, the share
    above ``min(tcp.maxConnections, http.http2MaxRequests) + http.http1MaxPendingRequests`` is
    rejected with 503 ("circuit open", Envoy UO). A subset's ``trafficPolicy.connectionPool``
    replaces the rule's whole ``connectionPool`` (Istio ``MergeTrafficPolicy`` merges per top-level
    field); unset limits are Istio's defaults (2^32−1).
R10 Local rate limits are token buckets per gateway replica (Envoy ``local_ratelimit``): a class
    offered ``rate`` requests/s at one replica above its descriptor's fill rate gets 429 for the
    excess share.
R11 vLLM answers a request whose body ``model`` is one of its ``--served-model-name`` values (else
    its model path) and returns 404 otherwise (vLLM OpenAI server ``_check_model``). A pod answering
    under a name that is not its first served name is flagged "as another model" (a fallback, or a
    name shared with another model).
R12 Scenarios (:mod:`.scenarios`): removed pods vanish from EDS (no health to lose: the priority
    level shrinks or disappears); failing pods stay and are ejected per R6. Retries
    (``retryOn: connect-failure,…``) go to another host of the same cluster and do not change the
    distribution here; timeouts are not modelled.
"""
