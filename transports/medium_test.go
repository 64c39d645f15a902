package transports

import (
	"context"
	"testing"
)

type fakeLink struct {
	remote string
	clear  bool
}

func (f fakeLink) Send(context.Context, []byte) error   { return nil }
func (f fakeLink) Recv(context.Context) ([]byte, error) { return nil, ErrClosed }
func (f fakeLink) MTU() int                             { return 1 }
func (f fakeLink) Peer() Peer                           { return Peer{Remote: f.remote} }
func (f fakeLink) Close() error                         { return nil }
func (f fakeLink) ClearOnly() bool                      { return f.clear }

type fakeRadio struct{ fakeLink }

func (fakeRadio) RadioInfo() RadioInfo { return RadioInfo{} }

type fakeNamed struct{ fakeLink }

func (fakeNamed) Medium() string { return MediumLoRa }

// TestMediumOf: what a user is told a message went over ("sent via LAN").
func TestMediumOf(t *testing.T) {
	for _, c := range []struct {
		l    Link
		want string
	}{
		{fakeLink{remote: "192.168.1.20:7337"}, MediumLAN},
		{fakeLink{remote: "quic://10.0.0.7:7337"}, MediumLAN},
		{fakeLink{remote: "127.0.0.1:7337"}, MediumLAN},
		{fakeLink{remote: "[fe80::1]:7337"}, MediumLAN},
		{fakeLink{remote: "[fd00::5]:7337"}, MediumLAN},
		{fakeLink{remote: "quic://[::ffff:192.168.0.3]:7337"}, MediumLAN},
		{fakeLink{remote: "203.0.113.9:7337"}, MediumInternet},
		{fakeLink{remote: "quic://[2001:db8::1]:7337"}, MediumInternet},
		{fakeLink{remote: "mem://bob"}, ""},
		{fakeRadio{fakeLink{remote: "lora"}}, MediumLoRa},
		{fakeRadio{fakeLink{remote: "N0CALL-7", clear: true}}, MediumPacketRadio},
		{fakeNamed{fakeLink{remote: "203.0.113.9:7337"}}, MediumLoRa},
	} {
		if got := MediumOf(c.l); got != c.want {
			t.Errorf("MediumOf(%T %q) = %q, want %q", c.l, c.l.Peer().Remote, got, c.want)
		}
	}
}
