package amconfig

import (
	"strconv"
	"strings"
)

// Inhibited reports whether the target alert is inhibited, as
// Alertmanager's inhibitor decides, given the labels of the alerts firing
// now: some rule's target matchers match the target, and a firing alert
// matches that rule's source matchers and has the same value as the target
// for every label in equal (a label that both lack is equal: missing is
// the empty string).
//
// When the target matches the rule's source matchers as well, a firing
// alert that also matches the target matchers does not count as a source:
// so an alert never inhibits itself, nor is it inhibited by its peers that
// match both sides of the same rule (Alertmanager's rule, since 0.22).
// firing may include the target itself.
func (c *Config) Inhibited(target map[string]string, firing []map[string]string) bool {
	for _, r := range c.InhibitRules {
		if r.Inhibits(target, firing) {
			return true
		}
	}
	return false
}

// Inhibits reports whether this rule inhibits the target given the firing
// alerts (see Config.Inhibited).
func (r *InhibitRule) Inhibits(target map[string]string, firing []map[string]string) bool {
	return r.InhibitingAlert(target, firing) >= 0
}

// InhibitingAlert returns the index in firing of the first alert through
// which this rule inhibits the target, or -1 if it does not.
func (r *InhibitRule) InhibitingAlert(target map[string]string, firing []map[string]string) int {
	if !r.TargetMatchers.Matches(target) {
		return -1
	}
	twoSided := r.SourceMatchers.Matches(target)
next:
	for i, src := range firing {
		if !r.SourceMatchers.Matches(src) {
			continue
		}
		for _, name := range r.Equal {
			if src[name] != target[name] {
				continue next
			}
		}
		if twoSided && r.TargetMatchers.Matches(src) {
			continue
		}
		return i
	}
	return -1
}

// InhibitIndex is a rule's sources among the firing alerts, indexed by
// the values of the rule's equal labels, to find what inhibits each of
// many targets (a list of every alert's state): InhibitingAlert for each
// target costs the firing alerts each time, so many targets the square
// of their number.
type InhibitIndex struct {
	rule *InhibitRule
	// byEqual is, by the equal labels' values (equalKey), the first
	// source there, and the first that does not match the target
	// matchers (the first a two-sided target may be inhibited by); -1:
	// none.
	byEqual map[string][2]int
}

// Index indexes firing for r (see InhibitIndex).
func (r *InhibitRule) Index(firing []map[string]string) *InhibitIndex {
	x := &InhibitIndex{rule: r, byEqual: map[string][2]int{}}
	for i, src := range firing {
		if !r.SourceMatchers.Matches(src) {
			continue
		}
		key := r.equalKey(src)
		first, ok := x.byEqual[key]
		if !ok {
			first = [2]int{i, -1}
		}
		if first[1] < 0 && !r.TargetMatchers.Matches(src) {
			first[1] = i
		}
		x.byEqual[key] = first
	}
	return x
}

// InhibitingAlert is r.InhibitingAlert(target, firing), for the firing
// alerts x indexes.
func (x *InhibitIndex) InhibitingAlert(target map[string]string) int {
	r := x.rule
	if !r.TargetMatchers.Matches(target) {
		return -1
	}
	first, ok := x.byEqual[r.equalKey(target)]
	switch {
	case !ok:
		return -1
	case r.SourceMatchers.Matches(target): // two-sided (InhibitingAlert)
		return first[1]
	}
	return first[0]
}

// equalKey is the values of r's equal labels in labels (a missing one is
// the empty string), in one string.
func (r *InhibitRule) equalKey(labels map[string]string) string {
	var b strings.Builder
	for _, name := range r.Equal {
		b.WriteString(strconv.Quote(labels[name]))
	}
	return b.String()
}
