package router

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/router/policy"
	"github.com/ternmesh/tern/transports"
)

// TestTableJudgesFlooding: a neighbour's 20th refusal at its ingress
// limit within 10 minutes gets it judged flooding, reported once, with the
// full penalty on its routes; the judgement is per neighbour and lapses
// once the neighbour has been refused no more for 10 minutes.
func TestTableJudgesFlooding(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	tab := newTable(addrOf('A'), policy.TableConfig{}, policy.NewReputation(), func() time.Time { return now })
	f, h := addrOf('F'), addrOf('H')
	judged := 0
	for i := range 30 {
		if tab.refused(f, now) {
			judged++
			if i != 19 {
				t.Fatalf("judged flooding at refusal %d, want at the 20th", i+1)
			}
		}
	}
	if judged != 1 {
		t.Fatalf("judged flooding %d times, want once", judged)
	}
	if tab.penaltyOf(f) != policy.MaxMetric || !tab.penalised(f) || tab.penalised(h) {
		t.Fatal("want F's routes at the full penalty, H's not")
	}
	now = now.Add(10*time.Minute - time.Nanosecond)
	if !tab.penalised(f) {
		t.Fatal("F is trusted again before it has been quiet for 10 minutes")
	}
	now = now.Add(time.Nanosecond)
	if tab.penalised(f) {
		t.Fatal("F is still judged flooding after 10 quiet minutes")
	}
}

// TestFloodingNeighbourIsRoutedRound: A reaches D through F (A–F–D, 2
// units) and through H (A–H–G–D, 3 units); A's messages go through F. F
// then floods A with junk past A's ingress limit (burst 5, 1/s): A judges
// it flooding, its route list shows every route through F with the full
// penalty, it logs one warning, and its messages for D go through H and
// arrive. Once F has
// been quiet for 10 minutes (on the routers' virtual clock, with their
// announce rounds), A trusts it again: no penalty, and messages go
// through F again.
func TestFloodingNeighbourIsRoutedRound(t *testing.T) {
	forwarded := make(chan Event, 64)
	var warnings lockedBuffer // A's log at Warn and above
	x, vc, fEnd := floodNet(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&warnings, &slog.HandlerOptions{Level: slog.LevelWarn}))
		c.Events = func(e Event) {
			select {
			case forwarded <- e:
			default:
			}
		}
	}, func(a, f *testNode) transports.Link {
		_, fEnd := connect(a, f)
		return fEnd
	})
	a, f, h, d := x.nodes['A'], x.nodes['F'], x.nodes['H'], x.nodes['D']

	// send submits a message from A to D and returns the neighbour that
	// took it into custody, once D has it.
	send := func(text string) bundle.Addr {
		t.Helper()
		b := dataBundle(t, d.addr, text)
		if err := a.r.Submit(b); err != nil {
			t.Fatal(err)
		}
		var via bundle.Addr
		for via == (bundle.Addr{}) {
			select {
			case e := <-forwarded:
				if e.ID == b.ID {
					via = e.Neighbour
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("no neighbour took %q", text)
			}
		}
		waitArrival(t, d, text)
		return via
	}
	// penalty is the penalty A's route list shows on the route to D
	// through via.
	penalty := func(via bundle.Addr) int {
		for _, r := range a.r.Routes() {
			if r.Dest == d.addr && r.Via == via {
				return int(r.Penalty)
			}
		}
		t.Fatalf("A has no route to D through %x", via[:1])
		return 0
	}
	penalised := func() bool { return slices.Contains(a.r.Metrics().DTN.Penalised, addrString(f.addr)) }

	if via := send("before"); via != f.addr {
		t.Fatalf("before the flood A sent through %x, want F (the cheaper route)", via[:1])
	}

	// F floods: 40 junk bundles at one instant; A takes its burst of 5.
	for range 40 {
		if err := fEnd.Send(context.Background(), mustMarshal(t, dataBundle(t, bundle.Addr{'X'}, "junk"))); err != nil {
			t.Fatal(err)
		}
	}
	// The penalty shows the moment F is judged; the warning follows.
	eventually(t, "A judges F flooding and says so", func() bool {
		return penalty(f.addr) == policy.MaxMetric && strings.Contains(warnings.String(), "floods past its ingress limit")
	})
	for _, r := range a.r.Routes() {
		want := 0
		if r.Via == f.addr {
			want = policy.MaxMetric
		}
		if int(r.Penalty) != want {
			t.Errorf("A's route to %x through %x shows penalty %d, want %d", r.Dest[:1], r.Via[:1], r.Penalty, want)
		}
	}
	logged := warnings.String()
	if n := strings.Count(logged, "floods past its ingress limit"); n != 1 || !strings.Contains(logged, "neighbour="+addrString(f.addr)) {
		t.Errorf("A's warnings: %q; want the flood logged once, naming F", logged)
	}
	if !penalised() {
		t.Errorf("A's metrics do not list F as penalised: %v", a.r.Metrics().DTN.Penalised)
	}
	if rl := a.r.Metrics().ByNeighbour[addrString(f.addr)].RateLimited; rl < 20 {
		t.Errorf("A rate-limited %d of F's 40 junk bundles, want at least the 20 that make a flood", rl)
	}
	if via := send("during"); via != h.addr {
		t.Fatalf("while F floods A sent through %x, want H", via[:1])
	}

	// Quiet, but not yet for 10 minutes: still routed round.
	vc.advance(t, 10*time.Minute-time.Second)
	if p := penalty(f.addr); p != policy.MaxMetric {
		t.Fatalf("F's penalty %d after 9 min 59 s of quiet, want %d", p, policy.MaxMetric)
	}
	if via := send("still"); via != h.addr {
		t.Fatalf("before 10 quiet minutes A sent through %x, want H", via[:1])
	}
	// Quiet for 10 minutes: trusted again.
	vc.advance(t, time.Second)
	if p := penalty(f.addr); p != 0 || penalised() {
		t.Fatalf("F's penalty %d (penalised %v) after 10 quiet minutes, want none", p, penalised())
	}
	if !x.live('A', 'D', 'F') {
		t.Fatal("A's route to D through F is no longer live")
	}
	if via := send("after"); via != f.addr {
		t.Fatalf("after F was quiet for 10 minutes A sent through %x, want F again", via[:1])
	}
}

// lockedBuffer is a bytes.Buffer safe for concurrent writers (a log
// handler's output).
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// floodNet builds the five routers of the flood tests on virtual clocks:
// A reaches D through F (A-F-D, the cheaper route) or through H (A-H-G-D).
// A's ingress takes 1 bundle a second after a burst of 5; tuneA adds A's
// other settings. joinAF joins A and F and returns F's end of that link,
// through which the tests flood A. It returns once A has live routes to D
// through both F and H.
func floodNet(t *testing.T, tuneA func(*Config), joinAF func(a, f *testNode) transports.Link) (x *pacedNet, vc *vclock, fEnd transports.Link) {
	t.Helper()
	vc = newVClock()
	x = &pacedNet{t: t, vc: vc, nodes: map[byte]*testNode{}}
	for i, name := range []byte("AFHGD") {
		x.nodes[name] = newTunedNode(t, name, func(c *Config) {
			c.AnnounceInterval = 30 * time.Second
			c.Now, c.after = vc.Now, vc.after(i)
			if name == 'A' {
				c.IngressRate, c.IngressBurst = 1, 5
				tuneA(c)
			}
		})
	}
	a, f, h, g, d := x.nodes['A'], x.nodes['F'], x.nodes['H'], x.nodes['G'], x.nodes['D']
	fEnd = joinAF(a, f)
	connect(f, d)
	connect(a, h)
	connect(h, g)
	connect(g, d)
	x.until("A learns D through F and through H", func() bool { return x.live('A', 'D', 'F') && x.live('A', 'D', 'H') })
	return x, vc, fEnd
}
