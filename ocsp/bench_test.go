package ocsp

import (
	"crypto"
	"encoding/base64"
	"net/http"
	"net/url"
	"testing"
)

// discardWriter is a ResponseWriter that keeps nothing, so the benchmarks
// measure the handler, not a recorder.
type discardWriter struct{ h http.Header }

func (w *discardWriter) Header() http.Header         { return w.h }
func (w *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *discardWriter) WriteHeader(int)             {}

func benchRequests(b *testing.B) (*env, []*http.Request, map[string][]byte) {
	e := newEnv(b)
	iss := e.issuer("demo")
	var reqs []*http.Request
	bodies := map[string][]byte{}
	for range 64 {
		_, x := e.issue("")
		path := "/ocsp/" + base64.StdEncoding.EncodeToString(e.request(x, iss.Cert, crypto.SHA1))
		req := &http.Request{Method: http.MethodGet, URL: &url.URL{Path: path}, Header: http.Header{}}
		w := &discardWriter{h: http.Header{}}
		e.r.ServeHTTP(w, req) // warm the cache
		bodies[path] = e.post(mustDecodeTB(b, path[len("/ocsp/"):]))
		reqs = append(reqs, req)
	}
	return e, reqs, bodies
}

// BenchmarkServeGET is the responder's hot path: decode, parse, cache hit,
// headers, write.
func BenchmarkServeGET(b *testing.B) {
	e, reqs, _ := benchRequests(b)
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		clear(w.h)
		e.r.ServeHTTP(w, reqs[i%len(reqs)])
	}
}

// BenchmarkBareMapGET is the ceiling: a handler answering the same bytes
// from a map keyed by path.
func BenchmarkBareMapGET(b *testing.B) {
	_, reqs, bodies := benchRequests(b)
	ct := []string{"application/ocsp-response"}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := bodies[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Header()["Content-Type"] = ct
		w.Write(body)
	})
	w := &discardWriter{h: http.Header{}}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		clear(w.h)
		h.ServeHTTP(w, reqs[i%len(reqs)])
	}
}

func BenchmarkParseRequest(b *testing.B) {
	_, reqs, _ := benchRequests(b)
	der, err := base64.StdEncoding.DecodeString(reqs[0].URL.Path[len("/ocsp/"):])
	if err != nil {
		b.Fatal(err)
	}
	var r Request
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseRequest(der, &r); err != nil {
			b.Fatal(err)
		}
	}
}

func mustDecodeTB(tb testing.TB, s string) []byte {
	der, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		tb.Fatal(err)
	}
	return der
}
