package router

import (
	"fmt"
	"strings"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports"
)

// Bulk data (bundle.FlagBulk: the chunks of a file transfer) is held off
// radio links. A radio channel carries a few hundred bytes a second and is
// shared and duty-cycled: one photo would take it for an hour. A bulk
// bundle queued for a neighbour reachable only by radio waits there until a
// faster link to it appears; the sender can choose radio explicitly by not
// setting the flag (tern file send --over-radio).

// heldOffRadio reports whether a bundle with flags f must not go on l.
func heldOffRadio(l transports.Link, f bundle.Flags) bool {
	if f&bundle.FlagBulk == 0 {
		return false
	}
	_, radio := l.(transports.RadioLink)
	return radio
}

// BulkAirtime says whether bulk data to dest is held off radio now (its
// next hop is up only over radio links) and, if so, about how long size
// bytes would occupy the fastest of those radios (0 when no radio can
// estimate it). held is false when a non-radio path exists or no path at
// all (the data then simply waits for one).
func (r *Router) BulkAirtime(dest bundle.Addr, size int64) (held bool, airtime time.Duration) {
	nh, _, ok := r.route(dest, bundle.Addr{}, cargo{kind: bundle.KindData, size: int(min(size, 1<<20))})
	if !ok || nh == r.cfg.Self {
		return false, 0
	}
	r.mu.Lock()
	n := r.nbrs[nh]
	r.mu.Unlock()
	if n == nil {
		return false, 0
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ls := range n.links {
		if transports.IsClearOnly(ls.l) {
			continue
		}
		if !heldOffRadio(ls.l, bundle.FlagBulk) {
			return false, 0
		}
		if e, ok := ls.l.(transports.AirtimeEstimator); ok {
			if t := e.EstimateAirtime(size); t > 0 && (airtime == 0 || t < airtime) {
				airtime = t
			}
		}
	}
	return len(n.links) > 0, airtime
}

// BulkProblem explains why bulk data of about size bytes to dest waits (its
// only path now is a radio link), or returns "" when it can go or simply
// has no path yet.
func (r *Router) BulkProblem(dest bundle.Addr, size int64) string {
	held, t := r.BulkAirtime(dest, size)
	if !held {
		return ""
	}
	est := "a long time"
	if t > 0 {
		est = "about " + FormatAirtime(t)
	}
	return fmt.Sprintf("held off radio: a file transfer of %s would take %s of airtime; send it with --over-radio to allow it",
		FormatSize(size), est)
}

// FormatSize writes a byte count as people read it (850 B, 12 KB, 3.4 MB).
func FormatSize(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1_000_000:
		return fmt.Sprintf("%d KB", (n+500)/1000)
	case n < 1_000_000_000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	}
	return fmt.Sprintf("%.1f GB", float64(n)/1e9)
}

// FormatAirtime rounds an airtime to what matters to a person: seconds
// under ten minutes, minutes under ten hours, then hours.
func FormatAirtime(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < 10*time.Minute:
		return d.Round(time.Second).String()
	case d < 10*time.Hour:
		return strings.TrimSuffix(d.Round(time.Minute).String(), "0s")
	}
	return strings.TrimSuffix(d.Round(time.Hour).String(), "0m0s")
}
