package modem

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"time"

	"github.com/ternmesh/tern/transports/radiolink"
)

// serialDevice is the core every serial driver here shares: the port, the
// receive queue fed by a reader goroutine, and the Close and gone-modem
// semantics of the radiolink.Device contract. RNode, E22 and RAK3172 embed
// it and add their protocol on top.
//
// Lifecycle: run starts the reader; done closes when the port stops
// delivering bytes (it failed, or Close closed it), and rdErr then holds
// the read error. closed closes on Close. After either, the Device methods
// return errClosed (after Close) or a *GoneError (the modem went away).
type serialDevice struct {
	kind, path string // "rnode", "e22", "rak3172"; the port's path
	port       io.ReadWriteCloser
	log        *slog.Logger

	rx     chan radiolink.RxFrame
	done   chan struct{}
	rdErr  error // set before done closes
	closed chan struct{}
	once   sync.Once
	wmu    sync.Mutex
}

// init prepares d for a port opened for cfg.
func (d *serialDevice) init(kind string, cfg Config, port io.ReadWriteCloser) {
	d.kind, d.path, d.port, d.log = kind, cfg.Path, port, logger(cfg.Logger)
	d.rx = make(chan radiolink.RxFrame, 256)
	d.done, d.closed = make(chan struct{}), make(chan struct{})
}

// run reads the port on one goroutine and hands what arrives to loop on
// another; when the port fails loop sees chunks close, and once it returns
// done closes.
func (d *serialDevice) run(now func() time.Time, loop func(chunks <-chan chunk)) {
	chunks := make(chan chunk, 64)
	var pumpErr error
	go pumpPort(d.port, chunks, &pumpErr, now)
	go func() {
		loop(chunks)
		d.rdErr = pumpErr // written before chunks closed
		close(d.done)
	}()
}

// deliver queues a received frame for Receive, dropping it (with a
// warning) when the queue is full.
func (d *serialDevice) deliver(f radiolink.RxFrame) {
	select {
	case d.rx <- f:
	default:
		d.log.Warn("receive queue full: frame dropped", "modem", d.kind, "path", d.path)
	}
}

// closedErr is the error after Close.
func (d *serialDevice) closedErr() error { return errClosed(d.kind, d.path) }

// gone is the error once the reader stopped: errClosed after Close, else a
// *GoneError carrying the read error.
func (d *serialDevice) gone() error {
	select {
	case <-d.closed:
		return d.closedErr()
	default:
	}
	return &GoneError{Kind: d.kind, Path: d.path, Err: d.rdErr}
}

// usable returns nil while the device may transmit, else the error that
// ends it.
func (d *serialDevice) usable() error {
	select {
	case <-d.closed:
		return d.closedErr()
	case <-d.done:
		return d.gone()
	default:
	}
	return nil
}

// write writes b whole; a failure is errClosed after Close, else a
// *GoneError.
func (d *serialDevice) write(b []byte) error {
	d.wmu.Lock()
	defer d.wmu.Unlock()
	if _, err := d.port.Write(b); err != nil {
		select {
		case <-d.closed:
			return d.closedErr()
		default:
		}
		return &GoneError{Kind: d.kind, Path: d.path, Err: err}
	}
	return nil
}

// waitFor waits for a value on ch. It returns ok false and no error when
// timeout fires first (a nil timeout never fires), and the error that ends
// the wait when the device closes or goes away or ctx ends.
func waitFor[T any](ctx context.Context, d *serialDevice, ch <-chan T, timeout <-chan time.Time) (v T, ok bool, err error) {
	select {
	case v = <-ch:
		return v, true, nil
	case <-timeout:
		return v, false, nil
	case <-d.done:
		return v, false, d.gone()
	case <-d.closed:
		return v, false, d.closedErr()
	case <-ctx.Done():
		return v, false, ctx.Err()
	}
}

// receive returns the next received frame. Frames queued before the modem
// went away are still returned; after Close none are.
func (d *serialDevice) receive(ctx context.Context) (radiolink.RxFrame, error) {
	select {
	case f := <-d.rx:
		return f, nil
	default:
	}
	select {
	case f := <-d.rx:
		return f, nil
	case <-d.closed:
		return radiolink.RxFrame{}, d.closedErr()
	case <-d.done:
		select {
		case f := <-d.rx:
			return f, nil
		default:
		}
		return radiolink.RxFrame{}, d.gone()
	case <-ctx.Done():
		return radiolink.RxFrame{}, ctx.Err()
	}
}

// shutdown closes the device once: it marks it closed, runs bye (a best
// effort goodbye to the modem, nil for none) while the port still works,
// and closes the port.
func (d *serialDevice) shutdown(bye func()) {
	d.once.Do(func() {
		close(d.closed)
		if bye != nil {
			select {
			case <-d.done:
			default:
				bye()
			}
		}
		d.port.Close()
	})
}

// drain empties ch without blocking, passing each stale value to f.
func drain[T any](ch <-chan T, f func(T)) {
	for {
		select {
		case v := <-ch:
			if f != nil {
				f(v)
			}
		default:
			return
		}
	}
}
