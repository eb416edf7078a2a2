package stage

import (
	"strings"
	"testing"
	"time"
)

func TestStateConfigValidate(t *testing.T) {
	ok := StateConfig{}.WithDefaults("logminer", "logminer", 30*time.Second)
	if err := ok.Validate(); err != nil {
		t.Fatalf("defaults: %v", err)
	}
	for _, c := range []struct {
		edit func(*StateConfig)
		want string
	}{
		{func(c *StateConfig) { c.Bucket = "a.b" }, "state.bucket"},
		{func(c *StateConfig) { c.Key = "" }, "state.key"},
		{func(c *StateConfig) { c.SaveEvery = -time.Second }, "state.save_every"},
		{func(c *StateConfig) { c.Replicas = 7 }, "state.replicas"},
	} {
		cfg := ok
		c.edit(&cfg)
		if err := cfg.Validate(); err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("%+v: %v, want an error naming %s", cfg, err, c.want)
		}
		cfg.Disabled = true
		if err := cfg.Validate(); err != nil {
			t.Errorf("disabled state is not checked: %v", err)
		}
	}
}
