package blindgen

import (
	"bytes"
	"math/rand/v2"
	"slices"

	"gopkg.in/yaml.v3"
)

// Service kinds: they decide which alerts a service has and how a failure
// shows on it.
const (
	kGateway  = "gateway"
	kWeb      = "web"
	kBFF      = "bff"
	kAPI      = "api"
	kInternal = "internal"
	kExternal = "external" // adapter in front of a third-party provider
	kWorker   = "worker"
	kCron     = "cron"
	kPostgres = "postgres"
	kRedis    = "redis"
	kElastic  = "elasticsearch"
	kObject   = "objectstore"
	kKafka    = "kafka"
	kDNS      = "dns"
	kMesh     = "mesh"
	kCerts    = "certs"
	kVault    = "vault"
	kPlatform = "platform"
	kMonitor  = "monitoring"
)

type service struct {
	Name     string
	Layer    string
	Kind     string
	Team     string
	Tier     int
	Pods     int
	Optional string // non-empty: dropped per seed together with the others of the same tag
	Deps     []string
	Owner    string

	dependents []string // filled by buildCatalog
}

// http reports whether the service serves synchronous requests.
func (s *service) http() bool {
	switch s.Kind {
	case kGateway, kWeb, kBFF, kAPI, kInternal, kExternal:
		return true
	}
	return false
}

// stateful reports whether the service is a data store or a queue.
func (s *service) stateful() bool {
	switch s.Kind {
	case kPostgres, kRedis, kElastic, kObject, kKafka:
		return true
	}
	return false
}

// app reports whether the service is application code a product team
// deploys several times a day.
func (s *service) app() bool {
	return s.http() || s.Kind == kWorker || s.Kind == kCron
}

// The shop: an online retailer's production cluster, edge to storage.
var serviceTable = []service{
	// Shared infrastructure.
	{Name: "coredns", Layer: "infrastructure", Kind: kDNS, Team: "platform", Tier: 1, Pods: 3},
	{Name: "istio-control-plane", Layer: "infrastructure", Kind: kMesh, Team: "platform", Tier: 1, Pods: 2},
	{Name: "cert-manager", Layer: "infrastructure", Kind: kCerts, Team: "platform", Tier: 2, Pods: 1},
	{Name: "vault", Layer: "infrastructure", Kind: kVault, Team: "security", Tier: 1, Pods: 3, Optional: "vault"},
	{Name: "k8s-nodes", Layer: "infrastructure", Kind: kPlatform, Team: "platform", Tier: 1, Pods: 12},
	{Name: "prometheus", Layer: "infrastructure", Kind: kMonitor, Team: "observability", Tier: 2, Pods: 2},

	// Data stores and queues.
	{Name: "postgres-users", Layer: "data", Kind: kPostgres, Team: "identity", Tier: 1, Pods: 3},
	{Name: "postgres-catalog", Layer: "data", Kind: kPostgres, Team: "catalog", Tier: 1, Pods: 3},
	{Name: "postgres-orders", Layer: "data", Kind: kPostgres, Team: "fulfilment", Tier: 1, Pods: 3},
	{Name: "postgres-payments", Layer: "data", Kind: kPostgres, Team: "payments", Tier: 1, Pods: 2},
	{Name: "postgres-inventory", Layer: "data", Kind: kPostgres, Team: "fulfilment", Tier: 1, Pods: 2, Optional: "inventory-db"},
	{Name: "redis-cache", Layer: "data", Kind: kRedis, Team: "platform", Tier: 2, Pods: 3},
	{Name: "redis-sessions", Layer: "data", Kind: kRedis, Team: "identity", Tier: 1, Pods: 3},
	{Name: "elasticsearch", Layer: "data", Kind: kElastic, Team: "search", Tier: 2, Pods: 5},
	{Name: "object-storage", Layer: "data", Kind: kObject, Team: "platform", Tier: 2, Pods: 4, Optional: "object"},
	{Name: "kafka", Layer: "queue", Kind: kKafka, Team: "data-platform", Tier: 1, Pods: 5},

	// Internal services.
	{Name: "auth-service", Layer: "internal", Kind: kInternal, Team: "identity", Tier: 1, Pods: 4, Deps: []string{"postgres-users", "redis-sessions", "vault"}},
	{Name: "user-service", Layer: "internal", Kind: kInternal, Team: "identity", Tier: 2, Pods: 3, Deps: []string{"postgres-users", "kafka"}},
	{Name: "product-service", Layer: "internal", Kind: kInternal, Team: "catalog", Tier: 1, Pods: 4, Deps: []string{"postgres-catalog", "redis-cache", "object-storage"}},
	{Name: "pricing-service", Layer: "internal", Kind: kInternal, Team: "catalog", Tier: 1, Pods: 3, Deps: []string{"postgres-catalog", "redis-cache"}},
	{Name: "inventory-service", Layer: "internal", Kind: kInternal, Team: "fulfilment", Tier: 1, Pods: 3, Deps: []string{"postgres-inventory", "kafka"}},
	{Name: "order-service", Layer: "internal", Kind: kInternal, Team: "fulfilment", Tier: 1, Pods: 4, Deps: []string{"postgres-orders", "kafka", "inventory-service"}},
	{Name: "payment-service", Layer: "internal", Kind: kInternal, Team: "payments", Tier: 1, Pods: 3, Deps: []string{"postgres-payments", "psp-adapter", "kafka", "vault"}},
	{Name: "psp-adapter", Layer: "internal", Kind: kExternal, Team: "payments", Tier: 1, Pods: 2},
	{Name: "fraud-service", Layer: "internal", Kind: kInternal, Team: "payments", Tier: 2, Pods: 2, Deps: []string{"redis-cache", "kafka"}, Optional: "fraud"},
	{Name: "notification-service", Layer: "internal", Kind: kInternal, Team: "engagement", Tier: 3, Pods: 2, Deps: []string{"kafka"}},
	{Name: "recommendation-service", Layer: "internal", Kind: kInternal, Team: "personalisation", Tier: 3, Pods: 3, Deps: []string{"redis-cache", "object-storage"}, Optional: "reco"},
	{Name: "search-service", Layer: "internal", Kind: kInternal, Team: "search", Tier: 2, Pods: 3, Deps: []string{"elasticsearch"}},

	// APIs.
	{Name: "catalog-api", Layer: "api", Kind: kAPI, Team: "catalog", Tier: 1, Pods: 6, Deps: []string{"product-service", "pricing-service", "inventory-service"}},
	{Name: "cart-api", Layer: "api", Kind: kAPI, Team: "checkout", Tier: 1, Pods: 4, Deps: []string{"redis-sessions", "pricing-service", "inventory-service"}},
	{Name: "checkout-api", Layer: "api", Kind: kAPI, Team: "checkout", Tier: 1, Pods: 4, Deps: []string{"cart-api", "order-service", "payment-service", "fraud-service", "auth-service"}},
	{Name: "search-api", Layer: "api", Kind: kAPI, Team: "search", Tier: 2, Pods: 4, Deps: []string{"search-service", "pricing-service"}},
	{Name: "account-api", Layer: "api", Kind: kAPI, Team: "identity", Tier: 2, Pods: 3, Deps: []string{"auth-service", "user-service", "order-service"}},
	{Name: "partner-api", Layer: "api", Kind: kAPI, Team: "partners", Tier: 2, Pods: 2, Deps: []string{"catalog-api", "order-service", "auth-service"}, Optional: "partner"},

	// Frontends and backends for frontends.
	{Name: "web-bff", Layer: "bff", Kind: kBFF, Team: "web", Tier: 1, Pods: 6, Deps: []string{"catalog-api", "cart-api", "checkout-api", "search-api", "account-api", "recommendation-service"}},
	{Name: "mobile-bff", Layer: "bff", Kind: kBFF, Team: "mobile", Tier: 1, Pods: 4, Deps: []string{"catalog-api", "cart-api", "checkout-api", "search-api", "account-api"}},
	{Name: "web-frontend", Layer: "frontend", Kind: kWeb, Team: "web", Tier: 1, Pods: 6, Deps: []string{"web-bff"}},
	{Name: "admin-portal", Layer: "frontend", Kind: kWeb, Team: "backoffice", Tier: 3, Pods: 2, Deps: []string{"account-api", "catalog-api", "order-service"}, Optional: "admin"},

	// Edge.
	{Name: "edge-gateway", Layer: "edge", Kind: kGateway, Team: "platform", Tier: 1, Pods: 4, Deps: []string{"web-frontend", "mobile-bff", "auth-service"}},
	{Name: "partner-gateway", Layer: "edge", Kind: kGateway, Team: "partners", Tier: 2, Pods: 2, Deps: []string{"partner-api"}, Optional: "partner"},

	// Workers and jobs.
	{Name: "order-worker", Layer: "worker", Kind: kWorker, Team: "fulfilment", Tier: 1, Pods: 4, Deps: []string{"kafka", "order-service", "notification-service"}},
	{Name: "search-indexer", Layer: "worker", Kind: kWorker, Team: "search", Tier: 2, Pods: 2, Deps: []string{"kafka", "elasticsearch", "product-service"}},
	{Name: "email-worker", Layer: "worker", Kind: kWorker, Team: "engagement", Tier: 3, Pods: 2, Deps: []string{"kafka", "notification-service"}, Optional: "email"},
	{Name: "inventory-sync", Layer: "worker", Kind: kWorker, Team: "fulfilment", Tier: 2, Pods: 2, Deps: []string{"kafka", "inventory-service"}, Optional: "inventory-sync"},
	{Name: "payment-reconciler", Layer: "worker", Kind: kCron, Team: "payments", Tier: 2, Pods: 1, Deps: []string{"postgres-payments", "psp-adapter"}},
	{Name: "analytics-etl", Layer: "worker", Kind: kCron, Team: "data-platform", Tier: 3, Pods: 1, Deps: []string{"kafka", "object-storage"}, Optional: "etl"},
}

var ownerNames = map[string][]string{
	"platform":        {"m.keller", "a.osei"},
	"observability":   {"j.lindqvist"},
	"security":        {"r.nakamura"},
	"identity":        {"s.haddad", "p.moreau"},
	"catalog":         {"l.bianchi", "d.kowalski"},
	"fulfilment":      {"e.fischer", "t.okafor"},
	"payments":        {"c.ruiz", "h.tanaka"},
	"search":          {"v.ivanova"},
	"data-platform":   {"n.patel"},
	"engagement":      {"g.larsen"},
	"personalisation": {"y.chen"},
	"checkout":        {"b.schmidt", "k.adeyemi"},
	"partners":        {"f.dubois"},
	"web":             {"i.novak", "o.svensson"},
	"mobile":          {"z.kaya"},
	"backoffice":      {"w.silva"},
}

const maxServices = 45

// catalog is the service catalog of one storm.
type catalog struct {
	byName map[string]*service
	names  []string // sorted
}

func buildCatalog(r *rand.Rand, dropProb float64) *catalog {
	dropped := map[string]bool{}
	tags := map[string]bool{}
	for _, s := range serviceTable {
		if s.Optional != "" {
			tags[s.Optional] = true
		}
	}
	tagList := make([]string, 0, len(tags))
	for t := range tags {
		tagList = append(tagList, t)
	}
	slices.Sort(tagList)
	for _, t := range tagList {
		if r.Float64() < dropProb {
			dropped[t] = true
		}
	}
	// At most maxServices services.
	for _, t := range tagList {
		n := 0
		for _, s := range serviceTable {
			if s.Optional == "" || !dropped[s.Optional] {
				n++
			}
		}
		if n <= maxServices {
			break
		}
		dropped[t] = true
	}
	c := &catalog{byName: map[string]*service{}}
	for _, s := range serviceTable {
		if s.Optional != "" && dropped[s.Optional] {
			continue
		}
		cp := s
		cp.Deps = nil
		owners := ownerNames[s.Team]
		cp.Owner = owners[r.IntN(len(owners))] + "@shop.example.com"
		c.byName[s.Name] = &cp
		c.names = append(c.names, s.Name)
	}
	for _, s := range serviceTable {
		cs, ok := c.byName[s.Name]
		if !ok {
			continue
		}
		for _, d := range s.Deps {
			if _, ok := c.byName[d]; ok {
				cs.Deps = append(cs.Deps, d)
			}
		}
	}
	slices.Sort(c.names)
	for _, n := range c.names {
		for _, d := range c.byName[n].Deps {
			c.byName[d].dependents = append(c.byName[d].dependents, n)
		}
	}
	return c
}

func (c *catalog) yaml() []byte {
	type entry struct {
		Owner     string   `yaml:"owner"`
		Team      string   `yaml:"team"`
		Tier      int      `yaml:"tier"`
		Runbook   string   `yaml:"runbook"`
		DependsOn []string `yaml:"depends_on"`
	}
	root := &yaml.Node{Kind: yaml.MappingNode}
	for _, n := range c.names {
		s := c.byName[n]
		deps := s.Deps
		if deps == nil {
			deps = []string{}
		}
		var v yaml.Node
		if err := v.Encode(entry{Owner: s.Owner, Team: s.Team, Tier: s.Tier, Runbook: "https://runbooks.shop.example.com/services/" + n, DependsOn: deps}); err != nil {
			panic(err)
		}
		root.Content = append(root.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: n}, &v)
	}
	doc := &yaml.Node{Kind: yaml.MappingNode, Content: []*yaml.Node{{Kind: yaml.ScalarNode, Value: "services"}, root}}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		panic(err)
	}
	if err := enc.Close(); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// pick lists the catalog's services for which keep is true, in name order.
func (c *catalog) pick(keep func(*service) bool) []*service {
	var out []*service
	for _, n := range c.names {
		if s := c.byName[n]; keep(s) {
			out = append(out, s)
		}
	}
	return out
}
