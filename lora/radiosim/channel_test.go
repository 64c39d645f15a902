package radiosim

import (
	"errors"
	"math"
	"testing"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
)

var sf7 = airtime.Params{SF: 7, BandwidthHz: 125000, CR: 1, CRC: true}

const f868 = 868_100_000

type rxLog struct {
	frames []Frame
	at     []time.Time
}

// net builds a channel with named radios on 868.1 MHz SF7/125k.
func net(t *testing.T, cfg Config, names ...string) (*Clock, *Channel, []*Radio, map[string]*rxLog) {
	t.Helper()
	c := NewClock(t0)
	ch := NewChannel(c, cfg)
	logs := map[string]*rxLog{}
	var rs []*Radio
	for _, n := range names {
		l := &rxLog{}
		logs[n] = l
		r, err := ch.AddRadio(RadioConfig{Name: n, Params: sf7, FrequencyHz: f868, TxPowerDBm: 14,
			OnReceive: func(f Frame) { l.frames = append(l.frames, f); l.at = append(l.at, c.Now()) }})
		if err != nil {
			t.Fatal(err)
		}
		rs = append(rs, r)
	}
	return c, ch, rs, logs
}

func TestDeliveryTimeIsTimeOnAir(t *testing.T) {
	c, _, rs, logs := net(t, Config{}, "a", "b")
	c.Advance(time.Second)
	start := c.Now()
	done, err := rs[0].Transmit([]byte("0123456789"))
	if err != nil {
		t.Fatal(err)
	}
	if want := start.Add(41216 * time.Microsecond); !done.Equal(want) {
		t.Fatalf("done = %v, want start + 41.216ms", done.Sub(start))
	}
	c.Advance(41215 * time.Microsecond)
	if len(logs["b"].frames) != 0 {
		t.Fatal("frame delivered before its last symbol")
	}
	c.Advance(time.Microsecond)
	l := logs["b"]
	if len(l.frames) != 1 {
		t.Fatalf("b got %d frames", len(l.frames))
	}
	f := l.frames[0]
	if string(f.Data) != "0123456789" || f.From != "a" || !f.Start.Equal(start) || !f.End.Equal(done) || !l.at[0].Equal(done) {
		t.Errorf("frame %+v delivered at %v", f, l.at[0])
	}
	// Default link: -80 dBm; noise floor at 125 kHz with 6 dB NF = -117.03 dBm.
	if f.RSSI != -80 || math.Abs(f.SNR-37.03) > 0.01 {
		t.Errorf("RSSI %v SNR %v", f.RSSI, f.SNR)
	}
	if s := rs[0].Stats(); s.Sent != 1 || s.Airtime != 41216*time.Microsecond {
		t.Errorf("sender stats %+v", s)
	}
	if s := rs[1].Stats(); s.Received != 1 {
		t.Errorf("receiver stats %+v", s)
	}
	// Bad frames are refused.
	if _, err := rs[0].Transmit(nil); err == nil {
		t.Error("empty frame accepted")
	}
	if _, err := rs[0].Transmit(make([]byte, 256)); err == nil {
		t.Error("256-byte frame accepted")
	}
}

func TestOverlapCollidesBoth(t *testing.T) {
	c, _, rs, logs := net(t, Config{}, "a", "b", "c")
	if _, err := rs[0].Transmit(make([]byte, 20)); err != nil {
		t.Fatal(err)
	}
	c.Advance(10 * time.Millisecond)
	if _, err := rs[1].Transmit(make([]byte, 20)); err != nil {
		t.Fatal(err)
	}
	c.Run()
	s := rs[2].Stats()
	if s.LostCollision != 2 || s.Received != 0 || len(logs["c"].frames) != 0 {
		t.Errorf("c: %+v", s)
	}
	// a and b were each transmitting when the other's frame was on the air.
	if rs[0].Stats().LostHalfDuplex != 1 || rs[1].Stats().LostHalfDuplex != 1 {
		t.Errorf("a %+v b %+v", rs[0].Stats(), rs[1].Stats())
	}
	// Back to back (the second starts exactly when the first ends) is no collision.
	done, _ := rs[0].Transmit(make([]byte, 20))
	c.RunUntil(done)
	if _, err := rs[1].Transmit(make([]byte, 20)); err != nil {
		t.Fatal(err)
	}
	c.Run()
	if s := rs[2].Stats(); s.Received != 2 || s.LostCollision != 2 {
		t.Errorf("back-to-back frames: c %+v", s)
	}
}

func TestCapture(t *testing.T) {
	cases := []struct {
		name          string
		capture       bool
		strongFirst   bool
		delay         time.Duration
		strong, weak  float64
		wantStrongRx  bool
		wantCollision int
	}{
		{"no capture", false, true, 5 * time.Millisecond, -60, -90, false, 2},
		{"strong first", true, true, 5 * time.Millisecond, -60, -90, true, 1},
		{"strong first, late weak", true, true, 30 * time.Millisecond, -60, -90, true, 1},
		{"strong within preamble", true, false, 5 * time.Millisecond, -60, -90, true, 1},
		{"strong after preamble", true, false, 13 * time.Millisecond, -60, -90, false, 2},
		{"margin too small", true, true, 5 * time.Millisecond, -60, -65, false, 2},
		{"margin exactly 6 dB", true, true, 5 * time.Millisecond, -60, -66, true, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, ch, rs, logs := net(t, Config{Capture: tc.capture}, "strong", "weak", "rx")
			ch.SetRSSI(rs[0], rs[2], tc.strong)
			ch.SetRSSI(rs[1], rs[2], tc.weak)
			first, second := rs[0], rs[1]
			if !tc.strongFirst {
				first, second = second, first
			}
			first.Transmit([]byte("first frame"))
			c.Advance(tc.delay)
			second.Transmit([]byte("second frame"))
			c.Run()
			gotStrong := len(logs["rx"].frames) == 1 && logs["rx"].frames[0].From == "strong"
			if gotStrong != tc.wantStrongRx || len(logs["rx"].frames) > 1 {
				t.Errorf("received %d frames (strong: %v), want strong %v", len(logs["rx"].frames), gotStrong, tc.wantStrongRx)
			}
			if s := rs[2].Stats(); s.LostCollision != tc.wantCollision {
				t.Errorf("collisions %d, want %d", s.LostCollision, tc.wantCollision)
			}
		})
	}
	// The SF7/125k preamble (8+4.25 symbols) lasts 12.544 ms: the window used above.
	if got := preambleTime(sf7); got != 12544*time.Microsecond {
		t.Errorf("preamble time %v", got)
	}
}

func TestHalfDuplex(t *testing.T) {
	c, _, rs, logs := net(t, Config{}, "a", "b")
	done, err := rs[0].Transmit(make([]byte, 50))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rs[0].Transmit(make([]byte, 5)); !errors.Is(err, ErrTransmitting) {
		t.Fatalf("transmit while transmitting: %v", err)
	}
	if !rs[0].Transmitting() {
		t.Error("a should be transmitting")
	}
	// b starts receiving a's frame, then transmits itself: a's frame is lost
	// at b, and b's frame is lost at a (a is still transmitting).
	c.Advance(20 * time.Millisecond)
	if _, err := rs[1].Transmit(make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	c.RunUntil(done)
	if rs[0].Transmitting() {
		t.Error("a still transmitting at its done time")
	}
	c.Run()
	if len(logs["a"].frames)+len(logs["b"].frames) != 0 {
		t.Error("a half-duplex radio received a frame")
	}
	if rs[0].Stats().LostHalfDuplex != 1 || rs[1].Stats().LostHalfDuplex != 1 {
		t.Errorf("a %+v b %+v", rs[0].Stats(), rs[1].Stats())
	}
}

func TestChannelBusyAndOrthogonality(t *testing.T) {
	c := NewClock(t0)
	ch := NewChannel(c, Config{})
	mk := func(name string, p airtime.Params, f int64) *Radio {
		r, err := ch.AddRadio(RadioConfig{Name: name, Params: p, FrequencyHz: f})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	sf9 := sf7
	sf9.SF = 9
	a, b := mk("a", sf7, f868), mk("b", sf7, f868)
	other := mk("other-sf", sf9, f868)
	far := mk("other-freq", sf7, 868_300_000)
	if _, err := ch.AddRadio(RadioConfig{Name: "a", Params: sf7, FrequencyHz: f868}); err == nil {
		t.Error("duplicate name accepted")
	}
	if _, err := ch.AddRadio(RadioConfig{Name: "bad", Params: airtime.Params{SF: 3}, FrequencyHz: f868}); err == nil {
		t.Error("invalid params accepted")
	}
	if b.ChannelBusy() {
		t.Fatal("idle channel busy")
	}
	done, _ := a.Transmit(make([]byte, 30))
	// Simultaneous transmissions on another SF and another frequency.
	other.Transmit(make([]byte, 30))
	far.Transmit(make([]byte, 30))
	c.Advance(time.Millisecond)
	if !a.ChannelBusy() || !b.ChannelBusy() {
		t.Error("channel should be busy for a (sending) and b (hearing)")
	}
	c.RunUntil(done)
	if b.ChannelBusy() {
		t.Error("busy after the frame ended")
	}
	c.Run()
	if s := b.Stats(); s.Received != 1 || s.LostCollision != 0 {
		t.Errorf("other SF / frequency must not collide: b %+v", s)
	}
	if other.Stats().Received != 0 || far.Stats().Received != 0 {
		t.Error("a radio on another SF or frequency received a frame")
	}
}

func TestPathLossAndLinkLoss(t *testing.T) {
	c := NewClock(t0)
	ch := NewChannel(c, Config{PathLoss: &LogDistance{Exponent: 3}})
	p := sf7
	add := func(name string, x float64) *Radio {
		r, _ := ch.AddRadio(RadioConfig{Name: name, Params: p, FrequencyHz: f868, TxPowerDBm: 14, X: x})
		return r
	}
	var got []Frame
	tx := add("tx", 0)
	near := add("near", 1000)
	far := add("far", 100000)
	lossy := add("lossy", 1000)
	near.SetReceiver(func(f Frame) { got = append(got, f) })
	if err := ch.SetLoss(tx, lossy, 1); err != nil {
		t.Fatal(err)
	}
	if err := ch.SetLoss(tx, lossy, 1.5); err == nil {
		t.Error("loss 1.5 accepted")
	}
	tx.Transmit([]byte("hello"))
	c.Run()
	// 14 dBm - (31.22 + 30*3) dB = -107.2 dBm at 1 km; SF7/125k sensitivity is -124.5 dBm.
	if len(got) != 1 || math.Abs(got[0].RSSI-(-107.22)) > 0.05 {
		t.Fatalf("near got %+v", got)
	}
	if s := far.Stats(); s.LostWeak != 1 || s.Received != 0 {
		t.Errorf("far (far below sensitivity) %+v", s)
	}
	if s := lossy.Stats(); s.LostLink != 1 || s.Received != 0 {
		t.Errorf("lossy %+v", s)
	}
	if math.Abs(near.sensitivity(6)-(-124.53)) > 0.01 {
		t.Errorf("SF7/125k sensitivity %v", near.sensitivity(6))
	}
	// A weak frame does not disturb: far transmits while near receives from tx.
	ch.SetRSSI(far, near, -200)
	tx.Transmit([]byte("again"))
	far.Transmit([]byte("noise"))
	c.Run()
	if len(got) != 2 {
		t.Errorf("a frame below sensitivity caused a collision")
	}
}
