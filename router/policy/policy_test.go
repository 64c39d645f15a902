package policy

import (
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
)

var (
	t0    = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	quic  = LinkMetrics{BitsPerSecond: 10e6, Latency: 30 * time.Millisecond}
	loraM = LinkMetrics{BitsPerSecond: 1000, Latency: 300 * time.Millisecond, Radio: true, AirtimeLeft: 1}
)

func TestInteractiveTakesFastestVoiceNeverRadioBulkSparesRadio(t *testing.T) {
	links := []LinkMetrics{loraM, quic}
	if i := Choose(links, nil, Interactive, 100, true); i != 1 {
		t.Errorf("chat took link %d, want the QUIC link", i)
	}
	if i := Choose(links, []bool{false, true}, Interactive, 100, true); i != 0 {
		t.Errorf("with QUIC down chat took %d, want the radio", i)
	}
	if i := Choose([]LinkMetrics{loraM}, nil, Voice, 40, true); i != -1 {
		t.Error("live voice was allowed on a radio link")
	}
	low := loraM
	low.AirtimeLeft = 0.2
	if i := Choose([]LinkMetrics{low}, nil, Bulk, 5000, true); i != -1 {
		t.Error("bulk was allowed on a radio with 20 % of its budget left")
	}
	if i := Choose([]LinkMetrics{low}, nil, Interactive, 100, true); i != 0 {
		t.Error("chat was refused on a radio with budget left")
	}
	if i := Choose([]LinkMetrics{{ClearOnly: true}}, nil, Interactive, 100, true); i != -1 {
		t.Error("an encrypted bundle was allowed on a clear-only link")
	}
}

func TestFeasibilityConditionRefusesLoop(t *testing.T) {
	a, b, d := bundle.Addr{'A'}, bundle.Addr{'B'}, bundle.Addr{'D'}
	tab := NewTable(a, TableConfig{})
	up := func(bundle.Addr) bool { return true }
	tab.NeighbourUp(d, 1, t0)
	tab.Learn(b, 1, []bundle.Route{{Dest: d, Hops: 1}}, t0) // B: via us, 1 away... reports 1, our fd is 1
	if via, live, _ := tab.NextHop(d, bundle.Addr{}, up); via != d || !live {
		t.Fatalf("next hop %v live %v, want D directly", via, live)
	}
	tab.NeighbourDown(d, t0.Add(time.Second))
	// D is gone; B still claims 1 hop (its route was through us): not feasible.
	tab.Learn(b, 1, []bundle.Route{{Dest: d, Hops: 2}}, t0.Add(2*time.Second))
	if _, live, _ := tab.NextHop(d, bundle.Addr{}, up); live {
		t.Fatal("took a route through B that reports no better than our own feasible distance: a loop")
	}
	// After the hold-down the destination may be reached the long way.
	tab.Learn(b, 1, []bundle.Route{{Dest: d, Hops: 2}}, t0.Add(time.Hour))
	if via, live, _ := tab.NextHop(d, bundle.Addr{}, up); via != b || !live {
		t.Fatalf("after hold-down next hop %v live %v, want B", via, live)
	}
}

// TestPenalisedLiarCannotPinFeasibleDistance: a neighbour claims every
// destination at 0 hops, which pins the feasible distance so low that the
// honest, longer route is infeasible. Once reputation penalises the liar,
// the destination goes into hold-down and, after it, the honest route is
// used, though the liar keeps repeating its claim.
func TestPenalisedLiarCannotPinFeasibleDistance(t *testing.T) {
	self, liar, honest, d := bundle.Addr{'A'}, bundle.Addr{'L'}, bundle.Addr{'H'}, bundle.Addr{'D'}
	hold := 5 * time.Minute
	tab := NewTable(self, TableConfig{LiveFor: time.Hour, HoldDown: hold})
	penalised := penaliseOnDemand(tab, liar)
	up := func(bundle.Addr) bool { return true }
	now := t0
	tell := func() {
		tab.Learn(liar, 1, []bundle.Route{{Dest: d, Hops: 1}}, now)
		tab.Learn(honest, 1, []bundle.Route{{Dest: d, Hops: 3}}, now)
		tab.Expire(now)
	}
	tell()
	if via, live, _ := tab.NextHop(d, bundle.Addr{}, up); via != liar || !live {
		t.Fatalf("before any judgement: next hop %v live %v, want the liar's cheaper claim", via, live)
	}
	*penalised = true
	for now.Before(t0.Add(hold + time.Minute)) {
		now = now.Add(30 * time.Second)
		tell()
	}
	via, live, _ := tab.NextHop(d, bundle.Addr{}, up)
	if via != honest || !live {
		t.Fatalf("a hold-down after the liar was penalised: next hop %v live %v, want the honest route, live", via, live)
	}
	if got := tab.Advertise(bundle.Addr{'X'}, 0); len(got) < 2 || got[len(got)-1].Dest != d || got[len(got)-1].Hops != 4 {
		t.Errorf("announce %v, want D at 4 (through the honest neighbour)", got)
	}
	// The liar's penalty lifted (it delivers again): its route is usable
	// again at once.
	*penalised = false
	now = now.Add(30 * time.Second)
	tell()
	if via, live, _ := tab.NextHop(d, bundle.Addr{}, up); via != liar || !live {
		t.Errorf("penalty lifted: next hop %v live %v, want the cheaper route again", via, live)
	}
}

func TestTrickleBacksOffAndResetsOnChange(t *testing.T) {
	tr := &Trickle{Min: time.Minute, Max: 8 * time.Minute}
	sent := 0
	for s := 0; s < 3600; s += 10 {
		if tr.Due(t0.Add(time.Duration(s)*time.Second), 1) {
			sent++
		}
	}
	if sent > 10 {
		t.Errorf("%d announces in an hour without change, want doubling intervals (at most 10, not 60)", sent)
	}
	if !tr.Due(t0.Add(2*time.Hour), 2) {
		t.Error("a change did not trigger an announce")
	}
}

func TestBudgetAndLimiter(t *testing.T) {
	b := NewBudget(ControlShare, 3*time.Second)
	used := time.Duration(0)
	for s := 0; s < 3600; s++ {
		if b.Allow(t0.Add(time.Duration(s)*time.Second), time.Second) {
			used += time.Second
		}
	}
	if limit := time.Duration(float64(time.Hour)*ControlShare) + 3*time.Second; used > limit {
		t.Errorf("control used %v of air in an hour, budget %v", used, limit)
	}
	l := NewLimiter(1, 5)
	n := bundle.Addr{'X'}
	ok := 0
	for range 100 {
		if l.Allow(n, t0) {
			ok++
		}
	}
	if ok != 5 || !l.Allow(bundle.Addr{'Y'}, t0) {
		t.Errorf("limiter let %d of a burst of 100 through (want 5), or punished another neighbour", ok)
	}
}

func TestSpray(t *testing.T) {
	if g, k := Spray(16); g != 8 || k != 8 {
		t.Errorf("Spray(16) = %d,%d", g, k)
	}
	if g, _ := Spray(1); g != 0 {
		t.Error("the last copy was given away")
	}
	if Decide(1, false, false, false) != Hold || Decide(1, true, false, false) != Forward || Decide(4, false, false, false) != Copy {
		t.Error("spray-and-wait decisions wrong")
	}
}

// TestAdvertiseSplitHorizonAndExpiry: a neighbour is never told the route
// that goes through it (it hears the next best instead), a route not
// announced again turns stale after LiveFor and leaves the announces, and
// a withdrawn route is no longer advertised.
func TestAdvertiseSplitHorizonAndExpiry(t *testing.T) {
	a, b, c, d := bundle.Addr{'A'}, bundle.Addr{'B'}, bundle.Addr{'C'}, bundle.Addr{'D'}
	tab := NewTable(a, TableConfig{LiveFor: time.Minute})
	tab.Learn(b, 1, []bundle.Route{{Dest: d, Hops: 1}}, t0)
	tab.Learn(c, 2, []bundle.Route{{Dest: d, Hops: 1}}, t0) // feasible: reports 1 < 2
	hops := func(rs []bundle.Route, dest bundle.Addr) int {
		for _, r := range rs {
			if r.Dest == dest {
				return int(r.Hops)
			}
		}
		return -1
	}
	if h := hops(tab.Advertise(c, 0), d); h != 2 {
		t.Errorf("told C that D is %d away, want 2 (through B)", h)
	}
	if h := hops(tab.Advertise(b, 0), d); h != 3 {
		t.Errorf("told B that D is %d away, want 3 (through C, never B's own route)", h)
	}
	// B keeps announcing, C goes silent: only B's route stays.
	tab.Learn(b, 1, []bundle.Route{{Dest: d, Hops: 1}}, t0.Add(50*time.Second))
	if !tab.Expire(t0.Add(90 * time.Second)) {
		t.Error("C's route did not expire after LiveFor without an announce")
	}
	if h := hops(tab.Advertise(b, 0), d); h != -1 {
		t.Errorf("B still hears D at %d through C's expired route", h)
	}
	// B withdraws D: nobody hears of it any more.
	tab.Learn(b, 1, nil, t0.Add(100*time.Second))
	if h := hops(tab.Advertise(c, 0), d); h != -1 {
		t.Errorf("D still advertised at %d after B withdrew it", h)
	}
}

// TestReputationJudgesAgainstTheAverage: where receipts are scarce for
// honest reasons every neighbour stays usable; a neighbour that swallows
// everything while the others deliver is cut off, and so is one that
// swallows everything when it is the only one judged.
func TestReputationJudgesAgainstTheAverage(t *testing.T) {
	a, b, liar := bundle.Addr{1}, bundle.Addr{2}, bundle.Addr{3}
	scarce := NewReputation()
	for i := range 40 {
		scarce.Handed(a)
		scarce.Handed(b)
		if i%10 == 0 { // one in ten comes back: destinations often away
			scarce.Receipted(a)
			scarce.Receipted(b)
		}
	}
	if scarce.PenaltyOf(a) != 0 || scarce.PenaltyOf(b) != 0 {
		t.Fatalf("honest neighbours with 10 %% receipts penalised: %d %d", scarce.PenaltyOf(a), scarce.PenaltyOf(b))
	}
	for range 40 {
		scarce.Handed(liar)
	}
	if scarce.PenaltyOf(liar) != MaxMetric {
		t.Fatalf("a neighbour with no receipts among honest ones got penalty %d, want %d", scarce.PenaltyOf(liar), MaxMetric)
	}
	if scarce.PenaltyOf(a) != 0 {
		t.Fatalf("the liar's misses made an honest neighbour unusable")
	}
	alone := NewReputation()
	for range 8 {
		alone.Handed(liar)
	}
	if alone.PenaltyOf(liar) != MaxMetric {
		t.Fatalf("a lone neighbour with 8 misses got penalty %d, want %d", alone.PenaltyOf(liar), MaxMetric)
	}
}

// TestAdvertGenChangesWithTheAnnounce: equal generations mean equal
// announces; a route change or a new penalty moves it on.
func TestAdvertGenChangesWithTheAnnounce(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tb := NewTable(bundle.Addr{1}, TableConfig{})
	g0 := tb.AdvertGen()
	if tb.AdvertGen() != g0 {
		t.Fatal("AdvertGen moved with nothing changed")
	}
	tb.NeighbourUp(bundle.Addr{2}, 1, now)
	g1 := tb.AdvertGen()
	if g1 == g0 {
		t.Fatal("AdvertGen did not move when a neighbour came up")
	}
	penalised := false
	tb.SetPenalty(func(bundle.Addr) uint8 {
		if penalised {
			return MaxMetric
		}
		return 0
	})
	if tb.AdvertGen() != g1 {
		t.Fatal("AdvertGen moved when a penalty of zero was installed")
	}
	penalised = true
	if tb.AdvertGen() == g1 {
		t.Fatal("AdvertGen did not move when the neighbour was penalised")
	}
}

// TestLiveHopTakesAnInfeasibleRouteAround: a liar's metric-1 claim makes
// the honest route infeasible; NextHop excluding the liar finds nothing
// live, LiveHop finds the honest route, and never the excluded neighbour
// or one whose penalty makes it unusable.
func TestLiveHopTakesAnInfeasibleRouteAround(t *testing.T) {
	self, liar, honest, d := bundle.Addr{'A'}, bundle.Addr{'L'}, bundle.Addr{'H'}, bundle.Addr{'D'}
	tab := NewTable(self, TableConfig{})
	penalised := penaliseOnDemand(tab, honest)
	up := func(bundle.Addr) bool { return true }
	tab.Learn(liar, 1, []bundle.Route{{Dest: d, Hops: 1}}, t0)
	tab.Learn(honest, 1, []bundle.Route{{Dest: d, Hops: 3}}, t0)
	if _, live, _ := tab.NextHop(d, liar, up); live {
		t.Fatal("the honest route is feasible: the test shows nothing")
	}
	if via, ok := tab.LiveHop(d, liar, up); !ok || via != honest {
		t.Fatalf("LiveHop around the liar: %v %v, want the honest route", via, ok)
	}
	if via, ok := tab.LiveHop(d, honest, up); !ok || via != liar {
		t.Errorf("LiveHop excluding the honest neighbour: %v %v, want the liar's route", via, ok)
	}
	*penalised = true
	if via, ok := tab.LiveHop(d, liar, up); ok {
		t.Errorf("LiveHop took %v, whose penalty makes it unusable", via)
	}
}

// penaliseOnDemand gives routes through v the full penalty (MaxMetric)
// while the returned flag is set.
func penaliseOnDemand(tab *Table, v bundle.Addr) *bool {
	on := new(bool)
	tab.SetPenalty(func(n bundle.Addr) uint8 {
		if *on && n == v {
			return MaxMetric
		}
		return 0
	})
	return on
}

func TestAirShareKeepsHalfAndServesEveryHearer(t *testing.T) {
	for _, c := range []struct{ copies, hearers, share, keep int }{
		{255, 8, 15, 135},
		{128, 4, 16, 64},
		{64, 40, 1, 32},       // more hearers than half the copies: one each, half kept
		{63, 3, 0, 63},        // below AirSprayMin: no air spray
		{200, 0, 0, 200},      // nobody hears
		{4096, 1, 2048, 2048}, // one hearer: an even split, as a contact spray
		{4096, 2, 1024, 2048}, // no cap below the budget (two bytes on air)
		{4096, 8, 256, 2048},
		{4096, 9, 227, 2053},
		{4096, 40, 51, 2056},
	} {
		share, keep := AirShare(c.copies, c.hearers)
		if share != c.share || keep != c.keep {
			t.Errorf("AirShare(%d, %d) = %d, %d; want %d, %d", c.copies, c.hearers, share, keep, c.share, c.keep)
		}
		if share > 0 && keep < c.copies/2 {
			t.Errorf("AirShare(%d, %d) keeps %d, less than half", c.copies, c.hearers, keep)
		}
		if share*c.hearers > c.copies {
			t.Errorf("AirShare(%d, %d) gives %d each, more than the budget in all", c.copies, c.hearers, share)
		}
	}
	// The largest budget, over every hearer count a radio could have:
	// every hearer gets a share, the sender keeps at least half, and no
	// share exceeds the largest grant the frame may carry.
	for h := 1; h <= 1000; h++ {
		share, keep := AirShare(DefaultCopies, h)
		if share < 1 || share > DefaultCopies/2 || keep < DefaultCopies/2 || keep >= DefaultCopies {
			t.Fatalf("AirShare(%d, %d) = %d, %d", DefaultCopies, h, share, keep)
		}
	}
}

// TestDefaultCopiesIsTheGrantMax: a new bundle's budget is the largest a
// grant carries (bundle keeps its own literal, as it cannot import policy).
func TestDefaultCopiesIsTheGrantMax(t *testing.T) {
	if DefaultCopies != bundle.MaxCopies {
		t.Fatalf("DefaultCopies %d, bundle.MaxCopies %d: keep them equal", DefaultCopies, bundle.MaxCopies)
	}
}
