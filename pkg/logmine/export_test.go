package logmine

import "fmt"

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

// CheckBound compares, for line and every indexed leaf of its token
// count, the template bestIn picks (the index and its similarity bound)
// with the one a scan of every template of the leaf picks: the same one,
// or none at the threshold by either. It changes no template.
func (m *Miner) CheckBound(line string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	line, _ = CutLine(line, m.cfg.MaxLineBytes)
	m.tk.tokenize(trimTrailingSpace(line))
	th := m.cfg.SimilarityThreshold
	var check func(nd *node) error
	check = func(nd *node) error {
		if nd.index != nil {
			got, gotSim := m.bestIn(nd, nil, -1)
			want, wantSim := m.best(nd.clusters, nil, -1)
			if (wantSim >= th || gotSim >= th) && (got != want || gotSim != wantSim) {
				return fmt.Errorf("line %q: with the bound %v (%.3f), scanning the leaf %v (%.3f)", line, tmpl(got), gotSim, tmpl(want), wantSim)
			}
		}
		for _, ch := range nd.children {
			if err := check(ch); err != nil {
				return err
			}
		}
		return nil
	}
	if root := m.byLen[len(m.tk.toks)]; root != nil {
		return check(root)
	}
	return nil
}

func tmpl(c *cluster) string {
	if c == nil {
		return "none"
	}
	return c.template
}

// FoldChecked is the number of templates fold checked (differsOnlyAt).
func (m *Miner) FoldChecked() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.foldChecked
}

// PathScanned is the number of bytes maskPath looked at.
func (m *Masker) PathScanned() uint64 { return m.tk.pathScanned }
