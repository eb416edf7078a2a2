package amconfig

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// decoder walks a YAML node tree and collects every problem with the path
// of the key it concerns. The configuration is decoded by hand rather than
// into tagged structs so that each error names its key path, unknown keys
// are refused with their path, and YAML's null, alias and merge keys
// behave as they do for Alertmanager (yaml.v2, strict).
type decoder struct {
	errs Errors
	// visits counts the mappings and lists walked: aliases can make a
	// small file stand for an enormous tree ("billion laughs"), which
	// would never finish.
	visits int
}

// maxVisits bounds the mappings and lists one configuration may have once
// aliases are expanded; a real alertmanager.yml has a few thousand.
const maxVisits = 100_000

// visit counts a mapping or list; false once there were too many (the
// error is reported once).
func (d *decoder) visit(n *yaml.Node, path string) bool {
	d.visits++
	if d.visits == maxVisits+1 {
		d.errorf(n, path, "the configuration expands to more than %d mappings and lists (aliases?)", maxVisits)
	}
	return d.visits <= maxVisits
}

func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	d.errs = append(d.errs, &Error{Path: path, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func joinKey(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

func named(path string, i int, name string) string {
	if name == "" {
		return index(path, i)
	}
	return fmt.Sprintf("%s[%d] (%s)", path, i, name)
}

// resolve follows aliases.
func resolve(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

// isNull reports whether n is absent or YAML null: Alertmanager (yaml.v2)
// leaves the field at its zero value then.
func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

func kindName(n *yaml.Node) string {
	switch resolve(n).Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		// Never the value itself: it may be a secret.
		switch resolve(n).Tag {
		case "!!int", "!!float":
			return "a number"
		case "!!bool":
			return "a boolean"
		case "!!null":
			return "null"
		}
		return "a string"
	}
	return "nothing"
}

// entry is one key of a mapping and its value.
type entry struct {
	key     string
	keyNode *yaml.Node
	val     *yaml.Node
	path    string
}

// mapping returns the keys of a mapping node that stands for a struct, in
// the order yaml.v2 applies them for Alertmanager: merge keys (<<) are
// expanded where they stand, and a key may come more than once when a
// merge brings it, in which case the caller applies them in order (the
// last one wins for a plain value; matchers and match maps accumulate, as
// they do in Alertmanager). The same key written twice in one mapping is
// an error. ok is false, with the error reported, if n is not a mapping;
// a null n is an empty mapping.
func (d *decoder) mapping(n *yaml.Node, path string) (entries []entry, ok bool) {
	return d.mappingOf(n, path, false)
}

// mappingOf is mapping; asMap gives the rule of yaml.v2 (strict) for a
// mapping decoded into a Go map, such as match: a key may be set once,
// through a merge key or not.
func (d *decoder) mappingOf(n *yaml.Node, path string, asMap bool) (entries []entry, ok bool) {
	if isNull(n) {
		return nil, true
	}
	n = resolve(n)
	if n.Kind != yaml.MappingNode {
		d.errorf(n, path, "expected a mapping, got %s", kindName(n))
		return nil, false
	}
	if !d.visit(n, path) {
		return nil, false
	}
	seen := map[string]bool{}
	explicit := map[string]bool{}
	add := func(e entry, merged bool) {
		switch {
		case asMap && seen[e.key] && merged:
			d.errorf(e.keyNode, e.path, "key set twice (once through a merge key <<)")
			return
		case asMap && seen[e.key] || !merged && explicit[e.key]:
			d.errorf(e.keyNode, e.path, "key written twice")
			return
		}
		entries = append(entries, e)
		seen[e.key] = true
		if !merged {
			explicit[e.key] = true
		}
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := resolve(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			// Earlier mappings of a list take precedence: apply them last.
			var sources []*yaml.Node
			switch m := resolve(v); m.Kind {
			case yaml.SequenceNode:
				for j := len(m.Content) - 1; j >= 0; j-- {
					sources = append(sources, resolve(m.Content[j]))
				}
			default:
				sources = []*yaml.Node{m}
			}
			for _, s := range sources {
				if s.Kind != yaml.MappingNode {
					d.errorf(s, joinKey(path, "<<"), "a merge key takes a mapping or a list of mappings, got %s", kindName(s))
					continue
				}
				merged, _ := d.mappingOf(s, path, asMap)
				for _, e := range merged {
					add(e, true)
				}
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.errorf(k, path, "a key must be a string, got %s", kindName(k))
			continue
		}
		key := k.Value
		if k.Tag == "!!null" {
			key = ""
		}
		add(entry{key: key, keyNode: k, val: v, path: joinKey(path, key)}, false)
	}
	return entries, true
}

// unknownKey reports a key that the mapping at path does not have.
func (d *decoder) unknownKey(e entry, known string) {
	d.errorf(e.keyNode, e.path, "unknown key (known keys: %s)", known)
}

// sequence returns the items of a list; a null n is an empty list (nil).
func (d *decoder) sequence(n *yaml.Node, path string) (items []*yaml.Node, ok bool) {
	if isNull(n) {
		return nil, true
	}
	n = resolve(n)
	if n.Kind != yaml.SequenceNode {
		d.errorf(n, path, "expected a list, got %s", kindName(n))
		return nil, false
	}
	if !d.visit(n, path) {
		return nil, false
	}
	items = make([]*yaml.Node, len(n.Content))
	for i, c := range n.Content {
		items[i] = resolve(c)
	}
	return items, true
}

// str decodes a scalar as a string, as yaml.v2 does: any scalar (a number,
// a boolean) is taken as written; null is "".
func (d *decoder) str(n *yaml.Node, path string) (string, bool) {
	if isNull(n) {
		return "", true
	}
	n = resolve(n)
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "expected a string, got %s", kindName(n))
		return "", false
	}
	return n.Value, true
}

// stringList decodes a list of strings; null is nil, [] is an empty,
// non-nil list.
func (d *decoder) stringList(n *yaml.Node, path string) ([]string, bool) {
	items, ok := d.sequence(n, path)
	if !ok || items == nil {
		return nil, ok
	}
	out := make([]string, 0, len(items))
	for i, it := range items {
		s, ok2 := d.str(it, index(path, i))
		if !ok2 {
			ok = false
			continue
		}
		out = append(out, s)
	}
	return out, ok
}

// stringMap decodes a mapping of strings to strings, keeping the order of
// the file.
func (d *decoder) stringMap(n *yaml.Node, path string) ([]entry, map[string]string, bool) {
	entries, ok := d.mappingOf(n, path, true)
	if !ok {
		return nil, nil, false
	}
	if isNull(n) {
		return nil, nil, true
	}
	m := make(map[string]string, len(entries))
	for _, e := range entries {
		s, ok2 := d.str(e.val, e.path)
		if !ok2 {
			ok = false
			continue
		}
		m[e.key] = s
	}
	return entries, m, ok
}

// boolean decodes true or false (also YAML 1.1's yes/no/on/off, as
// yaml.v2 does); null is false.
func (d *decoder) boolean(n *yaml.Node, path string) (bool, bool) {
	if isNull(n) {
		return false, true
	}
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && (n.Tag == "!!bool" || n.Tag == "!!str" && n.Style == 0) {
		switch n.Value {
		case "y", "Y", "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON":
			return true, true
		case "n", "N", "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF":
			return false, true
		}
	}
	d.errorf(n, path, "expected true or false, got %s", kindName(n))
	return false, false
}

// uint decodes a non-negative integer; a number with a fraction is cut
// to an integer, as yaml.v2 does.
func (d *decoder) uint(n *yaml.Node, path string) (uint64, bool) {
	if isNull(n) {
		return 0, true
	}
	n = resolve(n)
	if n.Kind == yaml.ScalarNode && n.Tag == "!!int" {
		var v uint64
		if err := n.Decode(&v); err == nil {
			return v, true
		}
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!float" {
		var f float64
		if err := n.Decode(&f); err == nil && f >= 0 && f < 1<<64 {
			return uint64(f), true
		}
	}
	d.errorf(n, path, "expected a non-negative integer, got %s", kindName(n))
	return 0, false
}

// duration decodes a Prometheus duration (1h30m, 2d, 1w; 0 without a
// unit).
func (d *decoder) duration(n *yaml.Node, path string) (time.Duration, bool) {
	s, ok := d.str(n, path)
	if !ok {
		return 0, false
	}
	v, err := ParseDuration(s)
	if err != nil {
		d.errorf(resolve(n), path, "%v", err)
		return 0, false
	}
	return v, true
}

// ParseDuration parses a duration as Prometheus writes them (and so
// Alertmanager's configuration): a sequence of number-unit pairs in the
// order y, w, d, h, m, s, ms (1y = 365d, 1w = 7d), such as 1h30m or 2d;
// "0" alone needs no unit.
func ParseDuration(s string) (time.Duration, error) {
	switch s {
	case "0":
		return 0, nil
	case "":
		return 0, fmt.Errorf("empty duration")
	}
	units := []struct {
		suffix string
		mult   time.Duration
	}{
		{"y", 365 * 24 * time.Hour},
		{"w", 7 * 24 * time.Hour},
		{"d", 24 * time.Hour},
		{"h", time.Hour},
		{"m", time.Minute},
		{"s", time.Second},
		{"ms", time.Millisecond},
	}
	rest := s
	var total time.Duration
	next := 0
	for rest != "" {
		j := 0
		for j < len(rest) && rest[j] >= '0' && rest[j] <= '9' {
			j++
		}
		if j == 0 {
			return 0, fmt.Errorf("not a valid duration: %q", s)
		}
		digits := rest[:j]
		rest = rest[j:]
		// The unit is the longest suffix that matches here and comes after
		// the previous one ("ms" before "m").
		found := -1
		for u := next; u < len(units); u++ {
			suf := units[u].suffix
			if strings.HasPrefix(rest, suf) {
				if suf == "m" && strings.HasPrefix(rest, "ms") {
					continue
				}
				found = u
				break
			}
		}
		if found < 0 {
			return 0, fmt.Errorf("not a valid duration: %q", s)
		}
		rest = rest[len(units[found].suffix):]
		next = found + 1
		n, err := strconv.ParseInt(digits, 10, 64)
		mult := units[found].mult
		if err != nil || n > int64((1<<63-1)/mult) {
			return 0, fmt.Errorf("duration out of range: %q", s)
		}
		total += time.Duration(n) * mult
		if total < 0 {
			return 0, fmt.Errorf("duration out of range: %q", s)
		}
	}
	return total, nil
}
