package router

import (
	"fmt"
	"io"
	"sort"
	"sync"
	"sync/atomic"

	"github.com/ternmesh/tern/bundle"
)

// Counters are the numbers a user reads in `tern status` and /metrics.
type Counters struct {
	In        uint64 `json:"in"`        // data bundles received
	Out       uint64 `json:"out"`       // data bundles sent (first sends and retries)
	Stored    uint64 `json:"stored"`    // data bundles taken into the store
	Delivered uint64 `json:"delivered"` // data bundles delivered to a local application
	Expired   uint64 `json:"expired"`   // dropped because their lifetime ended
	Rejected  uint64 `json:"rejected"`  // malformed, forged, replayed, over quota, out of hops or rate-limited
	Duplicate uint64 `json:"duplicate"` // already seen, acknowledged and dropped
	// RateLimited counts bundles refused (no custody ack) because the
	// neighbour sent more than its ingress rate; also counted in Rejected
	// under the reason "rate-limited".
	RateLimited uint64 `json:"rate_limited"`
}

type atomicU64 = atomic.Uint64

type counters struct {
	in, out, stored, delivered, expired, rejected, duplicate, rateLimited atomic.Uint64
}

func (c *counters) snapshot() Counters {
	return Counters{
		In: c.in.Load(), Out: c.out.Load(), Stored: c.stored.Load(), Delivered: c.delivered.Load(),
		Expired: c.expired.Load(), Rejected: c.rejected.Load(), Duplicate: c.duplicate.Load(),
		RateLimited: c.rateLimited.Load(),
	}
}

// DTNCounters are the delay-tolerant forwarding figures: copies sprayed on
// contact, spare copies cleared by receipts, receipts learned, and the
// neighbours whose routes are penalised now.
type DTNCounters struct {
	Sprayed   uint64   `json:"sprayed"`   // copies handed to neighbours on contact
	Cleared   uint64   `json:"cleared"`   // spare copies dropped because a receipt said delivered
	Receipts  uint64   `json:"receipts"`  // delivery receipts learned (delivered here or heard)
	Resent    uint64   `json:"resent"`    // hedges sent again another way for want of a receipt
	Aired     uint64   `json:"aired"`     // unrouted bundles broadcast once on a radio with copies for every hearer (air.go)
	Penalised []string `json:"penalised"` // neighbours whose routes lost preference
}

// metrics holds the totals and one set of counters per neighbour.
type metrics struct {
	total counters
	mu    sync.Mutex
	per   map[bundle.Addr]*counters
	// rejectReasons counts rejections by reason (malformed, forged, ...).
	reasons sync.Map // string -> *atomic.Uint64
}

func newMetrics() *metrics { return &metrics{per: make(map[bundle.Addr]*counters)} }

func (m *metrics) of(n bundle.Addr) *counters {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.per[n]
	if c == nil {
		c = &counters{}
		m.per[n] = c
	}
	return c
}

// add bumps a counter in the totals and, when n is not zero, for neighbour n.
func (m *metrics) add(n bundle.Addr, pick func(*counters) *atomic.Uint64) {
	pick(&m.total).Add(1)
	if n != (bundle.Addr{}) {
		pick(m.of(n)).Add(1)
	}
}

func (m *metrics) reject(n bundle.Addr, reason string) {
	m.add(n, func(c *counters) *atomic.Uint64 { return &c.rejected })
	v, _ := m.reasons.LoadOrStore(reason, new(atomic.Uint64))
	v.(*atomic.Uint64).Add(1)
}

// Metrics is a snapshot of the router's counters.
type Metrics struct {
	Total       Counters            `json:"total"`
	ByNeighbour map[string]Counters `json:"by_neighbour"`
	Rejected    map[string]uint64   `json:"rejected_by_reason"`
	StoredNow   int                 `json:"stored_now"`
	StoredBytes int64               `json:"stored_bytes"`
	Voice       VoiceCounters       `json:"voice"`
	DTN         DTNCounters         `json:"dtn"`
}

// WritePrometheus writes the snapshot in the Prometheus text format.
func (s Metrics) WritePrometheus(w io.Writer) {
	type series struct {
		name, help string
		get        func(Counters) uint64
	}
	all := []series{
		{"tern_bundles_in_total", "Data bundles received from neighbours.", func(c Counters) uint64 { return c.In }},
		{"tern_bundles_out_total", "Data bundles sent to neighbours, retries included.", func(c Counters) uint64 { return c.Out }},
		{"tern_bundles_stored_total", "Data bundles taken into the durable store.", func(c Counters) uint64 { return c.Stored }},
		{"tern_bundles_delivered_total", "Data bundles delivered to a local application.", func(c Counters) uint64 { return c.Delivered }},
		{"tern_bundles_expired_total", "Bundles dropped because their lifetime ended.", func(c Counters) uint64 { return c.Expired }},
		{"tern_bundles_rejected_total", "Bundles rejected: malformed, forged, replayed, over quota, out of hops or rate-limited.", func(c Counters) uint64 { return c.Rejected }},
		{"tern_bundles_duplicate_total", "Bundles already seen and dropped.", func(c Counters) uint64 { return c.Duplicate }},
		{"tern_bundles_rate_limited_total", "Bundles refused (no custody ack) because the neighbour exceeded its ingress rate.", func(c Counters) uint64 { return c.RateLimited }},
	}
	names := make([]string, 0, len(s.ByNeighbour))
	for n := range s.ByNeighbour {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, se := range all {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n", se.name, se.help, se.name)
		fmt.Fprintf(w, "%s %d\n", se.name, se.get(s.Total))
		for _, n := range names {
			fmt.Fprintf(w, "%s{neighbour=%q} %d\n", se.name, n, se.get(s.ByNeighbour[n]))
		}
	}
	reasons := make([]string, 0, len(s.Rejected))
	for r := range s.Rejected {
		reasons = append(reasons, r)
	}
	sort.Strings(reasons)
	fmt.Fprintf(w, "# HELP tern_bundles_rejected_by_reason_total Rejected bundles by reason.\n# TYPE tern_bundles_rejected_by_reason_total counter\n")
	for _, r := range reasons {
		fmt.Fprintf(w, "tern_bundles_rejected_by_reason_total{reason=%q} %d\n", r, s.Rejected[r])
	}
	vc := []struct {
		name, help string
		v          uint64
	}{
		{"tern_voice_received_total", "Voice datagrams read from links.", s.Voice.Received},
		{"tern_voice_delivered_total", "Voice datagrams handed to a local application.", s.Voice.Delivered},
		{"tern_voice_forwarded_total", "Voice datagrams relayed to a next hop.", s.Voice.Forwarded},
		{"tern_voice_sent_total", "Voice datagrams originated here.", s.Voice.Sent},
		{"tern_dtn_copies_sprayed_total", "Delay-tolerant copies handed to neighbours on contact.", s.DTN.Sprayed},
		{"tern_dtn_copies_cleared_total", "Spare copies dropped because a delivery receipt arrived.", s.DTN.Cleared},
		{"tern_dtn_receipts_total", "Delivery receipts learned.", s.DTN.Receipts},
		{"tern_dtn_hedges_resent_total", "Hedges sent again another way for want of a delivery receipt.", s.DTN.Resent},
	}
	for _, c := range vc {
		fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", c.name, c.help, c.name, c.name, c.v)
	}
	vreasons := make([]string, 0, len(s.Voice.Dropped))
	for r := range s.Voice.Dropped {
		vreasons = append(vreasons, r)
	}
	sort.Strings(vreasons)
	fmt.Fprintf(w, "# HELP tern_voice_dropped_total Voice datagrams dropped, by reason.\n# TYPE tern_voice_dropped_total counter\n")
	for _, r := range vreasons {
		fmt.Fprintf(w, "tern_voice_dropped_total{reason=%q} %d\n", r, s.Voice.Dropped[r])
	}
	fmt.Fprintf(w, "# HELP tern_dtn_penalised_neighbours Neighbours whose routes lost preference for want of delivery receipts or for flooding past their ingress limit.\n# TYPE tern_dtn_penalised_neighbours gauge\ntern_dtn_penalised_neighbours %d\n", len(s.DTN.Penalised))
	fmt.Fprintf(w, "# HELP tern_store_bundles Bundles held in the store now.\n# TYPE tern_store_bundles gauge\ntern_store_bundles %d\n", s.StoredNow)
	fmt.Fprintf(w, "# HELP tern_store_bytes Bytes of bundles held in the store now.\n# TYPE tern_store_bytes gauge\ntern_store_bytes %d\n", s.StoredBytes)
}
