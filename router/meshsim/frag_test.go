package meshsim

import (
	"container/heap"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
)

// radioPair is two LoRa nodes in range of each other and nothing else,
// under epidemic (which delivers what reaches its destination and sends
// nothing on its own), with frames lost at the given rate.
func radioPair(t *testing.T, loss float64) *Sim {
	t.Helper()
	sc := loadCity(t)
	sc.LoRaLoss = loss
	lp, err := airtime.Preset(sc.LoRaPreset)
	if err != nil {
		t.Fatal(err)
	}
	s := &Sim{sc: sc, proto: Epidemic, rng: rand.New(rand.NewPCG(3, 4)), lora: lp}
	for i := range 2 {
		s.nodes = append(s.nodes, newNode(s, i, placed{role: roleHandheld, island: -1, lora: 1}))
	}
	s.nodes[0].radio.nbrs, s.nodes[1].radio.nbrs = []int{1}, []int{0}
	return s
}

func drain(s *Sim) {
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*event)
		s.now = e.at
		e.fn()
	}
}

// sendFile puts an 8 KB bundle for node 1 on node 0's radio as a unicast.
func sendFile(t *testing.T, s *Sim) *simBundle {
	t.Helper()
	b := &simBundle{src: 0, dst: 1, size: 8000, expires: 6 * time.Hour}
	b.id[0] = 0xf1
	s.msgs = append(s.msgs, b)
	if !s.sendLoRa(0, &frame{kind: fData, to: 1, b: b, size: b.size + headerBytes}) {
		t.Fatal("the radio refused the first fragment")
	}
	return b
}

// TestFragmentedUnicastCostsItsFragments: an 8 KB bundle over LoRa goes as
// 33 fragments and one selective acknowledgement; nothing is sent again
// when nothing is lost, and the bundle counts as one transmission.
func TestFragmentedUnicastCostsItsFragments(t *testing.T) {
	s := radioPair(t, 0)
	b := sendFile(t, s)
	drain(s)
	if !s.nodes[1].done[b.id] || s.rep.Delivered != 1 {
		t.Fatalf("delivered %d (done %v), want the file once", s.rep.Delivered, s.nodes[1].done[b.id])
	}
	if got := fragCount(b.size + headerBytes); got != 33 {
		t.Errorf("8024 bytes take %d fragments, want 33 of %d bytes", got, fragPayload)
	}
	ack := s.loraAir(fragAckSize(33))
	if want := s.fragAir(b.size+headerBytes) + ack; s.rep.AirtimeTotal != want {
		t.Errorf("airtime %v, want %v: every fragment once and one acknowledgement", s.rep.AirtimeTotal, want)
	}
	if s.rep.DataTx != 1 || s.rep.ControlTx != 1 {
		t.Errorf("counted %d data and %d control transmissions, want 1 and 1", s.rep.DataTx, s.rep.ControlTx)
	}
}

// TestFragmentRepairResendsOnlyTheLost: with a third of all LoRa frames
// lost, the file still arrives, once, and the repairs cost less than
// sending it all again would (a whole resend would almost never get all
// 33 fragments through: 0.67^33).
func TestFragmentRepairResendsOnlyTheLost(t *testing.T) {
	s := radioPair(t, 0.33)
	b := sendFile(t, s)
	drain(s)
	if !s.nodes[1].done[b.id] || s.rep.Delivered != 1 {
		t.Fatalf("delivered %d times, want once despite the losses", s.rep.Delivered)
	}
	once := s.fragAir(b.size + headerBytes)
	t.Logf("airtime %v for %v of fragments, %d data, %d control transmissions", s.rep.AirtimeTotal, once, s.rep.DataTx, s.rep.ControlTx)
	if s.rep.AirtimeTotal < once+once/5 || s.rep.AirtimeTotal > 2*once {
		t.Errorf("airtime %v for a file of %v on air: repairs should add about half (a third lost, then a third of those...), not nothing and not a whole resend", s.rep.AirtimeTotal, once)
	}
}

// TestFragmentsToANodeThatIsGoneStop: when the receiver is down the
// sender probes fragRepairRounds times, with one fragment each, and stops.
func TestFragmentsToANodeThatIsGoneStop(t *testing.T) {
	s := radioPair(t, 0)
	s.nodes[1].up = false
	b := sendFile(t, s)
	drain(s)
	if s.rep.Delivered != 0 {
		t.Fatal("delivered to a node that is down")
	}
	last := fragCount(b.size+headerBytes) - 1
	want := s.fragAir(b.size+headerBytes) + fragRepairRounds*s.loraAir(fragSize(b.size+headerBytes, last))
	if s.rep.AirtimeTotal != want {
		t.Errorf("airtime %v, want %v: the file once, then %d one-fragment probes", s.rep.AirtimeTotal, want, fragRepairRounds)
	}
}

// TestAMessageGoesBetweenFragments: a chat message put on the radio while
// a file's fragments go out waits for the fragment on air, not for the
// whole file (the daemon's radio engine sends interactive frames before
// the next bulk fragment).
func TestAMessageGoesBetweenFragments(t *testing.T) {
	s := radioPair(t, 0)
	file := sendFile(t, s)
	msg := &simBundle{src: 0, dst: 1, size: 90, expires: 6 * time.Hour}
	msg.id[0] = 0x3e
	s.msgs = append(s.msgs, msg)
	if !s.sendLoRa(0, &frame{kind: fData, to: 1, b: msg, size: msg.size + headerBytes}) {
		t.Fatal("the radio refused the message")
	}
	var msgAt, fileAt time.Duration
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*event)
		s.now = e.at
		e.fn()
		if msgAt == 0 && s.nodes[1].done[msg.id] {
			msgAt = s.now
		}
		if fileAt == 0 && s.nodes[1].done[file.id] {
			fileAt = s.now
		}
	}
	if msgAt == 0 || fileAt == 0 {
		t.Fatalf("message delivered at %v, file at %v: want both", msgAt, fileAt)
	}
	first := s.loraAir(fragSize(file.size+headerBytes, 0))
	if want := first + s.loraAir(msg.size+headerBytes); msgAt != want {
		t.Errorf("the message arrived at %v, want %v: right after the fragment that was on air (the file took until %v)", msgAt, want, fileAt)
	}
}
