package logmine

// SetIndexAt sets the number of templates from which a leaf indexes them
// (indexAt) until the returned function restores it: the equivalence test
// runs the same lines with the index off, and on from the second template.
func SetIndexAt(n int) (restore func()) {
	old := indexAt
	indexAt = n
	return func() { indexAt = old }
}

// Compared is the number of comparisons of a line with a template the
// miner made.
func (m *Miner) Compared() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.compared
}
