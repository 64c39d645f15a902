package radiolink

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/transports"
	"github.com/ternmesh/tern/transports/linktest"
)

// chanDevice is a lossless in-memory frame radio: what one transmits the
// other receives. No airtime model, so the engine does not pace it.
type chanDevice struct {
	in, out   chan []byte
	done      chan struct{}
	closeOnce sync.Once
}

func chanPair() (*chanDevice, *chanDevice) {
	ab, ba := make(chan []byte, 4096), make(chan []byte, 4096)
	return &chanDevice{in: ba, out: ab, done: make(chan struct{})}, &chanDevice{in: ab, out: ba, done: make(chan struct{})}
}

func (d *chanDevice) Transmit(ctx context.Context, f []byte) error {
	if len(f) > d.MaxFrame() {
		return fmt.Errorf("frame of %d bytes", len(f))
	}
	select {
	case d.out <- append([]byte(nil), f...):
		return nil
	case <-d.done:
		return ErrDeviceClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *chanDevice) Receive(ctx context.Context) (RxFrame, error) {
	select {
	case f := <-d.in:
		return RxFrame{Data: f}, nil
	case <-d.done:
		return RxFrame{}, ErrDeviceClosed
	case <-ctx.Done():
		return RxFrame{}, ctx.Err()
	}
}

func (d *chanDevice) MaxFrame() int { return 255 }
func (d *chanDevice) Close() error  { d.closeOnce.Do(func() { close(d.done) }); return nil }

func newChanPair(t *testing.T) (transports.Link, transports.Link) {
	ctx, cancel := context.WithCancel(context.Background())
	da, db := chanPair()
	var radios []*Radio
	for i, d := range []*chanDevice{da, db} {
		r, err := Attach(ctx, d, Config{Self: addrOf(i), Name: fmt.Sprint("r", i)})
		if err != nil {
			t.Fatal(err)
		}
		radios = append(radios, r)
	}
	var wg sync.WaitGroup
	for i, d := range []*chanDevice{da, db} {
		wg.Add(1)
		go func() { defer wg.Done(); _ = Run(ctx, d, radios[i]) }()
	}
	t.Cleanup(func() { cancel(); da.Close(); db.Close(); wg.Wait() })
	actx, acancel := context.WithTimeout(ctx, 5*time.Second)
	defer acancel()
	a, err := radios[0].Accept(actx)
	if err != nil {
		t.Fatalf("Accept on a: %v", err)
	}
	b, err := radios[1].Accept(actx)
	if err != nil {
		t.Fatalf("Accept on b: %v", err)
	}
	return a, b
}

// The radio link is ordered but not reliable even over a lossless device:
// frames for a reader that falls more than inboxLimit behind are dropped
// (bounded memory on a shared radio), and the router's custody resends them.
func TestConformance(t *testing.T) {
	linktest.Run(t, linktest.Harness{NewPair: newChanPair, Reliable: false, Ordered: true, MTU: 64 << 10, Timeout: 5 * time.Second})
}
