package aiops

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/correlate"
	"github.com/aiops-dev/aiops/pkg/event"
	"github.com/aiops-dev/aiops/pkg/notify/amconfig"
	"github.com/aiops-dev/aiops/pkg/platform"
	"github.com/aiops-dev/aiops/services/correlator"
	"github.com/aiops-dev/aiops/services/detector"
	"github.com/aiops-dev/aiops/services/ingest"
	"github.com/aiops-dev/aiops/services/logminer"
	"github.com/aiops-dev/aiops/services/notifier"
	"github.com/aiops-dev/aiops/services/writer"
)

// TestExampleConfigsLoad keeps the example configurations in deployments/
// true: each must load, strictly, into the struct of the binary it is for.
func TestExampleConfigsLoad(t *testing.T) {
	// From the checkout's root, as `bin/aiops run -config
	// deployments/config/aiops.yaml` is run: the pipeline it names is read.
	t.Chdir(filepath.Join("..", ".."))
	dir := filepath.Join("deployments", "config")
	files := map[string]func() *platform.AssembledConfig{
		"aiops.yaml": func() *platform.AssembledConfig { var n EmbeddedNATSConfig; return RunConfig(&n) },
		"writer.yaml": func() *platform.AssembledConfig {
			return platform.Assemble(platform.DefaultConfig(), []platform.Component{writer.Component})
		},
		"ingest.yaml": func() *platform.AssembledConfig {
			return platform.Assemble(platform.DefaultConfig(), []platform.Component{ingest.Component})
		},
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		newConfig, ok := files[e.Name()]
		if !ok {
			t.Errorf("%s: no test loads this example; add it to the map", e.Name())
			continue
		}
		// Secrets named by *_file keys need not exist to load; Validate
		// checks their shapes (the detector's pipeline file it reads).
		if err := newConfig().LoadWith(config.Options{File: filepath.Join(dir, e.Name()), Environ: []string{}}); err != nil {
			t.Errorf("%s: %v", e.Name(), err)
		}
	}
}

// The example service catalog that aiops run reads loads.
func TestDefaultCatalogLoads(t *testing.T) {
	c, err := correlate.ReadCatalog(filepath.Join("..", "..", DefaultCatalog))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Services) < 5 || len(c.Services["checkout"].DependsOn) == 0 {
		t.Fatalf("catalog %+v", c)
	}
}

// manifest is one YAML document of deployments/kubernetes.
type manifest struct {
	file string
	doc  map[string]any
}

func kubernetesManifests(t *testing.T) []manifest {
	t.Helper()
	dir := filepath.Join("..", "..", "deployments", "kubernetes")
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in %s: %v", dir, err)
	}
	var out []manifest
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dec := yaml.NewDecoder(bytes.NewReader(data))
		for {
			var doc map[string]any
			if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
				break
			} else if err != nil {
				t.Fatalf("%s: %v", f, err)
			}
			if doc != nil {
				out = append(out, manifest{filepath.Base(f), doc})
			}
		}
	}
	return out
}

// get walks a decoded YAML document by keys.
func get(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// TestDeploymentFilesParse parses every YAML and JSON file under
// deployments/ (every document of each), so a broken file fails CI.
func TestDeploymentFilesParse(t *testing.T) {
	n := 0
	err := filepath.WalkDir(filepath.Join("..", "..", "deployments"), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		switch filepath.Ext(path) {
		case ".yaml", ".yml":
			dec := yaml.NewDecoder(bytes.NewReader(data))
			for {
				var doc any
				if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
					break
				} else if err != nil {
					t.Errorf("%s: %v", path, err)
					break
				}
			}
			n++
		case ".json":
			var doc any
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Errorf("%s: %v", path, err)
			}
			n++
		}
		return nil
	})
	if err != nil || n < 8 {
		t.Fatalf("walked %d files: %v", n, err)
	}
}

// TestKubernetesManifests checks what a cluster would refuse or what would
// break at start: every object is named and typed; a workload's selector
// matches its pods; every mount names a volume; every ConfigMap item a pod
// asks for exists; and every aiops configuration in aiops-config loads
// strictly into the binary that reads it.
func TestKubernetesManifests(t *testing.T) {
	ms := kubernetesManifests(t)
	configMaps := map[string]map[string]any{}
	for _, m := range ms {
		if get(m.doc, "kind") == "ConfigMap" {
			data, _ := get(m.doc, "data").(map[string]any)
			configMaps[get(m.doc, "metadata", "name").(string)] = data
		}
	}
	// aiops-pipelines is made from pipelines/ by the command in
	// kustomization.yaml.
	configMaps["aiops-pipelines"] = map[string]any{"catalog.yaml": "", "default.yaml": ""}
	kinds := map[string]int{}
	for _, m := range ms {
		kind, _ := get(m.doc, "kind").(string)
		if get(m.doc, "apiVersion") == nil || kind == "" {
			t.Errorf("%s: a document without apiVersion or kind", m.file)
			continue
		}
		kinds[kind]++
		if kind == "Kustomization" {
			continue
		}
		name, _ := get(m.doc, "metadata", "name").(string)
		if name == "" {
			t.Errorf("%s: a %s without metadata.name", m.file, kind)
		}
		if kind != "Deployment" && kind != "StatefulSet" {
			continue
		}
		selector, _ := get(m.doc, "spec", "selector", "matchLabels").(map[string]any)
		labels, _ := get(m.doc, "spec", "template", "metadata", "labels").(map[string]any)
		if len(selector) == 0 {
			t.Errorf("%s %s: no selector", kind, name)
		}
		for k, v := range selector {
			if labels[k] != v {
				t.Errorf("%s %s: selector %s=%v does not match the pod labels %v", kind, name, k, v, labels)
			}
		}
		volumes := map[string]bool{}
		vols, _ := get(m.doc, "spec", "template", "spec", "volumes").([]any)
		for _, v := range vols {
			volumes[get(v, "name").(string)] = true
			if cm, ok := get(v, "configMap", "name").(string); ok {
				data, found := configMaps[cm]
				if !found {
					t.Errorf("%s %s: ConfigMap %s does not exist", kind, name, cm)
				}
				items, _ := get(v, "configMap", "items").([]any)
				for _, it := range items {
					if _, ok := data[get(it, "key").(string)]; !ok {
						t.Errorf("%s %s: ConfigMap %s has no key %v", kind, name, cm, get(it, "key"))
					}
				}
			}
		}
		claims, _ := get(m.doc, "spec", "volumeClaimTemplates").([]any)
		for _, c := range claims {
			volumes[get(c, "metadata", "name").(string)] = true
		}
		containers, _ := get(m.doc, "spec", "template", "spec", "containers").([]any)
		if len(containers) == 0 {
			t.Errorf("%s %s: no containers", kind, name)
		}
		for _, c := range containers {
			if get(c, "image") == nil {
				t.Errorf("%s %s: a container without an image", kind, name)
			}
			if get(c, "image") == "aiops" {
				// the Go heap's soft limit under the pod's hard one
				limit := byteSize(t, get(c, "resources", "limits", "memory"))
				var soft int64
				env, _ := get(c, "env").([]any)
				for _, e := range env {
					if get(e, "name") == "GOMEMLIMIT" {
						soft = byteSize(t, get(e, "value"))
					}
				}
				if soft <= 0 || soft >= limit {
					t.Errorf("%s %s: GOMEMLIMIT %d, want one under the memory limit %d", kind, name, soft, limit)
				}
			}
			mounts, _ := get(c, "volumeMounts").([]any)
			for _, mt := range mounts {
				if !volumes[get(mt, "name").(string)] {
					t.Errorf("%s %s: mount %v names no volume", kind, name, get(mt, "name"))
				}
			}
		}
	}
	if kinds["Deployment"] < 6 || kinds["StatefulSet"] != 3 {
		t.Errorf("kinds %v: want a Deployment per service, NATS, ClickHouse and ClickHouse Keeper StatefulSets", kinds)
	}

	// Every service's file, strictly, into the binary that reads it.
	components := map[string]platform.Component{
		"ingest": ingest.Component, "writer": writer.Component, "logminer": logminer.Component,
		"detector": detector.Component, "correlator": correlator.Component, "notifier": notifier.Component,
	}
	// The files the pods mount, where the test can put them: the
	// pipelines, the routes ConfigMap, a webhook secret.
	dir := t.TempDir()
	mounted := func(text string) string {
		return strings.NewReplacer("/etc/aiops/", dir+"/etc/aiops/", "/run/secrets/aiops/", dir+"/secrets/").Replace(text)
	}
	for _, d := range []string{"etc/aiops/pipelines", "etc/aiops/routes", "secrets"} {
		os.MkdirAll(filepath.Join(dir, d), 0o700)
	}
	for _, f := range []string{"catalog.yaml", "default.yaml"} {
		data, err := os.ReadFile(filepath.Join("..", "..", "pipelines", f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dir, "etc/aiops/pipelines", f), data, 0o600)
	}
	routesText, _ := configMaps["aiops-routes"]["alertmanager.yml"].(string)
	os.WriteFile(filepath.Join(dir, "etc/aiops/routes/alertmanager.yml"), []byte(mounted(routesText)), 0o600)
	os.WriteFile(filepath.Join(dir, "secrets/webhook-secret"), []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), 0o600)
	loaded := 0
	for key, text := range configMaps["aiops-config"] {
		name := strings.TrimSuffix(key, ".yaml")
		if strings.HasPrefix(name, "detector-") {
			name = "detector"
		}
		c, ok := components[name]
		if !ok {
			t.Errorf("aiops-config %s: no service reads it", key)
			continue
		}
		path := filepath.Join(dir, key)
		os.WriteFile(path, []byte(mounted(text.(string))), 0o600)
		cfg := platform.Assemble(platform.DefaultConfig(), []platform.Component{c})
		if err := cfg.LoadWith(config.Options{File: path, Environ: []string{}}); err != nil {
			t.Errorf("aiops-config %s: %v", key, err)
		}
		if cfg.Platform().Streams.Replicas != 3 {
			t.Errorf("aiops-config %s: streams.replicas %d, want 3 on the three-node NATS", key, cfg.Platform().Streams.Replicas)
		}
		for _, r := range replicasNot(cfg, name, 3) {
			t.Errorf("aiops-config %s: %s, want 3 on the three-node NATS", key, r)
		}
		loaded++
	}
	if loaded != 7 {
		t.Errorf("%d service configurations loaded, want 7", loaded)
	}
	if _, err := amconfig.Parse([]byte(routesText)); err != nil {
		t.Errorf("aiops-routes alertmanager.yml: %v", err)
	}
}

// clickhouseClusterXML is what TestKubernetesClickHouseCluster reads of the
// ClickHouse servers' config.d file and of Keeper's configuration.
type clickhouseClusterXML struct {
	Macros struct {
		Shard struct {
			FromEnv string `xml:"from_env,attr"`
		} `xml:"shard"`
		Replica struct {
			FromEnv string `xml:"from_env,attr"`
		} `xml:"replica"`
	} `xml:"macros"`
	RemoteServers struct {
		Clusters []struct {
			XMLName xml.Name
			Shards  []struct {
				InternalReplication bool `xml:"internal_replication"`
				Replicas            []struct {
					Host string `xml:"host"`
					Port int    `xml:"port"`
				} `xml:"replica"`
			} `xml:"shard"`
		} `xml:",any"`
	} `xml:"remote_servers"`
	ZooKeeper []struct {
		Host string `xml:"host"`
		Port int    `xml:"port"`
	} `xml:"zookeeper>node"`
	DistributedDDL string `xml:"distributed_ddl>path"`
	Keeper         struct {
		Port    int `xml:"tcp_port"`
		Servers []struct {
			ID       int    `xml:"id"`
			Hostname string `xml:"hostname"`
		} `xml:"raft_configuration>server"`
	} `xml:"keeper_server"`
}

// TestKubernetesClickHouseCluster checks that the pieces of the ClickHouse
// cluster agree, since nothing applies them here: the writer's store.cluster
// is a cluster of remote_servers; its shards times replicas are the
// StatefulSet's pods, named in ordinal order, shard by shard, as the
// command's shard arithmetic numbers them; every shard replicates
// internally; the servers reach every Keeper pod, whose Raft configuration
// names the same pods; and ON CLUSTER statements have their queue.
func TestKubernetesClickHouseCluster(t *testing.T) {
	ms := kubernetesManifests(t)
	find := func(kind, name string) any {
		t.Helper()
		for _, m := range ms {
			if get(m.doc, "kind") == kind && get(m.doc, "metadata", "name") == name {
				return m.doc
			}
		}
		t.Fatalf("no %s %s", kind, name)
		return nil
	}
	decodeXML := func(doc any, key string) clickhouseClusterXML {
		t.Helper()
		var c clickhouseClusterXML
		text, _ := get(doc, "data", key).(string)
		if err := xml.Unmarshal([]byte(text), &c); err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		return c
	}
	server := decodeXML(find("ConfigMap", "clickhouse-cluster"), "aiops-cluster.xml")
	keeper := decodeXML(find("ConfigMap", "clickhouse-keeper"), "keeper_config.xml")
	clickhouse := find("StatefulSet", "clickhouse")
	keeperSet := find("StatefulSet", "clickhouse-keeper")

	var writerCfg struct {
		Store struct{ Cluster string } `yaml:"store"`
	}
	writerText, _ := get(find("ConfigMap", "aiops-config"), "data", "writer.yaml").(string)
	if err := yaml.Unmarshal([]byte(writerText), &writerCfg); err != nil || writerCfg.Store.Cluster == "" {
		t.Fatalf("writer.yaml: store.cluster unset (%v)", err)
	}
	clusterIndex := -1
	for i, c := range server.RemoteServers.Clusters {
		if c.XMLName.Local == writerCfg.Store.Cluster {
			clusterIndex = i
		}
	}
	if clusterIndex < 0 {
		t.Fatalf("writer's store.cluster %q is not in remote_servers", writerCfg.Store.Cluster)
	}
	shards := server.RemoteServers.Clusters[clusterIndex].Shards
	perShard := len(shards[0].Replicas)
	pods, _ := get(clickhouse, "spec", "replicas").(int)
	if len(shards)*perShard != pods {
		t.Errorf("remote_servers has %d shards of %d replicas, the StatefulSet %d pods", len(shards), perShard, pods)
	}
	serviceName := get(clickhouse, "spec", "serviceName")
	pod := 0
	for s, shard := range shards {
		if !shard.InternalReplication || len(shard.Replicas) != perShard {
			t.Errorf("shard %d: internal_replication %v, %d replicas; want true and %d", s+1, shard.InternalReplication, len(shard.Replicas), perShard)
		}
		for _, r := range shard.Replicas {
			if want := fmt.Sprintf("clickhouse-%d.%s", pod, serviceName); r.Host != want || r.Port != 9000 {
				t.Errorf("shard %d: replica %s:%d, want %s:9000", s+1, r.Host, r.Port, want)
			}
			pod++
		}
	}
	containers, _ := get(clickhouse, "spec", "template", "spec", "containers").([]any)
	command := fmt.Sprint(get(containers[0], "command"))
	if want := fmt.Sprintf("CLICKHOUSE_SHARD=$(( ${HOSTNAME##*-} / %d + 1 ))", perShard); !strings.Contains(command, want) ||
		server.Macros.Shard.FromEnv != "CLICKHOUSE_SHARD" || server.Macros.Replica.FromEnv != "HOSTNAME" {
		t.Errorf("macros shard from %q, replica from %q, command %s: want the shard from %s", server.Macros.Shard.FromEnv, server.Macros.Replica.FromEnv, command, want)
	}
	if server.DistributedDDL == "" {
		t.Error("no distributed_ddl path: ON CLUSTER statements would fail")
	}
	keeperPods, _ := get(keeperSet, "spec", "replicas").(int)
	if len(server.ZooKeeper) != keeperPods || len(keeper.Keeper.Servers) != keeperPods || keeperPods%2 != 1 {
		t.Errorf("%d Keeper pods (want an odd number), %d in the servers' zookeeper, %d in Raft", keeperPods, len(server.ZooKeeper), len(keeper.Keeper.Servers))
	}
	keeperService := get(keeperSet, "spec", "serviceName")
	for i, n := range server.ZooKeeper {
		if want := fmt.Sprintf("clickhouse-keeper-%d.%s", i, keeperService); n.Host != want || n.Port != keeper.Keeper.Port {
			t.Errorf("zookeeper node %s:%d, want %s:%d", n.Host, n.Port, want, keeper.Keeper.Port)
		}
	}
	for i, s := range keeper.Keeper.Servers {
		if want := fmt.Sprintf("clickhouse-keeper-%d.%s", i, keeperService); s.Hostname != want || s.ID != i+1 {
			t.Errorf("Raft server %d %s, want %d %s (ids from the ordinal + 1)", s.ID, s.Hostname, i+1, want)
		}
	}
}

// TestKustomizeBuilds renders deployments/kubernetes with kubectl's
// kustomize, when kubectl is installed (it needs no cluster).
func TestKustomizeBuilds(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH")
	}
	out, err := exec.Command(kubectl, "kustomize", filepath.Join("..", "..", "deployments", "kubernetes")).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	if n := bytes.Count(out, []byte("\nkind: Deployment")); n < 6 {
		t.Fatalf("kustomize rendered %d Deployments", n)
	}
}

// dashboard is the Grafana dashboard's queries.
func dashboardQueries(t *testing.T) (promQL, sql []string) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deployments", "grafana", "aiops-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Templating struct {
			List []struct{ Name, Type string }
		}
		Panels []struct {
			Title      string
			Type       string
			Datasource struct{ UID string }
			Targets    []struct {
				Expr   string
				RawSQL string `json:"rawSql"`
			}
		}
	}
	// A key given twice is read as its last (Grafana's too): a panel's
	// description written and then emptied below it lost the text.
	if err := event.CheckJSON(data); err != nil {
		t.Fatalf("the dashboard: %v", err)
	}
	if err := json.Unmarshal(data, &d); err != nil {
		t.Fatal(err)
	}
	vars := map[string]bool{}
	for _, v := range d.Templating.List {
		vars["${"+v.Name+"}"] = v.Type == "datasource"
	}
	for _, p := range d.Panels {
		if p.Type == "row" {
			continue
		}
		if !vars[p.Datasource.UID] || len(p.Targets) == 0 {
			t.Errorf("panel %q: data source %q (want a datasource variable), %d queries", p.Title, p.Datasource.UID, len(p.Targets))
		}
		for _, q := range p.Targets {
			switch {
			case q.Expr != "":
				promQL = append(promQL, q.Expr)
			case q.RawSQL != "":
				sql = append(sql, q.RawSQL)
			default:
				t.Errorf("panel %q: an empty query", p.Title)
			}
		}
	}
	if len(promQL) < 10 || len(sql) < 5 {
		t.Fatalf("%d PromQL and %d SQL queries", len(promQL), len(sql))
	}
	return promQL, sql
}

func TestDashboardParses(t *testing.T) { dashboardQueries(t) }

// dashboardMetrics are the metric names the dashboard's PromQL reads.
func dashboardMetrics(t *testing.T) []string {
	promQL, _ := dashboardQueries(t)
	seen := map[string]bool{}
	var names []string
	for _, q := range promQL {
		for _, n := range regexp.MustCompile(`\b(aiops_[a-z_]+|process_[a-z_]+|go_[a-z_]+)\b`).FindAllString(q, -1) {
			if !seen[n] {
				seen[n] = true
				names = append(names, n)
			}
		}
	}
	return names
}

// dashboardSQL is the dashboard's ClickHouse queries with the Grafana
// plugin's time macros replaced by a range.
func dashboardSQL(t *testing.T, from, to time.Time) []string {
	_, sql := dashboardQueries(t)
	r := strings.NewReplacer("$__fromTime", fmt.Sprintf("toDateTime(%d)", from.Unix()), "$__toTime", fmt.Sprintf("toDateTime(%d)", to.Unix()))
	for i, q := range sql {
		sql[i] = r.Replace(q)
	}
	return sql
}

// byteSize reads a Kubernetes memory quantity ("1Gi") or a GOMEMLIMIT
// ("900MiB") as bytes.
func byteSize(t *testing.T, v any) int64 {
	t.Helper()
	text, _ := v.(string)
	for _, u := range []struct {
		suffix string
		scale  int64
	}{{"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}, {"Gi", 1 << 30}, {"Mi", 1 << 20}, {"Ki", 1 << 10}} {
		if n, ok := strings.CutSuffix(text, u.suffix); ok {
			if x, err := strconv.ParseInt(n, 10, 64); err == nil {
				return x * u.scale
			}
		}
	}
	t.Errorf("memory size %v: not a number of GiB, MiB or KiB", v)
	return 0
}

// TestComposeServices loads, strictly, the environment each aiops service
// of the compose file gets (its own and the shared one, through YAML
// merge keys as compose reads them) into the binary its entrypoint runs,
// with the files it mounts where the test can put them: every service of
// the pipeline is there and would start with what it is given.
func TestComposeServices(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "deployments", "compose", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Entrypoint  []string          `yaml:"entrypoint"`
			Environment map[string]string `yaml:"environment"`
			Volumes     []string          `yaml:"volumes"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	components := map[string]platform.Component{
		"ingest": ingest.Component, "writer": writer.Component, "logminer": logminer.Component,
		"detector": detector.Component, "correlator": correlator.Component, "notifier": notifier.Component,
	}
	// The mounts: ./secrets, the repository's pipelines/, alertmanager.yml.
	dir := t.TempDir()
	for _, f := range []string{"clickhouse-password", "admin-token", "api-token", "ingest-tokens"} {
		os.WriteFile(filepath.Join(dir, f), []byte("c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0"), 0o600)
	}
	os.WriteFile(filepath.Join(dir, "webhook-secret"), []byte("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"), 0o600)
	routes, err := os.ReadFile(filepath.Join("..", "..", "deployments", "compose", "alertmanager.yml"))
	if err != nil {
		t.Fatal(err)
	}
	mounted := strings.NewReplacer("/run/secrets/", dir+"/", "/etc/aiops/pipelines/", filepath.Join("..", "..", "pipelines")+"/",
		"/etc/aiops/routes/alertmanager.yml", filepath.Join(dir, "alertmanager.yml"))
	os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(mounted.Replace(string(routes))), 0o600)
	seen := map[string]bool{}
	for name, svc := range compose.Services {
		if len(svc.Entrypoint) == 0 {
			continue // NATS, ClickHouse
		}
		bin := filepath.Base(svc.Entrypoint[0])
		c, ok := components[bin]
		if !ok {
			t.Errorf("service %s runs %s, no aiops service", name, svc.Entrypoint[0])
			continue
		}
		seen[bin] = true
		var env []string
		for k, v := range svc.Environment {
			if v == "${NATS_TOKEN:?set NATS_TOKEN}" {
				v = "nats-token-from-the-environment"
			}
			env = append(env, k+"="+mounted.Replace(v))
		}
		cfg := platform.Assemble(platform.DefaultConfig(), []platform.Component{c})
		if err := cfg.LoadWith(config.Options{EnvPrefix: "AIOPS", Environ: env}); err != nil {
			t.Errorf("service %s: %v", name, err)
			continue
		}
		if p := cfg.Platform(); p.Streams.Replicas != 3 || len(p.Bus.URLs) != 3 {
			t.Errorf("service %s: streams.replicas %d on %d NATS URLs, want 3 on the three nodes", name, p.Streams.Replicas, len(p.Bus.URLs))
		}
		for _, key := range replicasNot(cfg, bin, 3) {
			t.Errorf("service %s: %s, want 3 on the three nodes", name, key)
		}
	}
	for bin := range components {
		if !seen[bin] {
			t.Errorf("no compose service runs %s", bin)
		}
	}
}

// replicasNot names each replicas key of the service's section (its
// state, lease, silences or snapshots in JetStream) that is not n, with
// its value: one left at its default of 1 keeps that state on one NATS
// node, whose loss stops its saves (the compose file's services had every
// one at 1 on the three-node cluster).
func replicasNot(cfg *platform.AssembledConfig, service string, n int) []string {
	section, ok := platform.SectionOf[any](cfg, service)
	if !ok {
		return []string{"no section " + service}
	}
	var bad []string
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		for i := range v.NumField() {
			f := v.Type().Field(i)
			name, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			key := path
			if opts != "inline" {
				key = strings.TrimPrefix(path+"."+name, ".")
			}
			switch {
			case !f.IsExported() || name == "-":
			case f.Type.Kind() == reflect.Struct:
				walk(v.Field(i), key)
			case name == "replicas" && f.Type.Kind() == reflect.Int && v.Field(i).Int() != int64(n):
				bad = append(bad, fmt.Sprintf("%s.%s %d", service, key, v.Field(i).Int()))
			}
		}
	}
	walk(reflect.ValueOf(section), "")
	return bad
}

// TestNATSClusterRoutesAreAuthenticated parses the NATS configuration of
// the compose file and of the Kubernetes manifests, with the environment
// each node gets, as nats-server does: a route is a peer server, past
// every client's token, so the cluster must want a user and password of
// its routes (else whoever reaches port 6222 joins and reads every
// stream), and every route must carry them (else the nodes never form a
// cluster).
func TestNATSClusterRoutesAreAuthenticated(t *testing.T) {
	const token, routePassword = "c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0", "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
	check := func(name, confFile string, env map[string]string) {
		t.Helper()
		for k, v := range env {
			t.Setenv(k, v)
		}
		o, err := server.ProcessConfigFile(confFile)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			return
		}
		if o.Authorization != token {
			t.Errorf("%s: the client token is %q, want NATS_TOKEN's", name, o.Authorization)
		}
		if o.Cluster.Username == "" || o.Cluster.Password != routePassword {
			t.Errorf("%s: cluster authorization user %q password %q: a route without them would be let in", name, o.Cluster.Username, o.Cluster.Password)
		}
		if len(o.Routes) != 3 {
			t.Errorf("%s: %d routes, want the 3 nodes", name, len(o.Routes))
		}
		// Monitoring answers without a token: it must not listen beyond
		// the node itself.
		if o.HTTPPort != 0 || o.HTTPSPort != 0 {
			if ip := net.ParseIP(o.HTTPHost); ip == nil || !ip.IsLoopback() {
				t.Errorf("%s: monitoring listens on %q: it answers anyone reaching it, without a token", name, o.HTTPHost)
			}
		}
		for _, r := range o.Routes {
			if p, _ := r.User.Password(); r.User == nil || r.User.Username() != o.Cluster.Username || p != o.Cluster.Password {
				t.Errorf("%s: route to %s does not carry the cluster's user and password", name, r.Host)
			}
		}
	}

	// Compose: the nats-1 service's environment, with ${VAR} and
	// ${VAR:?message} as compose substitutes them.
	data, err := os.ReadFile(filepath.Join("..", "..", "deployments", "compose", "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var compose struct {
		Services map[string]struct {
			Environment map[string]string `yaml:"environment"`
		} `yaml:"services"`
	}
	if err := yaml.Unmarshal(data, &compose); err != nil {
		t.Fatal(err)
	}
	vars := map[string]string{"NATS_TOKEN": token, "NATS_ROUTE_PASSWORD": routePassword}
	substitute := regexp.MustCompile(`\$\{([A-Z_]+)(:\?[^}]*)?\}`)
	env := map[string]string{}
	for k, v := range compose.Services["nats-1"].Environment {
		env[k] = substitute.ReplaceAllStringFunc(v, func(ref string) string {
			return vars[substitute.FindStringSubmatch(ref)[1]]
		})
	}
	check("compose nats-1", filepath.Join("..", "..", "deployments", "compose", "nats.conf"), env)

	// Kubernetes: the ConfigMap's nats.conf, and the StatefulSet's
	// environment with its $(VAR) references expanded.
	var conf string
	var containerEnv []any
	for _, m := range kubernetesManifests(t) {
		if m.file != "nats.yaml" {
			continue
		}
		if s, ok := get(m.doc, "data", "nats.conf").(string); ok {
			conf = s
		}
		if get(m.doc, "kind") == "StatefulSet" {
			containers, _ := get(m.doc, "spec", "template", "spec", "containers").([]any)
			if len(containers) > 0 {
				containerEnv, _ = get(containers[0], "env").([]any)
			}
		}
	}
	secrets := map[string]string{"nats-token": token, "nats-route-password": routePassword}
	env = map[string]string{}
	for _, e := range containerEnv {
		name, _ := get(e, "name").(string)
		switch {
		case get(e, "valueFrom", "secretKeyRef") != nil:
			env[name] = secrets[get(e, "valueFrom", "secretKeyRef", "key").(string)]
		case get(e, "valueFrom", "fieldRef") != nil:
			env[name] = "nats-0"
		default:
			v, _ := get(e, "value").(string)
			for k, x := range env {
				v = strings.ReplaceAll(v, "$("+k+")", x)
			}
			env[name] = v
		}
	}
	file := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(file, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	check("kubernetes nats-0", file, env)
}

// TestNATSNodesAreReachedOnlyByAiopsAndEachOther reads the Kubernetes
// NetworkPolicy of the NATS nodes: clients only from pods part of aiops,
// routes only from the nodes, and nothing else let in (no monitoring
// port, no rule without a source).
func TestNATSNodesAreReachedOnlyByAiopsAndEachOther(t *testing.T) {
	var policy any
	for _, m := range kubernetesManifests(t) {
		if get(m.doc, "kind") == "NetworkPolicy" && get(m.doc, "spec", "podSelector", "matchLabels", "app") == "nats" {
			policy = m.doc
		}
	}
	if policy == nil {
		t.Fatal("no NetworkPolicy selects the NATS nodes (app: nats)")
	}
	if types, _ := get(policy, "spec", "policyTypes").([]any); !slices.Contains(types, any("Ingress")) {
		t.Fatalf("policyTypes %v: want Ingress", types)
	}
	allowed := map[int]string{} // port → the one pod label let in
	rules, _ := get(policy, "spec", "ingress").([]any)
	for _, r := range rules {
		from, _ := get(r, "from").([]any)
		ports, _ := get(r, "ports").([]any)
		if len(from) != 1 || len(ports) == 0 {
			t.Fatalf("ingress rule %v: want one pod selector and its ports", r)
		}
		labels, _ := get(from[0], "podSelector", "matchLabels").(map[string]any)
		if len(labels) != 1 || get(from[0], "namespaceSelector") != nil || get(from[0], "ipBlock") != nil {
			t.Fatalf("ingress from %v: want one label of this namespace's pods", from[0])
		}
		for _, p := range ports {
			port, _ := get(p, "port").(int)
			for k, v := range labels {
				allowed[port] = fmt.Sprintf("%s=%v", k, v)
			}
		}
	}
	want := map[int]string{4222: "app.kubernetes.io/part-of=aiops", 6222: "app=nats"}
	if !maps.Equal(allowed, want) {
		t.Fatalf("let in: %v, want %v", allowed, want)
	}
}
