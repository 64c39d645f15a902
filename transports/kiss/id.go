package kiss

import (
	"log/slog"
	"sync"
	"time"

	"github.com/ternmesh/tern/transports/radiolink"
)

// Station identification timing (47 CFR 97.119: identify at the end of a
// communication and at least every 10 minutes during it).
const (
	MaxIDInterval  = 10 * time.Minute
	DefaultIDQuiet = 30 * time.Second
)

// IDDest is the destination of identification frames.
var IDDest = Address{Call: "ID"}

// IDFrame is the identification frame of station call: a UI frame to "ID"
// whose info field is the callsign in plain text.
func IDFrame(call Address) AX25Frame {
	return NewUI(IDDest, call, nil, []byte(call.String()))
}

// Identifier decides when a station sends its identification. A
// transmission series starts with the first Transmitted call; while it
// lasts, send runs every interval; when no transmission happened for quiet,
// send runs once more and the series ends. Identification frames
// themselves are not reported to Transmitted. All timing comes from the
// clock, so tests drive it with a fake clock. Safe for concurrent use;
// send is never called with the Identifier's lock held.
type Identifier struct {
	clock           radiolink.Clock
	interval, quiet time.Duration
	send            func() error
	log             *slog.Logger
	mu              sync.Mutex
	active, stopped bool
	seq             uint64 // invalidates timers that fired while being replaced
	intervalSeq     uint64
	quietSeq        uint64
	stopInterval    func() bool
	stopQuiet       func() bool
	sent            uint64
}

// NewIdentifier returns an Identifier; interval is clamped to
// MaxIDInterval and both durations default (<= 0) to MaxIDInterval and
// DefaultIDQuiet.
func NewIdentifier(clock radiolink.Clock, interval, quiet time.Duration, send func() error, log *slog.Logger) *Identifier {
	if interval <= 0 || interval > MaxIDInterval {
		interval = MaxIDInterval
	}
	if quiet <= 0 {
		quiet = DefaultIDQuiet
	}
	if log == nil {
		log = slog.Default()
	}
	return &Identifier{clock: clock, interval: interval, quiet: quiet, send: send, log: log}
}

// Transmitted records that a (non-identification) frame went on the air.
func (id *Identifier) Transmitted() {
	id.mu.Lock()
	defer id.mu.Unlock()
	if id.stopped {
		return
	}
	if !id.active {
		id.active = true
		id.armIntervalLocked()
	}
	if id.stopQuiet != nil {
		id.stopQuiet()
	}
	id.seq++
	seq := id.seq
	id.quietSeq = seq
	id.stopQuiet = id.clock.AfterFunc(id.quiet, func() { id.quietFired(seq) })
}

func (id *Identifier) armIntervalLocked() {
	if id.stopInterval != nil {
		id.stopInterval()
	}
	id.seq++
	seq := id.seq
	id.intervalSeq = seq
	id.stopInterval = id.clock.AfterFunc(id.interval, func() { id.intervalFired(seq) })
}

func (id *Identifier) intervalFired(seq uint64) {
	id.mu.Lock()
	if id.stopped || !id.active || seq != id.intervalSeq {
		id.mu.Unlock()
		return
	}
	id.armIntervalLocked()
	id.mu.Unlock()
	id.identify("interval")
}

func (id *Identifier) quietFired(seq uint64) {
	id.mu.Lock()
	if id.stopped || !id.active || seq != id.quietSeq {
		id.mu.Unlock()
		return
	}
	id.active = false
	id.intervalSeq = 0
	if id.stopInterval != nil {
		id.stopInterval()
		id.stopInterval = nil
	}
	id.mu.Unlock()
	id.identify("end of transmissions")
}

func (id *Identifier) identify(why string) {
	if err := id.send(); err != nil {
		id.log.Warn("kiss: station identification failed", "reason", why, "err", err)
		return
	}
	id.mu.Lock()
	id.sent++
	id.mu.Unlock()
	id.log.Debug("kiss: station identification sent", "reason", why)
}

// Sent returns how many identification frames were sent successfully.
func (id *Identifier) Sent() uint64 {
	id.mu.Lock()
	defer id.mu.Unlock()
	return id.sent
}

// Stop cancels the timers. It reports whether a transmission series was
// still open, in which case the caller should send a final identification
// (Finish does both).
func (id *Identifier) Stop() (open bool) {
	id.mu.Lock()
	defer id.mu.Unlock()
	open = id.active && !id.stopped
	id.stopped, id.active = true, false
	for _, stop := range []func() bool{id.stopInterval, id.stopQuiet} {
		if stop != nil {
			stop()
		}
	}
	return open
}

// Finish stops the Identifier and, if a series was open, identifies one
// last time.
func (id *Identifier) Finish() {
	if id.Stop() {
		id.identify("closing")
	}
}
