package kiss_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ternmesh/tern/transports/kiss"
	"github.com/ternmesh/tern/transports/kiss/kisstest"
	"github.com/ternmesh/tern/transports/radiolink"
)

func mustURL(t testing.TB, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestParseURL(t *testing.T) {
	c, err := kiss.ParseURL(mustURL(t, "kiss+tcp://localhost:8001?call=n0call-7&dest=TERN&path=WIDE1-1,WIDE2-1&txdelay=30&persist=63&slottime=10"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "tcp" || c.Addr != "localhost:8001" || c.Call.String() != "N0CALL-7" || len(c.Path) != 2 ||
		c.AirBaud != 1200 || c.TXDelay != 300*time.Millisecond || len(c.Params) != 3 {
		t.Fatalf("config %+v", c)
	}
	c, err = kiss.ParseURL(mustURL(t, "kiss+serial:///dev/ttyUSB0?baud=19200&call=N0CALL&txdelay=250ms"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Network != "serial" || c.Addr != "/dev/ttyUSB0" || c.Baud != 19200 || c.AirBaud != 1200 || c.Dest.String() != "TERN" || c.TXDelay != 250*time.Millisecond {
		t.Fatalf("serial config %+v", c)
	}
	for in, want := range map[string]string{
		"kiss+tcp://h:1":                         "?call=YOURCALL-N",
		"kiss+tcp://h:1?call=N0CALL-99":          "?call=YOURCALL-N",
		"kiss+tcp://h:1?call=NOT_A_CALL":         "?call=YOURCALL-N",
		"kiss+tcp://h?call=N0CALL":               "host:port",
		"kiss+udp://h:1?call=N0CALL":             "unknown scheme",
		"kiss+tcp://h:1?call=N0CALL&txdelay=300": "10 ms units",
		"kiss+tcp://h:1?call=N0CALL&persist=999": "0-255",
		"kiss+tcp://h:1?call=N0CALL&calll=x":     "unknown URL parameter",
	} {
		_, err := kiss.ParseURL(mustURL(t, in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: error %v, want one containing %q", in, err, want)
		}
	}
	if _, err := kiss.ParseURL(mustURL(t, "kiss+tcp://h:1")); !errors.Is(err, kiss.ErrNoCallsign) {
		t.Errorf("missing call: %v does not wrap ErrNoCallsign", err)
	}
}

type fakeRig struct {
	tnc *kisstest.TNC
	clk *kisstest.Clock
	dev *kiss.Device
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func openFake(t *testing.T, query string, opts ...kiss.Option) *fakeRig {
	t.Helper()
	r := &fakeRig{tnc: kisstest.New(), clk: kisstest.NewClock(time.Unix(1e9, 0))}
	t.Cleanup(r.tnc.Close)
	d, err := kiss.Open(context.Background(), mustURL(t, "kiss+tcp://tnc:8001?call=N0CALL-7&"+query),
		append([]kiss.Option{kiss.WithDialer(r.tnc.Dial), kiss.WithClock(r.clk)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	r.dev = d
	return r
}

func nextSent(t *testing.T, tnc *kisstest.TNC) kiss.Frame {
	t.Helper()
	select {
	case f := <-tnc.Sent():
		return f
	case <-time.After(5 * time.Second):
		t.Fatal("the TNC received nothing")
		return kiss.Frame{}
	}
}

func TestOpenSendsParameters(t *testing.T) {
	r := openFake(t, "txdelay=25&persist=63&slottime=10&fullduplex=1")
	want := []kiss.Frame{kiss.TxDelay(0, 250*time.Millisecond), kiss.SlotTime(0, 100*time.Millisecond), kiss.Persistence(0, 63), kiss.FullDuplex(0, true)}
	for _, w := range want {
		got := nextSent(t, r.tnc)
		if got.Command != w.Command || string(got.Data) != string(w.Data) {
			t.Fatalf("TNC got %+v, want %+v", got, w)
		}
	}
}

func TestTransmitWrapsInUIFrame(t *testing.T) {
	r := openFake(t, "path=WIDE1-1")
	payload := []byte{0xC0, 0xDB, 0, 1, 2} // bytes KISS must escape
	if err := r.dev.Transmit(context.Background(), payload); err != nil {
		t.Fatal(err)
	}
	f := nextSent(t, r.tnc)
	ax, err := kiss.DecodeAX25(f.Data)
	if err != nil || f.Command != kiss.CmdData {
		t.Fatalf("TNC got %+v: %v", f, err)
	}
	if ax.Src.String() != "N0CALL-7" || ax.Src.CH || ax.Dest.String() != "TERN" || !ax.Dest.CH ||
		len(ax.Path) != 1 || ax.Path[0].String() != "WIDE1-1" || !ax.IsUI() || ax.PID != 0xF0 || string(ax.Info) != string(payload) {
		t.Fatalf("frame on air %+v", ax)
	}
	if err := r.dev.Transmit(context.Background(), make([]byte, 257)); err == nil {
		t.Fatal("a 257-byte frame was accepted")
	}
	if r.dev.MaxFrame() != 256 {
		t.Fatalf("MaxFrame = %d", r.dev.MaxFrame())
	}
	// The end of the series is identified after 30 s of silence.
	r.clk.Advance(30 * time.Second)
	id, _ := kiss.DecodeAX25(nextSent(t, r.tnc).Data)
	if id.Dest.String() != "ID" || string(id.Info) != "N0CALL-7" {
		t.Fatalf("identification frame %+v", id)
	}
	if st := r.dev.Stats(); st.TxFrames != 1 || st.IDFrames != 1 {
		t.Fatalf("stats %+v", st)
	}
}

func TestReceiveFiltersNonTernFrames(t *testing.T) {
	r := openFake(t, "")
	me, other := kiss.Address{Call: "N0CALL", SSID: 2}, kiss.Address{Call: "K1ABC"}
	inject := func(f kiss.AX25Frame) {
		t.Helper()
		if err := r.tnc.InjectAX25(f); err != nil {
			t.Fatal(err)
		}
	}
	inject(kiss.NewUI(kiss.Address{Call: "APGDW"}, other, []kiss.Address{{Call: "WIDE1", SSID: 1}}, []byte("!4903.50N/07201.75W-"))) // APRS
	inject(kiss.NewUI(kiss.Address{Call: "OTHER"}, other, nil, []byte("x")))
	inject(kiss.AX25Frame{Dest: kiss.DefaultDest, Src: other, Control: 0x3F})                          // SABM
	inject(kiss.AX25Frame{Dest: kiss.DefaultDest, Src: other, Control: 0x03, PID: 0xCF, HasPID: true}) // NET/ROM PID
	if err := r.tnc.InjectRaw([]byte{0xC0, 0x00, 1, 2, 3, 0xC0}); err != nil {                         // not AX.25
		t.Fatal(err)
	}
	if err := r.tnc.Inject(kiss.Frame{Port: 1, Data: []byte("other port")}); err != nil {
		t.Fatal(err)
	}
	if err := r.tnc.InjectRaw([]byte{0xC0, 0x00, 0xDB, 0x01, 0xC0}); err != nil { // broken escape
		t.Fatal(err)
	}
	tern := kiss.NewUI(kiss.DefaultDest, me, nil, []byte("tern payload"))
	tern.Dest.CH, tern.Src.CH = false, false // AX.25 v1-style C bits are accepted
	inject(tern)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rx, err := r.dev.Receive(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if string(rx.Data) != "tern payload" || !math.IsNaN(rx.RSSI) || !math.IsNaN(rx.SNR) || !rx.At.Equal(r.clk.Now()) {
		t.Fatalf("received %+v", rx)
	}
	st := r.dev.Stats()
	want := kiss.Stats{RxFrames: 1, RxBytes: 12, RxOtherDest: 2, RxNotTern: 2, RxMalformed: 1, RxOtherKISS: 1, KISSBadEscape: 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
}

func TestConnectionLoss(t *testing.T) {
	var logs syncBuffer
	r := openFake(t, "", kiss.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	errc := make(chan error, 1)
	go func() {
		_, err := r.dev.Receive(context.Background())
		errc <- err
	}()
	r.tnc.Drop()
	select {
	case err := <-errc:
		if !errors.Is(err, radiolink.ErrDeviceClosed) || !strings.Contains(err.Error(), "reading from the TNC") {
			t.Fatalf("Receive after the TNC dropped: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Receive did not notice the lost connection")
	}
	if err := r.dev.Transmit(context.Background(), []byte("x")); !errors.Is(err, radiolink.ErrDeviceClosed) {
		t.Fatalf("Transmit after the TNC dropped: %v", err)
	}
	if l := logs.String(); !strings.Contains(l, "level=ERROR") || !strings.Contains(l, "lost the TNC connection; reopen") {
		t.Fatalf("log does not report the lost connection clearly:\n%s", l)
	}
	// The owner reopens: a new Device on the same TNC works.
	d2, err := kiss.Open(context.Background(), mustURL(t, "kiss+tcp://tnc:8001?call=N0CALL-7"), kiss.WithDialer(r.tnc.Dial), kiss.WithClock(r.clk))
	if err != nil {
		t.Fatal(err)
	}
	defer d2.Close()
	if err := d2.Transmit(context.Background(), []byte("again")); err != nil {
		t.Fatal(err)
	}
}

func TestCloseIdentifiesAndIsIdempotent(t *testing.T) {
	r := openFake(t, "")
	if err := r.dev.Transmit(context.Background(), []byte("x")); err != nil {
		t.Fatal(err)
	}
	nextSent(t, r.tnc)
	r.dev.Close()
	r.dev.Close()
	id, _ := kiss.DecodeAX25(nextSent(t, r.tnc).Data)
	if id.Dest.String() != "ID" {
		t.Fatalf("no identification on close, got %+v", id)
	}
	if _, err := r.dev.Receive(context.Background()); !errors.Is(err, radiolink.ErrDeviceClosed) {
		t.Fatalf("Receive after Close: %v", err)
	}
	if err := r.dev.Transmit(context.Background(), []byte("x")); !errors.Is(err, radiolink.ErrDeviceClosed) {
		t.Fatalf("Transmit after Close: %v", err)
	}
}

func TestSerialOpenerAndJoinedTNCs(t *testing.T) {
	a, b := kisstest.New(), kisstest.New()
	defer a.Close()
	defer b.Close()
	kisstest.Join(a, b)
	var gotBaud int
	opener := func(tnc *kisstest.TNC) kiss.SerialOpener {
		return func(path string, baud int) (io.ReadWriteCloser, error) {
			gotBaud = baud
			return tnc.OpenSerial(path, baud)
		}
	}
	da, err := kiss.Open(context.Background(), mustURL(t, "kiss+serial:///dev/ttyA?call=N0CALL-1&baud=19200"), kiss.WithSerialOpener(opener(a)))
	if err != nil {
		t.Fatal(err)
	}
	defer da.Close()
	if gotBaud != 19200 {
		t.Fatalf("serial opened at %d baud", gotBaud)
	}
	db, err := kiss.Open(context.Background(), mustURL(t, "kiss+serial:///dev/ttyB?call=N0CALL-2"), kiss.WithSerialOpener(opener(b)))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := da.Transmit(context.Background(), []byte("over the fake air")); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	rx, err := db.Receive(ctx)
	if err != nil || string(rx.Data) != "over the fake air" {
		t.Fatalf("B received %q, %v", rx.Data, err)
	}
}

func TestTimeOnAir(t *testing.T) {
	tnc := kisstest.New()
	defer tnc.Close()
	for _, c := range []struct {
		q      string
		n      int
		lo, hi time.Duration
	}{
		// 256 info bytes + 18 bytes of AX.25/FCS = 2192 bits, ~36 stuffed, 16 flag bits.
		{"", 256, 300*time.Millisecond + 1850*time.Millisecond, 300*time.Millisecond + 1880*time.Millisecond},
		{"baud=9600&txdelay=10", 256, 100*time.Millisecond + 231*time.Millisecond, 100*time.Millisecond + 235*time.Millisecond},
		{"txdelay=0", 0, 120 * time.Millisecond, 140 * time.Millisecond},
	} {
		d, err := kiss.Open(context.Background(), mustURL(t, "kiss+tcp://t:1?call=N0CALL&"+c.q), kiss.WithDialer(tnc.Dial))
		if err != nil {
			t.Fatal(err)
		}
		var m radiolink.AirtimeModel = d
		if got := m.TimeOnAir(c.n); got < c.lo || got > c.hi {
			t.Errorf("%s: TimeOnAir(%d) = %v, want %v-%v", c.q, c.n, got, c.lo, c.hi)
		}
		d.Close()
	}
}
