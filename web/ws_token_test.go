package web

import (
	"net/http"
	"testing"
)

// TestWebSocketTokenSubprotocol: a page's WebSocket, which cannot send an
// Authorization header, passes the token as a subprotocol; a wrong one or
// none is refused, and a foreign origin is refused even with the token.
func TestWebSocketTokenSubprotocol(t *testing.T) {
	h := testHandler(DefaultAddr)
	host := "127.0.0.1:7338"
	for _, c := range []struct {
		proto, origin string
		want          int
	}{
		{"tern.media.v1, " + TokenProtocolPrefix + testToken, "http://" + host, http.StatusOK},
		{TokenProtocolPrefix + testToken, "", http.StatusOK},
		{"tern.media.v1, " + TokenProtocolPrefix + "wrong", "http://" + host, http.StatusUnauthorized},
		{"tern.media.v1", "http://" + host, http.StatusUnauthorized},
		{"tern.media.v1, " + TokenProtocolPrefix + testToken, "http://evil.example", http.StatusForbidden},
	} {
		hdr := map[string]string{"Sec-WebSocket-Protocol": c.proto}
		if c.origin != "" {
			hdr["Origin"] = c.origin
		}
		if w := do(h, "GET", "/v1/calls/x/media", host, hdr); w.Code != c.want {
			t.Errorf("protocols %q from %q: %d, want %d", c.proto, c.origin, w.Code, c.want)
		}
	}
}
