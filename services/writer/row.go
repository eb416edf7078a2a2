package writer

import (
	"encoding/json"
	"slices"
)

// pairs turns a map into sorted parallel key and value arrays, the Nested
// layout ClickHouse 18.16 can store (it has no Map type).
func pairs(m map[string]string) (keys, values []string) {
	keys = make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	values = make([]string, len(keys))
	for i, k := range keys {
		values[i] = m[k]
	}
	return keys, values
}

func jsonObject(m map[string]json.RawMessage) (string, error) {
	raw, err := json.Marshal(m)
	return string(raw), err
}
