package radiolink

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// WallClock is the real Clock.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// AfterFunc runs f on its own goroutine after d.
func (WallClock) AfterFunc(d time.Duration, f func()) func() bool { return time.AfterFunc(d, f).Stop }

// LossReporter is an optional Device capability: counts of frames lost to
// collisions and bad CRCs, shown in RadioStats.
type LossReporter interface {
	Losses() (collisions, crc uint64)
}

// Attach builds a Radio over a real device with the wall clock. MaxFrame
// and Airtime default to the device's (MaxFrame, AirtimeModel). Call Run to
// start receiving.
func Attach(ctx context.Context, dev Device, cfg Config) (*Radio, error) {
	if cfg.MaxFrame == 0 || cfg.MaxFrame > dev.MaxFrame() {
		cfg.MaxFrame = dev.MaxFrame()
	}
	if am, ok := dev.(AirtimeModel); ok && cfg.Airtime == nil {
		cfg.Airtime = am
	}
	h := Hooks{Transmit: func(f []byte) error { return dev.Transmit(ctx, f) }}
	if cs, ok := dev.(CarrierSense); ok {
		h.Busy = cs.ChannelBusy
	}
	if lr, ok := dev.(LossReporter); ok {
		h.Losses = lr.Losses
	}
	return New(cfg, WallClock{}, h)
}

// Run pumps received frames from dev into r until ctx ends or the device
// fails; then it closes r. Transmissions run on the radio's own timers.
func Run(ctx context.Context, dev Device, r *Radio) error {
	defer r.Close()
	for {
		rx, err := dev.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, ErrDeviceClosed) {
				return fmt.Errorf("radio %s: %w", r.name, err)
			}
			return fmt.Errorf("radio %s: receive: %w", r.name, err)
		}
		if rx.At.IsZero() {
			rx.At = time.Now()
		}
		r.Receive(rx)
	}
}
