package correlate

import "hash/fnv"

// Components maps each catalogued service to the key of its connected
// component (dependencies followed both ways): the lexically smallest
// service in it. The correlator joins signals only along these edges, so
// the component is the group key to partition by: two services in
// different components never share an incident.
func (c *Catalog) Components() map[string]string {
	out := map[string]string{}
	if c == nil {
		return out
	}
	adj := map[string][]string{}
	for _, n := range c.Names() {
		for _, d := range c.Services[n].DependsOn {
			adj[n] = append(adj[n], d)
			adj[d] = append(adj[d], n)
		}
	}
	for _, start := range c.Names() { // lexical: the first seen is the key
		if _, done := out[start]; done {
			continue
		}
		stack := []string{start}
		for len(stack) > 0 {
			n := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if _, seen := out[n]; seen {
				continue
			}
			out[n] = start
			stack = append(stack, adj[n]...)
		}
	}
	return out
}

// Partitioner assigns signals to one of Count correlators by their
// service's component (a service not in the catalog is its own).
type Partitioner struct {
	count      uint32
	components map[string]string
	names      serviceNames
}

// NewPartitioner partitions cat's components count ways.
func NewPartitioner(cat *Catalog, count int) *Partitioner {
	return &Partitioner{count: uint32(max(count, 1)), components: cat.Components(), names: newServiceNames(cat)}
}

// OfSignal is the partition of a signal: that of the catalogued service
// it is about, found as the correlator finds it (a label may name it).
func (p *Partitioner) OfSignal(s Signal) int {
	return p.Of(p.names.of(s.Service, s.Labels))
}

// Of is the partition (0 to Count-1) of a service: FNV-1a of its
// component's key, modulo Count.
func (p *Partitioner) Of(service string) int {
	key, ok := p.components[service]
	if !ok {
		key = service
	}
	h := fnv.New32a()
	h.Write([]byte(key))
	return int(h.Sum32() % p.count)
}
