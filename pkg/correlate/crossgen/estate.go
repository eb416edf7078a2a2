package crossgen

import (
	"fmt"
	"math/rand/v2"
	"slices"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// role is what a service is, which decides the alerts it raises when it
// breaks and when something below it breaks.
type role string

const (
	roleHTTP     role = "http"     // an API or a backend-for-frontend
	roleWorker   role = "worker"   // a queue consumer
	rolePostgres role = "postgres" // a database cluster
	roleRedis    role = "redis"
	roleKafka    role = "kafka"
	roleSearch   role = "elasticsearch"
	roleExternal role = "external" // a proxy in front of a third-party API
	roleDNS      role = "dns"
)

// serviceSpec is one service of the estate template.
type serviceSpec struct {
	name      string
	role      role
	namespace string
	team      string
	tier      string
	// deps are always in the catalog; maybe are each in it with
	// probability 0.7 (an estate's catalog is never quite the same).
	deps, maybe []string
	// consumes names the Kafka topic a worker reads.
	consumes string
	handlers []string
}

// estateTemplate is an e-commerce estate as an SRE team would run it on
// Kubernetes: an edge, backends-for-frontends, domain APIs, Kafka
// consumers, and the datastores and shared infrastructure under them.
// Services are listed bottom-up, so a service's dependencies come before
// it (the catalog stays acyclic when random edges are added upwards).
var estateTemplate = []serviceSpec{
	{name: "coredns", role: roleDNS, namespace: "kube-system", team: "platform", tier: "tier-0"},
	{name: "kafka", role: roleKafka, namespace: "data", team: "data-platform", tier: "tier-0"},
	{name: "orders-db", role: rolePostgres, namespace: "data", team: "dba", tier: "tier-0"},
	{name: "users-db", role: rolePostgres, namespace: "data", team: "dba", tier: "tier-0"},
	{name: "inventory-db", role: rolePostgres, namespace: "data", team: "dba", tier: "tier-1"},
	{name: "session-redis", role: roleRedis, namespace: "data", team: "platform", tier: "tier-1"},
	{name: "cart-redis", role: roleRedis, namespace: "data", team: "platform", tier: "tier-1"},
	{name: "search-es", role: roleSearch, namespace: "data", team: "search", tier: "tier-1"},
	{name: "psp-proxy", role: roleExternal, namespace: "payments", team: "payments", tier: "tier-0", handlers: []string{"/v1/charges", "/v1/refunds"}},
	{name: "auth-service", role: roleHTTP, namespace: "identity", team: "identity", tier: "tier-0", deps: []string{"users-db", "session-redis"}, handlers: []string{"/oauth/token", "/v1/sessions", "/v1/introspect"}},
	{name: "user-service", role: roleHTTP, namespace: "identity", team: "identity", tier: "tier-1", deps: []string{"users-db"}, maybe: []string{"auth-service"}, handlers: []string{"/v1/users", "/v1/addresses"}},
	{name: "inventory-service", role: roleHTTP, namespace: "shop", team: "fulfilment", tier: "tier-1", deps: []string{"inventory-db"}, maybe: []string{"kafka"}, handlers: []string{"/v1/stock", "/v1/reservations"}},
	{name: "catalog-service", role: roleHTTP, namespace: "shop", team: "catalog", tier: "tier-1", deps: []string{"inventory-db"}, maybe: []string{"search-es"}, handlers: []string{"/v1/products", "/v1/categories"}},
	{name: "search-service", role: roleHTTP, namespace: "shop", team: "search", tier: "tier-1", deps: []string{"search-es"}, handlers: []string{"/v1/search", "/v1/suggest"}},
	{name: "pricing-service", role: roleHTTP, namespace: "shop", team: "catalog", tier: "tier-1", deps: []string{"catalog-service"}, maybe: []string{"cart-redis"}, handlers: []string{"/v1/prices", "/v1/quotes"}},
	{name: "payments-service", role: roleHTTP, namespace: "payments", team: "payments", tier: "tier-0", deps: []string{"orders-db", "psp-proxy"}, handlers: []string{"/v1/payments", "/v1/payment-methods"}},
	{name: "reviews-service", role: roleHTTP, namespace: "shop", team: "catalog", tier: "tier-2", deps: []string{"inventory-db"}, maybe: []string{"user-service"}, handlers: []string{"/v1/reviews"}},
	{name: "cart-service", role: roleHTTP, namespace: "shop", team: "checkout", tier: "tier-0", deps: []string{"cart-redis", "pricing-service"}, maybe: []string{"inventory-service"}, handlers: []string{"/v1/carts", "/v1/carts/items"}},
	{name: "order-service", role: roleHTTP, namespace: "shop", team: "checkout", tier: "tier-0", deps: []string{"orders-db", "kafka", "inventory-service"}, maybe: []string{"payments-service"}, handlers: []string{"/v1/orders", "/v1/orders/status"}},
	{name: "recommendation-service", role: roleHTTP, namespace: "shop", team: "discovery", tier: "tier-2", deps: []string{"catalog-service"}, maybe: []string{"cart-redis"}, handlers: []string{"/v1/recommendations"}},
	{name: "shipping-service", role: roleHTTP, namespace: "fulfilment", team: "fulfilment", tier: "tier-1", deps: []string{"orders-db"}, maybe: []string{"kafka"}, handlers: []string{"/v1/shipments", "/v1/rates"}},
	{name: "notification-service", role: roleHTTP, namespace: "messaging", team: "messaging", tier: "tier-2", deps: []string{"user-service"}, handlers: []string{"/v1/notify"}},
	{name: "order-events-consumer", role: roleWorker, namespace: "shop", team: "checkout", tier: "tier-1", deps: []string{"kafka", "orders-db"}, consumes: "order-events"},
	{name: "search-indexer", role: roleWorker, namespace: "shop", team: "search", tier: "tier-2", deps: []string{"kafka", "search-es"}, maybe: []string{"catalog-service"}, consumes: "catalog-changes"},
	{name: "fulfilment-worker", role: roleWorker, namespace: "fulfilment", team: "fulfilment", tier: "tier-1", deps: []string{"kafka", "shipping-service"}, maybe: []string{"inventory-service"}, consumes: "orders-paid"},
	{name: "email-worker", role: roleWorker, namespace: "messaging", team: "messaging", tier: "tier-2", deps: []string{"kafka", "notification-service"}, consumes: "notifications"},
	{name: "checkout-api", role: roleHTTP, namespace: "shop", team: "checkout", tier: "tier-0", deps: []string{"cart-service", "order-service", "payments-service", "auth-service"}, maybe: []string{"shipping-service"}, handlers: []string{"/api/checkout", "/api/checkout/confirm"}},
	{name: "storefront-bff", role: roleHTTP, namespace: "edge", team: "web", tier: "tier-0", deps: []string{"catalog-service", "search-service", "cart-service", "auth-service"}, maybe: []string{"recommendation-service", "reviews-service", "pricing-service"}, handlers: []string{"/graphql", "/api/home", "/api/pdp"}},
	{name: "mobile-bff", role: roleHTTP, namespace: "edge", team: "mobile", tier: "tier-0", deps: []string{"catalog-service", "cart-service", "auth-service"}, maybe: []string{"user-service", "search-service"}, handlers: []string{"/m/graphql", "/m/api/feed"}},
	{name: "admin-portal", role: roleHTTP, namespace: "backoffice", team: "backoffice", tier: "tier-2", deps: []string{"user-service", "order-service"}, maybe: []string{"inventory-service"}, handlers: []string{"/admin"}},
	{name: "api-gateway", role: roleHTTP, namespace: "edge", team: "platform", tier: "tier-0", deps: []string{"storefront-bff", "mobile-bff", "checkout-api"}, maybe: []string{"auth-service"}, handlers: []string{"/", "/api", "/m"}},
}

// estate is one storm's services: the catalog and what the generator
// needs to know about each service to make its alerts.
type estate struct {
	catalog correlate.Catalog
	specs   map[string]*serviceSpec
	names   []string // bottom-up, as in the template
	// dependents are the services that call each service directly.
	dependents map[string][]string
	// pods are each service's current pods (names change on a deploy).
	pods map[string][]pod
	// nodes are the Kubernetes nodes; each pod runs on one.
	nodes []string
}

type pod struct {
	name, ip, node string
}

func newEstate(r *rand.Rand) *estate {
	e := &estate{specs: map[string]*serviceSpec{}, dependents: map[string][]string{}, pods: map[string][]pod{}}
	e.catalog.Services = map[string]correlate.Service{}
	for i := range 14 {
		e.nodes = append(e.nodes, fmt.Sprintf("ip-10-42-%d-%d.eu-west-1.compute.internal", 10+i*7%32, 20+r.IntN(200)))
	}
	for i := range estateTemplate {
		spec := estateTemplate[i]
		deps := slices.Clone(spec.deps)
		for _, d := range spec.maybe {
			if r.Float64() < 0.7 {
				deps = append(deps, d)
			}
		}
		// Now and then the catalog knows of a call the template does not
		// (or a stale one): an edge to an earlier service, never a cycle.
		if spec.role == roleHTTP && i > 9 && r.Float64() < 0.15 {
			cand := estateTemplate[8+r.IntN(i-8)].name
			if !slices.Contains(deps, cand) {
				deps = append(deps, cand)
			}
		}
		slices.Sort(deps)
		e.specs[spec.name] = &spec
		e.names = append(e.names, spec.name)
		e.catalog.Services[spec.name] = correlate.Service{
			Owner:     spec.team + "-oncall@shop.example.com",
			Team:      spec.team,
			Tier:      spec.tier,
			Runbook:   "https://runbooks.shop.example.com/" + spec.namespace + "/" + spec.name,
			DependsOn: deps,
		}
		for _, d := range deps {
			e.dependents[d] = append(e.dependents[d], spec.name)
		}
		e.rollPods(r, spec.name)
	}
	return e
}

// rollPods gives a service a new ReplicaSet: new pod names, as a deploy
// does.
func (e *estate) rollPods(r *rand.Rand, svc string) {
	spec := e.specs[svc]
	n := 3
	switch spec.role {
	case rolePostgres:
		n = 2 // primary and a replica
	case roleKafka:
		n = 3
	case roleHTTP:
		n = 2 + r.IntN(5)
	}
	hash := randName(r, 10)
	pods := make([]pod, n)
	for i := range pods {
		name := fmt.Sprintf("%s-%s-%s", svc, hash, randName(r, 5))
		if spec.role == rolePostgres || spec.role == roleKafka || spec.role == roleRedis || spec.role == roleSearch {
			name = fmt.Sprintf("%s-%d", svc, i) // a StatefulSet
		}
		pods[i] = pod{name: name, ip: fmt.Sprintf("10.42.%d.%d", r.IntN(64), 2+r.IntN(250)), node: e.nodes[r.IntN(len(e.nodes))]}
	}
	e.pods[svc] = pods
}

const nameLetters = "bcdfghjklmnpqrstvwxz2456789"

func randName(r *rand.Rand, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = nameLetters[r.IntN(len(nameLetters))]
	}
	return string(b)
}
