package node

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/ternmesh/tern/bundle"
	"github.com/ternmesh/tern/transports/radiolink"
)

// RadioOpener opens the radio device a link URL names (a LoRa HAT, a serial
// modem, a KISS TNC) and says how the link layer must drive it: frame size,
// time on air, the regional airtime budget, the amateur-radio policy. The
// registry of openers is built in cmd/tern, one per URL scheme.
type RadioOpener func(ctx context.Context, u *url.URL) (radiolink.Device, radiolink.Config, error)

// runRadio keeps the radio named by rawURL attached to the router: open the
// device, run the link layer over it, and when the device fails (a modem
// unplugged, a TNC gone) log why and open it again with backoff.
func (n *Node) runRadio(rawURL string, u *url.URL, open RadioOpener) {
	ctx, cancel := context.WithCancel(n.ctx)
	n.mu.Lock()
	if n.radioStop == nil {
		n.radioStop = map[string]context.CancelFunc{}
	}
	if _, running := n.radioStop[rawURL]; running {
		n.mu.Unlock()
		cancel()
		return
	}
	n.radioStop[rawURL] = cancel
	n.mu.Unlock()
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		backoff := time.Second
		wait := func() bool {
			select {
			case <-ctx.Done():
				return false
			case <-time.After(backoff):
				backoff = min(2*backoff, time.Minute)
				return true
			}
		}
		for ctx.Err() == nil {
			err := n.attachRadio(ctx, rawURL, u, open, func() { backoff = time.Second })
			if ctx.Err() != nil {
				return
			}
			n.log.Warn("radio link is down; retrying", "url", rawURL, "in", backoff, "err", err)
			if !wait() {
				return
			}
		}
	}()
}

// attachRadio runs one life of a radio device; it returns why it ended.
func (n *Node) attachRadio(ctx context.Context, rawURL string, u *url.URL, open RadioOpener, opened func()) error {
	dev, cfg, err := open(ctx, u)
	if err != nil {
		return fmt.Errorf("opening %s: %w", rawURL, err)
	}
	defer dev.Close()
	opened()
	cfg.Self = bundle.Addr(n.id.Address())
	cfg.Logger = n.log
	if cfg.Name == "" {
		cfg.Name = u.Scheme + ":" + u.Host + u.Path
	}
	radio, err := radiolink.Attach(ctx, dev, cfg)
	if err != nil {
		return fmt.Errorf("starting the link layer on %s: %w", rawURL, err)
	}
	n.log.Info("radio link up", "url", rawURL, "max_frame", dev.MaxFrame(), "clear_only", cfg.ClearOnly)
	n.router.Serve(radio)
	err = radiolink.Run(ctx, dev, radio)
	if err == nil {
		err = errors.New("stopped")
	}
	return err
}

// stopRadio ends the radio link named by rawURL, if one runs.
func (n *Node) stopRadio(rawURL string) bool {
	n.mu.Lock()
	cancel := n.radioStop[rawURL]
	delete(n.radioStop, rawURL)
	n.mu.Unlock()
	if cancel != nil {
		cancel()
	}
	return cancel != nil
}
