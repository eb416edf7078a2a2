package correlator

import (
	"bytes"
	"os"
	"reflect"
	"regexp"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/aiops-dev/aiops/pkg/correlate"
)

// TestReadmeRuleDefaults keeps the README's table of rules true: setting
// each key to the default it documents changes nothing, and every key of
// the rules is in the table.
func TestReadmeRuleDefaults(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(data, []byte("| `rules.` key |"))
	if i < 0 {
		t.Fatal("no table of rules in the README")
	}
	rows := regexp.MustCompile("(?m)^\\| `([a-z_]+)` \\| ([^|]+?) \\|").FindAllSubmatch(data[i:], -1)
	documented := map[string]bool{}
	for _, r := range rows {
		key, def := string(r[1]), string(bytes.Trim(r[2], " `"))
		documented[key] = true
		if def == "none" {
			continue
		}
		var cfg correlate.Config
		dec := yaml.NewDecoder(bytes.NewReader([]byte(key + ": " + def + "\n")))
		dec.KnownFields(true)
		if err := dec.Decode(&cfg); err != nil {
			t.Errorf("rules.%s: %s: %v", key, def, err)
			continue
		}
		if got, want := cfg.WithDefaults(), correlate.DefaultConfig(); !reflect.DeepEqual(got, want) {
			t.Errorf("rules.%s: the README says %s, the default differs", key, def)
		}
	}
	ty := reflect.TypeFor[correlate.Config]()
	for i := range ty.NumField() {
		if key := ty.Field(i).Tag.Get("yaml"); key != "" && key != "-" && !documented[key] {
			t.Errorf("rules.%s is not in the README's table", key)
		}
	}
}
