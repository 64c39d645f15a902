package meshsim

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/ternmesh/tern/router/policy"
)

// Report is the outcome of one run.
type Report struct {
	Scenario string
	Protocol string
	Seed     uint64
	Nodes    int

	Generated int
	Delivered int
	// FilesDelivered is how many of Delivered were bulk messages (files,
	// policy.Bulk), which Tern keeps off LoRa as the daemon does.
	FilesDelivered int
	DeliveryRatio  float64
	LatencyP50     time.Duration
	LatencyP90     time.Duration
	LatencyP99     time.Duration

	DataTx          int // bundle transmissions (a LoRa broadcast counts once)
	ControlTx       int // announces, summaries, acks
	TxPerDelivered  float64
	AirtimeTotal    time.Duration
	Airtime         [4]time.Duration // by policy.Class
	AirtimeUse      float64          // mean share of each radio's time spent transmitting
	StoragePeakMax  int
	StoragePeakMean float64

	Collisions, RadioDrops, StorageDrops, Expired int
	RateLimited, DupDeliveries                    int
	QuotaRefused                                  int // bundles refused because their sender filled a quarter of a full store
	JunkMade, JunkSent, JunkDelivered             int // liars' junk: bundles made, offered to neighbours (per neighbour), that reached an application
	JunkAccepted                                  int // liars' junk taken into custody by their neighbours (past the ingress limits and the liars' own airtime)
	WallTime                                      time.Duration
	ByKind                                        [4]time.Duration // LoRa airtime by frame kind: data, ack, announce, summary
}

func (s *Sim) report() Report {
	r := s.rep
	r.Scenario, r.Protocol, r.Seed, r.Nodes = s.sc.Name, s.proto.String(), s.sc.Seed, len(s.nodes)
	r.Generated = len(s.msgs)
	if r.Generated > 0 {
		r.DeliveryRatio = float64(r.Delivered) / float64(r.Generated)
	}
	if r.Delivered > 0 {
		r.TxPerDelivered = float64(r.DataTx) / float64(r.Delivered)
	}
	slices.Sort(s.lat)
	pct := func(p float64) time.Duration {
		if len(s.lat) == 0 {
			return 0
		}
		return s.lat[min(len(s.lat)-1, int(p*float64(len(s.lat))))]
	}
	r.LatencyP50, r.LatencyP90, r.LatencyP99 = pct(0.5), pct(0.9), pct(0.99)
	radios, sum := 0, 0
	for _, n := range s.nodes {
		r.StoragePeakMax = max(r.StoragePeakMax, n.peak)
		sum += n.peak
		if n.radio != nil {
			radios++
		}
	}
	r.StoragePeakMean = float64(sum) / float64(len(s.nodes))
	if radios > 0 {
		r.AirtimeUse = r.AirtimeTotal.Seconds() / (float64(radios) * time.Duration(s.sc.Duration).Seconds())
	}
	return r
}

// share is the fraction of all LoRa airtime used by class c.
func (r Report) share(c policy.Class) float64 {
	if r.AirtimeTotal == 0 {
		return 0
	}
	return float64(r.Airtime[c]) / float64(r.AirtimeTotal)
}

// WriteTable writes reports as one markdown table.
func WriteTable(w io.Writer, rs []Report) {
	fmt.Fprintln(w, "| protocol | delivered | latency p50 / p90 / p99 | data tx per delivered | control tx | LoRa airtime (s) | radio busy | airtime interactive / bulk / control | storage peak max / mean | collisions | rate-limited |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range rs {
		fmt.Fprintf(w, "| %s | %d/%d (%.1f %%) | %s / %s / %s | %.1f | %d | %.0f | %.2f %% | %.0f / %.0f / %.0f %% | %d / %.1f | %d | %d |\n",
			r.Protocol, r.Delivered, r.Generated, 100*r.DeliveryRatio,
			short(r.LatencyP50), short(r.LatencyP90), short(r.LatencyP99),
			r.TxPerDelivered, r.ControlTx, r.AirtimeTotal.Seconds(), 100*r.AirtimeUse,
			100*r.share(policy.Interactive), 100*r.share(policy.Bulk), 100*r.share(policy.Control),
			r.StoragePeakMax, r.StoragePeakMean, r.Collisions, r.RateLimited)
	}
}

func short(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Compare runs the scenario under every protocol, same seed.
func Compare(sc Scenario) ([]Report, error) {
	var out []Report
	for _, p := range []Protocol{Tern, Epidemic, Flood} {
		start := time.Now()
		s, err := New(sc, p)
		if err != nil {
			return nil, err
		}
		r := s.Run()
		r.WallTime = time.Since(start)
		out = append(out, r)
	}
	return out, nil
}

// Seeds runs the scenario under every protocol for each seed, up to
// workers runs at a time (each run is one goroutine), and returns the
// reports by seed, in Compare's order of protocols. One seed is one
// draw of the city (placement, contacts, traffic): compare protocols or
// settings over several, since a single seed moves delivery by about
// ten of 400.
func Seeds(sc Scenario, seeds []uint64, workers int) ([][]Report, error) {
	protos := []Protocol{Tern, Epidemic, Flood}
	out := make([][]Report, len(seeds))
	errs := make([]error, len(seeds)*len(protos))
	sem := make(chan struct{}, max(workers, 1))
	var wg sync.WaitGroup
	for i, seed := range seeds {
		out[i] = make([]Report, len(protos))
		for k, p := range protos {
			c := sc
			c.Seed = seed
			wg.Add(1)
			go func() {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				start := time.Now()
				s, err := New(c, p)
				if err != nil {
					errs[i*len(protos)+k] = err
					return
				}
				r := s.Run()
				r.WallTime = time.Since(start)
				out[i][k] = r
			}()
		}
	}
	wg.Wait()
	return out, errors.Join(errs...)
}

// Mean is the average of one protocol's reports over seeds: delivered,
// transmissions per delivery, airtime and collisions (the figures the
// targets are about).
type Mean struct {
	Protocol       string
	Delivered      float64
	Files          float64 // of Delivered, bulk messages (files)
	Generated      float64
	TxPerDelivered float64
	Airtime        time.Duration
	Collisions     float64
	PerSeed        []int // delivered, by seed
}

// Means averages Seeds' reports per protocol.
func Means(bySeed [][]Report) []Mean {
	if len(bySeed) == 0 {
		return nil
	}
	out := make([]Mean, len(bySeed[0]))
	n := float64(len(bySeed))
	for k := range out {
		m := &out[k]
		m.Protocol = bySeed[0][k].Protocol
		for _, rs := range bySeed {
			r := rs[k]
			m.Delivered += float64(r.Delivered) / n
			m.Files += float64(r.FilesDelivered) / n
			m.Generated += float64(r.Generated) / n
			m.TxPerDelivered += r.TxPerDelivered / n
			m.Airtime += time.Duration(float64(r.AirtimeTotal) / n)
			m.Collisions += float64(r.Collisions) / n
			m.PerSeed = append(m.PerSeed, r.Delivered)
		}
	}
	return out
}

// WriteMeans writes Means as a markdown table.
func WriteMeans(w io.Writer, ms []Mean) {
	fmt.Fprintln(w, "| protocol | delivered (mean) | of them files | data tx per delivered | LoRa airtime (s) | collisions | delivered by seed |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|")
	for _, m := range ms {
		fmt.Fprintf(w, "| %s | %.1f/%.0f (%.1f %%) | %.1f | %.1f | %.0f | %.0f | %v |\n", m.Protocol, m.Delivered, m.Generated,
			100*m.Delivered/max(m.Generated, 1), m.Files, m.TxPerDelivered, m.Airtime.Seconds(), m.Collisions, m.PerSeed)
	}
}
