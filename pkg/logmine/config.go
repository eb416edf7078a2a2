package logmine

import (
	"errors"
	"fmt"

	"github.com/aiops-dev/aiops/pkg/config"
)

// Sentinel errors; test with errors.Is. Errors that wrap ErrInvalidFormat
// or ErrInvalidSnapshot are marked permanent (errs.IsPermanent): the same
// input fails the same way; ErrInvalidConfig is the one configuration
// error, a usage error.
var (
	ErrInvalidConfig   = fmt.Errorf("logmine: %w", config.ErrInvalidConfig)
	ErrInvalidFormat   = errors.New("logmine: invalid log format")
	ErrInvalidSnapshot = errors.New("logmine: invalid snapshot")
)

// Config holds the miner's parameters. The zero value is not valid; start
// from DefaultConfig and change what you need.
type Config struct {
	// PrefixTokens is how many leading tokens route a line in the prefix
	// tree below the token-count level (Drain's depth minus 2). Lines whose
	// first tokens differ share a template only through FoldAfter.
	PrefixTokens int
	// SimilarityThreshold is the least share of a template's constant
	// tokens that a line must repeat to join it (0 < x <= 1).
	SimilarityThreshold float64
	// MaxChildren caps the children of a prefix-tree node; tokens beyond it
	// share the wildcard child, which keeps the tree small when a variable
	// the maskers miss sits in a routing position.
	MaxChildren int
	// FoldAfter: when this many values in the last routing position have
	// been seen in messages that are otherwise the same, that position is a
	// variable the maskers missed (a host or user name) and the templates
	// are folded into one. 0 disables folding.
	FoldAfter int
	// WordFoldAfter: where a line and a template differ in one position
	// only, and both hold plain words there (no digits, nothing masked),
	// the templates stay apart until this many different words were seen
	// there; then they are folded into one with <*> at that position. So
	// a few states ("LOOKING", "LEADING", "FOLLOWING") or word forms
	// ("failure;", "failures;") are different messages and a user name
	// with many values is a variable. 0 generalises at once, as Drain does.
	WordFoldAfter int
	// ConsolidateAfter: templates of one length that differ in one
	// position only, across branches of the prefix tree, are folded once
	// they show this many different words there: online at the routing
	// positions when a line creates such a template, and at every
	// position by Miner.Consolidate (which the offline parse runs at the
	// end). It asks for more than WordFoldAfter because it reaches the
	// first words of a message, which name what happened more often than
	// they hold a value ("tickTime set to", "maxSessionTimeout set to").
	// 0 disables both.
	ConsolidateAfter int
	// MaxTemplates bounds the templates held, by count: beyond it the
	// least recently seen template is evicted (and counted in
	// Stats.Evicted). A template's bytes grow with its line, up to about
	// ten times MaxLineBytes (see the package documentation).
	MaxTemplates int
	// MaxTemplateBytes bounds the heap the templates held take, as
	// estimated from their text and tokens (Stats.TemplateBytes): beyond
	// it the least recently seen are evicted too. MaxTemplates alone lets
	// lines built for it (long lines of one-letter words, each a new
	// template) take about ten times MaxLineBytes a template.
	MaxTemplateBytes int64
	// MaxMerges bounds the merge log that Resolve and Merges read.
	MaxMerges int
	// MaxLineBytes truncates longer lines before mining (CutLine; counted
	// in Stats.Truncated and flagged in Result.Truncated): their template
	// and parameters cover the first MaxLineBytes.
	MaxLineBytes int
	// DisabledMasks switches single maskers off; all are on by default.
	DisabledMasks []Mask
}

// DefaultMaxTemplateBytes is the default bound on the templates' heap:
// ten times what 50,000 templates of real logs take (about 500 bytes
// each).
const DefaultMaxTemplateBytes = 256 << 20

// MinMaxTemplateBytes is the least MaxTemplateBytes: room for about a
// hundred templates of real logs.
const MinMaxTemplateBytes = 64 << 10

// DefaultMaxLineBytes is Config.MaxLineBytes in DefaultConfig: how much of
// a message (the line less its header) is mined, by the logminer
// (max_line_bytes) and by the offline parse alike, so that a long line
// gets the same template live and offline. Long enough for a long
// message's line (of a message of several lines, the first with a letter
// is mined: FirstLineWithLetter), short enough that a template is at most
// about 160 KiB.
const DefaultMaxLineBytes = 16 << 10

// DefaultConfig returns the settings measured on Loghub (see the package
// documentation for the figures). They are the same for every log source.
func DefaultConfig() Config {
	return Config{
		PrefixTokens:        2,
		SimilarityThreshold: 0.6,
		MaxChildren:         100,
		FoldAfter:           3,
		WordFoldAfter:       4,
		ConsolidateAfter:    8,
		MaxTemplates:        50_000,
		MaxTemplateBytes:    DefaultMaxTemplateBytes,
		MaxMerges:           50_000,
		MaxLineBytes:        DefaultMaxLineBytes,
	}
}

// Validate reports the first invalid field by name. The error wraps
// ErrInvalidConfig, the one configuration error (a usage error, not bad
// data).
func (c Config) Validate() error {
	switch {
	case c.PrefixTokens < 0 || c.PrefixTokens > 16:
		return fmt.Errorf("%w: PrefixTokens must be in [0,16], got %d", ErrInvalidConfig, c.PrefixTokens)
	case !(c.SimilarityThreshold > 0 && c.SimilarityThreshold <= 1):
		return fmt.Errorf("%w: SimilarityThreshold must be in (0,1], got %v", ErrInvalidConfig, c.SimilarityThreshold)
	case c.MaxChildren < 2:
		return fmt.Errorf("%w: MaxChildren must be at least 2, got %d", ErrInvalidConfig, c.MaxChildren)
	case c.FoldAfter < 0 || c.FoldAfter == 1:
		return fmt.Errorf("%w: FoldAfter must be 0 (off) or at least 2, got %d", ErrInvalidConfig, c.FoldAfter)
	case c.WordFoldAfter < 0 || c.WordFoldAfter == 1:
		return fmt.Errorf("%w: WordFoldAfter must be 0 (off) or at least 2, got %d", ErrInvalidConfig, c.WordFoldAfter)
	case c.ConsolidateAfter < 0 || c.ConsolidateAfter == 1:
		return fmt.Errorf("%w: ConsolidateAfter must be 0 (off) or at least 2, got %d", ErrInvalidConfig, c.ConsolidateAfter)
	case c.MaxTemplates < 1:
		return fmt.Errorf("%w: MaxTemplates must be at least 1, got %d", ErrInvalidConfig, c.MaxTemplates)
	case c.MaxTemplateBytes < MinMaxTemplateBytes:
		return fmt.Errorf("%w: MaxTemplateBytes must be at least %d, got %d", ErrInvalidConfig, MinMaxTemplateBytes, c.MaxTemplateBytes)
	case c.MaxMerges < 0:
		return fmt.Errorf("%w: MaxMerges must not be negative, got %d", ErrInvalidConfig, c.MaxMerges)
	case c.MaxLineBytes < 16 || c.MaxLineBytes > 1<<30:
		return fmt.Errorf("%w: MaxLineBytes must be in [16, 1 GiB], got %d", ErrInvalidConfig, c.MaxLineBytes)
	}
	if _, err := enabledMasks(c.DisabledMasks); err != nil {
		return err
	}
	return nil
}
