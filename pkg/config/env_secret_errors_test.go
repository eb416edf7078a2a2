package config

import (
	"strings"
	"testing"
)

func TestEnvTokensErrorsHideValue(t *testing.T) {
	type sec struct {
		Tokens []string          `yaml:"-" env:"tokens"`
		M      map[string]string `yaml:"m"`
		N      int               `yaml:"n"`
	}
	type cfg struct {
		Ingest sec `yaml:"ingest"`
	}
	for _, v := range []string{
		"SECRETVALUE1234567890",
		"[SECRETVALUE1234567890",
		"[SECRETVALUE1234567890, {a: SECRETVALUE1234567890}]",
		"{SECRETVALUE1234567890: x}",
		"[\"SECRETVALUE1234567890]",
		"['SECRETVALUE1234567890]",
		"[SECRETVALUE1234567890]]",
		"[a, SECRETVALUE1234567890: b: c]",
		"[*SECRETVALUE1234567890]",
		"[!SECRETVALUE1234567890 x]",
		"[&SECRETVALUE1234567890 x, *SECRETVALUE1234567890]",
		"[@SECRETVALUE1234567890]",
		"[`SECRETVALUE1234567890]",
		"[%SECRETVALUE1234567890]",
		"[x]\n--- SECRETVALUE1234567890",
		"[\"\\qSECRETVALUE1234567890\"]",
		"[!!int SECRETVALUE1234567890]",
		"[!!binary SECRETVALUE1234567890]",
		"[!!timestamp SECRETVALUE1234567890]",
	} {
		var c cfg
		err := Load(&c, Options{EnvPrefix: "AIOPS", Environ: []string{"AIOPS_INGEST__TOKENS=" + v}})
		if err != nil && strings.Contains(err.Error(), "SECRETVALUE") {
			t.Errorf("value %q: error shows it: %v", v, err)
		} else {
			t.Logf("%q: %v", v, err)
		}
	}
}
