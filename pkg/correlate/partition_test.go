package correlate

import "testing"

func TestComponentsAndPartitions(t *testing.T) {
	cat, err := ParseCatalog([]byte(`services:
  web: {depends_on: [api]}
  api: {depends_on: [db]}
  batch: {depends_on: [db]}
  db: {}
  search: {depends_on: [index]}
  index: {}
  lonely: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	comp := cat.Components()
	want := map[string]string{"web": "api", "api": "api", "batch": "api", "db": "api", "search": "index", "index": "index", "lonely": "lonely"}
	for s, k := range want {
		if comp[s] != k {
			t.Errorf("component of %s: %q, want %q", s, comp[s], k)
		}
	}
	for _, n := range []int{1, 2, 3, 7} {
		p := NewPartitioner(cat, n)
		// Services that can share an incident share a partition.
		for _, s := range []string{"web", "batch", "db"} {
			if p.Of(s) != p.Of("api") {
				t.Errorf("%d partitions: %s in %d, api in %d", n, s, p.Of(s), p.Of("api"))
			}
		}
		for _, s := range []string{"web", "search", "lonely", "not-in-catalog"} {
			if got := p.Of(s); got < 0 || got >= n {
				t.Errorf("%d partitions: %s in partition %d", n, s, got)
			}
		}
	}
	// Spread: many unrelated services land in every partition.
	p := NewPartitioner(nil, 4)
	seen := map[int]int{}
	for i := 0; i < 400; i++ {
		seen[p.Of("svc-"+string(rune('a'+i%26))+string(rune('a'+i/26)))]++
	}
	for i := 0; i < 4; i++ {
		if seen[i] < 50 {
			t.Errorf("partition %d got %d of 400 services", i, seen[i])
		}
	}
}
