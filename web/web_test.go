package web

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testToken = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func testHandler(addr string) http.Handler {
	api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"ok":true}`) })
	return Handler(Config{API: api, Token: testToken, Addr: addr})
}

func do(h http.Handler, method, target, host string, hdr map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, nil)
	r.Host = host
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func TestTokenIsPrivateAndSurvivesRestarts(t *testing.T) {
	dir := t.TempDir()
	a, err := LoadToken(dir, bytes.NewReader(bytes.Repeat([]byte{7}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, TokenFile))
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("token file mode %v, want 0600", st.Mode().Perm())
	}
	b, err := LoadToken(dir, bytes.NewReader(bytes.Repeat([]byte{9}, 32)))
	if err != nil || b != a {
		t.Errorf("second start gave token %q (%v), want the first one %q", b, err, a)
	}
	if len(a) != 64 {
		t.Errorf("token %q: want 64 hex characters", a)
	}
}

func TestAPINeedsTheToken(t *testing.T) {
	h := testHandler(DefaultAddr)
	w := do(h, "GET", "/v1/id", "127.0.0.1:7338", nil)
	if w.Code != http.StatusUnauthorized || !strings.Contains(w.Body.String(), "tern ui") {
		t.Errorf("no token: %d %q, want 401 telling to run `tern ui`", w.Code, w.Body)
	}
	w = do(h, "GET", "/v1/id", "127.0.0.1:7338", map[string]string{"Authorization": "Bearer wrong"})
	if w.Code != http.StatusUnauthorized {
		t.Errorf("wrong token: %d, want 401", w.Code)
	}
	for _, hdr := range []map[string]string{
		{"Authorization": "Bearer " + testToken},
		{"X-Tern-Token": testToken},
		{"Cookie": CookieName + "=" + testToken},
		{"Authorization": "Bearer stale", "Cookie": CookieName + "=" + testToken},
	} {
		if w := do(h, "GET", "/v1/id", "localhost:7338", hdr); w.Code != http.StatusOK {
			t.Errorf("with %v: %d %q, want 200", hdr, w.Code, w.Body)
		}
	}
	// The page itself carries no secret and loads without the token.
	if w := do(h, "GET", "/", "127.0.0.1:7338", nil); w.Code != http.StatusOK || !strings.Contains(w.Body.String(), "app.js") {
		t.Errorf("index: %d", w.Code)
	}
	if w := do(h, "GET", "/app.js", "127.0.0.1:7338", nil); w.Code != http.StatusOK {
		t.Errorf("app.js: %d", w.Code)
	}
}

func TestForeignHostAndOriginRefused(t *testing.T) {
	h := testHandler(DefaultAddr)
	auth := map[string]string{"Authorization": "Bearer " + testToken}
	for _, host := range []string{"evil.example:7338", "rebind.attacker.test", "192.168.1.9:7338", "localhost.evil.example"} {
		if w := do(h, "GET", "/v1/id", host, auth); w.Code != http.StatusForbidden {
			t.Errorf("Host %q: %d, want 403", host, w.Code)
		}
		if w := do(h, "GET", "/", host, nil); w.Code != http.StatusForbidden {
			t.Errorf("Host %q page: %d, want 403", host, w.Code)
		}
	}
	for _, host := range []string{"127.0.0.1:7338", "localhost:7338", "[::1]:7338", "LOCALHOST"} {
		if w := do(h, "GET", "/v1/id", host, auth); w.Code != http.StatusOK {
			t.Errorf("Host %q: %d, want 200", host, w.Code)
		}
	}
	cross := map[string]string{"Authorization": "Bearer " + testToken, "Origin": "http://evil.example"}
	if w := do(h, "POST", "/v1/messages", "127.0.0.1:7338", cross); w.Code != http.StatusForbidden {
		t.Errorf("cross-site origin: %d, want 403", w.Code)
	}
	// A user who listens on a LAN address explicitly may use it.
	lan := testHandler("192.168.1.9:7338")
	if w := do(lan, "GET", "/v1/id", "192.168.1.9:7338", auth); w.Code != http.StatusOK {
		t.Errorf("explicit LAN address: %d, want 200", w.Code)
	}
	if w := do(lan, "GET", "/v1/id", "evil.example", auth); w.Code != http.StatusForbidden {
		t.Errorf("explicit LAN address, foreign host: %d, want 403", w.Code)
	}
}

func TestTokenLinkSetsStrictCookie(t *testing.T) {
	h := testHandler(DefaultAddr)
	w := do(h, "GET", "/?token="+testToken, "127.0.0.1:7338", nil)
	if w.Code != http.StatusSeeOther || w.Header().Get("Location") != "/" {
		t.Fatalf("token link: %d to %q, want 303 to /", w.Code, w.Header().Get("Location"))
	}
	c := w.Result().Cookies()
	if len(c) != 1 || c[0].Value != testToken || !c[0].HttpOnly || c[0].SameSite != http.SameSiteStrictMode {
		t.Errorf("cookie %+v: want the token, HttpOnly, SameSite=Strict", c)
	}
	if w := do(h, "GET", "/?token=nope", "127.0.0.1:7338", nil); w.Code != http.StatusUnauthorized || len(w.Result().Cookies()) != 0 {
		t.Errorf("wrong token link: %d, want 401 and no cookie", w.Code)
	}
}

func TestURL(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:7338": "http://127.0.0.1:7338/#token=T",
		"0.0.0.0:9000":   "http://127.0.0.1:9000/#token=T",
		":9000":          "http://127.0.0.1:9000/#token=T",
		"[::1]:7338":     "http://[::1]:7338/#token=T",
	} {
		if got := URL(addr, "T"); got != want {
			t.Errorf("URL(%q) = %q, want %q", addr, got, want)
		}
	}
}

// FuzzRequest throws arbitrary hosts, paths and credentials at the handler:
// it must never panic, and never let a request reach the API without the
// token and a local Host.
func FuzzRequest(f *testing.F) {
	f.Add("127.0.0.1:7338", "/v1/id", "Bearer x", "tern_token=y", "")
	f.Add("localhost", "/?token="+testToken, "", "", "")
	f.Add("[::1]", "/v1/events", "Bearer "+testToken, "", "http://127.0.0.1")
	f.Add("evil.example", "/metrics", "", "tern_token="+testToken, "null")
	f.Fuzz(func(t *testing.T, host, path, auth, cookie, origin string) {
		reached := false
		api := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { reached = true })
		h := Handler(Config{API: api, Token: testToken, Addr: DefaultAddr})
		r, err := http.NewRequest("GET", "http://x/", nil)
		if err != nil {
			t.Skip()
		}
		r.URL.Path = path
		r.Host = host
		r.Header.Set("Authorization", auth)
		r.Header.Set("Cookie", cookie)
		r.Header.Set("Origin", origin)
		h.ServeHTTP(httptest.NewRecorder(), r)
		if reached && !strings.Contains(auth+cookie, testToken) {
			t.Fatalf("API reached without the token: host %q auth %q cookie %q", host, auth, cookie)
		}
		if reached && (strings.Contains(host, "evil") || host == "") {
			t.Fatalf("API reached with foreign host %q", host)
		}
	})
}
