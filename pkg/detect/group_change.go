package detect

// A changeWindow tells whether an asset's operating point is moving: it
// compares the mean of the last w standardised rows with the mean of the w
// rows before them, channel by channel, and switches on when the
// difference reaches a limit learnt from the warm-up rows (their own
// Quantile of the same statistic, times ChangeMargin) and off once it has
// fallen under ChangeRelease of that. A step switches it on within a
// window and off two to three windows later; a ramp keeps it on while the ramp lasts, so its
// switches mark where a change starts and where it ends — the
// changepoints of SKAB's second leaderboard — while the anomaly score
// says whether the state the asset is in is abnormal.
type changeWindow struct {
	w, d int
	rows []float64 // ring of 2w rows of d channels
	n    int       // rows pushed
	lim  float64   // the statistic's limit; 0: off
	on   bool
	diff []float64 // scratch: the newer window's sum minus the older's
}

func newChangeWindow(cfg GroupConfig, d int, warm [][]float64) changeWindow {
	w := cfg.ChangeWindow
	if w <= 0 || len(warm) < 4*w {
		return changeWindow{}
	}
	c := changeWindow{w: w, d: d, rows: make([]float64, 2*w*d)}
	stats := make([]float64, 0, len(warm))
	for _, z := range warm {
		if s := c.push(z); c.n >= 2*w {
			stats = append(stats, s)
		}
	}
	c.lim = max(quantile(stats, cfg.Quantile)*cfg.ChangeMargin, 1e-9)
	return c
}

// push adds a standardised row and returns the statistic: w/2 times the
// sum over channels of the squared difference of the two windows' means,
// which is about χ² with d degrees of freedom for white noise of unit
// variance (wander and correlated channels make it larger; the limit is
// the warm-up's own quantile, so that does not matter).
func (c *changeWindow) push(z []float64) float64 {
	copy(c.rows[(c.n%(2*c.w))*c.d:], z)
	c.n++
	if c.n < 2*c.w {
		return 0
	}
	// Each slot of the ring is in the newer window (the last w rows) or
	// the older one; sum the difference of the two channel by channel.
	if len(c.diff) != c.d {
		c.diff = make([]float64, c.d)
	}
	diff := c.diff
	clear(diff)
	newest := (c.n - 1) % (2 * c.w)
	for slot := 0; slot < 2*c.w; slot++ {
		age := (newest - slot + 2*c.w) % (2 * c.w) // 0: the last row
		row := c.rows[slot*c.d : (slot+1)*c.d]
		if age < c.w {
			for j, v := range row {
				diff[j] += v
			}
		} else {
			for j, v := range row {
				diff[j] -= v
			}
		}
	}
	var s float64
	for _, v := range diff {
		v /= float64(c.w)
		s += v * v
	}
	return s * float64(c.w) / 2
}

// observe pushes a row and returns the statistic, its limit and whether
// the asset is changing.
func (c *changeWindow) observe(z []float64, release float64) (stat, lim float64, on bool) {
	if c.lim == 0 {
		return 0, 0, false
	}
	stat = c.push(z)
	switch {
	case stat >= c.lim:
		c.on = true
	case stat < release*c.lim:
		c.on = false
	}
	return stat, c.lim, c.on
}
