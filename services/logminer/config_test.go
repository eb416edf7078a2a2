package logminer

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/aiops-dev/aiops/pkg/bus"
	"github.com/aiops-dev/aiops/pkg/config"
	"github.com/aiops-dev/aiops/pkg/errs"
)

func TestConfigValidate(t *testing.T) {
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config (all defaults): %v", err)
	}
	if err := (Config{Consumer: bus.ConsumerConfig{FilterSubjects: []string{"events.log.checkout", "events.log.payments"}}}).Validate(); err != nil {
		t.Fatalf("one service's raw logs: %v", err)
	}
	cases := []struct {
		field string
		edit  func(*Config)
	}{
		{"consumer.filter_subjects", func(c *Config) { c.Consumer.FilterSubjects = []string{"events.>"} }},
		{"consumer.filter_subjects", func(c *Config) { c.Consumer.FilterSubjects = []string{"events.log.>"} }},
		{"consumer.filter_subjects", func(c *Config) { c.Consumer.FilterSubjects = []string{"events.log.*.templated"} }},
		{"consumer.filter_subjects", func(c *Config) { c.Consumer.FilterSubjects = []string{"events.metric.*"} }},
		{"max_templates", func(c *Config) { c.MaxTemplates = -1 }},
		{"max_line_bytes", func(c *Config) { c.MaxLineBytes = 10 }},
		{"max_line_bytes", func(c *Config) { c.MaxLineBytes = 1 << 20 }},
		{"formats.api", func(c *Config) { c.Formats = map[string]string{"api": "<Date> <Time>"} }},
		{"formats", func(c *Config) { c.Formats = map[string]string{"": "<Content>"} }},
		{"formats.api", func(c *Config) { c.Formats = map[string]string{"api": "detect"} }},
		{"default_format", func(c *Config) { c.DefaultFormat = "<Content>" }},
		{"interval", func(c *Config) { c.Interval = time.Millisecond }},
		{"max_lateness", func(c *Config) { c.MaxLateness = -time.Second }},
		{"idle_intervals", func(c *Config) { c.IdleIntervals = -1 }},
		{"max_series", func(c *Config) { c.MaxSeries = -3 }},
		{"burst.factor", func(c *Config) { c.Burst.Factor = 0.5 }},
		{"burst.min_count", func(c *Config) { c.Burst.MinCount = -1 }},
		{"burst.alpha", func(c *Config) { c.Burst.Alpha = 1.5 }},
		{"burst.alpha", func(c *Config) { c.Burst.Alpha = math.NaN() }},
		{"burst.factor", func(c *Config) { c.Burst.Factor = math.NaN() }},
		{"burst.factor", func(c *Config) { c.Burst.Factor = math.Inf(1) }},
		{"state.bucket", func(c *Config) { c.State.Bucket = "a.b" }},
		{"state.save_every", func(c *Config) { c.State.SaveEvery = time.Millisecond }},
		{"store_consumer", func(c *Config) { c.StoreConsumer = "writer.v2" }},
		{"max_store_backlog", func(c *Config) { c.MaxStoreBacklog = 1.5 }},
		{"max_store_backlog", func(c *Config) { c.MaxStoreBacklog = -0.1 }},
		{"max_store_backlog", func(c *Config) { c.MaxStoreBacklog = math.NaN() }},
	}
	for _, c := range cases {
		var cfg Config
		c.edit(&cfg)
		err := cfg.Validate()
		if err == nil || !strings.Contains(err.Error(), "logminer."+c.field) {
			t.Errorf("%s: got %v, want an error naming logminer.%s", c.field, err, c.field)
			continue
		}
		if !errors.Is(err, ErrInvalidConfig) || !errors.Is(err, config.ErrInvalidConfig) || errs.IsPermanent(err) {
			t.Errorf("%s: %v is not the one configuration error (a usage error, not bad data)", c.field, err)
		}
	}
}
