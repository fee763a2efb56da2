package crl

import (
	"context"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/certcenter/certcenter/ca"
	"github.com/certcenter/certcenter/store"
)

func newServer(t *testing.T, e *env) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("GET /crl/{file}", e.b.ServeCRL)
	mux.HandleFunc("GET /ca/{file}", e.b.ServeCACert)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

func TestHTTP(t *testing.T) {
	e := newEnv(t, envOpts{})
	if err := e.b.Full(context.Background(), "demo"); err != nil {
		t.Fatal(err)
	}
	srv := newServer(t, e)
	for _, tc := range []struct {
		name, path, ctype string
		status            int
	}{
		{"ok/full", "/crl/demo.crl", "application/pkix-crl", 200},
		{"ok/delta", "/crl/demo-delta.crl", "application/pkix-crl", 200},
		{"ok/arl", "/crl/demo-arl.crl", "application/pkix-crl", 200},
		{"ok/ca-cert", "/ca/demo.crt", "application/pkix-cert", 200},
		{"fail/unknown-crl", "/crl/other.crl", "", 404},
		{"fail/shard-without-shards", "/crl/demo-0.crl", "", 404},
		{"fail/unknown-ca", "/ca/other.crt", "", 404},
		{"fail/not-crt", "/ca/demo.pem", "", 404},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := get(t, srv.URL+tc.path, nil)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, body)
			}
			if tc.status != 200 {
				return
			}
			if got := resp.Header.Get("Content-Type"); got != tc.ctype {
				t.Errorf("Content-Type %q, want %q", got, tc.ctype)
			}
			etag, lm := resp.Header.Get("ETag"), resp.Header.Get("Last-Modified")
			if etag == "" || lm == "" || resp.Header.Get("Cache-Control") == "" {
				t.Errorf("missing caching headers: %v", resp.Header)
			}
			if tc.ctype == "application/pkix-crl" {
				e.parse(body)
			} else if _, err := x509.ParseCertificate(body); err != nil {
				t.Errorf("body is not a certificate: %v", err)
			}
			for _, cond := range []map[string]string{{"If-None-Match": etag}, {"If-Modified-Since": lm}} {
				resp, body := get(t, srv.URL+tc.path, cond)
				if resp.StatusCode != http.StatusNotModified || len(body) != 0 {
					t.Errorf("conditional GET %v: status %d, %d bytes", cond, resp.StatusCode, len(body))
				}
			}
			resp, _ = get(t, srv.URL+tc.path, map[string]string{"If-None-Match": `"other"`})
			if resp.StatusCode != 200 {
				t.Errorf("GET with a stale ETag: status %d", resp.StatusCode)
			}
		})
	}
	t.Run("ok/delta-is-revalidated", func(t *testing.T) {
		resp, _ := get(t, srv.URL+"/crl/demo-delta.crl", nil)
		if cc := resp.Header.Get("Cache-Control"); cc != "public, no-cache, no-transform" {
			t.Errorf("delta Cache-Control %q", cc)
		}
	})
}

// A stored CRL that is corrupt, truncated, signed by another key or missing
// is regenerated, never served.
func TestCorruptStoredCRLIsReplaced(t *testing.T) {
	other := newEnv(t, envOpts{})
	if err := other.b.Full(context.Background(), "demo"); err != nil {
		t.Fatal(err)
	}
	foreign := other.blob("demo.crl")
	for _, tc := range []struct {
		name   string
		file   string
		mangle func(der []byte) []byte
	}{
		{"flipped-byte", "demo.crl", func(d []byte) []byte { d = append([]byte{}, d...); d[len(d)/2] ^= 0xff; return d }},
		{"truncated", "demo.crl", func(d []byte) []byte { return d[:len(d)-10] }},
		{"garbage", "demo-delta.crl", func([]byte) []byte { return []byte("not a CRL") }},
		{"other-ca", "demo.crl", func([]byte) []byte { return foreign }},
		{"missing", "demo-delta.crl", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, envOpts{})
			ctx := context.Background()
			certs := e.issue(1)
			e.revoke(certs[0], ca.ReasonKeyCompromise)
			if err := e.b.Full(ctx, "demo"); err != nil {
				t.Fatal(err)
			}
			before := e.parse(e.blob(tc.file))
			err := e.store.Update(ctx, func(tx *store.Tx) error {
				if tc.mangle == nil {
					return tx.DeleteBlob(nsCRL, tc.file)
				}
				return tx.PutBlob(nsCRL, tc.file, tc.mangle(e.blob(tc.file)))
			})
			if err != nil {
				t.Fatal(err)
			}
			srv := newServer(t, e)
			resp, body := get(t, srv.URL+"/crl/"+tc.file, nil)
			if resp.StatusCode != 200 {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			rl := e.parse(body) // fails the test if it does not verify
			if rl.Number.Cmp(before.Number) <= 0 {
				t.Errorf("served CRL number %s, want a new one above %s", rl.Number, before.Number)
			}
			if tc.file == "demo.crl" && len(rl.RevokedCertificateEntries) != 1 {
				t.Errorf("regenerated CRL lists %d entries, want 1", len(rl.RevokedCertificateEntries))
			}
			if stored := e.parse(e.blob(tc.file)); stored.Number.Cmp(rl.Number) != 0 {
				t.Errorf("store holds CRL %s, served %s", stored.Number, rl.Number)
			}
		})
	}
}

// CRL numbers strictly increase across restarts, and a revocation committed
// without its delta being rebuilt (a crash in between) is in the delta after
// the restart.
func TestRestartRepair(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	if err := e.b.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	certs := e.issue(2)
	seen := e.parse(e.blob("demo-delta.crl")).Number
	for i := range 3 {
		e.restart()
		if i == 1 {
			// A revocation committed, then the process died before Notify's
			// delta: write it the way ca.Revoke does, without the event.
			err := e.store.Update(ctx, func(tx *store.Tx) error {
				_, err := tx.RevokeCert(certs[0].SerialNumber.Bytes(), e.clock.Now(), 1)
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		if err := e.b.Repair(ctx); err != nil {
			t.Fatal(err)
		}
		if err := e.b.Delta(ctx, "demo"); err != nil {
			t.Fatal(err)
		}
		n := e.parse(e.blob("demo-delta.crl")).Number
		if n.Cmp(seen) <= 0 {
			t.Fatalf("restart %d: CRL number %s not above %s", i, n, seen)
		}
		seen = n
	}
	delta := e.parse(e.blob("demo-delta.crl"))
	if len(delta.RevokedCertificateEntries) != 1 || delta.RevokedCertificateEntries[0].SerialNumber.Cmp(certs[0].SerialNumber) != 0 {
		t.Errorf("delta after the crash lists %d entries, want the committed revocation", len(delta.RevokedCertificateEntries))
	}
	t.Run("repair-rebuilds-the-missed-delta", func(t *testing.T) {
		before := e.parse(e.blob("demo-delta.crl")).Number
		err := e.store.Update(ctx, func(tx *store.Tx) error {
			_, err := tx.RevokeCert(certs[1].SerialNumber.Bytes(), e.clock.Now(), 4)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		e.restart()
		if err := e.b.Repair(ctx); err != nil {
			t.Fatal(err)
		}
		d := e.parse(e.blob("demo-delta.crl"))
		if d.Number.Cmp(before) <= 0 || len(d.RevokedCertificateEntries) != 2 {
			t.Errorf("after repair: delta %s with %d entries, want a new one with 2", d.Number, len(d.RevokedCertificateEntries))
		}
		// Nothing changed: a second repair keeps what is there.
		if err := e.b.Repair(ctx); err != nil {
			t.Fatal(err)
		}
		if again := e.parse(e.blob("demo-delta.crl")); again.Number.Cmp(d.Number) != 0 {
			t.Errorf("repair rebuilt a current delta: %s -> %s", d.Number, again.Number)
		}
	})
}

// The schedule: a full CRL when the interval has passed, a delta when half
// its validity has.
func TestMaintainSchedule(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx := context.Background()
	if err := e.b.Maintain(ctx); err != nil {
		t.Fatal(err)
	}
	number := func(f string) int64 { return e.parse(e.blob(f)).Number.Int64() }
	full, delta := number("demo.crl"), number("demo-delta.crl")
	for _, tc := range []struct {
		name                string
		advance             time.Duration
		wantFull, wantDelta bool
	}{
		{"nothing-due", time.Minute, false, false},
		{"delta-due", 31 * time.Minute, false, true},
		{"full-due", 24 * time.Hour, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.clock.Advance(tc.advance)
			if err := e.b.Maintain(ctx); err != nil {
				t.Fatal(err)
			}
			f, d := number("demo.crl"), number("demo-delta.crl")
			if (f != full) != tc.wantFull || (d != delta) != tc.wantDelta {
				t.Errorf("full %d->%d delta %d->%d, want rebuilt full=%v delta=%v", full, f, delta, d, tc.wantFull, tc.wantDelta)
			}
			if f != full {
				// A scheduled full build starts a new base, and the delta
				// issued with it shares its number (RFC 5280 §5.2.3).
				rl := e.parse(e.blob("demo-delta.crl"))
				if rl.Number.Int64() != f || deltaBase(t, rl).Int64() != f {
					t.Errorf("delta %d based on %d, want both the new full CRL's number %d", rl.Number, deltaBase(t, rl), f)
				}
			}
			full, delta = f, d
		})
	}
}

// Notify coalesces a burst of revocations into few delta rebuilds, and every
// revocation ends up in the delta.
func TestNotifyCoalesces(t *testing.T) {
	e := newEnv(t, envOpts{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := e.b.Repair(ctx); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); e.b.Run(ctx) }()
	defer func() { cancel(); <-done }()
	e.ca.Subscribe(func(_ context.Context, ev ca.Event) {
		if ev.Kind == ca.EventRevoked {
			e.b.Notify(ev.Cert.Issuer)
		}
	})
	certs := e.issue(20)
	for _, c := range certs {
		e.revoke(c, ca.ReasonSuperseded)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d := e.parse(e.blob("demo-delta.crl"))
		if len(d.RevokedCertificateEntries) == len(certs) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("delta lists %d of %d revocations", len(d.RevokedCertificateEntries), len(certs))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestNotifyArmsOneRebuildPerBurst(t *testing.T) {
	e := newEnv(t, envOpts{})
	for range 100 {
		e.b.Notify("demo")
	}
	select {
	case <-e.b.kick:
	case <-time.After(10 * time.Second):
		t.Fatal("Notify did not schedule a rebuild")
	}
	if got := e.b.takePending(); len(got) != 1 || got[0] != "demo" {
		t.Fatalf("pending %v, want [demo]", got)
	}
	select {
	case <-e.b.kick:
		t.Fatal("a burst of Notify scheduled more than one rebuild")
	default:
	}
}

func TestNewRejectsBadOptions(t *testing.T) {
	e := newEnv(t, envOpts{})
	good := Options{Store: e.store, CA: e.ca, Interval: time.Hour, Validity: 2 * time.Hour, DeltaValidity: time.Hour, DeltaDelay: time.Second}
	for _, tc := range []struct {
		name   string
		change func(*Options)
		want   string
	}{
		{"fail/no-store", func(o *Options) { o.Store = nil }, "Store and CA are required"},
		{"fail/zero-interval", func(o *Options) { o.Interval = 0 }, "crl.interval must be a positive duration"},
		{"fail/zero-delta-delay", func(o *Options) { o.DeltaDelay = 0 }, "crl.delta_delay must be a positive duration"},
		{"fail/validity-below-interval", func(o *Options) { o.Validity = time.Minute }, "crl.validity 1m0s is shorter than crl.interval"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := good
			tc.change(&o)
			_, err := New(o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error containing %q", err, tc.want)
			}
		})
	}
	b, err := New(good)
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
}
