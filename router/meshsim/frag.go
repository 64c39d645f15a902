package meshsim

import (
	"time"

	"github.com/ternmesh/tern/lora/airtime"
)

// A unicast bundle larger than one LoRa frame crosses the radio as the
// daemon's radio link sends it (transports/radiolink, engine.go): cut into
// fragments sent back to back, each a LoRa frame of its own that collides
// or is lost on its own; the receiver answers the round with a selective
// acknowledgement (which fragments it holds) and the sender sends only the
// missing ones again. When no acknowledgement comes in time the sender
// probes with one fragment, which the receiver answers; after
// fragRepairRounds rounds without success it gives up (the router's own
// custody timeout then sends the bundle again). The receiver hands the
// bundle to its router once every fragment is in.
//
// Broadcasts are never fragmented this way: nobody acknowledges them
// (flooding's files go on air as one long transmission, and Tern airs
// nothing larger than one frame).
const (
	// fragHeader is a fragment's link header: type and flags, 2-byte
	// short source and next hop, sequence, index and count
	// (radiolink frame.go, encodeFrag).
	fragHeader = 8
	// fragAckBytes is a selective acknowledgement without its bitmap.
	fragAckBytes = 8
	// fragRepairRounds caps the repair rounds (radiolink
	// Config.MaxRetries).
	fragRepairRounds = 8
	// fragAckWait is how long after its round the sender waits for the
	// acknowledgement beyond the acknowledgement's own airtime.
	fragAckWait = 3 * time.Second
)

// fragPayload is the bundle bytes one fragment carries.
const fragPayload = airtime.MaxPayloadBytes - fragHeader

// train is one fragmented unicast in flight: the fragments the receiver
// holds (got) and those the sender knows it holds (acked, from the last
// acknowledgement).
type train struct {
	f          *frame
	from       int
	got, acked []bool
	delivered  bool
	round      int // repair rounds so far
	waiting    int // the round whose acknowledgement the sender awaits (-1: none)
}

// fragCount is how many fragments a unicast of size bytes takes.
func fragCount(size int) int { return (size + fragPayload - 1) / fragPayload }

// fragAckSize is the size on air of a selective acknowledgement of k
// fragments: its header and a bitmap.
func fragAckSize(k int) int { return fragAckBytes + (k+7)/8 }

// fragSize is the size on air of fragment i of a unicast of size bytes.
func fragSize(size, i int) int { return fragHeader + min(fragPayload, size-i*fragPayload) }

// fragAir is the time on air of a fragmented unicast of size bytes sent
// once, every fragment once.
func (s *Sim) fragAir(size int) time.Duration {
	var t time.Duration
	for i := range fragCount(size) {
		t += s.lora.TimeOnAir(fragSize(size, i))
	}
	return t
}

// radioAir is the time on air of unicast f sent once over LoRa, as one
// frame or as fragments.
func (s *Sim) radioAir(f *frame) time.Duration {
	if f.size > airtime.MaxPayloadBytes {
		return s.fragAir(f.size)
	}
	return s.loraAir(f.size)
}

// sendFragments starts a fragmented unicast of f from node from; false
// when the radio's queue cannot take its first fragment.
func (s *Sim) sendFragments(from int, f *frame) bool {
	k := fragCount(f.size)
	t := &train{f: f, from: from, got: make([]bool, k), acked: make([]bool, k), waiting: -1}
	all := make([]int, k)
	for i := range all {
		all[i] = i
	}
	return s.fragRound(t, all)
}

// fragRound sends fragments idx of t one at a time, each once the one
// before it has ended, so that frames queued meanwhile go first (the
// daemon's radio engine sends control and interactive frames before the
// next bulk fragment); then the receiver acknowledges and the sender
// waits for that acknowledgement. false when the radio's queue cannot
// take the first fragment.
func (s *Sim) fragRound(t *train, idx []int) bool {
	round := t.round
	var send func(k int) bool
	send = func(k int) bool {
		end, ok := s.transmit(t.from, t.f, fragSize(t.f.size, idx[k]), round == 0 && k == 0, func(j int, m *node) {
			s.fragHeard(t, idx[k], j, m)
		})
		switch {
		case !ok && k == 0:
			return false
		case !ok: // the queue is full: the rest waits for the repair
			s.fragAwait(t, round, s.now)
		case k+1 < len(idx):
			s.at(end-s.now, func() {
				if s.nodes[t.from].up {
					send(k + 1)
				}
			})
		default:
			s.fragAwait(t, round, end)
		}
		return true
	}
	return send(0)
}

// fragHeard is node j (m) hearing fragment i of t.
func (s *Sim) fragHeard(t *train, i, j int, m *node) {
	if j != t.f.to {
		m.overhear(t.from, t.f)
		return
	}
	t.got[i] = true
	if !t.delivered && allTrue(t.got) {
		t.delivered = true
		m.receive(t.from, nil, t.f)
	}
}

// fragAwait has the receiver acknowledge round of t, which ended at end,
// and the sender probe if no acknowledgement comes.
func (s *Sim) fragAwait(t *train, round int, end time.Duration) {
	t.waiting = round
	// The receiver answers once the round's last fragment is in (a
	// moment later: the events at end itself include that reception).
	s.at(end-s.now+time.Millisecond, func() { s.fragAck(t, round) })
	ackAir := s.loraAir(fragAckSize(len(t.got)))
	s.at(end-s.now+2*ackAir+fragAckWait, func() {
		if t.waiting != round {
			return
		}
		// No acknowledgement: probe with the last fragment not known
		// to be held.
		t.waiting = -1
		s.fragRepair(t, []int{lastFalse(t.acked)})
	})
}

// fragAck is the receiver's selective acknowledgement of round: it goes
// on air to the sender, which then repairs what is missing.
func (s *Sim) fragAck(t *train, round int) {
	m := s.nodes[t.f.to]
	if !m.up || m.radio == nil {
		return
	}
	held := append([]bool(nil), t.got...)
	ack := &frame{kind: fAck, to: t.from, size: fragAckSize(len(held))}
	s.transmit(t.f.to, ack, ack.size, true, func(j int, _ *node) {
		if j != t.from || t.waiting != round {
			return
		}
		t.waiting = -1
		t.acked = held
		var missing []int
		for i, ok := range held {
			if !ok {
				missing = append(missing, i)
			}
		}
		if len(missing) > 0 {
			s.fragRepair(t, missing)
		}
	})
}

// fragRepair sends fragments idx again, unless t has had its repair
// rounds or the sender is down.
func (s *Sim) fragRepair(t *train, idx []int) {
	t.round++
	if t.round > fragRepairRounds || !s.nodes[t.from].up {
		return
	}
	s.fragRound(t, idx)
}

func allTrue(bs []bool) bool {
	for _, b := range bs {
		if !b {
			return false
		}
	}
	return true
}

// lastFalse is the index of the last false in bs (the last if none).
func lastFalse(bs []bool) int {
	for i := len(bs) - 1; i >= 0; i-- {
		if !bs[i] {
			return i
		}
	}
	return len(bs) - 1
}
