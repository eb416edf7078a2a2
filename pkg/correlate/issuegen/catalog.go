package issuegen

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
)

// kind is what a service is, which decides the alert rules it has.
type kind string

const (
	kindHTTP        kind = "http"     // a request/response service (Go, JVM)
	kindWorker      kind = "worker"   // a queue consumer
	kindAdapter     kind = "adapter"  // a client of a third party (payment provider, carrier)
	kindPostgres    kind = "postgres" // stateful sets and their exporters from here on
	kindMySQL       kind = "mysql"
	kindRedis       kind = "redis"
	kindKafka       kind = "kafka"
	kindElastic     kind = "elasticsearch"
	kindMemcache    kind = "memcached"
	kindMongo       kind = "mongodb"
	kindVault       kind = "vault"
	kindObjectStore kind = "minio"
)

// stateful reports whether the service is a data store (alerts by instance,
// from an exporter job).
func (k kind) stateful() bool {
	switch k {
	case kindHTTP, kindWorker, kindAdapter:
		return false
	}
	return true
}

// serviceDef is one line of the estate. deps lists what the service calls;
// a dependency written "?name" exists in some storms only (an estate's
// wiring differs from one shop to the next).
type serviceDef struct {
	name, team, tier string
	kind             kind
	replicas         int
	deps             string
}

// estate is the universe storms draw their catalog from: a web shop of the
// usual shape, edge → domain services → data stores, 56 services.
var estate = []serviceDef{
	// edge
	{"web-storefront", "storefront", "1", kindHTTP, 6, "graphql-bff auth-service redis-sessions ?media-service"},
	{"graphql-bff", "storefront", "1", kindHTTP, 6, "rate-limiter catalog-service cart-service checkout-service user-profile search-service ?recommendation-service ?reviews-service ?wishlist-service"},
	{"mobile-bff", "mobile", "1", kindHTTP, 4, "api-gateway ?recommendation-service"},
	{"partner-api", "partners", "2", kindHTTP, 3, "rate-limiter auth-service order-service catalog-service inventory-service"},
	{"admin-portal", "backoffice", "3", kindHTTP, 2, "auth-service order-service inventory-service catalog-service returns-service ?user-profile"},
	{"api-gateway", "edge", "0", kindHTTP, 8, "rate-limiter auth-service checkout-service cart-service catalog-service search-service user-profile order-service returns-service ?wishlist-service"},
	{"rate-limiter", "edge", "1", kindHTTP, 3, "redis-sessions"},
	// identity
	{"auth-service", "identity", "0", kindHTTP, 4, "postgres-users redis-sessions vault"},
	{"user-profile", "identity", "2", kindHTTP, 3, "postgres-users ?redis-sessions"},
	// shopping
	{"checkout-service", "checkout", "0", kindHTTP, 6, "cart-service payment-service pricing-service inventory-service order-service tax-service feature-flags ?address-validation ?user-profile"},
	{"cart-service", "checkout", "1", kindHTTP, 4, "redis-cart pricing-service catalog-service ?feature-flags ?inventory-service"},
	{"pricing-service", "checkout", "1", kindHTTP, 3, "mysql-catalog memcached-catalog promotions-service currency-service"},
	{"promotions-service", "checkout", "2", kindHTTP, 2, "mysql-catalog ?feature-flags"},
	{"currency-service", "checkout", "2", kindHTTP, 2, "?egress-proxy"},
	{"tax-service", "checkout", "2", kindAdapter, 2, "egress-proxy"},
	{"address-validation", "checkout", "3", kindAdapter, 2, "egress-proxy"},
	{"feature-flags", "platform", "1", kindHTTP, 3, "postgres-users"},
	{"catalog-service", "catalog", "1", kindHTTP, 4, "mysql-catalog memcached-catalog ?media-service"},
	{"media-service", "catalog", "2", kindHTTP, 3, "object-store"},
	{"search-service", "search", "1", kindHTTP, 4, "elasticsearch-products catalog-service ?pricing-service"},
	{"search-indexer", "search", "2", kindWorker, 2, "kafka elasticsearch-products catalog-service"},
	{"recommendation-service", "growth", "2", kindHTTP, 3, "redis-features catalog-service ?kafka"},
	{"reviews-service", "growth", "3", kindHTTP, 2, "mongodb-reviews ?user-profile"},
	{"wishlist-service", "growth", "3", kindHTTP, 2, "postgres-users catalog-service"},
	{"loyalty-service", "growth", "3", kindHTTP, 2, "postgres-users kafka"},
	// orders and money
	{"order-service", "orders", "0", kindHTTP, 4, "postgres-orders kafka ?inventory-service"},
	{"returns-service", "orders", "2", kindHTTP, 2, "postgres-orders order-service payment-service"},
	{"invoice-service", "orders", "2", kindWorker, 2, "kafka postgres-orders object-store"},
	{"inventory-service", "orders", "1", kindHTTP, 3, "postgres-inventory kafka ?warehouse-service"},
	{"warehouse-service", "fulfillment", "2", kindHTTP, 2, "postgres-inventory kafka"},
	{"payment-service", "payments", "0", kindHTTP, 4, "postgres-payments psp-adapter vault fraud-detection currency-service ?kafka"},
	{"psp-adapter", "payments", "0", kindAdapter, 3, "egress-proxy"},
	{"fraud-detection", "risk", "1", kindHTTP, 3, "redis-features ml-scoring ?postgres-payments"},
	{"ml-scoring", "risk", "2", kindHTTP, 2, ""},
	{"fulfillment-worker", "fulfillment", "1", kindWorker, 3, "kafka postgres-orders shipping-service warehouse-service"},
	{"shipping-service", "fulfillment", "1", kindHTTP, 3, "carrier-adapter postgres-orders ?address-validation"},
	{"carrier-adapter", "fulfillment", "2", kindAdapter, 2, "egress-proxy"},
	{"notification-service", "messaging", "2", kindWorker, 3, "kafka email-sender sms-adapter user-profile"},
	{"email-sender", "messaging", "2", kindAdapter, 2, "smtp-relay"},
	{"sms-adapter", "messaging", "3", kindAdapter, 2, "egress-proxy"},
	{"smtp-relay", "messaging", "2", kindAdapter, 2, ""},
	// data stores
	{"postgres-users", "data-platform", "0", kindPostgres, 3, ""},
	{"postgres-orders", "data-platform", "0", kindPostgres, 3, ""},
	{"postgres-payments", "data-platform", "0", kindPostgres, 3, ""},
	{"postgres-inventory", "data-platform", "1", kindPostgres, 3, ""},
	{"mysql-catalog", "data-platform", "1", kindMySQL, 3, ""},
	{"mongodb-reviews", "data-platform", "3", kindMongo, 3, ""},
	{"redis-sessions", "data-platform", "0", kindRedis, 3, ""},
	{"redis-cart", "data-platform", "1", kindRedis, 3, ""},
	{"redis-features", "data-platform", "2", kindRedis, 3, ""},
	{"memcached-catalog", "data-platform", "2", kindMemcache, 3, ""},
	{"kafka", "data-platform", "0", kindKafka, 5, ""},
	{"elasticsearch-products", "search", "1", kindElastic, 5, ""},
	{"object-store", "platform", "1", kindObjectStore, 4, ""},
	// platform
	{"vault", "platform", "0", kindVault, 3, ""},
	{"egress-proxy", "platform", "1", kindHTTP, 3, ""},
}

// namespaces by team: where the team's workloads run.
var namespaces = map[string]string{
	"storefront": "storefront", "mobile": "mobile", "backoffice": "backoffice", "edge": "edge",
	"partners": "partners", "identity": "identity", "checkout": "checkout", "catalog": "catalog", "search": "search",
	"growth": "growth", "orders": "orders", "payments": "payments", "risk": "risk",
	"fulfillment": "fulfillment", "messaging": "messaging", "data-platform": "databases",
	"platform": "platform",
}

// service is a service of one storm's estate.
type service struct {
	serviceDef
	namespace string
	deps      []string // what it calls
	callers   []string // what calls it
	pods      []string // current pod names (a deploy replaces them)
	ips       []string // one per pod or instance
	version   string   // image tag, bumped by deploys
}

// world is one storm's estate.
type world struct {
	names    []string // in estate order
	services map[string]*service
}

// newWorld draws one estate: optional edges in or out, pod names, addresses,
// versions.
func newWorld(rng *rand.Rand, optionalEdge float64) *world {
	w := &world{services: map[string]*service{}}
	for _, d := range estate {
		s := &service{serviceDef: d, namespace: namespaces[d.team]}
		for _, dep := range strings.Fields(d.deps) {
			if name, ok := strings.CutPrefix(dep, "?"); ok {
				if rng.Float64() >= optionalEdge {
					continue
				}
				dep = name
			}
			s.deps = append(s.deps, dep)
		}
		s.version = fmt.Sprintf("v%d.%d.%d", 1+rng.IntN(4), rng.IntN(40), rng.IntN(12))
		s.pods = podNames(rng, s)
		for range s.pods {
			s.ips = append(s.ips, fmt.Sprintf("10.%d.%d.%d", 40+rng.IntN(8), rng.IntN(256), 2+rng.IntN(250)))
		}
		w.names = append(w.names, d.name)
		w.services[d.name] = s
	}
	for _, name := range w.names {
		for _, dep := range w.services[name].deps {
			d, ok := w.services[dep]
			if !ok {
				panic("issuegen: estate: " + name + " depends on unknown " + dep)
			}
			d.callers = append(d.callers, name)
		}
	}
	return w
}

// podAlphabet is the one Kubernetes draws pod-name suffixes from.
const podAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func randomSuffix(rng *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = podAlphabet[rng.IntN(len(podAlphabet))]
	}
	return string(b)
}

// podNames names a service's pods: a Deployment's "<name>-<replicaset
// hash>-<suffix>", a StatefulSet's "<name>-<ordinal>".
func podNames(rng *rand.Rand, s *service) []string {
	pods := make([]string, s.replicas)
	if s.kind.stateful() {
		for i := range pods {
			pods[i] = fmt.Sprintf("%s-%d", s.name, i)
		}
		return pods
	}
	rs := randomSuffix(rng, 10)
	for i := range pods {
		pods[i] = s.name + "-" + rs + "-" + randomSuffix(rng, 5)
	}
	return pods
}

// catalogYAML renders the catalog file the correlator reads: top-level
// services, each with owner, team, tier, runbook and depends_on.
func (w *world) catalogYAML() []byte {
	var b bytes.Buffer
	b.WriteString("# Service catalog (generated by issuegen).\nservices:\n")
	names := slices.Clone(w.names)
	slices.Sort(names)
	for _, name := range names {
		s := w.services[name]
		fmt.Fprintf(&b, "  %s:\n", name)
		fmt.Fprintf(&b, "    owner: %s-oncall@shop.example.com\n", s.team)
		fmt.Fprintf(&b, "    team: %s\n", s.team)
		fmt.Fprintf(&b, "    tier: %q\n", s.tier)
		fmt.Fprintf(&b, "    runbook: https://runbooks.shop.example.com/%s/%s\n", s.team, name)
		fmt.Fprintf(&b, "    depends_on: [%s]\n", strings.Join(s.deps, ", "))
	}
	return b.Bytes()
}
