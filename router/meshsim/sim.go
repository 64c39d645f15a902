package meshsim

import (
	"container/heap"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/lora/airtime"
	"github.com/ternmesh/tern/router/policy"
)

// Protocol is the forwarding scheme a run uses.
type Protocol uint8

const (
	// Tern is policy-driven routing: distance vector over cost units with
	// custody, and spray-and-wait with summaries when no route is live.
	Tern Protocol = iota
	// Flood: every node rebroadcasts every bundle once, on every link.
	Flood
	// Epidemic: every contact exchanges summaries and copies everything
	// the other lacks, until the lifetime ends.
	Epidemic
)

func (p Protocol) String() string {
	return [...]string{"tern", "flooding", "epidemic"}[p]
}

// LinkKind is the medium of a link.
type LinkKind uint8

const (
	LAN LinkKind = iota
	QUIC
	Contact
	LoRa
)

// epoch is the virtual start time of every run.
var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

type event struct {
	at  time.Duration
	seq uint64
	fn  func()
}

type queue []*event

func (q queue) Len() int { return len(q) }
func (q queue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q queue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *queue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// p2p is a point-to-point link (LAN, QUIC, contact) between a and b.
type p2p struct {
	a, b int
	kind LinkKind
	m    policy.LinkMetrics
	up   bool // the medium itself (contacts: in range)
	gen  int  // bumps when the link goes down: frames in flight die
	busy [2]time.Duration
}

func (l *p2p) other(n int) int {
	if n == l.a {
		return l.b
	}
	return l.a
}

// radio is a node's LoRa transceiver.
type radio struct {
	rangeKm float64
	nbrs    []int
	txStart time.Duration
	txUntil time.Duration
	budget  *policy.Budget // regional duty cycle
	control *policy.Budget // 3 % for control
	rxEnd   time.Duration
	rxFrame *reception
	queued  int
}

type reception struct {
	f        *frame
	from     int
	collided bool
}

// frame is what crosses a link in the simulation.
type frame struct {
	kind   frameKind
	to     int // -1: broadcast (LoRa)
	b      *simBundle
	copies int
	ids    []bundle.ID
	idSet  map[bundle.ID]bool // summaries: ids as a set (the sender's, read-only)
	routes []bundle.Route
	rcpts  []bundle.ID
	rseq   uint64 // summaries: the sender's rcptSeq
	size   int
	class  policy.Class
}

type frameKind uint8

const (
	fData frameKind = iota
	fAck
	fAnnounce
	fSummary
	// fNote carries delivery receipts learned since the last note, on
	// point-to-point links only (the daemon's receipt note, router/summary.go).
	fNote
)

type simBundle struct {
	id      bundle.ID
	src     int
	dst     int
	size    int
	class   policy.Class
	created time.Duration
	expires time.Duration
	junk    bool
}

// Sim is one run: a scenario, a protocol, a seed.
type Sim struct {
	sc    Scenario
	proto Protocol
	rng   *rand.Rand
	// world draws what happens to nodes whatever the protocol does (churn,
	// liars' junk): rng also draws each frame's loss and the air spray
	// waits, so churn drawn from it would come out differently under each
	// protocol, and "the same scenario and seed" would be different worlds
	// after the first minutes.
	world *rand.Rand
	q     queue
	seq   uint64
	now   time.Duration
	lora  airtime.Params

	nodes []*node
	links []*p2p
	rep   Report
	lat   []time.Duration
	msgs  []*simBundle // the messages generated (not junk), in order
}

// New prepares a run of scenario sc with protocol p.
func New(sc Scenario, p Protocol) (*Sim, error) {
	if err := sc.Validate(); err != nil {
		return nil, err
	}
	lp, err := airtime.Preset(sc.LoRaPreset)
	if err != nil {
		return nil, fmt.Errorf("scenario %q: lora_preset: %w", sc.Name, err)
	}
	s := &Sim{sc: sc, proto: p, rng: rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x5eed)),
		world: rand.New(rand.NewPCG(sc.Seed, sc.Seed^0x3041d)), lora: lp}
	s.build()
	return s, nil
}

func (s *Sim) at(d time.Duration, fn func()) {
	s.seq++
	heap.Push(&s.q, &event{at: s.now + max(d, 0), seq: s.seq, fn: fn})
}

func (s *Sim) exp(mean time.Duration) time.Duration { return expFrom(s.rng, mean) }

// expFrom draws an exponentially distributed duration of the given mean
// from stream r (Sim.rng or Sim.world).
func expFrom(r *rand.Rand, mean time.Duration) time.Duration {
	return time.Duration(r.ExpFloat64() * float64(mean))
}

func addrOf(i int) bundle.Addr { return bundle.Addr{'n', byte(i >> 16), byte(i >> 8), byte(i)} }

func idxOf(a bundle.Addr) int { return int(a[1])<<16 | int(a[2])<<8 | int(a[3]) }

func (s *Sim) build() {
	ps := s.sc.layout(s.rng)
	for i, p := range ps {
		s.nodes = append(s.nodes, newNode(s, i, p))
	}
	fast := policy.LinkMetrics{BitsPerSecond: 50e6, Latency: 2 * time.Millisecond}
	inet := policy.LinkMetrics{BitsPerSecond: 10e6, Latency: 40 * time.Millisecond, Loss: 0.001}
	addLink := func(a, b int, k LinkKind, m policy.LinkMetrics, up bool) *p2p {
		l := &p2p{a: a, b: b, kind: k, m: m, up: up}
		s.links = append(s.links, l)
		s.nodes[a].links = append(s.nodes[a].links, l)
		s.nodes[b].links = append(s.nodes[b].links, l)
		return l
	}
	// LAN islands: full mesh among members.
	for i := range ps {
		for j := i + 1; j < len(ps); j++ {
			if ps[i].island >= 0 && ps[i].island == ps[j].island {
				addLink(i, j, LAN, fast, true)
			}
		}
	}
	// Internet between gateways.
	for i := range ps {
		for j := i + 1; j < len(ps); j++ {
			if ps[i].role == roleGateway && ps[j].role == roleGateway {
				addLink(i, j, QUIC, inet, true)
			}
		}
	}
	// LoRa neighbourhoods: in range of the weaker end.
	for i := range ps {
		if ps[i].lora == 0 {
			continue
		}
		r := s.nodes[i].radio
		for j := range ps {
			if i == j || ps[j].lora == 0 {
				continue
			}
			if math.Hypot(ps[i].x-ps[j].x, ps[i].y-ps[j].y) <= min(ps[i].lora, ps[j].lora) {
				r.nbrs = append(r.nbrs, j)
			}
		}
	}
	// Handhelds meet in passing: Poisson contacts with a random other
	// handheld, a Wi-Fi-direct-like link for a few minutes.
	var hand []int
	for i, p := range ps {
		if p.role == roleHandheld || p.role == roleIsland {
			hand = append(hand, i)
		}
	}
	dur := time.Duration(s.sc.Duration)
	if s.sc.ContactsPerHour > 0 && len(hand) > 1 {
		rate := s.sc.ContactsPerHour * float64(len(hand)) / 2 // contacts per hour overall
		for t := s.exp(time.Duration(float64(time.Hour) / rate)); t < dur; t += s.exp(time.Duration(float64(time.Hour) / rate)) {
			a := hand[s.rng.IntN(len(hand))]
			b := hand[s.rng.IntN(len(hand))]
			if a == b {
				continue
			}
			l := addLink(a, b, Contact, policy.LinkMetrics{BitsPerSecond: 2e6, Latency: 5 * time.Millisecond, Loss: 0.01}, false)
			length := s.exp(time.Duration(s.sc.ContactLength))
			s.at(t, func() { s.setLink(l, true) })
			s.at(t+length, func() { s.setLink(l, false) })
		}
	}
	// Churn.
	for i, p := range ps {
		if p.churns {
			i := i
			var toggle func()
			toggle = func() {
				n := s.nodes[i]
				s.setNode(n, !n.up)
				mean := time.Duration(s.sc.MeanUp)
				if !n.up {
					mean = time.Duration(s.sc.MeanDown)
				}
				s.at(expFrom(s.world, mean), toggle)
			}
			s.at(expFrom(s.world, time.Duration(s.sc.MeanUp)), toggle)
		}
	}
	// Traffic between users (everyone but relays and liars).
	var users []int
	for i, p := range ps {
		if p.role != roleRelay && p.role != roleLiar {
			users = append(users, i)
		}
	}
	for range s.sc.Messages {
		t := time.Duration(s.rng.Float64() * float64(dur) * 2 / 3)
		src, dst := users[s.rng.IntN(len(users))], users[s.rng.IntN(len(users))]
		if src == dst {
			dst = users[(s.rng.IntN(len(users)-1)+1+indexOf(users, src))%len(users)]
		}
		size, class := s.sc.TextBytes, policy.Interactive
		if s.rng.Float64() < s.sc.BulkFraction {
			size, class = s.sc.BulkBytes, policy.Bulk
		}
		var id bundle.ID
		for k := range id {
			id[k] = byte(s.rng.Uint32())
		}
		b := &simBundle{id: id, src: src, dst: dst, size: size, class: class, created: t, expires: t + time.Duration(s.sc.Lifetime)}
		s.msgs = append(s.msgs, b)
		s.at(t, func() { s.nodes[src].originate(b) })
	}
	for i, p := range ps {
		if p.role == roleLiar && s.sc.LiarJunkPerMin > 0 {
			i := i
			var junk func()
			junk = func() {
				var id bundle.ID
				for k := range id {
					id[k] = byte(s.world.Uint32())
				}
				dst := users[s.world.IntN(len(users))]
				b := &simBundle{id: id, src: i, dst: dst, size: s.sc.TextBytes, class: policy.Interactive, created: s.now, expires: s.now + time.Duration(s.sc.Lifetime), junk: true}
				s.nodes[i].originate(b)
				s.at(expFrom(s.world, time.Duration(float64(time.Minute)/s.sc.LiarJunkPerMin)), junk)
			}
			s.at(expFrom(s.world, time.Duration(float64(time.Minute)/s.sc.LiarJunkPerMin)), junk)
		}
	}
	for _, n := range s.nodes {
		n.start()
	}
}

func indexOf(xs []int, v int) int {
	for i, x := range xs {
		if x == v {
			return i
		}
	}
	return 0
}

// linkUp: both ends up and the medium up.
func (s *Sim) linkUp(l *p2p) bool { return l.up && s.nodes[l.a].up && s.nodes[l.b].up }

func (s *Sim) setLink(l *p2p, up bool) {
	was := s.linkUp(l)
	l.up = up
	s.linkChanged(l, was)
}

func (s *Sim) linkChanged(l *p2p, was bool) {
	now := s.linkUp(l)
	if was == now {
		return
	}
	if !now {
		l.gen++
	}
	s.nodes[l.a].linkEvent(l, now)
	s.nodes[l.b].linkEvent(l, now)
}

func (s *Sim) setNode(n *node, up bool) {
	if n.up == up {
		return
	}
	was := make([]bool, len(n.links))
	for i, l := range n.links {
		was[i] = s.linkUp(l)
	}
	n.up = up
	for i, l := range n.links {
		s.linkChanged(l, was[i])
	}
	if n.radio != nil {
		for _, j := range n.radio.nbrs {
			if s.nodes[j].up {
				s.nodes[j].radioNeighbour(n.idx, up)
				n.radioNeighbour(j, up)
			}
		}
	}
}

// sendP2P puts f on link l from node from.
func (s *Sim) sendP2P(from int, l *p2p, f *frame) {
	if !s.linkUp(l) {
		return
	}
	s.count(f, false, 0)
	dir := 0
	if from == l.b {
		dir = 1
	}
	start := max(s.now, l.busy[dir])
	ser := time.Duration(float64(f.size*8) / l.m.BitsPerSecond * float64(time.Second))
	l.busy[dir] = start + ser
	gen := l.gen
	to := l.other(from)
	lost := s.rng.Float64() < l.m.Loss
	s.at(start+ser+l.m.Latency-s.now, func() {
		if lost || l.gen != gen || !s.linkUp(l) {
			return
		}
		s.nodes[to].receive(from, l, f)
	})
}

// loraAir is the time on air of n bytes, cut into 255-byte LoRa frames.
func (s *Sim) loraAir(n int) time.Duration {
	var t time.Duration
	for n > 0 {
		k := min(n, airtime.MaxPayloadBytes)
		t += s.lora.TimeOnAir(k)
		n -= k
	}
	return t
}

// maxRadioQueue: a frame that would wait longer for the duty cycle is
// dropped (the radio's queue is full).
const maxRadioQueue = 30 * time.Minute

// sendLoRa transmits f from node from; all radio neighbours hear it. A
// unicast larger than one LoRa frame goes as fragments with selective
// repair (sendFragments), as the daemon's radio link sends it.
func (s *Sim) sendLoRa(from int, f *frame) bool {
	if f.to >= 0 && f.size > airtime.MaxPayloadBytes {
		return s.sendFragments(from, f)
	}
	_, ok := s.transmit(from, f, f.size, true, func(j int, m *node) {
		if f.to >= 0 && f.to != j {
			m.overhear(from, f)
			return
		}
		m.receive(from, nil, f)
	})
	return ok
}

// transmit puts size bytes of f on node from's radio as one LoRa
// transmission, after the frames queued before it and once the duty
// cycle allows. Every radio neighbour that is up hears it unless it
// collides (another transmission it hears overlaps, or it is transmitting
// itself) or is lost; heard runs for each at the end of the transmission.
// first counts f as one more frame sent (else only its airtime counts: a
// fragment after the first, a repair). ok is false when the radio's queue
// is full (the frame would wait over maxRadioQueue); end is when the
// transmission ends.
func (s *Sim) transmit(from int, f *frame, size int, first bool, heard func(j int, m *node)) (end time.Duration, ok bool) {
	n := s.nodes[from]
	r := n.radio
	air := s.loraAir(size)
	start := max(s.now, r.txUntil)
	// Duty cycle: wait until the regional budget holds the frame.
	if left := r.budget.Left(epoch.Add(start)); left < air {
		start += time.Duration(float64(air-left) / r.budget.Share)
	}
	if start-s.now > maxRadioQueue {
		s.rep.RadioDrops++
		return 0, false
	}
	r.budget.Allow(epoch.Add(start), air)
	r.txStart, r.txUntil = start, start+air
	if first {
		s.count(f, true, air)
	} else {
		s.addAirtime(f, air)
	}
	s.at(start-s.now, func() {
		if !n.up {
			return
		}
		for _, j := range r.nbrs {
			m := s.nodes[j]
			if !m.up {
				continue
			}
			rr := m.radio
			rc := &reception{f: f, from: from}
			if rr.txStart <= s.now && s.now < rr.txUntil {
				rc.collided = true // half duplex: it is transmitting
			}
			if rr.rxEnd > s.now && rr.rxFrame != nil {
				rr.rxFrame.collided, rc.collided = true, true
			}
			rr.rxEnd, rr.rxFrame = s.now+air, rc
			lost := s.rng.Float64() < s.sc.LoRaLoss
			j := j
			s.at(air, func() {
				if rc.collided || lost || !m.up || !n.up {
					if rc.collided {
						s.rep.Collisions++
					}
					return
				}
				heard(j, m)
			})
		}
	})
	return start + air, true
}

func (s *Sim) count(f *frame, lora bool, air time.Duration) {
	if f.kind == fData {
		s.rep.DataTx++
	} else {
		s.rep.ControlTx++
	}
	if lora {
		s.addAirtime(f, air)
	}
}

// addAirtime counts air of LoRa airtime for f, by class and by kind.
func (s *Sim) addAirtime(f *frame, air time.Duration) {
	class := f.class
	if f.kind != fData {
		class = policy.Control
	}
	s.rep.Airtime[class] += air
	s.rep.ByKind[f.kind] += air
	s.rep.AirtimeTotal += air
}

// Run executes the scenario to its end and returns the report.
func (s *Sim) Run() Report {
	end := time.Duration(s.sc.Duration)
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*event)
		if e.at > end {
			break
		}
		s.now = e.at
		e.fn()
	}
	s.now = end
	return s.report()
}

// delivered records a bundle reaching its destination's application.
func (s *Sim) delivered(b *simBundle) {
	if b.junk {
		s.rep.JunkDelivered++
		return
	}
	s.rep.Delivered++
	if b.class == policy.Bulk {
		s.rep.FilesDelivered++
	}
	s.lat = append(s.lat, s.now-b.created)
}
