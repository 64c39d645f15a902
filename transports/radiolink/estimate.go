package radiolink

import "time"

// EstimateAirtime implements transports.AirtimeEstimator: n bytes cut into
// fragments of the largest frame this radio sends to this neighbour, each
// at the time on air of a full frame. Repairs, acknowledgements and the
// wait imposed by a duty-cycle budget come on top.
func (l *Link) EstimateAirtime(n int64) time.Duration {
	if n <= 0 {
		return 0
	}
	l.r.mu.Lock()
	defer l.r.mu.Unlock()
	e := l.r.eng
	lc := 3
	if nb := e.nbs[l.addr]; nb != nil {
		lc = e.linkCode(nb)
	}
	per := int64(e.cfg.MaxFrame - fragHeaderLen(lc))
	if per <= 0 {
		return 0
	}
	frames := (n + per - 1) / per
	return time.Duration(frames) * e.toa(e.cfg.MaxFrame)
}
