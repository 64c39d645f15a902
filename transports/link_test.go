package transports

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
)

func TestRadioInfoJSONWithoutSignalFigures(t *testing.T) {
	b, err := json.Marshal(RadioInfo{Radio: "kiss", RSSI: math.NaN(), SNR: math.NaN(), Queued: 2})
	if err != nil {
		t.Fatalf("a TNC link (no RSSI/SNR) cannot be shown: %v", err)
	}
	if !strings.Contains(string(b), `"rssi":null`) || !strings.Contains(string(b), `"queued":2`) {
		t.Errorf("JSON = %s", b)
	}
	b, _ = json.Marshal(RadioInfo{RSSI: -97.5, SNR: 4})
	if !strings.Contains(string(b), `"rssi":-97.5`) {
		t.Errorf("JSON = %s", b)
	}
}

func TestRadioInfoJSONRoundTrip(t *testing.T) {
	for _, ri := range []RadioInfo{{Radio: "a", RSSI: math.NaN(), SNR: math.NaN(), Queued: 3, FramesOut: 7, TxErrors: 2}, {Radio: "b", RSSI: -120, SNR: -7.25, FramesIn: 9}} {
		b, _ := json.Marshal(ri)
		var back RadioInfo
		if err := json.Unmarshal(b, &back); err != nil {
			t.Fatal(err)
		}
		same := func(x, y float64) bool { return x == y || math.IsNaN(x) && math.IsNaN(y) }
		if back.Radio != ri.Radio || back.Queued != ri.Queued || back.FramesIn != ri.FramesIn || back.FramesOut != ri.FramesOut ||
			back.TxErrors != ri.TxErrors || !same(back.RSSI, ri.RSSI) || !same(back.SNR, ri.SNR) {
			t.Errorf("%+v came back as %+v", ri, back)
		}
	}
}
