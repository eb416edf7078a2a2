package correlate

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
)

func TestCatalogGraph(t *testing.T) {
	c := shop(t)
	if got, want := c.Names(), []string{"batch", "cart", "checkout", "payments", "payments-db", "search", "search-index", "web"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Names %v, want %v", got, want)
	}
	want := map[string][]string{
		"checkout":     {"web"},
		"search":       {"web"},
		"payments":     {"checkout"},
		"cart":         {"checkout"},
		"payments-db":  {"payments"},
		"search-index": {"search"},
	}
	if got := c.Dependents(); !reflect.DeepEqual(got, want) {
		t.Errorf("Dependents %v, want %v", got, want)
	}
	for _, p := range []struct {
		from, to string
		want     bool
	}{
		{"web", "checkout", true},
		{"web", "payments-db", true},  // three hops
		{"checkout", "cart", true},    // one hop
		{"payments-db", "web", false}, // the other way
		{"cart", "payments", false},   // siblings
		{"web", "web", false},         // no cycle
		{"batch", "web", false},       // isolated
		{"web", "batch", false},
		{"unknown", "web", false},
	} {
		if got := c.DependsTransitively(p.from, p.to); got != p.want {
			t.Errorf("DependsTransitively(%s, %s) = %v, want %v", p.from, p.to, got, p.want)
		}
	}

	// A cycle (which Validate rejects) makes a service depend on itself,
	// and the walk still ends.
	cyclic := &Catalog{Services: map[string]Service{
		"a": {DependsOn: []string{"b"}},
		"b": {DependsOn: []string{"c", "a"}},
		"c": {DependsOn: []string{"a"}},
	}}
	if !cyclic.DependsTransitively("a", "a") || cyclic.DependsTransitively("a", "d") {
		t.Error("DependsTransitively on a cycle")
	}

	var none *Catalog
	if none.Names() != nil || len(none.Dependents()) != 0 || none.DependsTransitively("a", "b") {
		t.Error("a nil catalog is not empty")
	}
}

// A catalog naming more services than the correlator keeps a table of
// hops for is refused, with the bound, before the table is built.
func TestCatalogServiceBound(t *testing.T) {
	var b strings.Builder
	b.WriteString("services:\n")
	for i := range MaxCatalogServices {
		fmt.Fprintf(&b, "  s%d: {depends_on: [d%d]}\n", i, i)
	}
	_, err := ParseCatalog([]byte(b.String()))
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("at most %d", MaxCatalogServices)) {
		t.Fatalf("%d services and as many named only in depends_on: %v", 2*MaxCatalogServices, err)
	}
	b.Reset()
	b.WriteString("services:\n")
	for i := range MaxCatalogServices + 1 {
		fmt.Fprintf(&b, "  s%d: {}\n", i)
	}
	if _, err := ParseCatalog([]byte(b.String())); err == nil || !strings.Contains(err.Error(), "services, at most") {
		t.Fatalf("%d services: %v", MaxCatalogServices+1, err)
	}
}
