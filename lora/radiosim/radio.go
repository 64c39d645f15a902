package radiosim

import (
	"errors"
	"fmt"
	"math"
	"time"

	"github.com/ternmesh/tern/lora/airtime"
)

// ErrTransmitting is returned by Transmit while the radio is still sending.
var ErrTransmitting = errors.New("radio is still transmitting: wait for the previous frame's done time")

// RadioConfig describes a radio joined to a Channel.
type RadioConfig struct {
	// Name identifies the radio in frames, events and errors.
	Name string
	// Params is the modulation; it must pass airtime.Params.Validate.
	Params airtime.Params
	// FrequencyHz is the channel's centre frequency.
	FrequencyHz int64
	// TxPowerDBm is the transmit power (used by the path-loss model).
	TxPowerDBm float64
	// X and Y place the radio, in metres (used by the path-loss model).
	X, Y float64
	// OnReceive, if set, gets every frame the radio receives intact. It runs
	// on the goroutine that drives the clock, at the frame's end time.
	OnReceive func(Frame)
}

// Frame is a received frame.
type Frame struct {
	From       string    // sender's name
	Data       []byte    // payload; the receiver's own copy
	RSSI       float64   // received signal strength, dBm
	SNR        float64   // signal-to-noise ratio, dB
	Start, End time.Time // when the frame started and finished on the air
}

// Stats counts what happened at one radio.
type Stats struct {
	Sent     int           // frames transmitted
	Received int           // frames received intact
	Airtime  time.Duration // total time spent transmitting
	// Frames addressed to the air that this radio could hear but lost:
	LostCollision  int // overlapped another audible frame (and was not captured)
	LostWeak       int // arrived below the sensitivity for its SF and bandwidth
	LostLink       int // dropped by the link's loss probability
	LostHalfDuplex int // arrived while this radio was transmitting
}

// Radio is one transceiver on a Channel. Its methods are safe for concurrent use.
type Radio struct {
	ch       *Channel
	id       int
	cfg      RadioConfig
	txEnd    time.Time
	incoming []*reception // audible signals not yet finished
	stats    Stats
}

// Name returns the radio's name.
func (r *Radio) Name() string { return r.cfg.Name }

// Params returns the radio's modulation.
func (r *Radio) Params() airtime.Params { return r.cfg.Params }

// FrequencyHz returns the radio's centre frequency.
func (r *Radio) FrequencyHz() int64 { return r.cfg.FrequencyHz }

// SetReceiver replaces the OnReceive callback.
func (r *Radio) SetReceiver(f func(Frame)) {
	r.ch.mu.Lock()
	defer r.ch.mu.Unlock()
	r.cfg.OnReceive = f
}

// Stats returns a snapshot of the radio's counters.
func (r *Radio) Stats() Stats {
	r.ch.mu.Lock()
	defer r.ch.mu.Unlock()
	return r.stats
}

// Transmitting reports whether the radio is on the air now.
func (r *Radio) Transmitting() bool {
	now := r.ch.clock.Now()
	r.ch.mu.Lock()
	defer r.ch.mu.Unlock()
	return r.txEnd.After(now)
}

// ChannelBusy reports whether any transmission audible to this radio
// (including its own) is on the air now: the carrier sense used for
// listen-before-talk. Audible means the same frequency, spreading factor and
// bandwidth, received at or above the radio's sensitivity. Real LoRa channel
// activity detection only finds preambles reliably; the simulator is more
// generous and senses the whole frame.
func (r *Radio) ChannelBusy() bool {
	now := r.ch.clock.Now()
	r.ch.mu.Lock()
	defer r.ch.mu.Unlock()
	if r.txEnd.After(now) {
		return true
	}
	for _, rc := range r.incoming {
		if rc.end.After(now) && !rc.start.After(now) {
			return true
		}
	}
	return false
}

// Transmit puts frame on the air now. The air is occupied for exactly the
// LoRa time on air of len(frame) bytes; done is the time the last symbol
// leaves. The radio is half duplex: it cannot transmit while transmitting
// (ErrTransmitting), and starting a transmission aborts any frame it was
// receiving. The frame is copied.
func (r *Radio) Transmit(frame []byte) (done time.Time, err error) {
	if len(frame) == 0 || len(frame) > airtime.MaxPayloadBytes {
		return time.Time{}, fmt.Errorf("radio %s: frame of %d bytes: a LoRa frame carries 1..%d bytes", r.cfg.Name, len(frame), airtime.MaxPayloadBytes)
	}
	return r.ch.transmit(r, frame)
}

// sensitivity returns the weakest signal the radio can demodulate: the
// thermal noise floor over its bandwidth plus its noise figure, plus the
// demodulation SNR limit of its spreading factor (-7.5 dB at SF7 down to
// -20 dB at SF12, 2.5 dB per SF step).
func (r *Radio) sensitivity(noiseFigure float64) float64 {
	return r.noiseFloor(noiseFigure) + snrLimit(r.cfg.Params.SF)
}

func (r *Radio) noiseFloor(noiseFigure float64) float64 {
	bw := float64(int64(1)<<r.cfg.Params.SF) / r.cfg.Params.SymbolTime().Seconds() // exact bandwidth in Hz
	return -174 + 10*math.Log10(bw) + noiseFigure
}

// snrLimit returns the demodulation floor for a spreading factor in dB.
func snrLimit(sf int) float64 { return -2.5 * float64(sf-4) }

// sameChannel reports whether two radios can hear (and disturb) each other:
// same centre frequency, spreading factor and bandwidth.
func sameChannel(a, b *Radio) bool {
	return a.cfg.FrequencyHz == b.cfg.FrequencyHz && a.cfg.Params.SF == b.cfg.Params.SF &&
		a.cfg.Params.SymbolTime() == b.cfg.Params.SymbolTime()
}

// preambleTime returns how long the preamble (with sync word) of a frame
// sent with p lasts: the window in which a stronger frame can still capture
// the receiver.
func preambleTime(p airtime.Params) time.Duration {
	n := p.Preamble
	if n == 0 {
		n = airtime.DefaultPreamble
	}
	return time.Duration(4*n+17) * p.SymbolTime() / 4
}
