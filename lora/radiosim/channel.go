// Package radiosim is a deterministic LoRa radio-channel simulator for tests
// and benchmarks. Radios joined to a Channel transmit frames that occupy the
// air for exactly their LoRa time on air (package airtime), on a virtual Clock:
// nothing sleeps in real time, and the same seed gives the same run.
//
// The model, kept simple on purpose:
//
//   - Hearing: radios hear each other only on the same centre frequency,
//     spreading factor and bandwidth. Different frequencies, SFs or bandwidths
//     are treated as perfectly orthogonal: they neither deliver nor collide
//     (real LoRa SFs are only quasi-orthogonal).
//   - Signal: the received strength comes from a per-link override
//     (SetRSSI), else from a log-distance path-loss model with optional
//     log-normal shadowing (Config.PathLoss), else from Config.DefaultRSSIdBm.
//     SNR is RSSI minus the thermal noise floor (-174 dBm/Hz + 10 log10 BW +
//     noise figure). A frame below the receiver's sensitivity (noise floor
//     plus the SF's demodulation limit, -7.5 dB at SF7 to -20 dB at SF12) is
//     lost as weak and is otherwise ignored: it neither collides nor is sensed.
//   - Random loss: each directed link has a loss probability (SetLoss), drawn
//     once per delivered frame from the channel's seeded PRNG.
//   - Collisions: frames that overlap in time at a receiver are all lost.
//     With Config.Capture, the pairwise rule is: the frame that is at least
//     CaptureThresholdDB (default 6 dB) stronger survives if it started first,
//     or started within the preamble of the other frame; otherwise both are
//     lost. A frame survives only if it survives every overlap.
//   - Half duplex: a transmitting radio receives nothing; starting to transmit
//     aborts whatever it was receiving.
//
// Callbacks (RadioConfig.OnReceive, Config.Trace) run on the goroutine that
// moves the clock, with no lock held.
package radiosim

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"time"
)

// LogDistance is the path-loss model PL(d) = RefLossDB + 10 n log10(d/d0) + X,
// with X drawn from a normal distribution of ShadowingDB standard deviation.
type LogDistance struct {
	// Exponent is n: 2 in free space, about 2.7-3.5 in towns.
	Exponent float64
	// RefLossDB is the loss at RefDistanceM; 0 means the free-space loss at
	// 1 m for the transmitter's frequency (31.2 dB at 868 MHz).
	RefLossDB float64
	// RefDistanceM is d0; 0 means 1 m. Shorter distances count as d0.
	RefDistanceM float64
	// ShadowingDB is the standard deviation of per-frame shadowing; 0 is none.
	ShadowingDB float64
}

// Config sets up a Channel.
type Config struct {
	// Seed seeds the channel's PRNG (math/rand/v2 PCG).
	Seed uint64
	// Capture enables the capture effect (see the package doc).
	Capture bool
	// CaptureThresholdDB is the capture margin; 0 means 6 dB.
	CaptureThresholdDB float64
	// PathLoss, when set, derives RSSI from radio positions.
	PathLoss *LogDistance
	// DefaultRSSIdBm is the RSSI of every link without PathLoss or override;
	// 0 means -80 dBm.
	DefaultRSSIdBm float64
	// NoiseFigureDB is the receivers' noise figure; 0 means 6 dB.
	NoiseFigureDB float64
	// Trace, if set, receives every event (for logs and determinism checks).
	Trace func(Event)
}

// Event kinds reported to Config.Trace.
const (
	EventTx   = "tx"   // a frame went on the air (To is empty)
	EventRx   = "rx"   // a radio received a frame intact
	EventLost = "lost" // a radio that could hear a frame lost it; Reason says why
)

// Loss reasons in Event.Reason.
const (
	ReasonCollision  = "collision"
	ReasonWeak       = "weak"
	ReasonLink       = "link"
	ReasonHalfDuplex = "half-duplex"
)

// Event is one thing that happened on the channel.
type Event struct {
	At       time.Time
	Kind     string
	From, To string
	Size     int
	RSSI     float64
	SNR      float64
	Reason   string
}

// Channel joins radios on a shared medium. Its methods are safe for
// concurrent use; see the package doc for the model.
type Channel struct {
	clock  *Clock
	cfg    Config
	mu     sync.Mutex
	rng    *rand.Rand
	radios []*Radio
	links  map[[2]int]linkOverride
	onAir  int
}

type linkOverride struct {
	loss    float64
	rssi    float64
	hasRSSI bool
}

type transmission struct {
	from       *Radio
	data       []byte
	start, end time.Time
	rx         []*reception
}

type reception struct {
	tx         *transmission
	to         *Radio
	rssi, snr  float64
	start, end time.Time
	lost       string // loss reason; "" while still receivable
}

func (rc *reception) lose(reason string) {
	if rc.lost == "" {
		rc.lost = reason
	}
}

// NewChannel returns an empty channel on clock.
func NewChannel(clock *Clock, cfg Config) *Channel {
	if cfg.CaptureThresholdDB == 0 {
		cfg.CaptureThresholdDB = 6
	}
	if cfg.DefaultRSSIdBm == 0 {
		cfg.DefaultRSSIdBm = -80
	}
	if cfg.NoiseFigureDB == 0 {
		cfg.NoiseFigureDB = 6
	}
	return &Channel{
		clock: clock,
		cfg:   cfg,
		rng:   rand.New(rand.NewPCG(cfg.Seed, cfg.Seed^0x9e3779b97f4a7c15)),
		links: make(map[[2]int]linkOverride),
	}
}

// Clock returns the channel's clock.
func (ch *Channel) Clock() *Clock { return ch.clock }

// AddRadio joins a radio to the channel.
func (ch *Channel) AddRadio(cfg RadioConfig) (*Radio, error) {
	if err := cfg.Params.Validate(); err != nil {
		return nil, fmt.Errorf("radio %q: %w", cfg.Name, err)
	}
	if cfg.FrequencyHz <= 0 {
		return nil, fmt.Errorf("radio %q: frequency %d Hz: set FrequencyHz to the channel's centre frequency", cfg.Name, cfg.FrequencyHz)
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for _, r := range ch.radios {
		if r.cfg.Name == cfg.Name {
			return nil, fmt.Errorf("radio name %q is already used on this channel: give each radio its own name", cfg.Name)
		}
	}
	r := &Radio{ch: ch, id: len(ch.radios), cfg: cfg}
	ch.radios = append(ch.radios, r)
	return r, nil
}

// SetLoss sets the probability (0..1) that a frame from -> to that would be
// received is lost anyway. Links are directed.
func (ch *Channel) SetLoss(from, to *Radio, p float64) error {
	if p < 0 || p > 1 || math.IsNaN(p) {
		return fmt.Errorf("loss probability %v for %s -> %s: use a value in 0..1", p, from.cfg.Name, to.cfg.Name)
	}
	ch.mu.Lock()
	defer ch.mu.Unlock()
	k := [2]int{from.id, to.id}
	l := ch.links[k]
	l.loss = p
	ch.links[k] = l
	return nil
}

// SetRSSI fixes the received strength of frames from -> to, overriding the
// path-loss model. A value far below sensitivity (e.g. -200) cuts the link.
func (ch *Channel) SetRSSI(from, to *Radio, dBm float64) {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	k := [2]int{from.id, to.id}
	l := ch.links[k]
	l.rssi, l.hasRSSI = dBm, true
	ch.links[k] = l
}

// InFlight returns the number of transmissions on the air.
func (ch *Channel) InFlight() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.onAir
}

// rssi returns the received strength of a frame from -> to. Caller holds mu.
func (ch *Channel) rssi(from, to *Radio) float64 {
	if l, ok := ch.links[[2]int{from.id, to.id}]; ok && l.hasRSSI {
		return l.rssi
	}
	m := ch.cfg.PathLoss
	if m == nil {
		return ch.cfg.DefaultRSSIdBm
	}
	d0 := m.RefDistanceM
	if d0 <= 0 {
		d0 = 1
	}
	ref := m.RefLossDB
	if ref == 0 {
		ref = 20*math.Log10(float64(from.cfg.FrequencyHz)) - 147.55 // free space at 1 m
	}
	d := math.Max(math.Hypot(from.cfg.X-to.cfg.X, from.cfg.Y-to.cfg.Y), d0)
	loss := ref + 10*m.Exponent*math.Log10(d/d0)
	if m.ShadowingDB > 0 {
		loss += ch.rng.NormFloat64() * m.ShadowingDB
	}
	return from.cfg.TxPowerDBm - loss
}

func (ch *Channel) transmit(r *Radio, frame []byte) (time.Time, error) {
	now := ch.clock.Now()
	ch.mu.Lock()
	if r.txEnd.After(now) {
		ch.mu.Unlock()
		return time.Time{}, fmt.Errorf("radio %s: %w", r.cfg.Name, ErrTransmitting)
	}
	toa := r.cfg.Params.TimeOnAir(len(frame))
	tx := &transmission{from: r, data: append([]byte(nil), frame...), start: now, end: now.Add(toa)}
	r.txEnd = tx.end
	r.stats.Sent++
	r.stats.Airtime += toa
	ch.onAir++
	// Half duplex: whatever r was receiving is gone.
	for _, rc := range r.incoming {
		if rc.end.After(now) {
			rc.lose(ReasonHalfDuplex)
		}
	}
	nf := ch.cfg.NoiseFigureDB
	for _, to := range ch.radios {
		if to == r || !sameChannel(r, to) {
			continue
		}
		rssi := ch.rssi(r, to)
		rc := &reception{tx: tx, to: to, rssi: rssi, snr: rssi - to.noiseFloor(nf), start: now, end: tx.end}
		tx.rx = append(tx.rx, rc)
		if rssi < to.sensitivity(nf) {
			rc.lose(ReasonWeak) // not heard at all: no collision, no carrier
			continue
		}
		if to.txEnd.After(now) {
			rc.lose(ReasonHalfDuplex)
		}
		live := to.incoming[:0]
		for _, other := range to.incoming {
			if !other.end.After(now) {
				continue // finished (its end event may still be queued at this instant)
			}
			live = append(live, other)
			ch.collide(other, rc)
		}
		clear(to.incoming[len(live):])
		to.incoming = append(live, rc)
	}
	ev := Event{At: now, Kind: EventTx, From: r.cfg.Name, Size: len(frame)}
	trace := ch.cfg.Trace
	ch.mu.Unlock()
	ch.clock.At(tx.end, func() { ch.finish(tx) })
	if trace != nil {
		trace(ev)
	}
	return tx.end, nil
}

// collide applies the collision rule to an earlier frame and a newcomer at
// the same receiver. Caller holds mu.
func (ch *Channel) collide(early, late *reception) {
	if ch.cfg.Capture {
		thr := ch.cfg.CaptureThresholdDB
		inPreamble := late.start.Sub(early.start) < preambleTime(early.tx.from.cfg.Params)
		switch {
		case early.rssi-late.rssi >= thr:
			late.lose(ReasonCollision)
			return
		case late.rssi-early.rssi >= thr && inPreamble:
			early.lose(ReasonCollision)
			return
		}
	}
	early.lose(ReasonCollision)
	late.lose(ReasonCollision)
}

// finish ends a transmission: every receiver gets the frame or counts a loss.
func (ch *Channel) finish(tx *transmission) {
	ch.mu.Lock()
	ch.onAir--
	type delivery struct {
		f  func(Frame)
		fr Frame
	}
	var out []delivery
	var events []Event
	for _, rc := range tx.rx {
		to := rc.to
		for i, x := range to.incoming {
			if x == rc {
				n := len(to.incoming)
				copy(to.incoming[i:], to.incoming[i+1:])
				to.incoming[n-1] = nil
				to.incoming = to.incoming[:n-1]
				break
			}
		}
		if rc.lost == "" {
			if l := ch.links[[2]int{tx.from.id, to.id}]; l.loss > 0 && ch.rng.Float64() < l.loss {
				rc.lose(ReasonLink)
			}
		}
		ev := Event{At: tx.end, From: tx.from.cfg.Name, To: to.cfg.Name, Size: len(tx.data), RSSI: rc.rssi, SNR: rc.snr}
		switch rc.lost {
		case "":
			ev.Kind = EventRx
			to.stats.Received++
			if to.cfg.OnReceive != nil {
				out = append(out, delivery{to.cfg.OnReceive, Frame{From: tx.from.cfg.Name, Data: append([]byte(nil), tx.data...),
					RSSI: rc.rssi, SNR: rc.snr, Start: tx.start, End: tx.end}})
			}
		case ReasonCollision:
			to.stats.LostCollision++
		case ReasonWeak:
			to.stats.LostWeak++
		case ReasonLink:
			to.stats.LostLink++
		case ReasonHalfDuplex:
			to.stats.LostHalfDuplex++
		}
		if rc.lost != "" {
			ev.Kind, ev.Reason = EventLost, rc.lost
		}
		events = append(events, ev)
	}
	trace := ch.cfg.Trace
	ch.mu.Unlock()
	if trace != nil {
		for _, ev := range events {
			trace(ev)
		}
	}
	for _, d := range out {
		d.f(d.fr)
	}
}
