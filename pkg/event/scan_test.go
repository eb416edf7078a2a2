package event

import (
	"bytes"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"strings"
	"testing"
	"unicode/utf8"
)

// BenchmarkDecodeWideBody decodes a log whose body holds many nested keys
// (an OpenTelemetry-style attribute set), where the checks on every object
// of the envelope cost the most.
func BenchmarkDecodeWideBody(b *testing.B) {
	var body strings.Builder
	body.WriteString(`{"message":"GET /api/v1/orders 200","attributes":{`)
	for i := range 60 {
		if i > 0 {
			body.WriteByte(',')
		}
		fmt.Fprintf(&body, `"attr.%d":{"type":"string","value":"v%d","tags":["a","b"]}`, i, i)
	}
	body.WriteString(`}}`)
	raw := []byte(`{"kind":"log","service":"api","time":"2026-11-21T12:00:00Z","labels":{"env":"prod","team":"core"},"body":` + body.String() + `}`)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(raw, t0); err != nil {
			b.Fatal(err)
		}
	}
}

// refScan is scanJSON's duplicate-key and nesting checks written the
// obvious way, on encoding/json's tokens (which unescape keys): the first
// repeated key in document order and its path, or whether the document
// nests too deeply. ok is false for invalid JSON.
func refScan(data []byte) (dup bool, dupField string, tooDeep, ok bool) {
	type frame struct {
		array bool
		index int
		key   string
		seen  map[string]bool
	}
	if !json.Valid(data) {
		return false, "", false, false // Token can end with io.EOF inside an object
	}
	var stack []*frame
	path := func() string {
		var b strings.Builder
		for _, f := range stack {
			if f.array {
				fmt.Fprintf(&b, "[%d]", f.index)
			} else {
				if b.Len() > 0 {
					b.WriteByte('.')
				}
				b.WriteString(clip(f.key))
			}
		}
		return b.String()
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	// expectKey says the next string in the top object is a key.
	expectKey := false
	afterValue := func() {
		if len(stack) == 0 {
			return
		}
		top := stack[len(stack)-1]
		if top.array {
			top.index++
		} else {
			expectKey = true
		}
	}
	for {
		tok, err := dec.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return false, "", false, false
		}
		switch tok {
		case json.Delim('{'), json.Delim('['):
			if len(stack) == MaxNesting {
				tooDeep = true
			}
			stack = append(stack, &frame{array: tok == json.Delim('['), seen: map[string]bool{}})
			expectKey = tok == json.Delim('{')
			continue
		case json.Delim('}'), json.Delim(']'):
			stack = stack[:len(stack)-1]
			afterValue()
			continue
		}
		if len(stack) > 0 && expectKey {
			top := stack[len(stack)-1]
			k := tok.(string)
			top.key = k
			if top.seen[k] && !dup && !tooDeep {
				dup, dupField = true, path()
			}
			top.seen[k] = true
			expectKey = false
			continue
		}
		afterValue()
	}
	// The scanner stops at the first problem, which may come later in the
	// document: it can then still see the other one.
	return dup, dupField, tooDeep, true
}

func checkScan(t *testing.T, data []byte) {
	if !utf8.Valid(data) {
		return // refused before the scan: encoding/json reads it as U+FFFD
	}
	dup, dupField, tooDeep, ok := refScan(data)
	if !ok {
		return
	}
	r := scanJSON(data)
	if r.problem == scanSurrogate {
		if !bytes.Contains(data, []byte(`\u`)) && !bytes.Contains(data, []byte(`\U`)) {
			t.Fatalf("lone surrogate reported without a \\u escape at %d: %s", r.at, data)
		}
		return
	}
	switch {
	case r.problem == scanOK && (dup || tooDeep):
		t.Fatalf("scanJSON found nothing; reference found duplicate %q, too deep %v: %s", dupField, tooDeep, data)
	case r.problem == scanDuplicate && !dup && !tooDeep:
		t.Fatalf("scanJSON found duplicate %q, reference none: %s", r.field, data)
	case r.problem == scanDuplicate && dup && r.field != dupField:
		t.Fatalf("scanJSON found duplicate %q, reference %q: %s", r.field, dupField, data)
	case r.problem == scanTooDeep && !tooDeep:
		t.Fatalf("scanJSON found too deep at %d, reference not: %s", r.at, data)
	}
}

var scanSeeds = []string{
	`{"a":1,"a":2}`,
	`{"a":{"b":[1,{"c":1,"c":2}]}}`,
	`{"a":[{"k":1},{"k":1}],"b":{"k":1},"c":{"k":{"k":1}}}`,
	`{"\u0061":1,"a":2}`,
	`{"a":"\ud83d\ude00","b":"\\ud800","c":["x",{"d":"\udc00"}]}`,
	`{"a":"\"{[","a\"":1,"a\\":2,"b":[[],[[]],{}]}`,
	`[{"x":1},[{"x":1,"y":{},"x":2}]]`,
	`{"k0":1,"k1":1,"k2":1,"k3":1,"k4":1,"k5":1,"k6":1,"k7":1,"k8":1,"k9":1,"k10":1,"k11":1,"k12":1,"k13":1,"k14":1,"k15":1,"k16":1,"k17":1,"k3":1}`,
	strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting),
	strings.Repeat(`{"a":`, MaxNesting+1) + "1" + strings.Repeat("}", MaxNesting+1),
}

func TestScanAgreesWithReference(t *testing.T) {
	for _, s := range scanSeeds {
		checkScan(t, []byte(s))
	}
}

func FuzzScanJSON(f *testing.F) {
	for _, s := range scanSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) { checkScan(t, data) })
}

// Two keys of one hash are told apart by their bytes: dupKey's map is
// made to point a new key's hash at another key.
func TestDupKeyOnAHashCollision(t *testing.T) {
	var keys [][]byte
	var seen map[uint64]int
	for i := range 20 {
		k := []byte(fmt.Sprintf("k%d", i))
		if dupKey(keys, k, &seen) {
			t.Fatalf("%s: a duplicate among distinct keys", k)
		}
		keys = append(keys, k)
	}
	collide := func(k []byte) { seen[maphash.Bytes(keySeed, k)] = 3 }
	fresh := []byte("fresh")
	collide(fresh)
	if dupKey(keys, fresh, &seen) {
		t.Error("a new key whose hash another key holds taken for a duplicate")
	}
	collide(keys[17])
	if !dupKey(keys, keys[17], &seen) {
		t.Error("a repeated key whose hash another key holds missed")
	}
}
