package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/ternmesh/tern/lora/modem"
	"github.com/ternmesh/tern/lora/region"
	"github.com/ternmesh/tern/node"
	"github.com/ternmesh/tern/transports/kiss"
	"github.com/ternmesh/tern/transports/radiolink"
)

// radioOpeners is the registry of radio link schemes: each URL scheme maps
// to the code that opens that kind of radio and sets the link layer up for
// it (frame size, time on air, the regional airtime budget, the amateur
// policy). It is built here, in cmd/, and passed down.
func radioOpeners(log *slog.Logger) map[string]node.RadioOpener {
	openers := map[string]node.RadioOpener{}
	for _, k := range []modem.Kind{modem.KindRNode, modem.KindE22, modem.KindRAK3172} {
		openers[string(k)] = func(ctx context.Context, u *url.URL) (radiolink.Device, radiolink.Config, error) {
			return openModem(ctx, u, log)
		}
	}
	openers["kiss+tcp"], openers["kiss+serial"] = kissOpener(log), kissOpener(log)
	openers[spiScheme] = newSPIOpener(log, spiEnv{})
	return openers
}

// openModem opens a serial LoRa modem (rnode://, e22://, rak3172://) and
// applies the legal airtime limits of the region its frequency is in.
func openModem(ctx context.Context, u *url.URL, log *slog.Logger) (radiolink.Device, radiolink.Config, error) {
	cfg, budget, err := parseModem(u)
	if err != nil {
		return nil, radiolink.Config{}, err
	}
	cfg.Logger = log
	m, err := modem.Open(ctx, cfg)
	if err != nil {
		return nil, radiolink.Config{}, err
	}
	return m, radiolink.Config{Budget: budget, Name: u.Scheme + ":" + cfg.Path}, nil
}

// parseModem reads a modem URL (our `region` key aside) and finds the
// airtime budget of its channel, touching no hardware.
func parseModem(u *url.URL) (modem.Config, *region.Budget, error) {
	q := u.Query()
	regionName := q.Get("region")
	q.Del("region")
	mu := *u
	mu.RawQuery = q.Encode()
	cfg, err := modem.ParseURL(mu.String())
	if err != nil {
		return modem.Config{}, nil, err
	}
	budget, err := loraBudget(regionName, cfg.FrequencyHz, int64(cfg.LoRa.BandwidthHz))
	return cfg, budget, err
}

// radioChecks validate radio link URLs without opening anything, so that
// `tern run --link` and `tern peer add` refuse a mistyped one at once.
func radioChecks() map[string]func(*url.URL) error {
	checks := map[string]func(*url.URL) error{
		"kiss+tcp":    func(u *url.URL) error { _, err := kiss.ParseURL(u); return err },
		"kiss+serial": func(u *url.URL) error { _, err := kiss.ParseURL(u); return err },
		spiScheme:     func(u *url.URL) error { _, err := parseSPIRadio(u); return err },
	}
	for _, k := range []modem.Kind{modem.KindRNode, modem.KindE22, modem.KindRAK3172} {
		checks[string(k)] = func(u *url.URL) error { _, _, err := parseModem(u); return err }
	}
	return checks
}

// loraBudget returns the airtime budget of the sub-band a LoRa channel is
// in: in the named region, or else the first region whose rules cover the
// frequency. A channel outside every known region is refused: Tern never
// transmits without knowing which rules apply.
func loraBudget(regionName string, freqHz, bwHz int64) (*region.Budget, error) {
	names := region.Names()
	if regionName != "" {
		names = []string{strings.ToUpper(regionName)}
	}
	for _, name := range names {
		r, err := region.Lookup(name)
		if err != nil {
			return nil, err
		}
		if _, err := r.Band(freqHz); err != nil && regionName == "" {
			continue // not this region's spectrum: try the next
		}
		band, err := r.Channel(freqHz, bwHz)
		if err != nil {
			return nil, fmt.Errorf("LoRa channel %.3f MHz, %d kHz wide, in %s: %w", float64(freqHz)/1e6, bwHz/1000, name, err)
		}
		return region.NewBudget(band, time.Now), nil
	}
	return nil, fmt.Errorf("LoRa frequency %.3f MHz is outside every region Tern knows (%s): pick a legal frequency, or name the region with ?region=NAME",
		float64(freqHz)/1e6, strings.Join(region.Names(), ", "))
}
