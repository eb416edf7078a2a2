package wordgen

import (
	"bytes"
	"slices"

	"gopkg.in/yaml.v3"
)

// The estate is a video streaming platform ("streamio") on one production
// Kubernetes cluster, monitored the way such estates are: kube-prometheus
// (kube-state-metrics, node-exporter, kubelet), a ServiceMonitor per
// application, the community exporters of each datastore, Pyrra-style SLO
// burn-rate rules and blackbox probes of the public endpoints.

// kind is what a component is, which decides the alerts it can raise.
type kind int

const (
	kindHTTP       kind = iota // an API behind a Kubernetes Service
	kindConsumer               // a Kafka consumer (worker), no HTTP SLO
	kindPostgres               // postgres_exporter
	kindRedis                  // redis_exporter
	kindCassandra              // k8ssandra's metrics
	kindKafka                  // Strimzi's PodMonitors
	kindElastic                // elasticsearch_exporter
	kindCeph                   // Rook's ceph-mgr
	kindRabbit                 // the RabbitMQ operator's Service
	kindClickHouse             // the Altinity operator's exporter
	kindVault                  // Vault's own telemetry
)

// component is one entry of the service catalog and what monitoring knows
// about it.
type component struct {
	name      string
	namespace string
	team      string
	owner     string
	tier      int
	kind      kind
	deps      []string
	routes    []string // HTTP routes, one error-rate series each
	replicas  int
	probes    []string // public URLs the blackbox exporter probes
	topic     string   // the Kafka topic a consumer reads
	mesh      bool     // its request metrics come from the Istio sidecar, not its own
}

// stateful reports whether the component is a datastore or broker.
func (c *component) stateful() bool { return c.kind != kindHTTP && c.kind != kindConsumer }

const (
	cluster    = "prod-euw1"
	prometheus = "monitoring/k8s"
	ksmService = "kube-prometheus-stack-kube-state-metrics"
	nodeExpSvc = "kube-prometheus-stack-prometheus-node-exporter"
	kubeletSvc = "kube-prometheus-stack-kubelet"
	domain     = "streamio.tv"
)

var owners = map[string]string{
	"edge":             "amelie.fournier@streamio.tv",
	"web-experience":   "tom.nakamura@streamio.tv",
	"playback":         "ines.carvalho@streamio.tv",
	"identity":         "ravi.menon@streamio.tv",
	"commerce":         "olga.petrova@streamio.tv",
	"discovery":        "samuel.okafor@streamio.tv",
	"content-platform": "lena.vogel@streamio.tv",
	"data-platform":    "marco.bellini@streamio.tv",
	"storage":          "hana.kim@streamio.tv",
}

// newEstate is the fixed estate every storm runs on: 25 applications and
// 14 datastores in three layers (edge and client back ends, domain
// services, data).
func newEstate() *estate {
	c := func(name, ns, team string, tier int, k kind, replicas int, deps []string, routes []string, probes ...string) *component {
		return &component{name: name, namespace: ns, team: team, owner: owners[team], tier: tier, kind: k, deps: deps, routes: routes, replicas: replicas, probes: probes}
	}
	consumer := func(name, ns, team string, tier int, topic string, deps []string) *component {
		comp := c(name, ns, team, tier, kindConsumer, 3, deps, nil)
		comp.topic = topic
		return comp
	}
	list := []*component{
		// Edge and client back ends.
		c("edge-gateway", "edge", "edge", 1, kindHTTP, 6, []string{"web-bff", "device-bff", "auth-service"},
			[]string{"/", "/api"}, "https://api."+domain+"/healthz"),
		c("web-bff", "web", "web-experience", 1, kindHTTP, 4,
			[]string{"auth-service", "profile-service", "catalog-api", "playback-api", "recommendations", "search-api", "subscription-service"},
			[]string{"/graphql", "/session", "/browse"}, "https://www."+domain+"/"),
		c("device-bff", "web", "web-experience", 1, kindHTTP, 6,
			[]string{"auth-service", "profile-service", "catalog-api", "playback-api", "recommendations", "viewing-history"},
			[]string{"/tv/v2/home", "/tv/v2/play", "/mobile/v3/feed"}),
		// Playback.
		c("playback-api", "playback", "playback", 1, kindHTTP, 8,
			[]string{"entitlement-service", "manifest-service", "drm-license", "session-redis", "events-kafka", "geo-service"},
			[]string{"/v1/play", "/v1/heartbeat", "/v1/stop"}, "https://api."+domain+"/v1/playback/healthz"),
		c("manifest-service", "playback", "playback", 1, kindHTTP, 6, []string{"asset-metadata", "cdn-router", "media-origin"},
			[]string{"/dash/{asset}", "/hls/{asset}"}),
		c("drm-license", "playback", "playback", 1, kindHTTP, 4, []string{"key-management", "entitlement-service"},
			[]string{"/widevine", "/fairplay", "/playready"}, "https://license."+domain+"/healthz"),
		c("cdn-router", "playback", "edge", 1, kindHTTP, 3, []string{"geo-service"}, []string{"/steer"}),
		c("media-origin", "playback", "content-platform", 2, kindHTTP, 4, []string{"media-storage"}, []string{"/origin/{path}"}),
		c("geo-service", "playback", "edge", 2, kindHTTP, 3, nil, []string{"/v1/lookup"}),
		// Identity.
		c("auth-service", "identity", "identity", 1, kindHTTP, 6, []string{"identity-db", "session-redis"},
			[]string{"/oauth/token", "/oauth/authorize", "/v1/devices/link"}, "https://auth."+domain+"/.well-known/openid-configuration"),
		c("profile-service", "identity", "identity", 2, kindHTTP, 4, []string{"cassandra-main"}, []string{"/v1/profiles", "/v1/preferences"}),
		// Commerce.
		c("subscription-service", "commerce", "commerce", 1, kindHTTP, 3, []string{"subscriptions-db", "billing-gateway", "events-kafka"},
			[]string{"/v1/subscriptions", "/v1/plans"}),
		c("billing-gateway", "commerce", "commerce", 1, kindHTTP, 3, []string{"subscriptions-db"}, []string{"/v1/charges", "/v1/webhooks/psp"}),
		c("entitlement-service", "commerce", "commerce", 1, kindHTTP, 4, []string{"entitlements-db", "entitlements-redis", "subscription-service"},
			[]string{"/v1/entitlements/check", "/v1/entitlements"}),
		// Discovery.
		c("catalog-api", "discovery", "discovery", 1, kindHTTP, 5, []string{"catalog-db", "asset-metadata"},
			[]string{"/v1/titles", "/v1/rails", "/v1/titles/{id}"}),
		c("search-api", "discovery", "discovery", 2, kindHTTP, 3, []string{"search-elasticsearch", "catalog-api"}, []string{"/v1/search", "/v1/suggest"}),
		c("recommendations", "discovery", "discovery", 2, kindHTTP, 4, []string{"feature-store-redis", "reco-model-server", "viewing-history", "catalog-api"},
			[]string{"/v1/rows", "/v1/because-you-watched"}),
		c("reco-model-server", "discovery", "discovery", 2, kindHTTP, 3, []string{"feature-store-redis"}, []string{"/v2/models/ranker/infer"}),
		c("viewing-history", "discovery", "discovery", 2, kindHTTP, 4, []string{"cassandra-main", "events-kafka"},
			[]string{"/v1/history", "/v1/continue-watching"}),
		// Content supply chain.
		c("asset-metadata", "content", "content-platform", 1, kindHTTP, 3, []string{"catalog-db", "media-storage"}, []string{"/v1/assets/{id}", "/v1/renditions"}),
		c("content-ingest", "content", "content-platform", 3, kindHTTP, 2, []string{"media-storage", "transcode-orchestrator", "asset-metadata", "events-kafka"},
			[]string{"/v1/deliveries"}),
		c("transcode-orchestrator", "content", "content-platform", 3, kindHTTP, 2, []string{"transcode-queue", "media-storage", "asset-metadata"},
			[]string{"/v1/jobs"}),
		consumer("transcode-worker", "content", "content-platform", 3, "transcode.jobs", []string{"transcode-queue", "media-storage"}),
		consumer("notification-service", "web", "web-experience", 3, "user.events", []string{"events-kafka", "profile-service"}),
		consumer("qoe-analytics", "data", "data-platform", 3, "playback.heartbeats", []string{"events-kafka", "analytics-clickhouse"}),
		// Data.
		c("identity-db", "data", "data-platform", 1, kindPostgres, 2, nil, nil),
		c("subscriptions-db", "data", "data-platform", 1, kindPostgres, 2, nil, nil),
		c("entitlements-db", "data", "data-platform", 1, kindPostgres, 2, nil, nil),
		c("catalog-db", "data", "data-platform", 1, kindPostgres, 2, nil, nil),
		c("session-redis", "data", "data-platform", 1, kindRedis, 3, nil, nil),
		c("entitlements-redis", "data", "data-platform", 1, kindRedis, 3, nil, nil),
		c("feature-store-redis", "data", "data-platform", 2, kindRedis, 3, nil, nil),
		c("cassandra-main", "data", "data-platform", 1, kindCassandra, 6, nil, nil),
		c("events-kafka", "kafka", "data-platform", 1, kindKafka, 3, nil, nil),
		c("search-elasticsearch", "data", "discovery", 2, kindElastic, 3, nil, nil),
		c("media-storage", "rook-ceph", "storage", 1, kindCeph, 12, nil, nil),
		c("transcode-queue", "content", "content-platform", 3, kindRabbit, 3, nil, nil),
		c("analytics-clickhouse", "data", "data-platform", 3, kindClickHouse, 2, nil, nil),
		c("key-management", "vault", "storage", 1, kindVault, 3, nil, nil),
	}
	for _, comp := range list {
		// These teams never instrumented their services' requests: their
		// alerts are built on the mesh's telemetry.
		comp.mesh = comp.kind == kindHTTP && (comp.team == "web-experience" || comp.team == "identity")
	}
	e := &estate{list: list, byName: map[string]*component{}, callers: map[string][]string{}}
	for _, comp := range list {
		e.byName[comp.name] = comp
	}
	for _, comp := range list {
		for _, d := range comp.deps {
			if e.byName[d] == nil {
				panic("wordgen: " + comp.name + " depends on unknown " + d)
			}
			e.callers[d] = append(e.callers[d], comp.name)
		}
	}
	for _, cs := range e.callers {
		slices.Sort(cs)
	}
	return e
}

type estate struct {
	list    []*component
	byName  map[string]*component
	callers map[string][]string // component → the components that depend on it
}

// nodes are the cluster's worker nodes.
var nodes = []string{
	"ip-10-42-3-17.eu-west-1.compute.internal",
	"ip-10-42-3-88.eu-west-1.compute.internal",
	"ip-10-42-4-201.eu-west-1.compute.internal",
	"ip-10-42-4-36.eu-west-1.compute.internal",
	"ip-10-42-5-142.eu-west-1.compute.internal",
	"ip-10-42-5-9.eu-west-1.compute.internal",
	"ip-10-42-6-113.eu-west-1.compute.internal",
	"ip-10-42-6-250.eu-west-1.compute.internal",
	"ip-10-42-7-64.eu-west-1.compute.internal",
	"ip-10-42-7-190.eu-west-1.compute.internal",
	"ip-10-42-8-21.eu-west-1.compute.internal",
	"ip-10-42-8-177.eu-west-1.compute.internal",
}

type catalogEntry struct {
	Owner     string   `yaml:"owner"`
	Team      string   `yaml:"team"`
	Tier      int      `yaml:"tier"`
	Runbook   string   `yaml:"runbook"`
	DependsOn []string `yaml:"depends_on,flow"`
}

// catalogYAML is the service catalog: top-level services, each with owner,
// team, tier, runbook and depends_on.
func (e *estate) catalogYAML() []byte {
	services := map[string]catalogEntry{}
	for _, c := range e.list {
		deps := c.deps
		if deps == nil {
			deps = []string{}
		}
		services[c.name] = catalogEntry{
			Owner: c.owner, Team: c.team, Tier: c.tier,
			Runbook:   "https://runbooks." + domain + "/services/" + c.name,
			DependsOn: deps,
		}
	}
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]any{"services": services}); err != nil {
		panic("wordgen: catalog: " + err.Error())
	}
	return b.Bytes()
}
