package modememu

import (
	"fmt"
	"sync"
	"time"

	"github.com/ternmesh/tern/lora/radiosim"
)

// Air is a radiosim channel whose virtual clock follows the wall clock at a
// fixed speed-up (see the package doc). Emulators join it; Close stops the
// pump.
type Air struct {
	Channel *radiosim.Channel
	Clock   *radiosim.Clock
	SpeedUp float64

	start     time.Time // virtual
	realStart time.Time
	stop      chan struct{}
	done      chan struct{}
	once      sync.Once
}

// NewAir starts a channel with cfg whose virtual time runs speedUp times
// faster than real time (0 means 20). The pump ticks every millisecond.
func NewAir(cfg radiosim.Config, speedUp float64) *Air {
	if speedUp <= 0 {
		speedUp = 20
	}
	epoch := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC) // virtual start of every Air
	clock := radiosim.NewClock(epoch)
	a := &Air{Channel: radiosim.NewChannel(clock, cfg), Clock: clock, SpeedUp: speedUp,
		start: epoch, realStart: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go a.pump()
	return a
}

func (a *Air) pump() {
	defer close(a.done)
	t := time.NewTicker(time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-a.stop:
			return
		case now := <-t.C:
			v := a.start.Add(time.Duration(float64(now.Sub(a.realStart)) * a.SpeedUp))
			a.Clock.RunUntil(v)
		}
	}
}

// After is a modem.AfterFunc on this air's time: d of virtual time passes
// in d/SpeedUp of real time. Drivers under test use it to wait time on air.
func (a *Air) After(d time.Duration) <-chan time.Time {
	return time.After(time.Duration(float64(d) / a.SpeedUp))
}

// Close stops the pump; the channel keeps its state.
func (a *Air) Close() {
	a.once.Do(func() { close(a.stop) })
	<-a.done
}

// base is what every emulator shares: its pty and an ordered output queue
// (frames heard on the air are written by one goroutine, off the pump).
type base struct {
	pty  *PTY
	out  chan []byte
	quit chan struct{}
	once sync.Once
	gen  int
}

// radioName returns name for the first radio an emulator joins to the
// channel and name#2, name#3... after reconfigurations (radiosim radios
// keep their modulation, so a new setting is a new radio).
func (b *base) radioName(name string) string {
	b.gen++
	if b.gen == 1 {
		return name
	}
	return fmt.Sprintf("%s#%d", name, b.gen)
}

func newBase() (*base, error) {
	p, err := OpenPTY()
	if err != nil {
		return nil, err
	}
	b := &base{pty: p, out: make(chan []byte, 1024), quit: make(chan struct{})}
	go b.writer()
	return b, nil
}

func (b *base) writer() {
	for {
		select {
		case p := <-b.out:
			if _, err := b.pty.Master.Write(p); err != nil {
				return
			}
		case <-b.quit:
			return
		}
	}
}

// send queues bytes for the serial side; it never blocks the pump.
func (b *base) send(p []byte) {
	select {
	case b.out <- p:
	case <-b.quit:
	default: // host not reading: the firmware's buffer overflows
	}
}

// Path is the tty the driver opens.
func (b *base) Path() string { return b.pty.SlavePath }

// Unplug closes the pty, as when the modem's cable is pulled: the driver's
// reads and writes fail.
func (b *base) Unplug() {
	b.once.Do(func() { close(b.quit) })
	b.pty.Close()
}
