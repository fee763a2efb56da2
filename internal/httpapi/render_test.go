package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestWriteError(t *testing.T) {
	for _, tc := range []struct {
		name    string
		err     error
		status  int
		code    string
		msg     string // the whole message the client sees
		logged  bool   // the error goes to the log
		notSeen string // must not reach the client
	}{
		{"4xx/bad request keeps its status", BadRequest("limit must be %d", 5), 400, "bad_request", "limit must be 5", false, ""},
		{"4xx/not found", NotFound("no certificate with serial %x", []byte{1}), 404, "not_found", "no certificate with serial 01", false, ""},
		{"4xx/forbidden", Forbidden("role x"), 403, "forbidden", "role x", false, ""},
		{"4xx/conflict", Conflict("already revoked"), 409, "conflict", "already revoked", false, ""},
		{"4xx/wrapped API error keeps its status", fmt.Errorf("handler: %w", Conflict("busy")), 409, "conflict", "busy", false, ""},
		{"413/body over the limit", &http.MaxBytesError{Limit: 10}, 413, "too_large", "request body over 10 bytes", false, ""},
		{"413/wrapped body over the limit", fmt.Errorf("decoding: %w", &http.MaxBytesError{Limit: 7}), 413, "too_large", "request body over 7 bytes", false, ""},
		{"503/cancelled", fmt.Errorf("reading: %w", context.Canceled), 503, "timeout", "request cancelled or timed out", false, ""},
		{"503/deadline", context.DeadlineExceeded, 503, "timeout", "request cancelled or timed out", false, ""},
		{"500/internal details stay in the log", errors.New("badger: value log /secret/path corrupt"), 500, "internal", "internal error", true, "/secret/path"},
		{"5xx/API error of 5xx is logged", Errorf(http.StatusNotImplemented, "not_implemented", "later"), 501, "not_implemented", "later", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logBuf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&logBuf, nil))
			rec := httptest.NewRecorder()
			WriteError(rec, httptest.NewRequest("GET", "/api/v1/x", nil), log, tc.err)
			if rec.Code != tc.status {
				t.Errorf("status %d, want %d", rec.Code, tc.status)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			var body map[string]map[string]string
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatalf("body %q: %v", rec.Body, err)
			}
			if len(body) != 1 || len(body["error"]) != 2 || body["error"]["code"] != tc.code || body["error"]["message"] != tc.msg {
				t.Errorf("body %s, want {error: {code: %s, message: %s}}", rec.Body, tc.code, tc.msg)
			}
			if tc.notSeen != "" && strings.Contains(rec.Body.String(), tc.notSeen) {
				t.Errorf("the client sees %q: %s", tc.notSeen, rec.Body)
			}
			if got := strings.Contains(logBuf.String(), "api request failed"); got != tc.logged {
				t.Errorf("logged = %v, want %v: %s", got, tc.logged, logBuf.String())
			}
			if tc.logged && tc.notSeen != "" && !strings.Contains(logBuf.String(), tc.notSeen) {
				t.Errorf("log %q lacks the details %q", logBuf.String(), tc.notSeen)
			}
		})
	}
}

func TestDecodeJSON(t *testing.T) {
	type req struct {
		Reason string `json:"reason"`
	}
	for _, tc := range []struct {
		name, body string
		limit      int64
		want       string
		status     int // 0: decodes
		msg        string
	}{
		{name: "ok/object", body: `{"reason":"superseded"}`, want: "superseded"},
		{name: "ok/trailing white space", body: "{\"reason\":\"x\"}\n\t ", want: "x"},
		{name: "fail/empty body", body: "", status: 400, msg: "invalid JSON body"},
		{name: "fail/unknown field", body: `{"reason":"x","force":true}`, status: 400, msg: `unknown field \"force\"`},
		{name: "fail/wrong type", body: `{"reason":5}`, status: 400, msg: "invalid JSON body"},
		{name: "fail/not JSON", body: `reason=x`, status: 400, msg: "invalid JSON body"},
		{name: "fail/second object after the first", body: `{"reason":"x"}{"reason":"y"}`, status: 400, msg: "after the JSON value"},
		{name: "fail/garbage after the object", body: `{"reason":"x"} trailing`, status: 400, msg: "after the JSON value"},
		{name: "fail/over the body limit", body: `{"reason":"` + strings.Repeat("a", 100) + `"}`, limit: 50, status: 413, msg: "over 50 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got req
			h := handle(func(w http.ResponseWriter, r *http.Request) error {
				if tc.limit > 0 {
					r.Body = http.MaxBytesReader(w, r.Body, tc.limit)
				}
				if err := DecodeJSON(r, &got); err != nil {
					return err
				}
				return WriteJSON(w, 200, got)
			})
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest("POST", "/", strings.NewReader(tc.body)))
			if tc.status == 0 {
				if rec.Code != 200 || got.Reason != tc.want {
					t.Fatalf("status %d %s, reason %q; want 200 %q", rec.Code, rec.Body, got.Reason, tc.want)
				}
				return
			}
			if rec.Code != tc.status || !strings.Contains(rec.Body.String(), tc.msg) {
				t.Fatalf("status %d %s; want %d with %q", rec.Code, rec.Body, tc.status, tc.msg)
			}
		})
	}
}

func TestPage(t *testing.T) {
	for _, tc := range []struct {
		name, query string
		limit       int
		after       string
		fail        bool
	}{
		{name: "ok/defaults", query: "", limit: 100},
		{name: "ok/limit and after", query: "limit=7&after=0a1b", limit: 7, after: "0a1b"},
		{name: "ok/smallest", query: "limit=1", limit: 1},
		{name: "ok/largest", query: "limit=1000", limit: 1000},
		{name: "fail/zero", query: "limit=0", fail: true},
		{name: "fail/negative", query: "limit=-1", fail: true},
		{name: "fail/over 1000", query: "limit=1001", fail: true},
		{name: "fail/not a number", query: "limit=ten", fail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit, after, err := Page(httptest.NewRequest("GET", "/x?"+tc.query, nil))
			if tc.fail {
				var ae *Error
				if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "limit must be between 1 and 1000") {
					t.Fatalf("Page(%s) = %d, %v; want a 400 naming the range", tc.query, limit, err)
				}
				return
			}
			if err != nil || limit != tc.limit || after != tc.after {
				t.Fatalf("Page(%s) = %d, %q, %v; want %d, %q", tc.query, limit, after, err, tc.limit, tc.after)
			}
		})
	}
}

func TestFallback(t *testing.T) {
	mux := http.NewServeMux()
	ok := func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("route")) }
	mux.HandleFunc("GET /api/v1/certs", ok)
	mux.HandleFunc("GET /api/v1/certs/{serial}", ok)
	mux.HandleFunc("POST /api/v1/certs/{serial}/revoke", ok)
	mux.HandleFunc("PUT /api/v1/things/{id}", ok)
	mux.HandleFunc("DELETE /api/v1/things/{id}", ok)
	mux.HandleFunc("GET /healthz", ok)
	mux.Handle("/api/", Fallback(mux, "/api/"))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "the public site", http.StatusTeapot) })

	for _, tc := range []struct {
		name, method, path string
		status             int
		allow, code        string
	}{
		{"ok/route still answers", "GET", "/api/v1/certs", 200, "", ""},
		{"ok/HEAD of a GET route", "HEAD", "/api/v1/certs/0a", 200, "", ""},
		{"405/POST on a GET route", "POST", "/api/v1/certs", 405, "GET, HEAD", "method_not_allowed"},
		{"405/GET on a POST route", "GET", "/api/v1/certs/0a/revoke", 405, "POST", "method_not_allowed"},
		{"405/every method of the path", "POST", "/api/v1/things/7", 405, "PUT, DELETE", "method_not_allowed"},
		{"405/OPTIONS", "OPTIONS", "/api/v1/certs", 405, "GET, HEAD", "method_not_allowed"},
		{"404/unknown path", "GET", "/api/v1/nothing", 404, "", "not_found"},
		{"404/unknown path, any method", "DELETE", "/api/v2/certs", 404, "", "not_found"},
		{"404/API root", "GET", "/api/", 404, "", "not_found"},
		{"other/outside the API is not the fallback's", "GET", "/elsewhere", http.StatusTeapot, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			mux.ServeHTTP(rec, httptest.NewRequest(tc.method, tc.path, nil))
			if rec.Code != tc.status {
				t.Fatalf("%s %s: status %d %s, want %d", tc.method, tc.path, rec.Code, rec.Body, tc.status)
			}
			if got := rec.Header().Get("Allow"); got != tc.allow {
				t.Errorf("Allow %q, want %q", got, tc.allow)
			}
			if tc.code == "" {
				return
			}
			var body struct {
				Error struct{ Code, Message string }
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body.Error.Code != tc.code {
				t.Fatalf("body %s (%v), want code %s", rec.Body, err, tc.code)
			}
			if !strings.Contains(body.Error.Message, tc.path) && tc.status != http.StatusTeapot {
				t.Errorf("message %q does not name the path %s", body.Error.Message, tc.path)
			}
		})
	}
}

// handle renders h's error as Register's routes do, without their auth.
func handle(h HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			WriteError(w, r, slog.New(slog.DiscardHandler), err)
		}
	})
}
