package main

import (
	"context"
	"crypto/sha256"
	"log/slog"
	"net/netip"
	"net/url"
	"sync"

	"github.com/ternmesh/tern/crypto"
	"github.com/ternmesh/tern/mdns"
	"github.com/ternmesh/tern/node"
)

// lanMode decides what LAN discovery may do for a node listening on
// listenURL (its first QUIC listener, "" when it only dials out):
// announcing needs a listener others can reach, so a loopback-only
// listener turns mDNS off and no listener at all turns it down to browse.
func lanMode(want mdns.Mode, listenURL string) (mdns.Mode, int, string) {
	if want == mdns.Off {
		return mdns.Off, 0, ""
	}
	if listenURL == "" {
		if want == mdns.On {
			return mdns.Browse, 0, "not announcing: there is no listener (--listen off)"
		}
		return want, 0, ""
	}
	u, err := url.Parse(listenURL)
	if err != nil {
		return mdns.Off, 0, "mDNS off: cannot read the listener address " + listenURL
	}
	ap, err := netip.ParseAddrPort(u.Host)
	if err != nil {
		return mdns.Off, 0, "mDNS off: cannot read the listener address " + listenURL
	}
	if ap.Addr().IsLoopback() {
		return mdns.Off, 0, "mDNS off: the QUIC listener is on loopback, so no LAN peer could reach it (listen on 0.0.0.0 for LAN discovery)"
	}
	return want, int(ap.Port()), ""
}

// startLAN runs mDNS discovery and turns discovered peers into links until
// ctx ends. The returned stop waits until goodbyes are sent and the
// discovered links are closed.
func startLAN(ctx context.Context, n *node.Node, modeName string, log *slog.Logger) (stop func()) {
	want, err := mdns.ParseMode(modeName)
	if err != nil {
		log.Warn("LAN discovery off", "err", err)
		return func() {}
	}
	listen := ""
	if ls := n.ListenAddrs(); len(ls) > 0 {
		listen = ls[0]
	}
	mode, port, why := lanMode(want, listen)
	if why != "" {
		log.Info(why)
	}
	if mode == mdns.Off {
		return func() {}
	}
	disc := n.NewDiscovery(node.DiscoveryConfig{Announcing: mode == mdns.On})
	svc, err := mdns.New(mdns.Config{
		Mode:   mode,
		Self:   mdns.Record{Addr: n.Identity().Address(), Port: port, CardHash: cardHash(n.Card())},
		Logger: log,
		OnEvent: func(ev mdns.Event) {
			switch ev.Kind {
			case mdns.Appeared, mdns.Changed:
				disc.Seen(node.LANPeer{Addr: crypto.Address(ev.Peer.Addr), Endpoints: ev.Peer.Endpoints()})
			case mdns.Left:
				disc.Gone(crypto.Address(ev.Peer.Addr))
			}
		},
	})
	if err != nil {
		log.Warn("LAN discovery off", "err", err)
		return func() {}
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); disc.Run(ctx) }()
	go func() { defer wg.Done(); svc.Run(ctx) }()
	return wg.Wait
}

// cardHash is the short card hash announced in TXT card=.
func cardHash(c *crypto.Card) [8]byte {
	sum := sha256.Sum256(c.Marshal())
	return [8]byte(sum[:8])
}
