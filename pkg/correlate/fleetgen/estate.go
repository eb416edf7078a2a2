package fleetgen

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// region is a cloud region the platform runs in. Each region has its own
// Prometheus per cluster and its own Alertmanager.
type region struct {
	name  string // eu-west-1
	short string // euw1, used in cluster names
	octet int    // second octet of the region's VPC, for IP addresses
	zones []string
}

var regions = []region{
	{"eu-west-1", "euw1", 10, []string{"eu-west-1a", "eu-west-1b", "eu-west-1c"}},
	{"us-east-1", "use1", 20, []string{"us-east-1a", "us-east-1b", "us-east-1d"}},
	{"ap-southeast-2", "apse2", 30, []string{"ap-southeast-2a", "ap-southeast-2b"}},
}

func regionNamed(name string) region {
	for _, r := range regions {
		if r.name == name {
			return r
		}
	}
	panic("fleetgen: unknown region " + name)
}

// kind is what a service is, which decides the alerts it can raise.
type kind int

const (
	kindAPI        kind = iota // HTTP/gRPC service
	kindWorker                 // queue consumer or batch worker
	kindPostgres               // PostgreSQL (Patroni), postgres_exporter
	kindRedis                  // Redis, redis_exporter
	kindKafka                  // Kafka (Strimzi), kafka-exporter
	kindRabbit                 // RabbitMQ
	kindSearch                 // OpenSearch
	kindClickhouse             // ClickHouse
	kindVault                  // HashiCorp Vault
	kindMesh                   // Istio control plane and cert-manager
	kindPlatform               // the Kubernetes clusters themselves: nodes, kubelet, CoreDNS
)

// datastore reports whether the kind runs as a StatefulSet in the data
// clusters, scraped through an exporter.
func (k kind) datastore() bool {
	return k >= kindPostgres && k <= kindVault
}

// service is one entry of the estate.
type service struct {
	name      string
	kind      kind
	team      string
	namespace string
	tier      int
	regions   []string // nil: eu-west-1 and us-east-1
	deps      []string // dependencies the catalog declares
	hidden    []string // real dependencies the catalog leaves out
	provider  string   // third-party API it calls with a credential
	noun      string   // resource its HTTP handlers serve
	topic     string   // Kafka topic or RabbitMQ queue a worker consumes
}

var (
	allRegions = []string{"eu-west-1", "us-east-1", "ap-southeast-2"}
	euOnly     = []string{"eu-west-1"}
)

// estate is the platform: a B2B collaboration SaaS ("Tessera") with
// projects, documents, files, search, notifications, billing, usage
// metering, an AI assistant and third-party integrations, on shared Kafka,
// RabbitMQ, Vault, Istio and Kubernetes. The catalog declares most
// application dependencies but, as real catalogs do, leaves out the shared
// plumbing nearly everyone uses (Vault, the mesh, feature flags, the
// clusters): those are the hidden edges.
var estate = []service{
	// core: the front door, identity and tenants.
	{name: "edge-gateway", kind: kindAPI, team: "core", namespace: "core", tier: 1, regions: allRegions, deps: []string{"auth-service", "web-bff", "public-api", "realtime-gateway"}, hidden: []string{"service-mesh"}, noun: "edge"},
	{name: "auth-service", kind: kindAPI, team: "core", namespace: "core", tier: 1, regions: allRegions, deps: []string{"identity-db", "session-cache"}, hidden: []string{"vault"}, noun: "sessions"},
	{name: "identity-db", kind: kindPostgres, team: "core", namespace: "core", tier: 1},
	{name: "session-cache", kind: kindRedis, team: "core", namespace: "core", tier: 1, regions: allRegions},
	{name: "tenant-service", kind: kindAPI, team: "core", namespace: "core", tier: 1, deps: []string{"tenant-db", "session-cache"}, hidden: []string{"vault", "feature-flags"}, noun: "tenants"},
	{name: "tenant-db", kind: kindPostgres, team: "core", namespace: "core", tier: 1},
	{name: "admin-console", kind: kindAPI, team: "core", namespace: "core", tier: 3, regions: euOnly, deps: []string{"tenant-service", "billing-api", "auth-service"}, noun: "admin"},
	{name: "audit-writer", kind: kindWorker, team: "core", namespace: "core", tier: 2, deps: []string{"event-bus", "audit-db"}, topic: "audit.events"},
	{name: "audit-db", kind: kindPostgres, team: "core", namespace: "core", tier: 2},
	// collab: the product.
	{name: "web-bff", kind: kindAPI, team: "collab", namespace: "collab", tier: 1, regions: allRegions, deps: []string{"auth-service", "tenant-service", "projects-api", "documents-api", "search-api", "notifications-api"}, hidden: []string{"feature-flags"}, noun: "views"},
	{name: "public-api", kind: kindAPI, team: "collab", namespace: "collab", tier: 1, deps: []string{"auth-service", "tenant-service", "projects-api", "documents-api", "files-api", "search-api", "feature-flags"}, noun: "resources"},
	{name: "projects-api", kind: kindAPI, team: "collab", namespace: "collab", tier: 1, deps: []string{"projects-db", "projects-cache", "event-bus"}, hidden: []string{"feature-flags", "vault"}, noun: "projects"},
	{name: "projects-db", kind: kindPostgres, team: "collab", namespace: "collab", tier: 1},
	{name: "projects-cache", kind: kindRedis, team: "collab", namespace: "collab", tier: 2},
	{name: "documents-api", kind: kindAPI, team: "collab", namespace: "collab", tier: 1, deps: []string{"documents-db", "files-api", "event-bus"}, hidden: []string{"feature-flags", "vault"}, noun: "documents"},
	{name: "documents-db", kind: kindPostgres, team: "collab", namespace: "collab", tier: 1},
	{name: "realtime-gateway", kind: kindAPI, team: "collab", namespace: "collab", tier: 2, regions: allRegions, deps: []string{"session-cache", "event-bus"}, noun: "channels"},
	{name: "files-api", kind: kindAPI, team: "collab", namespace: "collab", tier: 2, deps: []string{"files-db", "object-store-gateway"}, hidden: []string{"vault"}, noun: "files"},
	{name: "files-db", kind: kindPostgres, team: "collab", namespace: "collab", tier: 2},
	{name: "object-store-gateway", kind: kindAPI, team: "collab", namespace: "collab", tier: 2, provider: "aws-s3", noun: "objects"},
	// search.
	{name: "search-api", kind: kindAPI, team: "search", namespace: "search", tier: 1, deps: []string{"search-cluster", "tenant-service"}, hidden: []string{"feature-flags"}, noun: "search"},
	{name: "search-indexer", kind: kindWorker, team: "search", namespace: "search", tier: 2, deps: []string{"event-bus", "search-cluster", "documents-api"}, topic: "documents.changes"},
	{name: "search-cluster", kind: kindSearch, team: "search", namespace: "search", tier: 2},
	// comms: notifications and outbound delivery.
	{name: "notifications-api", kind: kindAPI, team: "comms", namespace: "comms", tier: 2, deps: []string{"notifications-db", "event-bus"}, noun: "notifications"},
	{name: "notifications-db", kind: kindPostgres, team: "comms", namespace: "comms", tier: 2},
	{name: "notification-worker", kind: kindWorker, team: "comms", namespace: "comms", tier: 2, deps: []string{"event-bus", "email-sender", "push-gateway", "notifications-db"}, topic: "notifications.outbound"},
	{name: "email-sender", kind: kindAPI, team: "comms", namespace: "comms", tier: 2, provider: "sendgrid", hidden: []string{"vault"}, noun: "messages"},
	{name: "push-gateway", kind: kindAPI, team: "comms", namespace: "comms", tier: 3, provider: "firebase", noun: "pushes"},
	{name: "webhook-dispatcher", kind: kindWorker, team: "comms", namespace: "comms", tier: 2, deps: []string{"event-bus", "tenant-service"}, topic: "webhooks.outbound"},
	// billing runs in the EU only.
	{name: "billing-api", kind: kindAPI, team: "billing", namespace: "billing", tier: 1, regions: euOnly, deps: []string{"billing-db", "payments-adapter", "tenant-service"}, hidden: []string{"vault", "feature-flags"}, noun: "invoices"},
	{name: "billing-db", kind: kindPostgres, team: "billing", namespace: "billing", tier: 1, regions: euOnly},
	{name: "payments-adapter", kind: kindAPI, team: "billing", namespace: "billing", tier: 1, regions: euOnly, provider: "stripe", hidden: []string{"vault"}, noun: "charges"},
	{name: "invoice-worker", kind: kindWorker, team: "billing", namespace: "billing", tier: 2, regions: euOnly, deps: []string{"job-queue", "billing-api", "email-sender"}, topic: "invoices"},
	// data: usage metering and reporting.
	{name: "usage-metering", kind: kindWorker, team: "data", namespace: "data", tier: 2, deps: []string{"event-bus", "metering-db"}, topic: "usage.events"},
	{name: "metering-db", kind: kindClickhouse, team: "data", namespace: "data", tier: 2},
	{name: "reporting-api", kind: kindAPI, team: "data", namespace: "data", tier: 2, deps: []string{"metering-db", "reporting-cache", "tenant-service"}, noun: "reports"},
	{name: "reporting-cache", kind: kindRedis, team: "data", namespace: "data", tier: 3},
	{name: "export-worker", kind: kindWorker, team: "data", namespace: "data", tier: 3, deps: []string{"job-queue", "reporting-api", "files-api"}, topic: "exports"},
	{name: "scheduler", kind: kindWorker, team: "data", namespace: "data", tier: 3, deps: []string{"job-queue"}, topic: "schedules"},
	// ai: the assistant.
	{name: "assistant-api", kind: kindAPI, team: "ai", namespace: "ai", tier: 2, deps: []string{"vector-db", "documents-api", "auth-service"}, hidden: []string{"feature-flags", "vault"}, provider: "openai", noun: "completions"},
	{name: "vector-db", kind: kindPostgres, team: "ai", namespace: "ai", tier: 2},
	{name: "embedding-worker", kind: kindWorker, team: "ai", namespace: "ai", tier: 3, deps: []string{"event-bus", "vector-db"}, hidden: []string{"documents-api"}, provider: "openai", topic: "documents.changes"},
	// integrations: Slack, GitHub, Jira.
	{name: "integrations-api", kind: kindAPI, team: "integrations", namespace: "integrations", tier: 2, deps: []string{"integrations-db", "tenant-service", "vault"}, hidden: []string{"event-bus"}, provider: "slack", noun: "connections"},
	{name: "integrations-db", kind: kindPostgres, team: "integrations", namespace: "integrations", tier: 2},
	// platform: shared infrastructure.
	{name: "event-bus", kind: kindKafka, team: "platform", namespace: "kafka", tier: 1},
	{name: "job-queue", kind: kindRabbit, team: "platform", namespace: "platform", tier: 2},
	{name: "feature-flags", kind: kindAPI, team: "platform", namespace: "platform", tier: 1, regions: allRegions, noun: "flags"},
	{name: "vault", kind: kindVault, team: "platform", namespace: "vault", tier: 1},
	{name: "service-mesh", kind: kindMesh, team: "platform", namespace: "istio-system", tier: 1, regions: allRegions},
	{name: "k8s-platform", kind: kindPlatform, team: "platform", namespace: "kube-system", tier: 1, regions: allRegions},
}

var serviceIndex = func() map[string]*service {
	m := map[string]*service{}
	for i := range estate {
		m[estate[i].name] = &estate[i]
	}
	return m
}()

func svc(name string) *service {
	s, ok := serviceIndex[name]
	if !ok {
		panic("fleetgen: unknown service " + name)
	}
	return s
}

func (s *service) inRegions() []string {
	if s.regions == nil {
		return []string{"eu-west-1", "us-east-1"}
	}
	return s.regions
}

func (s *service) runsIn(region string) bool {
	return slices.Contains(s.inRegions(), region)
}

// calls lists every real dependency, declared or not.
func (s *service) calls() []string {
	return append(slices.Clone(s.deps), s.hidden...)
}

// callers are the services that really depend on s and run in region.
func callers(s *service, region string) []*service {
	var out []*service
	for i := range estate {
		c := &estate[i]
		if c.runsIn(region) && slices.Contains(c.calls(), s.name) {
			out = append(out, c)
		}
	}
	return out
}

// cluster names the Kubernetes cluster a service runs on in a region:
// applications on the "apps" cluster, datastores on the "data" cluster,
// and everything in Asia-Pacific on the single edge cluster.
func cluster(s *service, regionName string) string {
	r := regionNamed(regionName)
	switch {
	case r.name == "ap-southeast-2":
		return "prod-apse2-edge"
	case s.kind.datastore():
		return "prod-" + r.short + "-data"
	default:
		return "prod-" + r.short + "-apps"
	}
}

// clustersIn lists the clusters of a region.
func clustersIn(regionName string) []string {
	r := regionNamed(regionName)
	if r.name == "ap-southeast-2" {
		return []string{"prod-apse2-edge"}
	}
	return []string{"prod-" + r.short + "-apps", "prod-" + r.short + "-data"}
}

// teamOfNamespace is how Alertmanager's routes map namespaces to teams.
func teamOfNamespace(ns string) string {
	for i := range estate {
		if estate[i].namespace == ns {
			return estate[i].team
		}
	}
	return "platform"
}

var owners = map[string]string{
	"core": "Priya Raman", "collab": "Jonas Becker", "search": "Mei Lin", "comms": "Tom Okafor",
	"billing": "Sara Lindqvist", "data": "Diego Alvarez", "ai": "Hannah Kim", "integrations": "Luca Moretti",
	"platform": "Noor Haddad",
}

// catalogYAML renders the service catalog as the platform's developer
// portal exports it.
func catalogYAML() []byte {
	type entry struct {
		Owner     string   `yaml:"owner"`
		Team      string   `yaml:"team"`
		Tier      int      `yaml:"tier"`
		Runbook   string   `yaml:"runbook"`
		DependsOn []string `yaml:"depends_on"`
	}
	services := map[string]entry{}
	for _, s := range estate {
		services[s.name] = entry{
			Owner:     owners[s.team],
			Team:      s.team,
			Tier:      s.tier,
			Runbook:   fmt.Sprintf("https://runbooks.tessera.example/%s/%s", s.team, s.name),
			DependsOn: append([]string{}, s.deps...),
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]any{"services": services}); err != nil {
		panic(err)
	}
	return buf.Bytes()
}

// ServiceOf names the catalog service an alert belongs to from its labels
// alone, following the label conventions of the estate's rules (see the
// package documentation): the first of these labels whose value names a
// catalog service wins. Values of pod, job_name and persistentvolumeclaim
// name a service by prefix (a Deployment's pods, a CronJob's jobs, a
// StatefulSet's volumes). It returns "" when no label names one.
func ServiceOf(labels map[string]string) string {
	for _, l := range serviceLabels {
		v := labels[l]
		if v == "" {
			continue
		}
		switch l {
		case "pod", "job_name":
			v = servicePrefix(v)
		case "persistentvolumeclaim":
			v = servicePrefix(strings.TrimPrefix(v, "data-"))
		}
		if _, ok := serviceIndex[v]; ok {
			return v
		}
	}
	return ""
}

var serviceLabels = []string{
	"sloth_service", "destination_workload", "consumergroup", "app",
	"deployment", "statefulset", "horizontalpodautoscaler", "job_name",
	"container", "pod", "persistentvolumeclaim", "service",
}

// servicePrefix returns the longest catalog service name that v starts
// with, followed by "-" (or equals), or v itself.
func servicePrefix(v string) string {
	best := ""
	for name := range serviceIndex {
		if (v == name || strings.HasPrefix(v, name+"-")) && len(name) > len(best) {
			best = name
		}
	}
	if best == "" {
		return v
	}
	return best
}
