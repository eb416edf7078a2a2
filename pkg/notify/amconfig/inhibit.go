package amconfig

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
