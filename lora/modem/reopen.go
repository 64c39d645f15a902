package modem

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/ternmesh/tern/transports/radiolink"
)

// ReopenOptions tunes a Reopener.
type ReopenOptions struct {
	// MinBackoff and MaxBackoff bound the wait between reopen attempts;
	// the wait doubles after each failure. Defaults: 500 ms and 30 s.
	MinBackoff, MaxBackoff time.Duration
	// After paces the waits; nil means time.After.
	After AfterFunc
	// Now reads the time; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
}

// Reopener is a Modem that survives its modem going away: when the
// underlying driver fails with ErrModemGone it is dropped and reopened with
// exponential backoff.
//
// During an outage Receive keeps blocking (reopening in between) and
// Transmit fails at once with an error wrapping ErrModemGone, not
// radiolink.ErrDeviceClosed, so the link layer treats it as transient.
// Only after Close do both return radiolink.ErrDeviceClosed.
type Reopener struct {
	name string
	open func(ctx context.Context) (Modem, error)
	opt  ReopenOptions
	log  *slog.Logger

	mu       sync.Mutex
	cur      Modem
	last     Modem // for MaxFrame/TimeOnAir during an outage
	backoff  time.Duration
	nextTry  time.Time
	lastErr  error
	closed   bool
	closedCh chan struct{}
}

// NewReopener opens the modem once (returning that error, so a wrong
// configuration is reported at start) and returns the wrapper. name is
// used in messages, e.g. the port path.
func NewReopener(ctx context.Context, name string, open func(ctx context.Context) (Modem, error), opt ReopenOptions) (*Reopener, error) {
	if opt.MinBackoff <= 0 {
		opt.MinBackoff = 500 * time.Millisecond
	}
	if opt.MaxBackoff < opt.MinBackoff {
		opt.MaxBackoff = max(30*time.Second, opt.MinBackoff)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	opt.After = opt.After.orDefault()
	m, err := open(ctx)
	if err != nil {
		return nil, err
	}
	return &Reopener{name: name, open: open, opt: opt, log: logger(opt.Logger), cur: m, last: m, backoff: opt.MinBackoff, closedCh: make(chan struct{})}, nil
}

// drop forgets m after it failed with err.
func (r *Reopener) drop(m Modem, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cur == m {
		r.cur = nil
		r.lastErr = err
		r.nextTry = r.opt.Now().Add(r.opt.MinBackoff)
		r.backoff = r.opt.MinBackoff
		r.log.Warn("modem went away; reopening with backoff", "modem", r.name, "err", err)
	}
	m.Close()
}

// tryOpen makes one reopen attempt if one is due, and returns the current
// modem (nil during an outage) and the wait until the next attempt.
func (r *Reopener) tryOpen(ctx context.Context) (Modem, time.Duration, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, 0, fmt.Errorf("modem %s: %w (Close was called)", r.name, radiolink.ErrDeviceClosed)
	}
	if r.cur != nil {
		m := r.cur
		r.mu.Unlock()
		return m, 0, nil
	}
	if wait := r.nextTry.Sub(r.opt.Now()); wait > 0 {
		r.mu.Unlock()
		return nil, wait, nil
	}
	r.nextTry = r.opt.Now().Add(r.opt.MaxBackoff) // one attempt at a time
	r.mu.Unlock()

	m, err := r.open(ctx)

	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.lastErr = err
		r.backoff = min(2*r.backoff, r.opt.MaxBackoff)
		r.nextTry = r.opt.Now().Add(r.backoff)
		r.log.Info("modem still away", "modem", r.name, "err", err, "retry_in", r.backoff)
		return nil, r.backoff, nil
	}
	if r.closed {
		m.Close()
		return nil, 0, fmt.Errorf("modem %s: %w (Close was called)", r.name, radiolink.ErrDeviceClosed)
	}
	r.cur, r.last, r.backoff = m, m, r.opt.MinBackoff
	r.log.Info("modem back", "modem", r.name)
	return m, 0, nil
}

func (r *Reopener) outage(wait time.Duration) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return fmt.Errorf("modem %s is away (%v): check the cable; tern retries, next try in %s: %w", r.name, r.lastErr, wait.Round(time.Millisecond), ErrModemGone)
}

// Transmit sends through the current modem; during an outage it makes a
// reopen attempt if one is due and otherwise fails with ErrModemGone.
func (r *Reopener) Transmit(ctx context.Context, frame []byte) error {
	m, wait, err := r.tryOpen(ctx)
	if err != nil {
		return err
	}
	if m == nil {
		return r.outage(wait)
	}
	err = m.Transmit(ctx, frame)
	if errors.Is(err, ErrModemGone) {
		r.drop(m, err)
		return fmt.Errorf("modem %s: %w", r.name, stripClosed{err})
	}
	return err
}

// stripClosed hides radiolink.ErrDeviceClosed from a GoneError so callers
// of a Reopener see a transient failure.
type stripClosed struct{ err error }

func (s stripClosed) Error() string        { return s.err.Error() }
func (s stripClosed) Is(target error) bool { return target == ErrModemGone }

// Receive blocks through outages, reopening the modem with backoff, until a
// frame arrives, ctx ends or Close is called.
func (r *Reopener) Receive(ctx context.Context) (radiolink.RxFrame, error) {
	for {
		m, wait, err := r.tryOpen(ctx)
		if err != nil {
			return radiolink.RxFrame{}, err
		}
		if m == nil {
			select {
			case <-r.opt.After(wait):
				continue
			case <-r.closedCh:
				continue
			case <-ctx.Done():
				return radiolink.RxFrame{}, ctx.Err()
			}
		}
		f, err := m.Receive(ctx)
		if errors.Is(err, ErrModemGone) {
			r.drop(m, err)
			continue
		}
		if errors.Is(err, radiolink.ErrDeviceClosed) {
			r.mu.Lock()
			closed := r.closed
			r.mu.Unlock()
			if !closed { // dropped by Transmit meanwhile
				continue
			}
		}
		return f, err
	}
}

// MaxFrame returns the modem's largest frame.
func (r *Reopener) MaxFrame() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last.MaxFrame()
}

// TimeOnAir returns the modem's time on air for n bytes.
func (r *Reopener) TimeOnAir(n int) time.Duration {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last.TimeOnAir(n)
}

// Connected reports whether a modem is open now.
func (r *Reopener) Connected() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cur != nil
}

// Close closes the modem; later calls return radiolink.ErrDeviceClosed.
func (r *Reopener) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.closedCh)
	m := r.cur
	r.cur = nil
	r.mu.Unlock()
	if m != nil {
		return m.Close()
	}
	return nil
}
