package main

import (
	"context"
	"log/slog"
	"net/url"

	"github.com/ternmesh/tern/node"
	"github.com/ternmesh/tern/transports/kiss"
	"github.com/ternmesh/tern/transports/radiolink"
)

// kissOpener returns the opener of amateur packet radio through a KISS
// TNC: Dire Wolf (or any TNC) over TCP, or a hardware TNC on a serial port:
//
//	kiss+tcp://127.0.0.1:8001?call=N0CALL-7
//	kiss+serial:///dev/ttyUSB0?baud=9600&call=N0CALL-7
//
// The URL syntax is kiss.ParseURL's; the station callsign (call=) is
// required and a URL without one fails with kiss.ErrNoCallsign, which the
// daemon logs before it retries. The link is amateur radio: it is marked
// ClearOnly, so the router never puts an encrypted bundle on it, and it has
// no airtime budget (amateur bands have no duty-cycle limit); the link
// layer paces frames by the TNC's time on air.
func kissOpener(log *slog.Logger) node.RadioOpener {
	return func(ctx context.Context, u *url.URL) (radiolink.Device, radiolink.Config, error) {
		dev, err := kiss.Open(ctx, u, kiss.WithLogger(log))
		if err != nil {
			return nil, radiolink.Config{}, err
		}
		c := dev.Config()
		name := "kiss:" + c.Addr + "/" + c.Call.String()
		return dev, radiolink.Config{ClearOnly: true, Name: name}, nil
	}
}
