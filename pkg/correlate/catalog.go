package correlate

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Service is one entry of the service catalog: who owns it and what it
// depends on. DependsOn names the services this one calls (or reads from):
// a failure travels from a service to the services that depend on it, "up"
// the graph.
type Service struct {
	Owner     string       `yaml:"owner" json:"owner,omitempty"`
	Team      string       `yaml:"team" json:"team,omitempty"`
	Tier      string       `yaml:"tier" json:"tier,omitempty"`
	Runbook   string       `yaml:"runbook" json:"runbook,omitempty"`
	DependsOn Dependencies `yaml:"depends_on" json:"depends_on,omitempty"`
}

// Dependencies are the names in depends_on: a list, or one name written
// alone (depends_on: db), as hand-written catalogs have it.
type Dependencies []string

// UnmarshalYAML reads a list of names, or one name.
func (d *Dependencies) UnmarshalYAML(n *yaml.Node) error {
	// `depends_on: true` is a slip, not a service named "true" (one named
	// so is written quoted).
	for _, item := range append([]*yaml.Node{n}, n.Content...) {
		if item.Kind == yaml.ScalarNode && item.Tag == "!!bool" {
			return fmt.Errorf("line %d: depends_on: %s is not a service name (quote it if a service is named so)", item.Line, item.Value)
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag != "!!null" {
		*d = Dependencies{n.Value}
		return nil
	}
	var names []string
	if err := n.Decode(&names); err != nil {
		return fmt.Errorf("line %d: depends_on is a list of service names (or one name)", n.Line)
	}
	*d = names
	return nil
}

// Catalog is the service catalog file: `services:` maps each service name
// to its Service. JSON is accepted (it is YAML). The YAML form is
//
//	services:
//	  checkout-api:
//	    owner: maria.silva@example.com
//	    team: checkout
//	    tier: tier-1
//	    runbook: https://runbooks.example.com/checkout/checkout-api
//	    depends_on: [auth, cart-service, payments]
//
// A nil *Catalog is an empty one to Names, Dependents and
// DependsTransitively.
type Catalog struct {
	Services map[string]Service `yaml:"services" json:"services"`
	// Undeclared lists, in order, the services a catalog file names only
	// as dependencies (an external API, a managed database): ParseCatalog
	// adds each as a service with no owner, team or dependencies.
	Undeclared []string `yaml:"-" json:"-"`
	// Warnings tells, for whoever loads the file to report, what
	// ParseCatalog ignored (unknown keys, a dependency closing a cycle),
	// took for another name (a declared service in other letter case) or
	// added (Undeclared).
	Warnings []string `yaml:"-" json:"-"`
}

// Names lists the services in lexical order.
func (c *Catalog) Names() []string {
	if c == nil {
		return nil
	}
	names := make([]string, 0, len(c.Services))
	for n := range c.Services {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Dependents is the reverse of DependsOn: for each service, the services
// that depend on it directly, in lexical order. A service nothing depends
// on has no entry.
func (c *Catalog) Dependents() map[string][]string {
	if c == nil {
		return map[string][]string{}
	}
	rev := make(map[string][]string, len(c.Services))
	for _, n := range c.Names() {
		for _, d := range c.Services[n].DependsOn {
			rev[d] = append(rev[d], n)
		}
	}
	return rev
}

// DependsTransitively reports whether from reaches to by following
// DependsOn one or more times (so a service depends on itself only through
// a cycle, which Validate rejects).
func (c *Catalog) DependsTransitively(from, to string) bool {
	if c == nil {
		return false
	}
	seen := map[string]bool{}
	stack := slices.Clone(c.Services[from].DependsOn)
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if n == to {
			return true
		}
		if seen[n] {
			continue
		}
		seen[n] = true
		stack = append(stack, c.Services[n].DependsOn...)
	}
	return false
}

// MaxCatalogSize bounds a catalog file.
const MaxCatalogSize = 16 << 20

// MaxCatalogServices bounds the services of a catalog, those named only in
// depends_on included: the correlator keeps the hops between every two
// services in a table (100 MB at the bound), and a file of a few MB can
// name hundreds of thousands.
const MaxCatalogServices = 10_000

// ReadCatalog reads and checks a catalog file.
func ReadCatalog(path string) (*Catalog, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("catalog: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxCatalogSize+1))
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	if len(data) > MaxCatalogSize {
		return nil, fmt.Errorf("catalog %s: larger than %d bytes", path, MaxCatalogSize)
	}
	c, err := ParseCatalog(data)
	if err != nil {
		return nil, fmt.Errorf("catalog %s: %w", path, err)
	}
	return c, nil
}

// ParseCatalog decodes a catalog, adds the services named only as
// dependencies (Undeclared), drops each dependency that closes a cycle
// (breakCycles) and checks it (Validate). Keys it does not know (a
// catalog exported from elsewhere carries descriptions, links, tags) are
// ignored; Warnings names each, each undeclared service and each dropped
// dependency, so that a typo is seen.
func ParseCatalog(data []byte) (*Catalog, error) {
	// One parse: the typed catalog and the keys it does not know both
	// come from the same node tree.
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("no services: key (the file is empty)")
		}
		return nil, err
	}
	// A second document would be ignored, and the services in it lost. (A
	// file ending in a line of --- has an empty one: yaml.v3 gives it as
	// a null.)
	for {
		var more yaml.Node
		err := dec.Decode(&more)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil || len(more.Content) != 1 || more.Content[0].Tag != "!!null" {
			return nil, errors.New("more than one YAML document (a line of ---): give the catalog as one")
		}
	}
	var c Catalog
	if err := doc.Decode(&c); err != nil {
		return nil, err
	}
	var keys []string
	c.Warnings, keys = unknownKeys(&doc)
	if !slices.Contains(keys, "services") {
		has := "has no keys"
		if len(keys) > 0 {
			has = "has " + strings.Join(keys, ", ")
		}
		return nil, fmt.Errorf("no services: key (the file %s)", has)
	}
	if len(c.Services) > MaxCatalogServices {
		return nil, fmt.Errorf("%d services, at most %d", len(c.Services), MaxCatalogServices)
	}
	names := newServiceNames(&c)
	for _, name := range c.Names() {
		deps := c.Services[name].DependsOn
		for i, d := range deps {
			if _, ok := c.Services[d]; ok || strings.TrimSpace(d) == "" {
				continue
			}
			if declared, ok := names.lookup(d); ok {
				// The declared service, in other letter case (or with _
				// for -).
				c.Warnings = append(c.Warnings, fmt.Sprintf("services.%s.depends_on[%d]: %q taken for the declared %q", name, i, d, declared))
				deps[i] = declared
				continue
			}
			c.Undeclared = append(c.Undeclared, d)
		}
	}
	slices.Sort(c.Undeclared)
	c.Undeclared = slices.Compact(c.Undeclared)
	if n := len(c.Services) + len(c.Undeclared); n > MaxCatalogServices {
		return nil, fmt.Errorf("%d services with those named only in depends_on, at most %d", n, MaxCatalogServices)
	}
	for _, d := range c.Undeclared {
		c.Services[d] = Service{}
		c.Warnings = append(c.Warnings, fmt.Sprintf("services: %q is named only in depends_on: taken as a service without owner or declared dependencies (declare it, or check the name for a typo)", d))
	}
	c.Warnings = append(c.Warnings, c.breakCycles()...)
	if err := c.Validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

// Validate checks that every dependency names a catalogued service, that no
// service depends on itself, and that dependencies have no cycle (a cycle
// would make "upstream" meaningless). ParseCatalog breaks a file's cycles
// first; a catalog built in code must have none.
func (c *Catalog) Validate() error {
	names := c.Names()
	for _, name := range names {
		if strings.TrimSpace(name) == "" {
			return fmt.Errorf("services: a service has an empty name")
		}
		for i, d := range c.Services[name].DependsOn {
			if d == name {
				return fmt.Errorf("services.%s.depends_on[%d]: depends on itself", name, i)
			}
			if strings.TrimSpace(d) == "" {
				return fmt.Errorf("services.%s.depends_on[%d]: an empty name", name, i)
			}
			if _, ok := c.Services[d]; !ok {
				return fmt.Errorf("services.%s.depends_on[%d]: %q is not in the catalog", name, i, d)
			}
		}
	}
	if closed := c.cyclesClosed(); len(closed) > 0 {
		return fmt.Errorf("services: dependency cycle %s", strings.Join(closed[0].cycle, " -> "))
	}
	return nil
}

// breakCycles drops each dependency that closes a cycle, found depth
// first in the services' lexical order and each one's listed order, and
// returns a warning naming it and the cycle. A failure's root lies below
// its symptoms, which a cycle leaves without a bottom; yet real catalogs
// have cycles (two services calling each other, a stale entry), and
// refusing the whole file for one would leave no topology at all. Which
// edge goes is the order's choice, not knowledge of which entry is stale
// (nothing in the file says): the warning asks for the cycle to be
// checked.
func (c *Catalog) breakCycles() (warnings []string) {
	dropped := map[string][]int{}
	for _, e := range c.cyclesClosed() {
		dropped[e.from] = append(dropped[e.from], e.i)
		warnings = append(warnings, fmt.Sprintf("services.%s.depends_on[%d]: %q closes the dependency cycle %s: ignored (the last met in lexical order; check which entry is stale)",
			e.from, e.i, e.to, strings.Join(e.cycle, " -> ")))
	}
	for name, idx := range dropped {
		svc := c.Services[name]
		var kept []string
		for i, d := range svc.DependsOn {
			if !slices.Contains(idx, i) {
				kept = append(kept, d)
			}
		}
		svc.DependsOn = kept
		c.Services[name] = svc
	}
	return warnings
}

// closingEdge is a dependency that closes a cycle:
// services.<from>.depends_on[i] is to, and cycle runs from to back to it.
type closingEdge struct {
	from, to string
	i        int
	cycle    []string
}

// cyclesClosed searches the dependencies depth first, in the services'
// lexical order and each one's listed order, and returns those that close
// a cycle, following none of them (so each cycle is met once, by the edge
// that closes it last).
func (c *Catalog) cyclesClosed() []closingEdge {
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var path []string
	var closed []closingEdge
	var visit func(string)
	visit = func(n string) {
		state[n] = open
		path = append(path, n)
		for i, d := range c.Services[n].DependsOn {
			switch state[d] {
			case open:
				cycle := append(slices.Clone(path[slices.Index(path, d):]), d)
				closed = append(closed, closingEdge{from: n, to: d, i: i, cycle: cycle})
			case unseen:
				visit(d)
			}
		}
		path = path[:len(path)-1]
		state[n] = done
	}
	for _, name := range c.Names() {
		if state[name] == unseen {
			visit(name)
		}
	}
	return closed
}

// topology answers "does a depend on b" in a few words of memory per pair:
// each catalogued service has an index, and the services it depends on,
// directly or not, with the number of hops to each.
type topology struct {
	index map[string]int
	names []string
	// shared are the services that depend on nothing and that nothing
	// depends on, when Config.SharedServices is on.
	shared []string
	// below[i][j] is the hops from i down to j (j is a dependency of i,
	// directly at 1); 0 when i does not depend on j.
	below [][]uint8
	// guessed[i], for an undeclared service i when
	// Config.UndeclaredSiblings is on, is below[i] as its guessed calls
	// make it (guessSiblings): the services its own signals may be
	// symptoms of. It is used in that direction only, never to make i a
	// root above them, so a wrong guess (a third party named only by the
	// one service that calls it) costs little.
	guessed map[int][]uint8
	// guessedCalls are the same guesses by name, direct calls only
	// (Correlator.calls).
	guessedCalls map[string][]string
}

// newTopology builds the topology of c; with shared, it lists the
// services that depend on nothing and that nothing depends on
// (Config.SharedServices); with siblings, the guessed calls of its
// undeclared services (Config.UndeclaredSiblings).
func newTopology(c *Catalog, shared, siblings bool) *topology {
	t := declaredTopology(c)
	if siblings {
		t.guessedCalls = guessSiblings(c)
		for d, calls := range t.guessedCalls {
			row := make([]uint8, len(t.names))
			for _, g := range calls {
				j := t.index[g]
				row[j] = 1
				for k, hops := range t.below[j] {
					if hops > 0 && hops < 254 && (row[k] == 0 || hops+1 < row[k]) {
						row[k] = hops + 1
					}
				}
			}
			if t.guessed == nil {
				t.guessed = map[int][]uint8{}
			}
			t.guessed[t.index[d]] = row
		}
	}
	if !shared || c == nil {
		return t
	}
	dependents := c.Dependents()
	for _, n := range t.names {
		if len(c.Services[n].DependsOn) == 0 && len(dependents[n]) == 0 {
			t.shared = append(t.shared, n)
		}
	}
	return t
}

// declaredTopology is the topology of c's depends_on alone.
func declaredTopology(c *Catalog) *topology {
	t := &topology{index: map[string]int{}}
	if c == nil {
		return t
	}
	t.names = c.Names()
	for i, n := range t.names {
		t.index[n] = i
	}
	t.below = make([][]uint8, len(t.names))
	for i, n := range t.names {
		row := make([]uint8, len(t.names))
		// Breadth-first: the first time a service is reached is its
		// shortest distance.
		frontier := []string{n}
		for hops := 1; len(frontier) > 0 && hops < 255; hops++ {
			var next []string
			for _, s := range frontier {
				for _, d := range c.Services[s].DependsOn {
					j := t.index[d]
					if row[j] == 0 && j != i {
						row[j] = uint8(hops)
						next = append(next, d)
					}
				}
			}
			frontier = next
		}
		t.below[i] = row
	}
	return t
}

// guessSiblings guesses what each of c's undeclared services (named only in
// depends_on) calls: what its callers call besides it, leaving out the other
// undeclared services and any guess that would close a cycle (taken in
// lexical order).
func guessSiblings(c *Catalog) map[string][]string {
	if c == nil || len(c.Undeclared) == 0 {
		return nil
	}
	undeclared := map[string]bool{}
	for _, d := range c.Undeclared {
		undeclared[d] = true
	}
	guessed := map[string][]string{}
	deps := func(s string) []string {
		if g, ok := guessed[s]; ok {
			return g
		}
		return c.Services[s].DependsOn
	}
	reaches := func(from, to string) bool {
		seen := map[string]bool{from: true}
		for stack := []string{from}; len(stack) > 0; {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, d := range deps(n) {
				if d == to {
					return true
				}
				if !seen[d] {
					seen[d] = true
					stack = append(stack, d)
				}
			}
		}
		return false
	}
	callers := c.Dependents()
	for _, d := range c.Undeclared {
		var sibs []string
		for _, caller := range callers[d] {
			for _, s := range c.Services[caller].DependsOn {
				if s != d && !undeclared[s] && !slices.Contains(sibs, s) {
					sibs = append(sibs, s)
				}
			}
		}
		slices.Sort(sibs)
		guessed[d] = []string{}
		for _, s := range sibs {
			if !reaches(s, d) {
				guessed[d] = append(guessed[d], s)
			}
		}
	}
	return guessed
}

// serviceLabels are the labels, in order, whose value may name a
// catalogued service when a signal's own service is not one: the ingest
// gateway takes the first of service, job and app that is set, and in a
// Kubernetes shop that is often a scrape job ("kubernetes-pods") while the
// service is in app or app.kubernetes.io/name.
var serviceLabels = []string{"service", "app", "application", "app_kubernetes_io_name", "app.kubernetes.io/name",
	"k8s_app", "service_name", "component", "deployment", "container", "job"}

// peerLabels name another service than the one a signal is about (what
// it calls or fails on), so their values never name the signal's own.
var peerLabels = map[string]bool{"upstream": true, "downstream": true, "pool": true, "topic": true, "peer": true,
	"peer_service": true, "target": true, "dependency": true, "destination": true, "destination_service": true,
	"dst": true, "dest": true, "backend": true, "remote": true, "caller": true, "callee": true, "client": true,
	"source_service": true, "db": true, "database": true, "datastore": true, "cache": true, "queue": true,
	"broker": true, "circuit": true}

// serviceNames finds the catalogued service a signal is about.
type serviceNames struct {
	known map[string]bool
	// folded maps each name folded (fold) to the name, for services named
	// in other letter case or with _ for - (a name made safe for a metric
	// or a label key); a name two services share folded maps to neither.
	folded map[string]string
}

func newServiceNames(c *Catalog) serviceNames {
	n := serviceNames{known: map[string]bool{}, folded: map[string]string{}}
	clash := map[string]bool{}
	for _, name := range c.Names() {
		n.known[name] = true
		l := fold(name)
		if _, ok := n.folded[l]; ok {
			clash[l] = true
		}
		n.folded[l] = name
	}
	for l := range clash {
		delete(n.folded, l)
	}
	return n
}

// of is the catalogued service a signal is about: its own service when
// the catalog has it (or has it folded: in other letter case, or with _
// for -), else the first of
// serviceLabels whose value names a catalogued service, else the value of
// another label (in the order of their keys; not one of peerLabels) that
// names one, else a workload object named after one (within), else the
// same three asked again of names that start with a catalogued one
// (prefixOf: an exporter's Service, an SLO), else its own service, which
// then has no dependencies.
func (n serviceNames) of(service string, labels map[string]string) string {
	if n.known[service] || len(n.known) == 0 {
		return service
	}
	exact := func(v string) string { name, _ := n.lookup(v); return name }
	if name := askLabels(service, labels, exact, nil); name != "" {
		return name
	}
	for _, k := range workloadLabels {
		if v := labels[k]; v != "" {
			if name := n.within(v, k == "persistentvolumeclaim"); name != "" {
				return name
			}
		}
	}
	workload := func(k string) bool { return slices.Contains(workloadLabels, k) }
	if name := askLabels(service, labels, n.prefixOf, workload); name != "" {
		return name
	}
	return service
}

// askLabels asks name of a signal's service, then of its serviceLabels in
// order, then of its other labels in the order of their keys (not one of
// peerLabels, nor one skip tells), and returns the first service named,
// "" when none is.
func askLabels(service string, labels map[string]string, name func(string) string, skip func(string) bool) string {
	if found := name(service); found != "" {
		return found
	}
	for _, k := range serviceLabels {
		if found := name(labels[k]); found != "" {
			return found
		}
	}
	var found, key string
	for k, v := range labels {
		if peerLabels[k] || skip != nil && skip(k) || (found != "" && k > key) {
			continue
		}
		if f := name(v); f != "" {
			found, key = f, k
		}
	}
	return found
}

// prefixOf is the catalogued service whose name starts v, followed by
// words of its own ("identity-db-metrics", an exporter's Service;
// "web-bff-availability", an SLO's name), "" when none does: the longest
// such name wins. A workload object's name is read by within alone: what
// follows the service's name there must look generated.
func (n serviceNames) prefixOf(v string) string {
	if len(v) > maxWorkloadName {
		return ""
	}
	for end := strings.LastIndexByte(v, '-'); end > 0; end = strings.LastIndexByte(v[:end], '-') {
		if name, ok := n.folded[fold(v[:end])]; ok {
			return name
		}
	}
	return ""
}

// lookup is the catalogued service v names, as it is or folded.
func (n serviceNames) lookup(v string) (string, bool) {
	if v == "" {
		return "", false
	}
	if n.known[v] {
		return v, true
	}
	name, ok := n.folded[fold(v)]
	return name, ok
}

// workloadLabels name a Kubernetes object made from a service's workload
// and named after it (within).
var workloadLabels = []string{"pod", "pod_name", "exported_pod", "job_name", "persistentvolumeclaim"}

// maxWorkloadName is the longest object name Kubernetes allows: a longer
// value is no workload's, and within never splits it.
const maxWorkloadName = 253

// within is the catalogued service a workload object's name v is made
// from, "" when none is. A pod or a job is <workload>-<generated>: a
// Deployment's pod <deployment>-<hash>-<suffix>, a StatefulSet's
// <name>-<ordinal>, a CronJob's job <cronjob>-<time> and its pod
// <cronjob>-<time>-<suffix>; the longest leading run of parts that names
// a service wins when what follows looks generated (generated), though
// words may come first (a CronJob named <service>-<task>). A volume
// claim is <template>-<statefulset>-<ordinal>: the longest leading run of
// the parts between (a StatefulSet event-bus-kafka is event-bus's).
func (n serviceNames) within(v string, claim bool) string {
	if len(v) > maxWorkloadName {
		return ""
	}
	parts := strings.Split(v, "-")
	if claim {
		if len(parts) < 3 || !allDigits(parts[len(parts)-1]) {
			return ""
		}
		for j := len(parts) - 1; j > 1; j-- {
			if name, ok := n.folded[fold(strings.Join(parts[1:j], "-"))]; ok {
				return name
			}
		}
		return ""
	}
	for j := len(parts) - 1; j > 0; j-- {
		if madeFrom(parts[j:]) {
			if name, ok := n.folded[fold(strings.Join(parts[:j], "-"))]; ok {
				return name
			}
		}
	}
	return ""
}

// madeFrom reports whether rest, what follows a workload's name in a pod's
// or a job's, is what Kubernetes adds: an ordinal or a suffix; a hash and a
// suffix; or a CronJob's schedule time, with its pod's suffix after it and
// any words of the CronJob's own name before it.
func madeFrom(rest []string) bool {
	last := len(rest) - 1
	switch {
	case len(rest) <= 2 && generated(rest[0]) && generated(rest[last]):
		return true
	case allDigits(rest[last]):
		return true
	default:
		return last > 0 && allDigits(rest[last-1]) && generated(rest[last])
	}
}

// generated reports whether part looks made by Kubernetes: a number (an
// ordinal, a CronJob's schedule time) or letters and digits of the
// alphabet it draws hashes and suffixes from (no vowels, no 0, 1, 3).
func generated(part string) bool {
	return part != "" && strings.Trim(part, "bcdfghjklmnpqrstvwxz0123456789") == ""
}

func allDigits(part string) bool {
	return part != "" && strings.Trim(part, "0123456789") == ""
}

// fold is a service name in lower case with _ for -.
func fold(name string) string { return strings.ReplaceAll(strings.ToLower(name), "_", "-") }

// serviceKeys are the keys of a catalog entry.
var serviceKeys = []string{"owner", "team", "tier", "runbook", "depends_on"}

// unknownKeys names the keys of a catalog file that Catalog has no field
// for, in order: the file's own and its services'; keys are the file's
// top-level keys.
func unknownKeys(doc *yaml.Node) (warnings, keys []string) {
	var raw map[string]any
	if doc.Kind == 0 || doc.Decode(&raw) != nil {
		return nil, nil
	}
	var out []string
	for k := range raw {
		keys = append(keys, clean(k))
		if k != "services" {
			out = append(out, fmt.Sprintf("%s: unknown key, ignored (a catalog has services:)", clean(k)))
		}
	}
	slices.Sort(keys)
	services, _ := raw["services"].(map[string]any)
	for name, v := range services {
		entry, _ := v.(map[string]any)
		for k := range entry {
			if !slices.Contains(serviceKeys, k) {
				out = append(out, fmt.Sprintf("services.%s.%s: unknown key, ignored (known: %s)", clean(name), clean(k), strings.Join(serviceKeys, ", ")))
			}
		}
	}
	slices.Sort(out)
	return out, keys
}

// clean is a key as written, or quoted when it has characters a log line
// should not (a newline).
func clean(k string) string {
	if q := strconv.Quote(k); q[1:len(q)-1] != k {
		return q
	}
	return k
}

// hops is how many dependency hops a is above b (a depends on b), or 0.
func (t *topology) hops(a, b string) int {
	i, ok := t.index[a]
	if !ok {
		return 0
	}
	j, ok := t.index[b]
	if !ok {
		return 0
	}
	return int(t.below[i][j])
}
